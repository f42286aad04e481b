//! Ollama's API: `/api/chat` and `/api/generate` validated into [`GenerationRequest`]s, and the
//! response shapes of those plus `/api/tags`, `/api/show`, `/api/ps`, `/api/version`,
//! `/api/embed`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::backend::{
    GenerationRequest, KeepAlive, ModelCard, ModelDetails, PromptInput, SamplingOptions,
};
use crate::error::ApiError;
use crate::validate::{body_object, missing, unsupported, wrong_type, Fields};

/// A validated `/api/chat` or `/api/generate` request.
#[derive(Clone, Debug, PartialEq)]
pub struct OllamaRequest {
    /// What the backend runs.
    pub generation: GenerationRequest,
    /// NDJSON stream (Ollama's default) instead of one object.
    pub stream: bool,
    /// `/api/generate` with no prompt: Ollama's "load the model" call, answered at once.
    pub load_only: bool,
    /// How long the model stays loaded after this request (`None`: the server's default).
    pub keep_alive: Option<KeepAlive>,
    /// Tools the model may call (`/api/chat` only).
    pub tools: Option<crate::tools::ToolSpec>,
}

/// `keep_alive`: seconds as a number, a duration string (`5m`), negative for forever.
fn keep_alive(f: &Fields) -> Result<Option<KeepAlive>, ApiError> {
    let bad = |v: &Value| {
        ApiError::invalid(
            "keep_alive",
            format!("Invalid 'keep_alive': expected a number of seconds or a duration such as \"5m\", but got {v} instead."),
        )
    };
    match f.get("keep_alive") {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(n)) => n
            .as_f64()
            .and_then(KeepAlive::from_secs)
            .map(Some)
            .ok_or_else(|| bad(v)),
        Some(v @ Value::String(s)) => KeepAlive::parse(s).map(Some).ok_or_else(|| bad(v)),
        Some(v) => Err(bad(v)),
    }
}

/// Sampling defaults Ollama documents for models whose Modelfile sets none; clients of this API
/// expect them rather than OpenAI's (temperature 1, no top-k).
fn ollama_sampling_defaults() -> SamplingOptions {
    SamplingOptions {
        temperature: 0.8,
        top_k: 40,
        top_p: 0.9,
        ..SamplingOptions::default()
    }
}

/// `options`: sampling, `num_predict` and `stop`. Unknown keys (`num_ctx`, `mirostat` …) are
/// ignored, as Ollama ignores options a runner does not use.
fn options(f: &Fields) -> Result<(SamplingOptions, Option<usize>, Vec<String>), ApiError> {
    let d = ollama_sampling_defaults();
    let Some(map) = f.object("options")? else {
        return Ok((d, None, Vec::new()));
    };
    let o = Fields::new(map, "options.");
    let sampling = SamplingOptions {
        temperature: o
            .number("temperature", 0.0, false, 100.0)?
            .unwrap_or(d.temperature),
        top_p: o.number("top_p", 0.0, true, 1.0)?.unwrap_or(d.top_p),
        top_k: o
            .int("top_k", 0, i64::from(u32::MAX))?
            .map_or(d.top_k, |k| k as usize),
        min_p: o.number("min_p", 0.0, false, 1.0)?.unwrap_or(d.min_p),
        repetition_penalty: o
            .number("repeat_penalty", 0.0, true, 10.0)?
            .unwrap_or(d.repetition_penalty),
        presence_penalty: o
            .number("presence_penalty", -2.0, false, 2.0)?
            .unwrap_or(0.0),
        frequency_penalty: o
            .number("frequency_penalty", -2.0, false, 2.0)?
            .unwrap_or(0.0),
        logit_bias: Vec::new(),
        seed: o.seed("seed")?,
    };
    // -1: until a stop token, -2: until the context is full; both mean "no limit" here.
    let max_tokens = match o.int("num_predict", -2, i64::from(u32::MAX))? {
        None | Some(-1) | Some(-2) => None,
        Some(0) => {
            return Err(ApiError::invalid(
                "options.num_predict",
                "Invalid 'options.num_predict': expected -1, -2 or a positive integer, but got 0 instead.",
            ))
        }
        Some(n) => Some(n as usize),
    };
    Ok((sampling, max_tokens, o.stop("stop", 16)?))
}

