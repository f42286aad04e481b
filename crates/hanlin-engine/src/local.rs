//! The local backend: one engine thread per model (see [`crate::scheduler`]), continuous
//! batching over a fixed number of sequence slots sharing a paged KV cache with prefix reuse
//! across requests, and a bounded queue (429 beyond it).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use hanlin_api::{
    generation_channel, BackendError, BackendStats, EmbeddingJob, GenerationRequest,
    GenerationStream, InferenceBackend, ModelCard, ModelDetails, PromptInput,
};
use hanlin_models::{KvType, Model};
use hanlin_tokenizer::template::{ChatTemplate, RenderRequest, SpecialTokens};
use hanlin_tokenizer::Tokenizer;

use crate::constraint::GrammarEnv;
use crate::embed::Encoder;
use crate::error::{EngineError, Result};
use crate::sampler::SamplingParams;
use crate::scheduler::{Engine, Gauges, Job};

/// How the local backend runs.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// Most positions one sequence may use (prompt plus output).
    pub n_ctx: usize,
    /// Matrix-product threads (default: all cores).
    pub threads: Option<usize>,
    /// Sequences decoded together.
    pub parallel: usize,
    /// Requests waiting beyond the running ones before new ones get 429.
    pub queue_depth: usize,
    /// KV cache element type.
    pub kv_type: KvType,
    /// Positions of KV cache all sequences share (default: `parallel × n_ctx`, enough for
    /// every slot to hold a full context). Less saves memory: requests then wait for room.
    pub kv_tokens: Option<usize>,
    /// After this long with nothing running or queued, the prefix cache is dropped and the KV
    /// pool's memory given back to the OS (`None`: kept until the model unloads).
    pub kv_idle_trim: Option<std::time::Duration>,
    /// Positions per KV block: the unit of allocation and of prefix sharing.
    pub kv_block: usize,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            n_ctx: 4096,
            threads: None,
            parallel: 4,
            queue_depth: 64,
            kv_type: KvType::F16,
            kv_tokens: None,
            kv_idle_trim: Some(std::time::Duration::from_secs(60)),
            kv_block: 32,
        }
    }
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
            let block = opts.kv_block.clamp(1, n_ctx);
            let n_blocks = opts
                .kv_tokens
                .map_or(n_ctx.div_ceil(block) * opts.parallel.max(1), |t| {
                    t.div_ceil(block).max(1)
                });
            // A request must fit in an empty pool, so that waiting always ends.
            let n_ctx = n_ctx.min(n_blocks * block);
            let kv = model.kv_pool(block, n_blocks, opts.kv_type)?;
            let (tx, rx) = mpsc::sync_channel(opts.queue_depth.max(1));
            let waiting = Arc::new(AtomicUsize::new(0));
            let gauges = Gauges {
                waiting: Arc::clone(&waiting),
                running: Arc::new(AtomicUsize::new(0)),
                kv_used: Arc::new(AtomicUsize::new(0)),
            };
            let kv_total = n_blocks * block;
            let card = ModelCard {
                id: id.clone(),
                created: now_s(),
                owned_by: "hanlin".into(),
                context_length: n_ctx,
            };
            let n_vocab = model.config.n_vocab;
            let (running, kv_used) = (Arc::clone(&gauges.running), Arc::clone(&gauges.kv_used));
            let mut engine =
                Engine::new(model, tokenizer.clone(), n_ctx, opts.parallel, kv, gauges);
            engine.set_idle_trim(opts.kv_idle_trim);
            std::thread::Builder::new()
                .name(format!("hanlin-engine-{id}"))
                .spawn(move || engine.run(rx))
                .map_err(|e| EngineError::Thread(e.to_string()))?;
            tracing::info!(model = %id, path = %path.display(), n_ctx, kv_blocks = n_blocks, kv_block = block, "model loaded");
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
