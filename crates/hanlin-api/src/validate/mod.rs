//! OpenAI requests, validated from raw JSON into [`GenerationRequest`]s. Working on
//! `serde_json::Value` rather than derived structs is deliberate: a wrong type, a value out of
//! range or an unsupported option each become a 400 that names the field, in OpenAI's wording.

mod fields;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

pub use fields::{body_object, missing, unsupported, wrong_type, Fields};

use crate::backend::{GenerationRequest, PromptInput, SamplingOptions};
use crate::choices::MAX_CHOICES;
use crate::error::ApiError;
use fields::as_int;

/// A validated `/v1/chat/completions` request.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatRequest {
    /// What the backend runs.
    pub generation: GenerationRequest,
    /// Tools the model may call (`None`: no tools, or `tool_choice: none`).
    pub tools: Option<crate::tools::ToolSpec>,
    /// Server-sent events instead of one JSON body.
    pub stream: bool,
    /// Send a usage-only chunk before `[DONE]`.
    pub include_usage: bool,
    /// Choices to generate (`n`), 1..=[`MAX_CHOICES`].
    pub n: usize,
    /// End-user id, for logs.
    pub user: Option<String>,
}

/// A validated `/v1/completions` request.
#[derive(Clone, Debug, PartialEq)]
pub struct CompletionRequest {
    /// What the backend runs.
    pub generation: GenerationRequest,
    /// Server-sent events instead of one JSON body.
    pub stream: bool,
    /// Send a usage-only chunk before `[DONE]`.
    pub include_usage: bool,
    /// Prepend the prompt to the returned text.
    pub echo: bool,
    /// Choices to generate (`n`), 1..=[`MAX_CHOICES`].
    pub n: usize,
    /// End-user id, for logs.
    pub user: Option<String>,
}

/// A validated `/v1/embeddings` request.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingRequest {
    /// Model id.
    pub model: String,
    /// One entry per vector wanted (`Text` or `Tokens`).
    pub inputs: Vec<PromptInput>,
    /// Vectors as base64 of little-endian f32 (the Python SDK's default) instead of arrays.
    pub base64: bool,
}

/// Sampling fields shared by chat and completions.
fn sampling(f: &Fields) -> Result<SamplingOptions, ApiError> {
    let d = SamplingOptions::default();
    Ok(SamplingOptions {
        temperature: f
            .number("temperature", 0.0, false, 2.0)?
            .unwrap_or(d.temperature),
        top_p: f.number("top_p", 0.0, true, 1.0)?.unwrap_or(d.top_p),
        top_k: f
            .int("top_k", 0, i64::from(u32::MAX))?
            .map_or(d.top_k, |k| k as usize),
        min_p: f.number("min_p", 0.0, false, 1.0)?.unwrap_or(d.min_p),
        repetition_penalty: f
            .number("repetition_penalty", 0.0, true, 10.0)?
            .unwrap_or(d.repetition_penalty),
        presence_penalty: f
            .number("presence_penalty", -2.0, false, 2.0)?
            .unwrap_or(0.0),
        frequency_penalty: f
            .number("frequency_penalty", -2.0, false, 2.0)?
            .unwrap_or(0.0),
        logit_bias: logit_bias(f)?,
        seed: f.seed("seed")?,
    })
}

/// `logit_bias`: token-id string keys, values in [-100, 100].
fn logit_bias(f: &Fields) -> Result<Vec<(u32, f32)>, ApiError> {
    let Some(map) = f.object("logit_bias")? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        let p = format!("{}.{k}", f.param("logit_bias"));
        let id: u32 = k.parse().map_err(|_| {
            ApiError::invalid(
                f.param("logit_bias"),
                format!("Invalid key in 'logit_bias': {k:?} is not a token id."),
            )
        })?;
        let x = v.as_f64().ok_or_else(|| wrong_type(&p, "a number", v))?;
        if !(-100.0..=100.0).contains(&x) {
            return Err(ApiError::invalid(
                &p,
                format!("Invalid value for 'logit_bias' token {id}: expected a value in [-100, 100], but got {x} instead."),
            ));
        }
        out.push((id, x as f32));
    }
    Ok(out)
}