fn refuse_images(f: &Fields) -> Result<(), ApiError> {
    match f.get("images") {
        None => Ok(()),
        Some(Value::Array(a)) if a.is_empty() => Ok(()),
        Some(Value::Array(_)) => Err(unsupported(&f.param("images"), "images are not supported")),
        Some(v) => Err(wrong_type(&f.param("images"), "an array", v)),
    }
}

/// The model name: `model`, or the older `name`.
fn model_name(f: &Fields) -> Result<String, ApiError> {
    match f.str("model")? {
        Some(m) if !m.is_empty() => Ok(m.to_string()),
        _ => match f.str("name")? {
            Some(m) if !m.is_empty() => Ok(m.to_string()),
            _ => Err(missing("model")),
        },
    }
}

/// Validates an `/api/chat` body.
pub fn chat_request(body: &Value) -> Result<OllamaRequest, ApiError> {
    let f = Fields::new(body_object(body)?, "");
    let model = model_name(&f)?;
    let constraint = crate::structured::ollama_format(&f)?;
    let list = match f.get("messages") {
        None => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(v) => return Err(wrong_type("messages", "an array", v)),
    };
    let mut messages = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let at = format!("messages.[{i}]");
        let obj = m
            .as_object()
            .ok_or_else(|| wrong_type(&at, "an object", m))?;
        let mf = Fields::new(obj, &format!("{at}."));
        let role = mf.required_str("role")?;
        if !["system", "user", "assistant", "tool"].contains(&role) {
            return Err(ApiError::invalid(
                mf.param("role"),
                format!("Invalid value: '{role}'. Supported values are: 'system', 'user', 'assistant' and 'tool'."),
            ));
        }
        refuse_images(&mf)?;
        let mut out = Map::new();
        out.insert("role".into(), role.into());
        out.insert("content".into(), mf.str("content")?.unwrap_or("").into());
        if let Some(tc) = mf.get("tool_calls") {
            out.insert("tool_calls".into(), tc.clone());
        }
        messages.push(Value::Object(out));
    }
    let tool_spec = crate::tools::tool_spec(&f)?;
    let tools = tool_spec
        .as_ref()
        .and_then(|_| f.get("tools"))
        .and_then(Value::as_array)
        .cloned();
    if tool_spec.is_some() && constraint.is_some() {
        return Err(ApiError::invalid(
            "format",
            "'format' cannot be combined with 'tools'.",
        ));
    }
    let (sampling, max_tokens, stop) = options(&f)?;
    Ok(OllamaRequest {
        load_only: messages.is_empty(),
        keep_alive: keep_alive(&f)?,
        tools: tool_spec,
        generation: GenerationRequest {
            model,
            input: PromptInput::Chat { messages, tools },
            max_tokens,
            sampling,
            stop,
            logprobs: None,
            constraint,
        },
        stream: f.bool("stream")?.unwrap_or(true),
    })
}

