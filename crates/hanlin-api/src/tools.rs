//! Tool calling: the validated `tools` / `tool_choice` / `parallel_tool_calls` of a request, the
//! model's own tool-call format (read off its chat template), the grammar that makes every call
//! name a declared function with arguments valid against its parameter schema, and parsing the
//! calls back out of the generated text, whole or while streaming.
//!
//! Formats: Hermes-style `<tool_call>{"name", "arguments"}</tool_call>` (Qwen 2.5/3, DeepSeek
//! distills, Hermes), Llama 3.x JSON (`{"name", "parameters"}`), Mistral
//! `[TOOL_CALLS][{"name", "arguments"}]`, and a generic fallback for templates that know no
//! tools: the Hermes shape, with the functions described in a system message and tool turns
//! rewritten as plain user/assistant turns.

use serde_json::{json, Map, Value};

use crate::backend::{Constraint, GenerationRequest, OutputConstraint, PromptInput};
use crate::error::ApiError;
use crate::structured::check_schema;
use crate::validate::{missing, unsupported, wrong_type, Fields};

/// A function the model may call.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolFunction {
    /// Function name.
    pub name: String,
    /// What it does, for the prompt.
    pub description: Option<String>,
    /// JSON schema of its arguments (an object schema).
    pub parameters: Value,
}

/// `tool_choice` (`none` never reaches here: it drops the tools).
#[derive(Clone, Debug, PartialEq)]
pub enum ToolChoice {
    /// The model decides between text and calls.
    Auto,
    /// At least one call.
    Required,
    /// Exactly this function.
    Named(String),
}

/// The tools of one request.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSpec {
    /// Declared functions.
    pub functions: Vec<ToolFunction>,
    /// What the model must do.
    pub choice: ToolChoice,
    /// `parallel_tool_calls` as sent (`None`: not given).
    pub parallel: Option<bool>,
}

/// One call parsed from the output.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedToolCall {
    /// Function name.
    pub name: String,
    /// Arguments as compact JSON text (OpenAI sends a string).
    pub arguments: String,
}

/// How a model writes tool calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolFormat {
    /// `<tool_call>{"name": …, "arguments": …}</tool_call>` (Qwen, Hermes, DeepSeek distills).
    Hermes,
    /// A bare `{"name": …, "parameters": …}` object, optionally after `<|python_tag|>`.
    Llama3,
    /// `[TOOL_CALLS][{"name": …, "arguments": …}, …]`.
    Mistral,
    /// The Hermes shape for templates without tool support; tools go into a system message.
    Generic,
}

impl ToolFormat {
    /// The format a chat template implies.
    pub fn detect(template: Option<&str>) -> ToolFormat {
        let Some(t) = template else {
            return ToolFormat::Generic;
        };
        if t.contains("<tool_call>") {
            ToolFormat::Hermes
        } else if t.contains("[TOOL_CALLS]") {
            ToolFormat::Mistral
        } else if t.contains("<|python_tag|>")
            || (t.contains("<|start_header_id|>") && t.contains("tools"))
        {
            ToolFormat::Llama3
        } else {
            ToolFormat::Generic
        }
    }

    /// Text a tool-call turn starts with; output starting otherwise is plain content.
    fn markers(self) -> &'static [&'static str] {
        match self {
            ToolFormat::Hermes | ToolFormat::Generic => &["<tool_call>"],
            ToolFormat::Llama3 => &["<|python_tag|>", "{\"name\""],
            ToolFormat::Mistral => &["[TOOL_CALLS]"],
        }
    }
}

