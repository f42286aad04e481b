//! The local backend: one engine thread per model, continuous batching over a fixed number of
//! sequence slots, prefix reuse across requests, and a bounded queue (429 beyond it).
//!
//! Every step runs one forward pass over the next token of every decoding sequence plus a
//! slice of pending prompt tokens (chunked prefill), so a long prompt never stalls running
//! streams and the weights are read once per step for the whole batch.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use hanlin_api::{
    generation_channel, BackendError, BackendStats, EmbeddingJob, FinishReason, GenerationEvent,
    GenerationRequest, GenerationSink, GenerationStream, InferenceBackend, ModelCard, ModelDetails,
    PromptInput, TokenLogprob, Usage,
};
use hanlin_models::{BatchRow, KvCache, KvType, Model, Scratch};
use hanlin_tokenizer::template::{ChatTemplate, RenderRequest, SpecialTokens};
use hanlin_tokenizer::{StreamDecoder, Tokenizer};

use crate::constraint::{GrammarEnv, Next, SeqGrammar};
use crate::embed::Encoder;
use crate::error::{EngineError, Result};
use crate::sampler::{Sampler, SamplingParams};
use crate::stop::StopMatcher;

/// Prompt tokens processed per step across all sequences.
const PREFILL_BUDGET: usize = 128;

/// How the local backend runs.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// Context size of each sequence slot.
    pub n_ctx: usize,
    /// Matrix-product threads (default: all cores).
    pub threads: Option<usize>,
    /// Sequences decoded together.
    pub parallel: usize,
    /// Requests waiting beyond the running ones before new ones get 429.
    pub queue_depth: usize,
    /// KV cache element type.
    pub kv_type: KvType,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            n_ctx: 4096,
            threads: None,
            parallel: 4,
            queue_depth: 64,
            kv_type: KvType::F16,
        }
    }
}

struct Job {
    prompt: Vec<u32>,
    max_tokens: usize,
    sampling: SamplingParams,
    stop: Vec<String>,
    logprobs: Option<usize>,
    /// Compiled output grammar, if the request has one.
    grammar: Option<SeqGrammar>,
    sink: GenerationSink,
}

struct ModelSlot {
    card: ModelCard,
    details: ModelDetails,
    running: Arc<AtomicUsize>,
    kv_used: Arc<AtomicUsize>,
    kv_total: usize,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    n_vocab: usize,
    /// Built on the first constrained request (a 262k-token trie is not free).
    grammar_env: OnceLock<std::result::Result<GrammarEnv, String>>,
    tx: SyncSender<Job>,
    waiting: Arc<AtomicUsize>,
}

/// Serves local GGUF models from engine threads.
pub struct LocalBackend {
    models: Vec<ModelSlot>,
    runtime: String,
    encoders: Vec<Encoder>,
}