/// Validates an `/api/generate` body. Without `raw`, the prompt (and `system`) go through the
/// chat template as Ollama's template would; with `raw` the prompt is used verbatim.
pub fn generate_request(body: &Value) -> Result<OllamaRequest, ApiError> {
    let f = Fields::new(body_object(body)?, "");
    let model = model_name(&f)?;
    let constraint = crate::structured::ollama_format(&f)?;
    refuse_images(&f)?;
    if f.str("suffix")?.is_some_and(|s| !s.is_empty()) {
        return Err(unsupported(
            "suffix",
            "fill-in-the-middle is not supported yet",
        ));
    }
    if f.str("template")?.is_some_and(|s| !s.is_empty()) {
        return Err(unsupported(
            "template",
            "custom templates are not supported",
        ));
    }
    match f.get("context") {
        None => {}
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(_) => {
            return Err(unsupported(
                "context",
                "continuing from a returned context is not supported; use /api/chat",
            ))
        }
    }
    let prompt = f.str("prompt")?.unwrap_or("");
    let raw = f.bool("raw")?.unwrap_or(false);
    let input = if raw {
        PromptInput::Text(prompt.to_string())
    } else {
        let mut messages = Vec::new();
        if let Some(system) = f.str("system")?.filter(|s| !s.is_empty()) {
            messages.push(serde_json::json!({"role": "system", "content": system}));
        }
        messages.push(serde_json::json!({"role": "user", "content": prompt}));
        PromptInput::Chat {
            messages,
            tools: None,
        }
    };
    let (sampling, max_tokens, stop) = options(&f)?;
    Ok(OllamaRequest {
        load_only: prompt.is_empty(),
        keep_alive: keep_alive(&f)?,
        tools: None,
        generation: GenerationRequest {
            model,
            input,
            max_tokens,
            sampling,
            stop,
            logprobs: None,
            constraint,
        },
        stream: f.bool("stream")?.unwrap_or(true),
    })
}

/// The model named by an `/api/show` (or `/api/embed`) body.
pub fn model_of(body: &Value) -> Result<String, ApiError> {
    model_name(&Fields::new(body_object(body)?, ""))
}

/// Validates an `/api/embed` body: the model and its `input` (a string or strings).
pub fn embed_request(body: &Value) -> Result<(String, Vec<String>), ApiError> {
    let f = Fields::new(body_object(body)?, "");
    let model = model_name(&f)?;
    let inputs = match f.get("input") {
        None => return Err(missing("input")),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                v => Err(wrong_type(&format!("input.[{i}]"), "a string", v)),
            })
            .collect::<Result<_, _>>()?,
        Some(v) => return Err(wrong_type("input", "a string or an array of strings", v)),
    };
    Ok((model, inputs))
}

/// Timing fields of the final message, all in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Whole request.
    pub total_duration: u64,
    /// Loading the model (0: already loaded).
    pub load_duration: u64,
    /// Prompt tokens evaluated.
    pub prompt_eval_count: usize,
    /// Time on the prompt.
    pub prompt_eval_duration: u64,
    /// Tokens generated.
    pub eval_count: usize,
    /// Time generating.
    pub eval_duration: u64,
}

/// `message` of a chat response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Always `assistant`.
    pub role: String,
    /// Text (this chunk's, when streaming).
    pub content: String,
    /// Calls the model made (`{"function": {"name", "arguments": {…}}}`), when it made any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<Value>>,
}

/// One `/api/chat` NDJSON line, or the whole non-streamed response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Model name.
    pub model: String,
    /// RFC 3339 UTC time.
    pub created_at: String,
    /// The reply (or this chunk of it).
    pub message: ChatMessage,
    /// True on the last line.
    pub done: bool,
    /// `stop`, `length` or `load`, on the last line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    /// Counts and durations, on the last line.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
}

/// One `/api/generate` NDJSON line, or the whole non-streamed response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateResponse {
    /// Model name.
    pub model: String,
    /// RFC 3339 UTC time.
    pub created_at: String,
    /// Text (this chunk's, when streaming).
    pub response: String,
    /// True on the last line.
    pub done: bool,
    /// `stop`, `length` or `load`, on the last line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    /// Counts and durations, on the last line.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
}

/// `details` of a model entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Details {
    /// Base model, empty here.
    pub parent_model: String,
    /// Always `gguf`.
    pub format: String,
    /// Architecture.
    pub family: String,
    /// Architectures (one).
    pub families: Vec<String>,
    /// E.g. `268M`.
    pub parameter_size: String,
    /// E.g. `Q8_0`.
    pub quantization_level: String,
}