/// `n`: how many independent choices, 1..=[`MAX_CHOICES`] (each is a running sequence).
fn choices(f: &Fields) -> Result<usize, ApiError> {
    Ok(f.int("n", 1, MAX_CHOICES as i64)?.map_or(1, |n| n as usize))
}

/// Legacy `best_of`: generating more candidates than returned needs a ranking we do not do,
/// so only `best_of == n` (every candidate returned) is accepted.
fn check_best_of(f: &Fields, n: usize) -> Result<(), ApiError> {
    match f.int("best_of", 1, MAX_CHOICES as i64)? {
        None => Ok(()),
        Some(b) if b as usize == n => Ok(()),
        Some(b) if (b as usize) < n => Err(ApiError::invalid(
            "best_of",
            format!("Invalid 'best_of': {b} is less than 'n' ({n}); best_of must be greater than or equal to n."),
        )),
        Some(b) => Err(unsupported(
            "best_of",
            &format!("{b} candidates ranked down to {n} is not supported; use n instead"),
        )),
    }
}

/// `stream` and `stream_options.include_usage`.
fn stream_flags(f: &Fields) -> Result<(bool, bool), ApiError> {
    let stream = f.bool("stream")?.unwrap_or(false);
    let Some(opts) = f.object("stream_options")? else {
        return Ok((stream, false));
    };
    if !stream {
        return Err(ApiError::invalid(
            "stream_options",
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        ));
    }
    let include = Fields::new(opts, "stream_options.").bool("include_usage")?;
    Ok((stream, include.unwrap_or(false)))
}

/// `max_completion_tokens`, falling back to the older `max_tokens`.
fn max_tokens(f: &Fields) -> Result<Option<usize>, ApiError> {
    let new = f.int("max_completion_tokens", 1, i64::from(u32::MAX))?;
    let old = f.int("max_tokens", 1, i64::from(u32::MAX))?;
    Ok(new.or(old).map(|n| n as usize))
}

/// Validates a chat request body.
pub fn chat_request(body: &Value) -> Result<ChatRequest, ApiError> {
    let f = Fields::new(body_object(body)?, "");
    let model = f.required_str("model")?.to_string();
    let messages = messages(&f)?;
    let tool_spec = crate::tools::tool_spec(&f)?;
    // The raw tool list goes to the template as sent.
    let tools = tool_spec
        .as_ref()
        .and_then(|_| f.get("tools"))
        .and_then(Value::as_array)
        .cloned();
    let n = choices(&f)?;
    let (stream, include_usage) = stream_flags(&f)?;
    let constraint = crate::structured::openai_constraint(&f)?;
    let logprobs = f.bool("logprobs")?.unwrap_or(false);
    let top = f.int("top_logprobs", 0, 20)?;
    if top.is_some() && !logprobs {
        return Err(ApiError::invalid(
            "top_logprobs",
            "Invalid 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.",
        ));
    }
    let generation = GenerationRequest {
        model,
        input: PromptInput::Chat { messages, tools },
        max_tokens: max_tokens(&f)?,
        sampling: sampling(&f)?,
        stop: f.stop("stop", 4)?,
        logprobs: logprobs.then(|| top.unwrap_or(0) as usize),
        constraint,
    };
    if tool_spec.is_some() && generation.constraint.is_some() {
        return Err(ApiError::invalid(
            "response_format",
            "'response_format' and guided decoding cannot be combined with 'tools'; use tool_choice 'none' or drop the format.",
        ));
    }
    Ok(ChatRequest {
        generation,
        tools: tool_spec,
        stream,
        include_usage,
        n,
        user: f.str("user")?.map(str::to_string),
    })
}

