//! A deterministic [`InferenceBackend`] for HTTP-layer tests: it echoes the prompt (or plays a
//! script) word by word on its own thread, like the engine, with configurable delays, failures
//! and overload, and counts what it saw so tests can check cancellation and request plumbing.
//!
//! Tokens are UTF-8 bytes (ids 0–255) after a BOS of id 256, so token counts are easy to predict:
//! a prompt of `n` bytes is `n + 1` tokens.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hanlin_api::{
    generation_channel, BackendError, EmbeddingJob, EmbeddingOutput, FinishReason, GenerationEvent,
    GenerationRequest, GenerationSink, GenerationStream, InferenceBackend, ModelCard, ModelDetails,
    PromptInput, TokenLogprob, Usage,
};

/// The BOS id the fake tokenizer prepends.
pub const FAKE_BOS: u32 = 256;

/// How a [`FakeBackend`] behaves.
#[derive(Clone, Debug)]
pub struct FakeConfig {
    /// Model ids served.
    pub models: Vec<String>,
    /// Context window: prompt tokens + `max_tokens` beyond it is `ContextLengthExceeded`.
    pub n_ctx: usize,
    /// Words to generate instead of echoing the prompt.
    pub script: Option<Vec<String>>,
    /// Pause before `Started` (prompt processing).
    pub start_delay: Duration,
    /// Pause before each token.
    pub token_delay: Duration,
    /// Returned by `generate` instead of a stream.
    pub fail: Option<BackendError>,
    /// Sent on the stream after this many deltas, instead of finishing.
    pub fail_after: Option<(usize, BackendError)>,
    /// With this many generations running, further ones are refused as overloaded.
    pub max_active: Option<usize>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            models: vec!["fake".into()],
            n_ctx: 512,
            script: None,
            start_delay: Duration::ZERO,
            token_delay: Duration::ZERO,
            fail: None,
            fail_after: None,
            max_active: None,
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    active: AtomicUsize,
    cancelled: AtomicUsize,
    started: AtomicUsize,
    last_request: Mutex<Option<GenerationRequest>>,
    last_prompt: Mutex<Vec<u32>>,
}

/// The fake backend; cheap to clone (clones share counters).
#[derive(Clone, Debug)]
pub struct FakeBackend {
    config: Arc<FakeConfig>,
    shared: Arc<Shared>,
}

impl FakeBackend {
    /// A backend behaving as `config` says.
    pub fn new(config: FakeConfig) -> Self {
        FakeBackend {
            config: Arc::new(config),
            shared: Arc::default(),
        }
    }