impl From<&ModelDetails> for Details {
    fn from(d: &ModelDetails) -> Self {
        Details {
            parent_model: String::new(),
            format: "gguf".into(),
            family: d.family.clone(),
            families: if d.family.is_empty() {
                Vec::new()
            } else {
                vec![d.family.clone()]
            },
            parameter_size: d.parameter_size.clone(),
            quantization_level: d.quantization_level.clone(),
        }
    }
}

/// One `/api/tags` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TagModel {
    /// Name.
    pub name: String,
    /// Same as `name`.
    pub model: String,
    /// RFC 3339.
    pub modified_at: String,
    /// Bytes.
    pub size: u64,
    /// `sha256:…` or empty.
    pub digest: String,
    /// Format details.
    pub details: Details,
}

impl TagModel {
    /// Entry for a model card plus whatever details the backend knows.
    pub fn new(card: &ModelCard, details: &ModelDetails) -> Self {
        TagModel {
            name: card.id.clone(),
            model: card.id.clone(),
            modified_at: rfc3339(card.created, 0),
            size: details.size_bytes,
            digest: details.digest.clone(),
            details: details.into(),
        }
    }
}

/// `/api/tags`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TagsResponse {
    /// Models.
    pub models: Vec<TagModel>,
}

/// One `/api/ps` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunningModel {
    /// Name.
    pub name: String,
    /// Same as `name`.
    pub model: String,
    /// Bytes.
    pub size: u64,
    /// `sha256:…` or empty.
    pub digest: String,
    /// Format details.
    pub details: Details,
    /// RFC 3339; far future, since models stay loaded.
    pub expires_at: String,
    /// Always 0: CPU only.
    pub size_vram: u64,
    /// Context window of the loaded instance.
    pub context_length: usize,
}

/// `/api/ps`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PsResponse {
    /// Loaded models.
    pub models: Vec<RunningModel>,
}

/// `/api/show`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShowResponse {
    /// A Modelfile equivalent.
    pub modelfile: String,
    /// Default parameters, one per line.
    pub parameters: String,
    /// The chat template, empty when the model has none.
    pub template: String,
    /// Format details.
    pub details: Details,
    /// GGUF-style keys (`general.architecture`, `<arch>.context_length`).
    pub model_info: Map<String, Value>,
    /// `completion` (and `tools` when the template mentions them).
    pub capabilities: Vec<String>,
    /// RFC 3339.
    pub modified_at: String,
}

/// `/api/version`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionResponse {
    /// Server version.
    pub version: String,
}

