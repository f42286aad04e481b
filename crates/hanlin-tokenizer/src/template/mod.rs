//! Chat templates rendered with minijinja, byte-compatible with HF transformers.
//!
//! A model's template (GGUF `tokenizer.chat_template`) is Jinja written for jinja2 as
//! transformers configures it: `trim_blocks`, `lstrip_blocks`, a `tojson` that is
//! `json.dumps(..., ensure_ascii=False)`, `raise_exception`, `strftime_now`, Python
//! methods on strings and dicts, and Python's text form of values. [`ChatTemplate`]
//! reproduces that environment so prompts match what the model was trained on.

mod builtin;
mod env;
mod pyfmt;
mod strftime;

use std::time::SystemTime;

use minijinja::{Environment, Value};

pub use builtin::builtin_template;

/// The template's name inside its private environment (shows up in error locations).
const TEMPLATE_NAME: &str = "chat_template";

/// Variables the renderer sets itself; [`RenderRequest::extra`] may not override them.
const RESERVED: [&str; 8] = [
    "messages",
    "tools",
    "documents",
    "add_generation_prompt",
    "bos_token",
    "eos_token",
    "strftime_now",
    "raise_exception",
];

/// Why a chat template could not be compiled or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The template source is not valid Jinja.
    #[error("chat template syntax error{}: {message}", at_line(*.line))]
    Syntax {
        /// 1-based line in the template source, when known.
        line: Option<usize>,
        /// What the parser objected to.
        message: String,
    },
    /// The template called `raise_exception(message)`, i.e. it refuses this conversation.
    #[error("chat template rejected the conversation: {0}")]
    Raised(String),
    /// Rendering failed inside the template (bad operation, wrong types, …).
    #[error("chat template render error{}: {message}", at_line(*.line))]
    Render {
        /// 1-based line in the template source, when known.
        line: Option<usize>,
        /// What went wrong.
        message: String,
    },
    /// [`RenderRequest::extra`] tried to set a variable the renderer owns.
    #[error("template variable `{0}` is set by the renderer and cannot be passed in `extra`")]
    ReservedVariable(String),
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" at line {l}")).unwrap_or_default()
}

impl TemplateError {
    fn syntax(err: &minijinja::Error) -> Self {
        TemplateError::Syntax {
            line: err.line(),
            message: describe(err),
        }
    }

    fn render(err: &minijinja::Error) -> Self {
        // raise_exception's message travels as the error's source; the chain may be
        // nested when the call happened inside a macro or an included block.
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = source {
            if let Some(raised) = e.downcast_ref::<env::Raised>() {
                return TemplateError::Raised(raised.0.clone());
            }
            source = e.source();
        }
        TemplateError::Render {
            line: err.line(),
            message: describe(err),
        }
    }
}

/// The error without minijinja's `(in template:line)` suffix, which we report as `line`.
fn describe(err: &minijinja::Error) -> String {
    match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    }
}

/// The tokenizer's special-token strings that templates reference as variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Text of the beginning-of-sequence token, e.g. `<bos>` or `<|begin_of_text|>`.
    pub bos_token: String,
    /// Text of the end-of-sequence token, e.g. `<eos>` or `<|eot_id|>`.
    pub eos_token: String,
}

/// One conversation to turn into a prompt.
#[derive(Debug, Clone, Default)]
pub struct RenderRequest {
    /// OpenAI-style messages (`role`, `content` as a string or a list of parts,
    /// `tool_calls`, `tool_call_id`, `name`, …), passed to the template unchanged.
    ///
    /// Object keys reach the template in the order the `serde_json::Map` iterates;
    /// with serde_json's `preserve_order` feature that is the client's order, which is
    /// what transformers sees and what `tojson` then prints.
    pub messages: Vec<serde_json::Value>,
    /// Tool (function) schemas; `None` is passed to the template as `none`, as
    /// transformers does when no tools are given.
    pub tools: Option<Vec<serde_json::Value>>,
    /// Append the opening of an assistant turn so the model answers next.
    pub add_generation_prompt: bool,
    /// Further template variables such as `enable_thinking` or `date_string`.
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// The instant `strftime_now` formats (as UTC); `None` means the current time.
    pub now: Option<SystemTime>,
}

impl RenderRequest {
    /// A request for `messages` with no tools, no generation prompt and no extras.
    pub fn new(messages: Vec<serde_json::Value>) -> Self {
        Self {
            messages,
            ..Self::default()
        }
    }
}

/// A chat template compiled once and rendered per request; cheap to share across threads.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    special: SpecialTokens,
}

impl ChatTemplate {
    /// Compiles `source` (Jinja as shipped with a model) for rendering with `special`.
    pub fn new(source: &str, special: SpecialTokens) -> Result<Self, TemplateError> {
        let mut env = env::build_environment();
        let source = env::rewrite_generation_tags(source).into_owned();
        env.add_template_owned(TEMPLATE_NAME, source)
            .map_err(|e| TemplateError::syntax(&e))?;
        Ok(Self { env, special })
    }

    /// The model's own template when it has one (non-blank), otherwise the built-in
    /// fallback for `arch` (see [`builtin_template`]).
    pub fn for_model(
        template_from_gguf: Option<&str>,
        arch: &str,
        special: SpecialTokens,
    ) -> Result<Self, TemplateError> {
        match template_from_gguf.filter(|s| !s.trim().is_empty()) {
            Some(source) => Self::new(source, special),
            None => {
                tracing::debug!(
                    arch,
                    "model has no chat template; using the built-in fallback"
                );
                Self::new(builtin_template(arch), special)
            }
        }
    }

    /// The special tokens this template renders with.
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// Renders `req` into the prompt text.
    pub fn render(&self, req: &RenderRequest) -> Result<String, TemplateError> {
        if let Some(key) = req.extra.keys().find(|k| RESERVED.contains(&k.as_str())) {
            return Err(TemplateError::ReservedVariable(key.clone()));
        }
        let now = req.now.unwrap_or_else(SystemTime::now);
        let mut ctx: Vec<(String, Value)> = req
            .extra
            .iter()
            .map(|(k, v)| (k.clone(), Value::from_serialize(v)))
            .collect();
        ctx.extend([
            ("messages".to_owned(), Value::from_serialize(&req.messages)),
            (
                "tools".to_owned(),
                req.tools
                    .as_ref()
                    .map_or(Value::from(()), Value::from_serialize),
            ),
            ("documents".to_owned(), Value::from(())),
            (
                "add_generation_prompt".to_owned(),
                Value::from(req.add_generation_prompt),
            ),
            (
                "bos_token".to_owned(),
                Value::from(self.special.bos_token.as_str()),
            ),
            (
                "eos_token".to_owned(),
                Value::from(self.special.eos_token.as_str()),
            ),
            (
                "strftime_now".to_owned(),
                Value::from_function(move |fmt: &str| strftime::strftime(fmt, now)),
            ),
        ]);
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| TemplateError::render(&e))?;
        template
            .render(Value::from_iter(ctx))
            .map_err(|e| TemplateError::render(&e))
    }
}

#[cfg(test)]
mod tests;
