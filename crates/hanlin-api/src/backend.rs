//! The boundary between the HTTP layer and whatever produces tokens: a local engine, a remote
//! hanlin node or an upstream provider. The server only ever talks to [`InferenceBackend`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Where the prompt comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum PromptInput {
    /// Chat messages (OpenAI shape), rendered with the model's chat template.
    Chat {
        /// Messages as sent by the client (`role`, `content`, `tool_calls` …).
        messages: Vec<serde_json::Value>,
        /// Tool schemas, passed to the template.
        tools: Option<Vec<serde_json::Value>>,
    },
    /// Raw text, tokenized with BOS as the model's metadata says.
    Text(String),
    /// Token ids, used as given.
    Tokens(Vec<u32>),
}

/// Sampling options after validation (ranges already checked).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingOptions {
    /// 0 = greedy.
    pub temperature: f32,
    /// 1 = off.
    pub top_p: f32,
    /// 0 = off.
    pub top_k: usize,
    /// 0 = off.
    pub min_p: f32,
    /// 1 = off.
    pub repetition_penalty: f32,
    /// OpenAI presence penalty.
    pub presence_penalty: f32,
    /// OpenAI frequency penalty.
    pub frequency_penalty: f32,
    /// Added to these tokens' logits.
    pub logit_bias: Vec<(u32, f32)>,
    /// Seed; `None` lets the backend pick one.
    pub seed: Option<u64>,
}

impl Default for SamplingOptions {
    fn default() -> Self {
        SamplingOptions {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            logit_bias: Vec::new(),
            seed: None,
        }
    }
}

/// One validated generation request.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationRequest {
    /// Model id as the client named it.
    pub model: String,
    /// The prompt.
    pub input: PromptInput,
    /// Most tokens to generate (`None`: until the context is full).
    pub max_tokens: Option<usize>,
    /// Sampling.
    pub sampling: SamplingOptions,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Return log-probabilities with this many alternatives (`Some(0)`: chosen token only).
    pub logprobs: Option<usize>,
    /// Grammar the output must follow (structured output, tool calls); `None`: free text.
    pub constraint: Option<Constraint>,
}

/// What a constrained output must be.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputConstraint {
    /// Any JSON object (`response_format: json_object`, Ollama `format: "json"`).
    JsonObject,
    /// JSON valid against this schema.
    JsonSchema(serde_json::Value),
    /// A grammar in llguidance's Lark dialect (may embed `%json { … }` schemas).
    Lark(String),
    /// A regular expression the whole output must match.
    Regex(String),
}

/// An output constraint and the request field it came from, so that a backend that cannot
/// compile it answers with a 400 naming that field.
#[derive(Clone, Debug, PartialEq)]
pub struct Constraint {
    /// The grammar.
    pub kind: OutputConstraint,
    /// The request field it came from (`response_format.json_schema.schema`, `tools` …).
    pub param: String,
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// End-of-generation token or stop string.
    Stop,
    /// Token limit or context end.
    Length,
}

impl FinishReason {
    /// OpenAI's name.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// Token counts of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens (including cached ones).
    pub prompt_tokens: usize,
    /// Of those, served from the prefix cache.
    pub cached_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
}

/// A token's log-probability and the best alternatives.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    /// The token's text.
    pub token: String,
    /// Its UTF-8 bytes.
    pub bytes: Vec<u8>,
    /// Natural-log probability.
    pub logprob: f32,
    /// Most likely alternatives (token text, bytes, logprob).
    pub top: Vec<(String, Vec<u8>, f32)>,
}

/// What a generation stream yields, in order: `Started`, any number of `Delta`, `Finished`.
#[derive(Clone, Debug, PartialEq)]
pub enum GenerationEvent {
    /// The prompt was accepted and processed.
    Started {
        /// Prompt tokens.
        prompt_tokens: usize,
        /// Of those, served from the prefix cache.
        cached_tokens: usize,
    },
    /// New text (may be empty when a token completes no character yet).
    Delta {
        /// Text to append.
        text: String,
        /// Log-probabilities, when asked for.
        logprob: Option<TokenLogprob>,
    },
    /// Generation ended.
    Finished {
        /// Why.
        finish_reason: FinishReason,
        /// Token counts.
        usage: Usage,
    },
}