/// Validates a legacy completions request body.
pub fn completion_request(body: &Value) -> Result<CompletionRequest, ApiError> {
    let f = Fields::new(body_object(body)?, "");
    let model = f.required_str("model")?.to_string();
    let input = prompt(&f)?;
    let n = choices(&f)?;
    check_best_of(&f, n)?;
    let (stream, include_usage) = stream_flags(&f)?;
    if f.str("suffix")?.is_some_and(|s| !s.is_empty()) {
        return Err(unsupported(
            "suffix",
            "fill-in-the-middle is not supported yet",
        ));
    }
    let generation = GenerationRequest {
        model,
        input,
        max_tokens: Some(f.int("max_tokens", 0, i64::from(u32::MAX))?.unwrap_or(16) as usize),
        sampling: sampling(&f)?,
        stop: f.stop("stop", 4)?,
        logprobs: f.int("logprobs", 0, 5)?.map(|n| n as usize),
        constraint: crate::structured::openai_constraint(&f)?,
    };
    Ok(CompletionRequest {
        generation,
        stream,
        include_usage,
        echo: f.bool("echo")?.unwrap_or(false),
        n,
        user: f.str("user")?.map(str::to_string),
    })
}

/// Validates an embeddings request body.
pub fn embedding_request(body: &Value) -> Result<EmbeddingRequest, ApiError> {
    let f = Fields::new(body_object(body)?, "");
    let model = f.required_str("model")?.to_string();
    let empty = || ApiError::invalid("input", "Invalid 'input': empty array.");
    let inputs = match f.get("input") {
        None => return Err(missing("input")),
        Some(Value::String(s)) => vec![PromptInput::Text(s.clone())],
        Some(Value::Array(a)) if a.is_empty() => return Err(empty()),
        Some(Value::Array(a)) => match &a[0] {
            Value::Number(_) => vec![token_ids(a, "input")?],
            _ => a
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(PromptInput::Text(s.clone())),
                    Value::Array(t) => token_ids(t, &format!("input.[{i}]")),
                    v => Err(wrong_type(
                        &format!("input.[{i}]"),
                        "a string or a token array",
                        v,
                    )),
                })
                .collect::<Result<_, _>>()?,
        },
        Some(v) => return Err(wrong_type("input", "a string or an array", v)),
    };
    let base64 = match f.str("encoding_format")? {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "encoding_format",
                format!("Invalid value: '{other}'. Supported values are: 'float' and 'base64'."),
            ))
        }
    };
    if f.get("dimensions").is_some() {
        return Err(unsupported(
            "dimensions",
            "truncated embeddings are not supported",
        ));
    }
    Ok(EmbeddingRequest {
        model,
        inputs,
        base64,
    })
}

/// A completions `prompt`: a string, one-element string array, or token ids.
fn prompt(f: &Fields) -> Result<PromptInput, ApiError> {
    let Some(v) = f.get("prompt") else {
        return Err(missing("prompt"));
    };
    let batched = || unsupported("prompt", "only one prompt per request is supported");
    match v {
        Value::String(s) => Ok(PromptInput::Text(s.clone())),
        Value::Array(a) if a.is_empty() => Err(ApiError::invalid(
            "prompt",
            "Invalid 'prompt': empty array. Expected a string or a non-empty array.",
        )),
        Value::Array(a) => match &a[0] {
            Value::String(_) if a.len() > 1 => Err(batched()),
            Value::String(s) => Ok(PromptInput::Text(s.clone())),
            Value::Array(_) if a.len() > 1 => Err(batched()),
            Value::Array(inner) => token_ids(inner, "prompt.[0]"),
            Value::Number(_) => token_ids(a, "prompt"),
            other => Err(wrong_type("prompt.[0]", "a string or an integer", other)),
        },
        other => Err(wrong_type("prompt", "a string or an array", other)),
    }
}