/// Validates `tools`, `tool_choice` and `parallel_tool_calls`. `Ok(None)` when there are no tools
/// or `tool_choice` is `none`.
pub fn tool_spec(f: &Fields) -> Result<Option<ToolSpec>, ApiError> {
    let list = match f.get("tools") {
        None => None,
        Some(Value::Array(a)) => Some(a),
        Some(v) => return Err(wrong_type(&f.param("tools"), "an array", v)),
    };
    let mut functions = Vec::new();
    for (i, t) in list.into_iter().flatten().enumerate() {
        let p = f.param(&format!("tools.[{i}]"));
        let obj = t
            .as_object()
            .ok_or_else(|| wrong_type(&p, "an object", t))?;
        let tf = Fields::new(obj, &format!("{p}."));
        match tf.str("type")? {
            Some("function") => {}
            // Ollama sends tools without a type now and then.
            None if tf.get("function").is_some() => {}
            _ => {
                return Err(unsupported(
                    &tf.param("type"),
                    "only 'function' tools are supported",
                ))
            }
        }
        let func = tf
            .object("function")?
            .ok_or_else(|| missing(&tf.param("function")))?;
        let ff = Fields::new(func, &format!("{p}.function."));
        let name = ff.required_str("name")?;
        if name.is_empty() || name.len() > 64 {
            return Err(ApiError::invalid(
                ff.param("name"),
                format!("Invalid 'name': '{name}'. Expected 1 to 64 characters."),
            ));
        }
        let parameters = match ff.get("parameters") {
            None => json!({"type": "object", "properties": {}}),
            Some(p) => {
                check_schema(p, &ff.param("parameters"))?;
                p.clone()
            }
        };
        functions.push(ToolFunction {
            name: name.to_string(),
            description: ff.str("description")?.map(str::to_string),
            parameters,
        });
    }
    let choice_param = f.param("tool_choice");
    let choice = match f.get("tool_choice") {
        None => ToolChoice::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "required" | "any" => ToolChoice::Required,
            "none" => return Ok(None),
            other => {
                return Err(ApiError::invalid(
                    &choice_param,
                    format!("Invalid value: '{other}'. Supported values are: 'none', 'auto' and 'required', or a named function."),
                ))
            }
        },
        Some(Value::Object(o)) => {
            let cf = Fields::new(o, &format!("{choice_param}."));
            let func = cf
                .object("function")?
                .ok_or_else(|| missing(&cf.param("function")))?;
            let name = Fields::new(func, &format!("{choice_param}.function.")).required_str("name")?;
            if !functions.iter().any(|t| t.name == name) {
                return Err(ApiError::invalid(
                    &choice_param,
                    format!("Invalid 'tool_choice': no tool named '{name}' in 'tools'."),
                ));
            }
            ToolChoice::Named(name.to_string())
        }
        Some(v) => return Err(wrong_type(&choice_param, "a string or an object", v)),
    };
    if functions.is_empty() {
        if choice != ToolChoice::Auto {
            return Err(ApiError::invalid(
                &choice_param,
                "Invalid 'tool_choice': 'tools' must be given when 'tool_choice' is set.",
            ));
        }
        return Ok(None);
    }
    let parallel = f.bool("parallel_tool_calls")?;
    Ok(Some(ToolSpec {
        functions,
        choice,
        parallel,
    }))
}

impl ToolSpec {
    /// The functions a call may name under the current `tool_choice`.
    fn callable(&self) -> impl Iterator<Item = &ToolFunction> {
        self.functions.iter().filter(move |f| match &self.choice {
            ToolChoice::Named(n) => &f.name == n,
            _ => true,
        })
    }

    /// JSON schema of one call object: the function's name and its validated arguments.
    fn call_schema(&self, args_key: &str) -> Value {
        let alts: Vec<Value> = self
            .callable()
            .map(|f| {
                json!({
                    "type": "object",
                    "properties": {
                        "name": {"const": f.name},
                        args_key: f.parameters,
                    },
                    "required": ["name", args_key],
                    "additionalProperties": false,
                })
            })
            .collect();
        let mut schema = if alts.len() == 1 {
            alts.into_iter().next().unwrap_or(Value::Null)
        } else {
            json!({ "anyOf": alts })
        };
        if let Value::Object(m) = &mut schema {
            m.insert("x-guidance".into(), compact_json_options());
        }
        schema
    }

    /// Whether one turn may hold several calls. OpenAI's default is yes; but a model using the
    /// generic format was never trained to stop after its calls and repeats them until the
    /// token limit, so there it takes an explicit `parallel_tool_calls: true`.
    pub fn parallel_for(&self, format: ToolFormat) -> bool {
        self.parallel.unwrap_or(format != ToolFormat::Generic)
    }

    /// A Lark grammar (llguidance dialect) for the model's tool-call turn in `format`.
    pub fn grammar(&self, format: ToolFormat) -> String {
        let parallel = self.parallel_for(format);
        let calls = match format {
            ToolFormat::Hermes | ToolFormat::Generic => {
                let one = format!(
                    "\"<tool_call>\\n\" %json {} \"\\n</tool_call>\"",
                    self.call_schema("arguments")
                );
                if parallel {
                    format!("call (\"\\n\" call)*\ncall: {one}")
                } else {
                    one
                }
            }
            ToolFormat::Llama3 => format!("%json {}", self.call_schema("parameters")),
            ToolFormat::Mistral => {
                let mut items = json!({
                    "type": "array",
                    "items": self.call_schema("arguments"),
                    "minItems": 1,
                    "x-guidance": compact_json_options(),
                });
                if !parallel {
                    items["maxItems"] = json!(1);
                }
                format!("\"[TOOL_CALLS]\" %json {items}")
            }
        };
        match self.choice {
            ToolChoice::Auto => {
                // Free text that does not start like a call, or the calls.
                let marker = format.markers()[0];
                let rx = regex_escape(marker);
                format!("start: TEXT | calls\ncalls: {calls}\nTEXT: /(?s:.+)/ & ~/(?s:{rx}.*)/\n")
            }
            _ => format!("start: calls\ncalls: {calls}\n"),
        }
    }