impl std::fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBackend")
            .field(
                "models",
                &self.models.iter().map(|m| &m.card.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What besides the build and the weights decides a local model's outputs: the kernel ISA (its
/// rounding differs) and the KV cache element type. Part of `system_fingerprint`.
pub(crate) fn runtime_identity(opts: &LocalOptions) -> String {
    format!(
        "isa={};kv={:?}",
        hanlin_kernels::detect().name(),
        opts.kv_type
    )
}

/// Unix seconds now.
pub(crate) fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl LocalBackend {
    /// Loads each `(id, path)` model and starts its engine thread.
    pub fn start(models: Vec<(String, PathBuf)>, opts: LocalOptions) -> Result<Self> {
        let mut slots = Vec::new();
        let mut encoders = Vec::new();
        for (id, path) in models {
            let file =
                hanlin_gguf::GgufFile::open(&path).map_err(hanlin_models::ModelError::from)?;
            if file.get_str("general.architecture").ok().flatten() == Some("bert") {
                encoders.push(Encoder::start(
                    &id,
                    &path,
                    file,
                    opts.threads,
                    opts.queue_depth,
                )?);
                tracing::info!(model = %id, path = %path.display(), "embedding model loaded");
                continue;
            }
            let details = crate::details::model_details(&file, &path);
            let mut model = Model::from_gguf(file)?;
            if let Some(n) = opts.threads {
                model.set_threads(n);
            }
            let tokenizer = Tokenizer::from_gguf(model.gguf())?;
            let text = |t: Option<u32>| {
                t.and_then(|i| tokenizer.token_text(i))
                    .unwrap_or_default()
                    .to_string()
            };
            let special = SpecialTokens {
                bos_token: text(tokenizer.bos_id()),
                eos_token: text(tokenizer.eos_id()),
            };
            let source = model
                .gguf()
                .get_str("tokenizer.chat_template")
                .ok()
                .flatten()
                .map(str::to_string);
            let template =
                ChatTemplate::for_model(source.as_deref(), model.config.arch.name(), special)
                    .map_err(|e| EngineError::Template(e.to_string()))?;
            // The tokenizer and template hold their own copies now.
            model.release_vocab_metadata();
            let n_ctx = opts.n_ctx.clamp(16, model.config.context_length.max(16));
            let (tx, rx) = mpsc::sync_channel(opts.queue_depth.max(1));
            let waiting = Arc::new(AtomicUsize::new(0));
            let gauges = Gauges {
                waiting: Arc::clone(&waiting),
                running: Arc::new(AtomicUsize::new(0)),
                kv_used: Arc::new(AtomicUsize::new(0)),
            };
            let kv_total = n_ctx * opts.parallel.max(1);
            let card = ModelCard {
                id: id.clone(),
                created: now_s(),
                owned_by: "hanlin".into(),
                context_length: n_ctx,
            };
            let n_vocab = model.config.n_vocab;
            let (running, kv_used) = (Arc::clone(&gauges.running), Arc::clone(&gauges.kv_used));
            let engine = Engine::new(model, tokenizer.clone(), n_ctx, &opts, gauges)?;
            std::thread::Builder::new()
                .name(format!("hanlin-engine-{id}"))
                .spawn(move || engine.run(rx))
                .map_err(|e| EngineError::Thread(e.to_string()))?;
            tracing::info!(model = %id, path = %path.display(), n_ctx, "model loaded");
            slots.push(ModelSlot {
                card,
                details,
                running,
                kv_used,
                kv_total,
                tokenizer,
                template,
                n_vocab,
                grammar_env: OnceLock::new(),
                tx,
                waiting,
            });
        }
        Ok(LocalBackend {
            runtime: runtime_identity(&opts),
            models: slots,
            encoders,
        })
    }

    fn slot(&self, id: &str) -> std::result::Result<&ModelSlot, BackendError> {
        if self.encoders.iter().any(|e| e.card.id == id) {
            return Err(BackendError::InvalidRequest {
                param: Some("model".into()),
                message: format!(
                    "The model `{id}` is an embedding model and does not generate text"
                ),
            });
        }
        self.models
            .iter()
            .find(|m| m.card.id == id)
            .ok_or_else(|| BackendError::ModelNotFound(id.to_string()))
    }

    fn grammar_env(slot: &ModelSlot) -> std::result::Result<&GrammarEnv, BackendError> {
        slot.grammar_env
            .get_or_init(|| {
                let t = std::time::Instant::now();
                let env = GrammarEnv::new(&slot.tokenizer, slot.n_vocab);
                tracing::info!(model = %slot.card.id, ms = t.elapsed().as_millis() as u64, "grammar token environment built");
                env
            })
            .as_ref()
            .map_err(|e| BackendError::Internal(format!("constrained decoding unavailable: {e}")))
    }

    fn prompt_tokens(
        slot: &ModelSlot,
        input: &PromptInput,
    ) -> std::result::Result<Vec<u32>, BackendError> {
        let bad = |param: &str, e: String| BackendError::InvalidRequest {
            param: Some(param.into()),
            message: e,
        };
        match input {
            PromptInput::Tokens(t) => {
                if let Some(&id) = t.iter().find(|&&id| id as usize >= slot.n_vocab) {
                    return Err(bad(
                        "prompt",
                        format!(
                            "token id {id} is outside the vocabulary of {}",
                            slot.n_vocab
                        ),
                    ));
                }
                Ok(t.clone())
            }
            PromptInput::Text(text) => slot
                .tokenizer
                .encode(text, true, false)
                .map_err(|e| bad("prompt", e.to_string())),
            PromptInput::Chat { messages, tools } => {
                let mut req = RenderRequest::new(messages.clone());
                req.tools = tools.clone();
                req.add_generation_prompt = true;
                let text = slot
                    .template
                    .render(&req)
                    .map_err(|e| bad("messages", e.to_string()))?;
                let bos = &slot.template.special_tokens().bos_token;
                let add_bos = bos.is_empty() || !text.starts_with(bos.as_str());
                slot.tokenizer
                    .encode(&text, add_bos, true)
                    .map_err(|e| bad("messages", e.to_string()))
            }
        }
    }
}

impl InferenceBackend for LocalBackend {
    fn models(&self) -> Vec<ModelCard> {
        self.models
            .iter()
            .map(|m| m.card.clone())
            .chain(self.encoders.iter().map(|e| e.card.clone()))
            .collect()
    }

    fn model_details(&self, model: &str) -> Option<ModelDetails> {
        self.models
            .iter()
            .find(|m| m.card.id == model)
            .map(|m| m.details.clone())
            .or_else(|| {
                self.encoders
                    .iter()
                    .find(|e| e.card.id == model)
                    .map(|e| e.details.clone())
            })
    }

    fn runtime_identity(&self) -> String {
        self.runtime.clone()
    }

    fn stats(&self) -> Option<BackendStats> {
        let mut s = BackendStats::default();
        for m in &self.models {
            s.queued += m.waiting.load(Ordering::Relaxed);
            s.running += m.running.load(Ordering::Relaxed);
            s.kv_cells_used += m.kv_used.load(Ordering::Relaxed);
            s.kv_cells_total += m.kv_total;
        }
        Some(s)
    }

    fn embed(
        &self,
        model: &str,
        inputs: Vec<PromptInput>,
    ) -> std::result::Result<EmbeddingJob, BackendError> {
        match self.encoders.iter().find(|e| e.card.id == model) {
            Some(e) => e.embed(inputs),
            None if self.models.iter().any(|m| m.card.id == model) => {
                Err(BackendError::InvalidRequest {
                    param: Some("model".into()),
                    message: format!("The model `{model}` does not support embeddings"),
                })
            }
            None => Err(BackendError::ModelNotFound(model.to_string())),
        }
    }

    fn generate(
        &self,
        req: GenerationRequest,
    ) -> std::result::Result<GenerationStream, BackendError> {
        let slot = self.slot(&req.model)?;
        let prompt = Self::prompt_tokens(slot, &req.input)?;
        let n_ctx = slot.card.context_length;
        if prompt.is_empty() {
            return Err(BackendError::InvalidRequest {
                param: Some("prompt".into()),
                message: "the prompt is empty".into(),
            });
        }
        let room = n_ctx.saturating_sub(prompt.len());
        if room == 0 || req.max_tokens.is_some_and(|m| m > room) {
            return Err(BackendError::ContextLengthExceeded {
                n_ctx,
                needed: prompt.len() + req.max_tokens.unwrap_or(1),
            });
        }
        let max_tokens = req.max_tokens.unwrap_or(room);
        let grammar = match &req.constraint {
            None => None,
            Some(c) => Some(Self::grammar_env(slot)?.compile(c)?),
        };
        let o = &req.sampling;
        let seed = o.seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
        let sampling = SamplingParams {
            temperature: o.temperature,
            top_k: o.top_k,
            top_p: o.top_p,
            min_p: o.min_p,
            typical_p: 1.0,
            repetition_penalty: o.repetition_penalty,
            presence_penalty: o.presence_penalty,
            frequency_penalty: o.frequency_penalty,
            penalty_last_n: 64,
            logit_bias: o.logit_bias.clone(),
            seed,
        };
        // Room for every event, so the engine never waits on a slow client.
        let (sink, stream) = generation_channel(max_tokens + 4);
        let job = Job {
            prompt,
            max_tokens,
            sampling,
            stop: req.stop.clone(),
            logprobs: req.logprobs,
            grammar,
            sink,
        };
        slot.waiting.fetch_add(1, Ordering::SeqCst);
        match slot.tx.try_send(job) {
            Ok(()) => Ok(stream),
            Err(TrySendError::Full(_)) => {
                slot.waiting.fetch_sub(1, Ordering::SeqCst);
                Err(BackendError::Overloaded { retry_after_s: 1 })
            }
            Err(TrySendError::Disconnected(_)) => {
                slot.waiting.fetch_sub(1, Ordering::SeqCst);
                Err(BackendError::Internal("the engine thread stopped".into()))
            }
        }
    }

    fn tokenize(&self, model: &str, text: &str) -> std::result::Result<Vec<u32>, BackendError> {
        let slot = self.slot(model)?;
        Self::prompt_tokens(slot, &PromptInput::Text(text.to_string()))
    }

    fn detokenize(&self, model: &str, tokens: &[u32]) -> std::result::Result<String, BackendError> {
        Ok(self.slot(model)?.tokenizer.decode(tokens, false))
    }
}

/// A running request in a sequence slot.
struct Active {
    job: Job,
    sampler: Sampler,
    /// Next prompt index to run (prompt tokens before it are in the KV cache).
    cursor: usize,
    cached: usize,
    generated: usize,
    /// Token sampled but not yet run through the model.
    pending: Option<u32>,
    decoder: StreamDecoder,
    stop: StopMatcher,
    text: String,
    grammar: Option<SeqGrammar>,
}

struct Slot {
    kv: KvCache,
    /// Tokens whose keys/values are in `kv`.
    history: Vec<u32>,
    active: Option<Active>,
}

struct Engine {
    model: Model,
    tokenizer: Tokenizer,
    slots: Vec<Slot>,
    scratch: Scratch,
    /// Logits of the step's sampled rows, reused every step.
    logits: Vec<f32>,
    gauges: Gauges,
}

/// Counters the engine thread updates and `/metrics` reads.
struct Gauges {
    waiting: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    kv_used: Arc<AtomicUsize>,
}

impl Engine {
    fn new(
        model: Model,
        tokenizer: Tokenizer,
        n_ctx: usize,
        opts: &LocalOptions,
        gauges: Gauges,
    ) -> Result<Self> {
        let parallel = opts.parallel.max(1);
        let mut slots = Vec::with_capacity(parallel);
        for _ in 0..parallel {
            slots.push(Slot {
                kv: model.kv_cache_typed(n_ctx, opts.kv_type)?,
                history: Vec::new(),
                active: None,
            });
        }
        let scratch = model.scratch(parallel + PREFILL_BUDGET);
        let logits = Vec::with_capacity((parallel + 1) * model.config.n_vocab);
        Ok(Engine {
            model,
            tokenizer,
            slots,
            scratch,
            logits,
            gauges,
        })
    }

    fn run(mut self, rx: Receiver<Job>) {
        let mut rows: Vec<BatchRow> = Vec::with_capacity(self.slots.len() + PREFILL_BUDGET);
        let mut owners: Vec<usize> = Vec::with_capacity(self.slots.len() + PREFILL_BUDGET);
        loop {
            // Admit queued requests into free slots; sleep when there is nothing to do.
            while let Some(free) = self.slots.iter().position(|s| s.active.is_none()) {
                let idle = self.slots.iter().all(|s| s.active.is_none());
                let job = if idle {
                    // Nothing runs while we sleep; say so before sleeping (idle unload and
                    // /metrics read this).
                    self.gauges.running.store(0, Ordering::Relaxed);
                    match rx.recv() {
                        Ok(j) => j,
                        Err(_) => return,
                    }
                } else {
                    match rx.try_recv() {
                        Ok(j) => j,
                        // Closed while busy (the model is being unloaded): finish the
                        // running sequences first; the idle `recv` above then ends the thread.
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                };
                self.gauges.waiting.fetch_sub(1, Ordering::SeqCst);
                self.admit(job, free);
            }
            self.drop_cancelled();
            let running = self.slots.iter().filter(|s| s.active.is_some()).count();
            self.gauges.running.store(running, Ordering::Relaxed);
            let used = self.slots.iter().map(|s| s.history.len()).sum();
            self.gauges.kv_used.store(used, Ordering::Relaxed);
            rows.clear();
            owners.clear();
            self.plan(&mut rows, &mut owners);
            if rows.is_empty() {
                continue;
            }
            if let Err(e) = self.step(&rows, &owners) {
                tracing::error!(error = %e, "forward pass failed");
                for s in &mut self.slots {
                    if let Some(a) = s.active.take() {
                        let _ = a
                            .job
                            .sink
                            .events
                            .try_send(Err(BackendError::Internal(e.to_string())));
                    }
                    s.kv.truncate(0);
                    s.history.clear();
                }
            }
        }
    }

    /// Puts a job in the free slot whose cached tokens share the longest prefix with it.
    fn admit(&mut self, mut job: Job, first_free: usize) {
        let lcp = |s: &Slot| {
            s.history
                .iter()
                .zip(&job.prompt)
                .take_while(|(a, b)| a == b)
                .count()
        };
        let idx = (0..self.slots.len())
            .filter(|&i| self.slots[i].active.is_none())
            .max_by_key(|&i| (lcp(&self.slots[i]), usize::MAX - i))
            .unwrap_or(first_free);
        let slot = &mut self.slots[idx];
        // The last prompt token always runs, to produce the first logits.
        let common = lcp(slot).min(job.prompt.len() - 1);
        slot.kv.truncate(common);
        slot.history.truncate(common);
        let mut sampler = Sampler::new(job.sampling.clone(), self.model.config.n_vocab);
        for &t in &job.prompt {
            sampler.accept(t);
        }
        let stop = StopMatcher::new(&job.stop);
        let grammar = job.grammar.take();
        slot.active = Some(Active {
            grammar,
            sampler,
            cursor: common,
            cached: common,
            generated: 0,
            pending: None,
            decoder: self.tokenizer.stream_decoder(false),
            stop,
            text: String::with_capacity(64),
            job,
        });
    }

    fn drop_cancelled(&mut self) {
        for s in &mut self.slots {
            if s.active
                .as_ref()
                .is_some_and(|a| a.job.sink.cancel.is_cancelled() || a.job.sink.events.is_closed())
            {
                s.active = None;
            }
        }
    }

    /// One row per decoding sequence, then prompt tokens up to the prefill budget.
    fn plan(&self, rows: &mut Vec<BatchRow>, owners: &mut Vec<usize>) {
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(t) = s.active.as_ref().and_then(|a| a.pending) {
                rows.push(BatchRow {
                    token: t,
                    seq: i,
                    pos: s.history.len(),
                    logits: true,
                });
                owners.push(i);
            }
        }
        let mut budget = PREFILL_BUDGET;
        for (i, s) in self.slots.iter().enumerate() {
            let Some(a) = &s.active else { continue };
            if a.pending.is_some() || a.cursor >= a.job.prompt.len() || budget == 0 {
                continue;
            }
            let take = (a.job.prompt.len() - a.cursor).min(budget);
            budget -= take;
            for k in 0..take {
                let idx = a.cursor + k;
                let last = idx + 1 == a.job.prompt.len();
                rows.push(BatchRow {
                    token: a.job.prompt[idx],
                    seq: i,
                    pos: idx,
                    logits: last,
                });
                if last {
                    owners.push(i);
                }
            }
        }
    }

    fn step(&mut self, rows: &[BatchRow], owners: &[usize]) -> Result<()> {
        let n_vocab = self.model.config.n_vocab;
        let mut logits = std::mem::take(&mut self.logits);
        {
            let mut kvs: Vec<&mut KvCache> = self.slots.iter_mut().map(|s| &mut s.kv).collect();
            let out = self
                .model
                .forward_batch(rows, &mut kvs, &mut self.scratch)?;
            logits.clear();
            logits.extend_from_slice(out);
        }
        // Record what entered each cache: a slot runs either its pending token or prompt tokens.
        for r in rows {
            let s = &mut self.slots[r.seq];
            s.history.push(r.token);
            if let Some(a) = s.active.as_mut() {
                if a.pending.take().is_none() {
                    a.cursor += 1;
                }
            }
        }
        for (k, &i) in owners.iter().enumerate() {
            self.after_logits(i, &logits[k * n_vocab..(k + 1) * n_vocab]);
        }
        self.logits = logits;
        Ok(())
    }

    /// Samples the next token of slot `i`, streams its text and decides whether to go on.
    fn after_logits(&mut self, i: usize, logits: &[f32]) {
        let n_ctx = self.slots[i].kv.n_ctx();
        let used = self.slots[i].history.len();
        let tokenizer = &self.tokenizer;
        let Some(a) = self.slots[i].active.as_mut() else {
            return;
        };
        if a.generated == 0 {
            let started = GenerationEvent::Started {
                prompt_tokens: a.job.prompt.len(),
                cached_tokens: a.cached,
            };
            if a.job.sink.events.try_send(Ok(started)).is_err() {
                self.slots[i].active = None;
                return;
            }
        }
        let token = a
            .sampler
            .sample_masked(logits, a.grammar.as_ref().map(SeqGrammar::mask));
        a.sampler.accept(token);
        // A grammar that is complete ends the sequence now, without another forward pass.
        let grammar_done = match a.grammar.as_mut() {
            Some(g) if !tokenizer.is_eog(token) => match g.commit(token) {
                Ok(Next::Done) => true,
                Ok(Next::Sample) => false,
                Err(e) => {
                    tracing::warn!(error = %e, token, "grammar rejected a token; stopping");
                    true
                }
            },
            _ => false,
        };
        a.generated += 1;
        let logprob = a
            .job
            .logprobs
            .map(|n| token_logprob(tokenizer, logits, token, n));
        let mut finish = None;
        a.text.clear();
        if tokenizer.is_eog(token) {
            finish = Some(FinishReason::Stop);
            let mut rest = String::new();
            let tail = a.decoder.finish();
            if !a.stop.push(&tail, &mut rest) {
                a.stop.finish(&mut rest);
            }
            a.text = rest;
        } else {
            let mut piece = String::new();
            a.decoder.push_into(token, &mut piece);
            if a.stop.push(&piece, &mut a.text) {
                finish = Some(FinishReason::Stop);
            } else if grammar_done {
                finish = Some(FinishReason::Stop);
                let tail = a.decoder.finish();
                if !a.stop.push(&tail, &mut a.text) {
                    a.stop.finish(&mut a.text);
                }
            } else if a.generated >= a.job.max_tokens || used + 1 >= n_ctx {
                finish = Some(FinishReason::Length);
                let tail = a.decoder.finish();
                if !a.stop.push(&tail, &mut a.text) {
                    a.stop.finish(&mut a.text);
                }
            }
        }
        let delta = GenerationEvent::Delta {
            text: std::mem::take(&mut a.text),
            logprob,
        };
        let mut alive = a.job.sink.events.try_send(Ok(delta)).is_ok();
        if let Some(reason) = finish {
            let usage = Usage {
                prompt_tokens: a.job.prompt.len(),
                cached_tokens: a.cached,
                completion_tokens: a.generated,
            };
            let _ = a.job.sink.events.try_send(Ok(GenerationEvent::Finished {
                finish_reason: reason,
                usage,
            }));
            alive = false;
        } else {
            a.pending = Some(token);
        }
        if !alive {
            self.slots[i].active = None;
        }
    }
}

fn token_logprob(tokenizer: &Tokenizer, logits: &[f32], token: u32, n_top: usize) -> TokenLogprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max
        + logits
            .iter()
            .map(|&l| f64::from(l - max).exp())
            .sum::<f64>()
            .ln() as f32;
    let piece = |id: u32| {
        let bytes = tokenizer.token_to_piece(id, false);
        (String::from_utf8_lossy(&bytes).into_owned(), bytes)
    };
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(n_top + 1);
    if n_top > 0 {
        for (id, &l) in logits.iter().enumerate() {
            if top.len() < n_top || l > top[top.len() - 1].1 {
                let at = top.partition_point(|&(_, v)| v >= l);
                top.insert(at, (id as u32, l));
                top.truncate(n_top);
            }
        }
    }
    let (text, bytes) = piece(token);
    TokenLogprob {
        token: text,
        bytes,
        logprob: logits[token as usize] - lse,
        top: top
            .into_iter()
            .map(|(id, l)| {
                let (t, b) = piece(id);
                (t, b, l - lse)
            })
            .collect(),
    }
}