    /// Generations running now.
    pub fn active(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst)
    }

    /// Generations stopped because the consumer went away.
    pub fn cancelled(&self) -> usize {
        self.shared.cancelled.load(Ordering::SeqCst)
    }

    /// Generations accepted so far.
    pub fn started(&self) -> usize {
        self.shared.started.load(Ordering::SeqCst)
    }

    /// The last request `generate` accepted.
    pub fn last_request(&self) -> Option<GenerationRequest> {
        lock(&self.shared.last_request).clone()
    }

    fn check_model(&self, model: &str) -> Result<(), BackendError> {
        if self.config.models.iter().any(|m| m == model) {
            Ok(())
        } else {
            Err(BackendError::ModelNotFound(model.to_string()))
        }
    }

    /// The prompt as the fake renders it: chat messages as `role: content` lines.
    fn prompt_text(input: &PromptInput) -> String {
        match input {
            PromptInput::Chat { messages, .. } => messages
                .iter()
                .map(|m| {
                    let role = m["role"].as_str().unwrap_or("?");
                    let content = m["content"].as_str().unwrap_or("");
                    format!("{role}: {content}\n")
                })
                .collect(),
            PromptInput::Text(t) => t.clone(),
            PromptInput::Tokens(ids) => detok(ids),
        }
    }

    /// What the reply echoes: the last message's content, or the prompt.
    fn echo_source(input: &PromptInput) -> String {
        match input {
            PromptInput::Chat { messages, .. } => messages
                .last()
                .and_then(|m| m["content"].as_str())
                .unwrap_or("")
                .to_string(),
            other => Self::prompt_text(other),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn tok(text: &str) -> Vec<u32> {
    std::iter::once(FAKE_BOS)
        .chain(text.bytes().map(u32::from))
        .collect()
}

fn detok(ids: &[u32]) -> String {
    let bytes: Vec<u8> = ids.iter().filter_map(|&i| u8::try_from(i).ok()).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Splits into words that keep their leading space: `"a b"` → `["a", " b"]`.
fn words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, w) in text.split(' ').enumerate() {
        if w.is_empty() {
            continue;
        }
        out.push(if i == 0 {
            w.to_string()
        } else {
            format!(" {w}")
        });
    }
    out
}

fn logprob_of(word: &str, top: usize) -> TokenLogprob {
    let alternatives = [word, " the", " a", " and", " of"];
    TokenLogprob {
        token: word.to_string(),
        bytes: word.as_bytes().to_vec(),
        logprob: -0.25,
        top: (0..top)
            .map(|i| {
                let t = alternatives.get(i).copied().unwrap_or(" x");
                (t.to_string(), t.as_bytes().to_vec(), -0.25 - i as f32)
            })
            .collect(),
    }
}

struct Job {
    words: Vec<String>,
    max_tokens: Option<usize>,
    stop: Vec<String>,
    logprobs: Option<usize>,
    prompt_tokens: usize,
    cached_tokens: usize,
    config: Arc<FakeConfig>,
    shared: Arc<Shared>,
}

impl Job {
    /// Runs on its own thread; returns whether the consumer went away.
    fn run(self, sink: &GenerationSink) -> bool {
        let send = |ev: Result<GenerationEvent, BackendError>| {
            !sink.cancel.is_cancelled() && sink.events.blocking_send(ev).is_ok()
        };
        std::thread::sleep(self.config.start_delay);
        if !send(Ok(GenerationEvent::Started {
            prompt_tokens: self.prompt_tokens,
            cached_tokens: self.cached_tokens,
        })) {
            return true;
        }
        let mut text = String::new();
        let mut n = 0;
        let mut finish = FinishReason::Stop;
        for word in &self.words {
            if self.max_tokens.is_some_and(|m| n >= m) {
                finish = FinishReason::Length;
                break;
            }
            if let Some((after, err)) = &self.config.fail_after {
                if n == *after {
                    return !send(Err(err.clone()));
                }
            }
            std::thread::sleep(self.config.token_delay);
            n += 1;
            let before = text.len();
            text.push_str(word);
            // A stop string ends generation without being returned, as in OpenAI's API. (The
            // real engine holds back partial matches; the fake only cuts within this word.)
            let cut = self.stop.iter().filter_map(|s| text.find(s.as_str())).min();
            let (piece, stopped) = match cut {
                Some(c) => (text[before.min(c)..c].to_string(), true),
                None => (word.clone(), false),
            };
            let ev = GenerationEvent::Delta {
                logprob: self.logprobs.map(|top| logprob_of(&piece, top)),
                text: piece,
            };
            if !send(Ok(ev)) {
                return true;
            }
            if stopped {
                break;
            }
        }
        let usage = Usage {
            prompt_tokens: self.prompt_tokens,
            cached_tokens: self.cached_tokens,
            completion_tokens: n,
        };
        !send(Ok(GenerationEvent::Finished {
            finish_reason: finish,
            usage,
        }))
    }
}

impl InferenceBackend for FakeBackend {
    fn models(&self) -> Vec<ModelCard> {
        self.config
            .models
            .iter()
            .map(|id| ModelCard {
                id: id.clone(),
                created: 1_700_000_000,
                owned_by: "hanlin".into(),
                context_length: self.config.n_ctx,
            })
            .collect()
    }

    fn generate(&self, req: GenerationRequest) -> Result<GenerationStream, BackendError> {
        self.check_model(&req.model)?;
        if let Some(e) = &self.config.fail {
            return Err(e.clone());
        }
        let prompt = tok(&Self::prompt_text(&req.input));
        let needed = prompt.len() + req.max_tokens.unwrap_or(0);
        if needed > self.config.n_ctx {
            return Err(BackendError::ContextLengthExceeded {
                n_ctx: self.config.n_ctx,
                needed,
            });
        }
        let running = self.shared.active.fetch_add(1, Ordering::SeqCst);
        if self.config.max_active.is_some_and(|max| running >= max) {
            self.shared.active.fetch_sub(1, Ordering::SeqCst);
            return Err(BackendError::Overloaded { retry_after_s: 2 });
        }
        self.shared.started.fetch_add(1, Ordering::SeqCst);
        // One-slot prefix cache: tokens shared with the previous prompt count as cached.
        let cached_tokens = {
            let mut last = lock(&self.shared.last_prompt);
            let common = last.iter().zip(&prompt).take_while(|(a, b)| a == b).count();
            *last = prompt.clone();
            common.min(prompt.len().saturating_sub(1))
        };
        let words = match &self.config.script {
            Some(s) => s.clone(),
            None => words(&Self::echo_source(&req.input)),
        };
        let job = Job {
            words,
            max_tokens: req.max_tokens,
            stop: req.stop.clone(),
            logprobs: req.logprobs,
            prompt_tokens: prompt.len(),
            cached_tokens,
            config: self.config.clone(),
            shared: self.shared.clone(),
        };
        *lock(&self.shared.last_request) = Some(req);
        let (sink, stream) = generation_channel(4);
        std::thread::spawn(move || {
            let shared = job.shared.clone();
            if job.run(&sink) {
                shared.cancelled.fetch_add(1, Ordering::SeqCst);
            }
            shared.active.fetch_sub(1, Ordering::SeqCst);
        });
        Ok(stream)
    }

    fn tokenize(&self, model: &str, text: &str) -> Result<Vec<u32>, BackendError> {
        self.check_model(model)?;
        Ok(tok(text))
    }

    fn detokenize(&self, model: &str, tokens: &[u32]) -> Result<String, BackendError> {
        self.check_model(model)?;
        if let Some(bad) = tokens.iter().find(|&&t| t > FAKE_BOS) {
            return Err(BackendError::InvalidRequest {
                param: Some("tokens".into()),
                message: format!("token id {bad} is out of range for the vocabulary"),
            });
        }
        Ok(detok(tokens))
    }

    fn model_details(&self, model: &str) -> Option<ModelDetails> {
        self.check_model(model).ok()?;
        Some(ModelDetails {
            family: "fake".into(),
            parameter_size: "1K".into(),
            quantization_level: "F32".into(),
            size_bytes: 4096,
            digest: String::new(),
            chat_template: None,
        })
    }

    fn embed(&self, model: &str, inputs: Vec<PromptInput>) -> Result<EmbeddingJob, BackendError> {
        self.check_model(model)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut prompt_tokens = 0;
        let embeddings = inputs
            .iter()
            .map(|i| {
                let ids = tok(&Self::prompt_text(i));
                prompt_tokens += ids.len();
                let sum: u32 = ids.iter().sum();
                vec![ids.len() as f32, (sum % 97) as f32, 1.0, -0.5]
            })
            .collect();
        // The receiver may already be gone; nothing to do then.
        let _ = tx.send(Ok(EmbeddingOutput {
            embeddings,
            prompt_tokens,
        }));
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(mut s: GenerationStream) -> Vec<Result<GenerationEvent, BackendError>> {
        let mut out = Vec::new();
        while let Some(ev) = s.events.blocking_recv() {
            out.push(ev);
        }
        out
    }

    fn req(text: &str) -> GenerationRequest {
        GenerationRequest {
            model: "fake".into(),
            input: PromptInput::Text(text.into()),
            max_tokens: None,
            sampling: Default::default(),
            stop: Vec::new(),
            logprobs: None,
            constraint: None,
        }
    }

    fn texts(evs: &[Result<GenerationEvent, BackendError>]) -> Vec<String> {
        evs.iter()
            .filter_map(|e| match e {
                Ok(GenerationEvent::Delta { text, .. }) => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn echoes_words_then_finishes() {
        let b = FakeBackend::new(FakeConfig::default());
        let evs = collect(b.generate(req("one two three")).unwrap());
        assert_eq!(texts(&evs), ["one", " two", " three"]);
        assert_eq!(
            evs[0],
            Ok(GenerationEvent::Started {
                prompt_tokens: 14,
                cached_tokens: 0
            })
        );
        let Some(Ok(GenerationEvent::Finished {
            finish_reason,
            usage,
        })) = evs.last()
        else {
            panic!("no finish: {evs:?}")
        };
        assert_eq!(*finish_reason, FinishReason::Stop);
        assert_eq!(usage.completion_tokens, 3);
    }

    #[test]
    fn max_tokens_stop_strings_and_prefix_cache() {
        let b = FakeBackend::new(FakeConfig::default());
        collect(b.generate(req("one two three")).unwrap());
        let mut r = req("one two three");
        r.max_tokens = Some(2);
        let evs = collect(b.generate(r).unwrap());
        assert_eq!(texts(&evs), ["one", " two"]);
        assert!(
            matches!(
                evs.last(),
                Some(Ok(GenerationEvent::Finished {
                    finish_reason: FinishReason::Length,
                    usage: Usage {
                        cached_tokens: 13,
                        ..
                    }
                }))
            ),
            "{evs:?}"
        );
        let mut r = req("one two three");
        r.stop = vec!["hr".into(), "zz".into()];
        assert_eq!(
            texts(&collect(b.generate(r).unwrap())),
            ["one", " two", " t"]
        );
    }

    #[test]
    fn errors_and_overload() {
        let b = FakeBackend::new(FakeConfig::default());
        let mut r = req("x");
        r.model = "nope".into();
        assert_eq!(
            b.generate(r).unwrap_err(),
            BackendError::ModelNotFound("nope".into())
        );
        let mut r = req("x");
        r.max_tokens = Some(600);
        assert!(matches!(
            b.generate(r),
            Err(BackendError::ContextLengthExceeded { .. })
        ));
        let b = FakeBackend::new(FakeConfig {
            max_active: Some(1),
            start_delay: Duration::from_millis(200),
            ..FakeConfig::default()
        });
        let first = b.generate(req("a")).unwrap();
        assert!(matches!(
            b.generate(req("a")),
            Err(BackendError::Overloaded { .. })
        ));
        drop(first);
        let b = FakeBackend::new(FakeConfig {
            fail_after: Some((1, BackendError::Internal("boom".into()))),
            ..FakeConfig::default()
        });
        let evs = collect(b.generate(req("a b c")).unwrap());
        assert_eq!(texts(&evs), ["a"]);
        assert_eq!(
            evs.last(),
            Some(&Err(BackendError::Internal("boom".into())))
        );
    }

    #[test]
    fn dropping_the_stream_cancels() {
        let b = FakeBackend::new(FakeConfig {
            token_delay: Duration::from_millis(5),
            ..FakeConfig::default()
        });
        let s = b.generate(req(&"w ".repeat(200))).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drop(s);
        for _ in 0..200 {
            if b.active() == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!((b.active(), b.cancelled()), (0, 1));
    }

    #[test]
    fn tokenizer_round_trip() {
        let b = FakeBackend::new(FakeConfig::default());
        let ids = b.tokenize("fake", "hé").unwrap();
        assert_eq!(ids.len(), 4);
        assert_eq!(b.detokenize("fake", &ids).unwrap(), "hé");
        assert!(b.detokenize("fake", &[999]).is_err());
    }
}