    /// The system text that describes the functions to a model whose template cannot.
    pub fn generic_prompt(&self) -> String {
        let mut s = String::from(
            "You can call functions. To call one, reply with only\n<tool_call>\n{\"name\": <function name>, \"arguments\": <arguments as a JSON object>}\n</tool_call>\nAvailable functions:\n",
        );
        for f in &self.functions {
            let desc = json!({
                "name": f.name,
                "description": f.description.clone().unwrap_or_default(),
                "parameters": f.parameters,
            });
            s.push_str(&desc.to_string());
            s.push('\n');
        }
        if let ToolChoice::Named(n) = &self.choice {
            s.push_str(&format!("Call the function {n}.\n"));
        }
        s
    }
}

/// llguidance JSON options: no free whitespace (a small model could pad forever), and the
/// separators models are trained on.
fn compact_json_options() -> Value {
    json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "})
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~/\"".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Prepares a chat generation for tools in `format`: sets the grammar when `spec` is given,
/// and for the generic format describes the tools in a system message and rewrites tool turns
/// (which such templates refuse) as plain turns. Arguments sent as JSON strings are parsed
/// into objects, as templates `tojson` them.
pub fn prepare_chat(req: &mut GenerationRequest, spec: Option<&ToolSpec>, format: ToolFormat) {
    let PromptInput::Chat { messages, tools } = &mut req.input else {
        return;
    };
    for m in messages.iter_mut() {
        if let Some(Value::Array(calls)) = m.get_mut("tool_calls") {
            for c in calls {
                if let Some(a) = c.pointer_mut("/function/arguments") {
                    if let Some(parsed) = a.as_str().and_then(|s| serde_json::from_str(s).ok()) {
                        *a = parsed;
                    }
                }
            }
        }
    }
    let tool_turns = messages
        .iter()
        .any(|m| m["role"] == "tool" || m.get("tool_calls").is_some());
    // Plain chats stay as the client sent them.
    if format == ToolFormat::Generic && (spec.is_some() || tool_turns) {
        *messages = generic_messages(std::mem::take(messages), spec);
        *tools = None;
    }
    if let Some(spec) = spec {
        req.constraint = Some(Constraint {
            kind: OutputConstraint::Lark(spec.grammar(format)),
            param: "tools".into(),
        });
    }
}

/// Rewrites messages for a template without tool support: a system message describing the
/// tools, assistant calls as `<tool_call>` text, tool results as user turns; consecutive turns
/// of one role merged (such templates insist on alternation).
fn generic_messages(messages: Vec<Value>, spec: Option<&ToolSpec>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(messages.len() + 1);
    let mut push = |role: &str, content: String| {
        if let Some(last) = out.last_mut() {
            if last["role"] == role {
                let joined = format!("{}\n{content}", last["content"].as_str().unwrap_or(""));
                last["content"] = joined.into();
                return;
            }
        }
        out.push(json!({"role": role, "content": content}));
    };
    if let Some(spec) = spec {
        push("system", spec.generic_prompt());
    }
    for m in messages {
        let role = m["role"].as_str().unwrap_or("user").to_string();
        let mut content = m["content"].as_str().unwrap_or("").to_string();
        match role.as_str() {
            "tool" => push(
                "user",
                format!("<tool_response>\n{content}\n</tool_response>"),
            ),
            "assistant" => {
                if let Some(Value::Array(calls)) = m.get("tool_calls") {
                    for c in calls {
                        let f = c.get("function").unwrap_or(c);
                        let call = json!({"name": f["name"], "arguments": f["arguments"]});
                        if !content.is_empty() {
                            content.push('\n');
                        }
                        content.push_str(&format!("<tool_call>\n{call}\n</tool_call>"));
                    }
                }
                push("assistant", content);
            }
            r => push(r, content),
        }
    }
    out
}

/// Splits finished output into content and tool calls. Text that does not parse as calls is
/// all content.
pub fn parse_tool_calls(format: ToolFormat, text: &str) -> (Option<String>, Vec<ParsedToolCall>) {
    let calls = match format {
        ToolFormat::Hermes | ToolFormat::Generic => parse_hermes(text),
        ToolFormat::Llama3 => parse_llama3(text),
        ToolFormat::Mistral => parse_mistral(text),
    };
    match calls {
        Some((content, calls)) if !calls.is_empty() => {
            let content = content.trim();
            ((!content.is_empty()).then(|| content.to_string()), calls)
        }
        _ => (Some(text.to_string()), Vec::new()),
    }
}

fn call_from(v: &Value, args_keys: &[&str]) -> Option<ParsedToolCall> {
    let name = v.get("name")?.as_str()?.to_string();
    let args = args_keys
        .iter()
        .find_map(|k| v.get(*k))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let arguments = match args {
        Value::String(s) => s,
        other => other.to_string(),
    };
    Some(ParsedToolCall { name, arguments })
}

fn parse_hermes(text: &str) -> Option<(&str, Vec<ParsedToolCall>)> {
    let start = text.find("<tool_call>")?;
    let mut calls = Vec::new();
    for part in text[start..].split("<tool_call>").skip(1) {
        let body = part.split("</tool_call>").next().unwrap_or(part).trim();
        let v: Value = serde_json::from_str(body).ok()?;
        calls.push(call_from(&v, &["arguments", "parameters"])?);
    }
    Some((&text[..start], calls))
}

fn parse_llama3(text: &str) -> Option<(&str, Vec<ParsedToolCall>)> {
    let body = text.trim();
    let body = body.strip_prefix("<|python_tag|>").unwrap_or(body).trim();
    let v: Value = serde_json::from_str(body).ok()?;
    Some(("", vec![call_from(&v, &["parameters", "arguments"])?]))
}

fn parse_mistral(text: &str) -> Option<(&str, Vec<ParsedToolCall>)> {
    let start = text.find("[TOOL_CALLS]")?;
    let v: Value = serde_json::from_str(text[start + "[TOOL_CALLS]".len()..].trim()).ok()?;
    let calls = v
        .as_array()?
        .iter()
        .map(|c| call_from(c, &["arguments", "parameters"]))
        .collect::<Option<Vec<_>>>()?;
    Some((&text[..start], calls))
}

/// Streaming split of output into content and calls: content is passed through as soon as it
/// cannot be the start of a call; a call turn is held back and parsed at the end.
#[derive(Debug)]
pub struct ToolStream {
    format: ToolFormat,
    buf: String,
    /// `Some(true)`: a call turn; `Some(false)`: plain content; `None`: not known yet.
    calls: Option<bool>,
}

impl ToolStream {
    /// A splitter for `format`.
    pub fn new(format: ToolFormat) -> Self {
        ToolStream {
            format,
            buf: String::new(),
            calls: None,
        }
    }

    /// Takes new text; returns content that can be sent now.
    pub fn push(&mut self, text: &str) -> Option<String> {
        match self.calls {
            Some(false) => return (!text.is_empty()).then(|| text.to_string()),
            Some(true) => {
                self.buf.push_str(text);
                return None;
            }
            None => self.buf.push_str(text),
        }
        let t = self.buf.trim_start();
        if t.is_empty() {
            return None;
        }
        let markers = self.format.markers();
        if markers.iter().any(|m| t.starts_with(m)) {
            self.calls = Some(true);
            None
        } else if markers.iter().any(|m| m.starts_with(t)) {
            None
        } else {
            self.calls = Some(false);
            Some(std::mem::take(&mut self.buf))
        }
    }

    /// At the end: content still held back, and the calls.
    pub fn finish(self) -> (Option<String>, Vec<ParsedToolCall>) {
        match self.calls {
            Some(false) => (None, Vec::new()),
            _ if self.buf.is_empty() => (None, Vec::new()),
            _ => parse_tool_calls(self.format, &self.buf),
        }
    }
}

/// Tool calls in Ollama's message shape (arguments as an object).
pub fn ollama_tool_calls(calls: &[ParsedToolCall]) -> Vec<Value> {
    calls
        .iter()
        .map(|c| {
            let args: Value =
                serde_json::from_str(&c.arguments).unwrap_or_else(|_| Value::Object(Map::new()));
            json!({"function": {"name": c.name, "arguments": args}})
        })
        .collect()
}

#[cfg(test)]
mod tests;