fn token_ids(a: &[Value], param: &str) -> Result<PromptInput, ApiError> {
    if a.is_empty() {
        return Err(ApiError::invalid(
            param,
            format!("Invalid '{param}': empty token array."),
        ));
    }
    a.iter()
        .enumerate()
        .map(|(i, v)| {
            as_int(v)
                .and_then(|x| u32::try_from(x).ok())
                .ok_or_else(|| wrong_type(&format!("{param}.[{i}]"), "a token id", v))
        })
        .collect::<Result<Vec<u32>, _>>()
        .map(PromptInput::Tokens)
}

const ROLES: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];

/// Chat `messages`, normalized for templates: text parts joined, `developer` → `system`.
fn messages(f: &Fields) -> Result<Vec<Value>, ApiError> {
    let list = match f.get("messages") {
        None => return Err(missing("messages")),
        Some(Value::Array(a)) => a,
        Some(v) => return Err(wrong_type("messages", "an array", v)),
    };
    if list.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| message(i, m))
        .collect()
}

fn message(i: usize, m: &Value) -> Result<Value, ApiError> {
    let at = format!("messages.[{i}]");
    let obj = m
        .as_object()
        .ok_or_else(|| wrong_type(&at, "an object", m))?;
    let f = Fields::new(obj, &format!("{at}."));
    let role = match f.get("role") {
        None => return Err(missing(&f.param("role"))),
        Some(Value::String(r)) if ROLES.contains(&r.as_str()) => r.as_str(),
        Some(Value::String(r)) => {
            return Err(ApiError::invalid(
                f.param("role"),
                format!("Invalid value: '{r}'. Supported values are: 'system', 'developer', 'user', 'assistant' and 'tool'."),
            ))
        }
        Some(v) => return Err(wrong_type(&f.param("role"), "a string", v)),
    };
    let tool_calls = match f.get("tool_calls") {
        None => None,
        Some(Value::Array(a)) if role == "assistant" => Some(a.clone()),
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid(
                f.param("tool_calls"),
                "Only assistant messages may have 'tool_calls'.",
            ))
        }
        Some(v) => return Err(wrong_type(&f.param("tool_calls"), "an array", v)),
    };
    let content = match f.get("content") {
        None if role == "assistant" && tool_calls.is_some() => String::new(),
        None => return Err(missing(&f.param("content"))),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => text_parts(&f.param("content"), parts)?,
        Some(v) => {
            return Err(wrong_type(
                &f.param("content"),
                "a string or an array of content parts",
                v,
            ))
        }
    };
    let mut out = Map::new();
    let template_role = if role == "developer" { "system" } else { role };
    out.insert("role".into(), template_role.into());
    out.insert("content".into(), content.into());
    if let Some(name) = f.str("name")? {
        out.insert("name".into(), name.into());
    }
    if let Some(tc) = tool_calls {
        out.insert("tool_calls".into(), tc.into());
    }
    if role == "tool" {
        let id = f
            .str("tool_call_id")?
            .ok_or_else(|| missing(&f.param("tool_call_id")))?;
        out.insert("tool_call_id".into(), id.into());
    }
    Ok(Value::Object(out))
}

/// Joins `{"type":"text","text":…}` parts; other modalities are refused, not dropped.
fn text_parts(param: &str, parts: &[Value]) -> Result<String, ApiError> {
    let mut texts = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let p = format!("{param}.[{j}]");
        let obj = part
            .as_object()
            .ok_or_else(|| wrong_type(&p, "an object", part))?;
        let pf = Fields::new(obj, &format!("{p}."));
        match pf.str("type")? {
            Some("text") => texts.push(pf.str("text")?.ok_or_else(|| missing(&pf.param("text")))?),
            Some(other) => {
                return Err(unsupported(
                    &pf.param("type"),
                    &format!("'{other}' content parts are not supported; only 'text' is"),
                ))
            }
            None => return Err(missing(&pf.param("type"))),
        }
    }
    Ok(texts.join("\n"))
}