/// Failures a backend reports; the server maps each to one HTTP status and error shape.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BackendError {
    /// No such model.
    #[error("The model `{0}` does not exist")]
    ModelNotFound(String),
    /// Queue full.
    #[error("the server is overloaded; retry after {retry_after_s} s")]
    Overloaded {
        /// Seconds to wait.
        retry_after_s: u64,
    },
    /// The prompt (plus requested tokens) does not fit.
    #[error("This model's maximum context length is {n_ctx} tokens, but the request needs {needed} tokens")]
    ContextLengthExceeded {
        /// Context size.
        n_ctx: usize,
        /// Tokens the request needs.
        needed: usize,
    },
    /// A request field the backend cannot honour.
    #[error("{message}")]
    InvalidRequest {
        /// The offending field.
        param: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// Anything else (details go to the log, not the client).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Set when the client goes away; the backend stops generating and frees the sequence.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, un-cancelled token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the producer to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether cancellation was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The consumer side of one generation; dropping it cancels the request.
#[derive(Debug)]
pub struct GenerationStream {
    /// Events in order; the channel closes after `Finished` or an error.
    pub events: tokio::sync::mpsc::Receiver<Result<GenerationEvent, BackendError>>,
    /// Cancelled on drop.
    pub cancel: CancelToken,
}

impl Drop for GenerationStream {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The producer side handed to a backend's worker.
#[derive(Debug, Clone)]
pub struct GenerationSink {
    /// Where events go.
    pub events: tokio::sync::mpsc::Sender<Result<GenerationEvent, BackendError>>,
    /// Check between tokens.
    pub cancel: CancelToken,
}

/// A connected sink/stream pair with room for `capacity` undelivered events.
pub fn generation_channel(capacity: usize) -> (GenerationSink, GenerationStream) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
    let cancel = CancelToken::new();
    (
        GenerationSink {
            events: tx,
            cancel: cancel.clone(),
        },
        GenerationStream { events: rx, cancel },
    )
}

/// A model a backend serves.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelCard {
    /// Id clients use.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// Owner shown to clients.
    pub owned_by: String,
    /// Context window of the loaded instance.
    pub context_length: usize,
}

/// What Ollama's `/api/tags`, `/api/show` and `/api/ps` report about a model, where the backend
/// knows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelDetails {
    /// `general.architecture` (llama, gemma3 …).
    pub family: String,
    /// Human-readable parameter count, e.g. `268M`.
    pub parameter_size: String,
    /// Weight type, e.g. `Q8_0`.
    pub quantization_level: String,
    /// File size in bytes.
    pub size_bytes: u64,
    /// Content digest (`sha256:…`), empty when unknown.
    pub digest: String,
    /// The chat template the model ships, if any.
    pub chat_template: Option<String>,
}

/// Scheduler and cache gauges a backend can report for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BackendStats {
    /// Requests waiting for a slot.
    pub queued: usize,
    /// Sequences being prefilled or decoded.
    pub running: usize,
    /// KV cache cells in use.
    pub kv_cells_used: usize,
    /// KV cache cells in all.
    pub kv_cells_total: usize,
}

/// Vectors for a batch of inputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EmbeddingOutput {
    /// One vector per input, in input order.
    pub embeddings: Vec<Vec<f32>>,
    /// Tokens read, all inputs together.
    pub prompt_tokens: usize,
}

/// Pending embeddings; dropping it abandons the job.
pub type EmbeddingJob = tokio::sync::oneshot::Receiver<Result<EmbeddingOutput, BackendError>>;

/// How long a model stays in memory after its last request (Ollama's `keep_alive`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepAlive {
    /// Never unload for idleness.
    Forever,
    /// Unload after this long without requests; zero unloads as soon as it is idle.
    For(std::time::Duration),
}

impl KeepAlive {
    /// Parses Ollama's forms: seconds as a number (`300`, `0`), a Go duration (`5m`, `1h30m`,
    /// `2.5s`), and any negative value for "forever". `None` when it is none of these.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Ok(secs) = s.parse::<f64>() {
            return Self::from_secs(secs);
        }
        let (negative, mut rest) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        if rest.is_empty() {
            return None;
        }
        let mut total = 0.0f64;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let value: f64 = rest[..num_len].parse().ok()?;
            rest = &rest[num_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let scale = match &rest[..unit_len] {
                "ns" => 1e-9,
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return None,
            };
            rest = &rest[unit_len..];
            total += value * scale;
        }
        Self::from_secs(if negative { -total } else { total })
    }

    /// Seconds as Ollama's JSON number: negative means forever.
    pub fn from_secs(secs: f64) -> Option<Self> {
        if secs.is_nan() {
            None
        } else if secs < 0.0 {
            Some(KeepAlive::Forever)
        } else {
            Some(KeepAlive::For(std::time::Duration::from_secs_f64(
                secs.min(1e9),
            )))
        }
    }
}