/// `/api/embed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbedResponse {
    /// Model name.
    pub model: String,
    /// One vector per input.
    pub embeddings: Vec<Vec<f32>>,
    /// Nanoseconds.
    pub total_duration: u64,
    /// Nanoseconds.
    pub load_duration: u64,
    /// Tokens read.
    pub prompt_eval_count: usize,
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` for Unix time `secs` + `nanos`.
pub fn rfc3339(secs: u64, nanos: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Howard Hinnant's days → civil date.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_700_000_000, 0), "2023-11-14T22:13:20.000000000Z");
    }

    #[test]
    fn chat_defaults_and_options() {
        let r =
            chat_request(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
                .unwrap();
        assert!(r.stream, "Ollama streams by default");
        assert!(!r.load_only);
        assert_eq!(r.generation.sampling, ollama_sampling_defaults());
        let r = chat_request(&json!({
            "model": "m", "stream": false, "messages": [{"role": "user", "content": "hi"}],
            "options": {"temperature": 0, "top_k": 1, "num_predict": 9, "stop": ["\n"], "seed": 3,
                        "repeat_penalty": 1.2, "num_ctx": 4096}
        }))
        .unwrap();
        let g = &r.generation;
        assert!(!r.stream);
        assert_eq!(
            (g.max_tokens, g.stop.clone()),
            (Some(9), vec!["\n".to_string()])
        );
        assert_eq!(
            (g.sampling.temperature, g.sampling.top_k, g.sampling.seed),
            (0.0, 1, Some(3))
        );
        assert_eq!(g.sampling.repetition_penalty, 1.2);
        let r = chat_request(&json!({"model": "m", "options": {"num_predict": -1}})).unwrap();
        assert!(r.load_only);
        assert_eq!(r.generation.max_tokens, None);
    }

    #[test]
    fn errors_name_the_field() {
        for (body, param) in [
            (json!({"messages": []}), "model"),
            (json!({"model": "m", "messages": {}}), "messages"),
            (
                json!({"model": "m", "messages": [{"role": "robot", "content": ""}]}),
                "messages.[0].role",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": 1}]}),
                "messages.[0].content",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "", "images": ["aGk="]}]}),
                "messages.[0].images",
            ),
            (
                json!({"model": "m", "options": {"temperature": "x"}}),
                "options.temperature",
            ),
            (
                json!({"model": "m", "options": {"num_predict": 0}}),
                "options.num_predict",
            ),
            (json!({"model": "m", "options": []}), "options"),
            (json!({"model": "m", "format": "yaml"}), "format"),
            (
                json!({"model": "m", "format": {"type": "object", "propertyNames": {}}}),
                "format.propertyNames",
            ),
            (json!({"model": "m", "stream": "no"}), "stream"),
        ] {
            let e = chat_request(&body).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
        }
    }

    #[test]
    fn generate_templated_or_raw() {
        let r = generate_request(&json!({"model": "m", "prompt": "hi", "system": "s"})).unwrap();
        assert_eq!(
            r.generation.input,
            PromptInput::Chat {
                messages: vec![
                    json!({"role": "system", "content": "s"}),
                    json!({"role": "user", "content": "hi"})
                ],
                tools: None
            }
        );
        let r = generate_request(&json!({"name": "m", "prompt": "hi", "raw": true})).unwrap();
        assert_eq!(r.generation.model, "m");
        assert_eq!(r.generation.input, PromptInput::Text("hi".into()));
        assert!(generate_request(&json!({"model": "m"})).unwrap().load_only);
        for (body, param) in [
            (json!({"model": "m", "prompt": 1}), "prompt"),
            (
                json!({"model": "m", "prompt": "x", "context": [1, 2]}),
                "context",
            ),
            (
                json!({"model": "m", "prompt": "x", "suffix": "y"}),
                "suffix",
            ),
            (
                json!({"model": "m", "prompt": "x", "images": ["x"]}),
                "images",
            ),
        ] {
            let e = generate_request(&body).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{body}");
        }
    }

    #[test]
    fn final_line_shape() {
        let r = ChatResponse {
            model: "m".into(),
            created_at: rfc3339(0, 0),
            message: ChatMessage {
                role: "assistant".into(),
                content: String::new(),
                tool_calls: None,
            },
            done: true,
            done_reason: Some("stop".into()),
            timings: Some(Timings {
                eval_count: 3,
                ..Timings::default()
            }),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["eval_count"], 3);
        assert_eq!(v["done_reason"], "stop");
        let mid = ChatResponse {
            done: false,
            done_reason: None,
            timings: None,
            ..r
        };
        let v = serde_json::to_value(&mid).unwrap();
        assert!(v.get("eval_count").is_none() && v.get("done_reason").is_none());
    }

    #[test]
    fn embed_inputs() {
        assert_eq!(
            embed_request(&json!({"model": "m", "input": "a"})).unwrap(),
            ("m".to_string(), vec!["a".to_string()])
        );
        assert_eq!(
            embed_request(&json!({"model": "m", "input": ["a", 1]}))
                .unwrap_err()
                .param
                .as_deref(),
            Some("input.[1]")
        );
    }
}