/// A model resident in memory, as Ollama's `/api/ps` reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedModel {
    /// Model id.
    pub id: String,
    /// Unix seconds when it will be unloaded if idle; `None` when it stays loaded.
    pub expires_at: Option<u64>,
    /// Bytes of weights mapped.
    pub size_bytes: u64,
}

/// Pending model load; resolves when the model can serve.
pub type LoadJob = tokio::sync::oneshot::Receiver<Result<(), BackendError>>;

/// Anything that can serve generations. Implementations must not block the caller:
/// `generate` enqueues and returns a stream at once.
pub trait InferenceBackend: Send + Sync + 'static {
    /// Models available now.
    fn models(&self) -> Vec<ModelCard>;
    /// Starts a generation.
    fn generate(&self, req: GenerationRequest) -> Result<GenerationStream, BackendError>;
    /// Token ids of `text` for `model` (with BOS as the model adds it).
    fn tokenize(&self, model: &str, text: &str) -> Result<Vec<u32>, BackendError>;
    /// Text of token ids.
    fn detokenize(&self, model: &str, tokens: &[u32]) -> Result<String, BackendError>;
    /// Ollama-style details of a model; `None` when unknown (the server fills in blanks).
    fn model_details(&self, _model: &str) -> Option<ModelDetails> {
        None
    }
    /// Scheduler gauges; `None` when the backend has none to report.
    fn stats(&self) -> Option<BackendStats> {
        None
    }
    /// Whatever besides the build and the models' digests could change outputs (the kernel
    /// ISA, for a local engine); part of `system_fingerprint`.
    fn runtime_identity(&self) -> String {
        String::new()
    }
    /// Models in memory now; `None` when every served model is always loaded.
    fn loaded(&self) -> Option<Vec<LoadedModel>> {
        None
    }
    /// Loads `model` (if it is not already) and sets how long it stays after its last request
    /// (`None`: the server's default). Backends whose models are always loaded keep this default.
    fn load(&self, model: &str, _keep_alive: Option<KeepAlive>) -> Result<LoadJob, BackendError> {
        if !self.models().iter().any(|m| m.id == model) {
            return Err(BackendError::ModelNotFound(model.to_string()));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = tx.send(Ok(()));
        Ok(rx)
    }
    /// Unloads `model` once its running requests finish; a later request loads it again.
    fn unload(&self, model: &str) -> Result<(), BackendError> {
        if self.models().iter().any(|m| m.id == model) {
            Ok(())
        } else {
            Err(BackendError::ModelNotFound(model.to_string()))
        }
    }
    /// Sets how long `model` stays loaded after its last request.
    fn set_keep_alive(&self, _model: &str, _keep_alive: KeepAlive) {}
    /// Starts embedding `inputs` (each `Text` or `Tokens`). Generation-only backends keep this
    /// default, which refuses with a 400 naming `model`.
    fn embed(&self, model: &str, _inputs: Vec<PromptInput>) -> Result<EmbeddingJob, BackendError> {
        Err(BackendError::InvalidRequest {
            param: Some("model".into()),
            message: format!("The model `{model}` does not support embeddings"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::KeepAlive;
    use std::time::Duration;

    #[test]
    fn keep_alive_forms() {
        let secs = |s: u64| Some(KeepAlive::For(Duration::from_secs(s)));
        assert_eq!(KeepAlive::parse("300"), secs(300));
        assert_eq!(KeepAlive::parse("0"), secs(0));
        assert_eq!(KeepAlive::parse("5m"), secs(300));
        assert_eq!(KeepAlive::parse("1h30m"), secs(5400));
        assert_eq!(
            KeepAlive::parse("2.5s"),
            Some(KeepAlive::For(Duration::from_millis(2500)))
        );
        assert_eq!(KeepAlive::parse("-1"), Some(KeepAlive::Forever));
        assert_eq!(KeepAlive::parse("-1m"), Some(KeepAlive::Forever));
        for bad in ["", "m", "5x", "five minutes", "1h-", "NaN"] {
            assert_eq!(KeepAlive::parse(bad), None, "{bad:?}");
        }
    }
}
