//! One conversation with a model: a KV cache that survives between turns, so a follow-up
//! prompt that extends the previous one only runs the new tokens.

use std::ops::ControlFlow;
use std::time::Instant;

use hanlin_models::{KvCache, KvType, Logits, Model, Scratch};
use hanlin_tokenizer::Tokenizer;

use crate::error::{EngineError, Result};
use crate::sampler::{Sampler, SamplingParams};
use crate::stop::StopMatcher;

/// Tokens per forward call while processing a prompt.
const PREFILL_CHUNK: usize = 256;

/// What one generation should do.
#[derive(Clone, Debug)]
pub struct GenerateParams {
    /// Upper bound on generated tokens.
    pub max_tokens: usize,
    /// Sampler settings.
    pub sampling: SamplingParams,
    /// Stop strings (not included in the output).
    pub stop: Vec<String>,
    /// Extra token ids that end generation.
    pub stop_tokens: Vec<u32>,
    /// Keep going past end-of-generation tokens.
    pub ignore_eos: bool,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_tokens: 256,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            stop_tokens: Vec::new(),
            ignore_eos: false,
        }
    }
}

/// Why generation ended (OpenAI's `finish_reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// End-of-generation token or stop string.
    Stop,
    /// `max_tokens` reached or the context is full.
    Length,
    /// The caller asked to stop (Ctrl-C, client gone).
    Cancelled,
}

impl FinishReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// Timing of one generation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timings {
    /// Prompt tokens actually run (excludes the reused prefix).
    pub prompt_tokens: usize,
    /// Prompt tokens served from the cache.
    pub cached_tokens: usize,
    /// Milliseconds spent on the prompt.
    pub prompt_ms: f64,
    /// Tokens generated.
    pub gen_tokens: usize,
    /// Milliseconds spent generating (after the first token's prompt pass).
    pub gen_ms: f64,
}

impl Timings {
    /// Prompt throughput.
    pub fn prompt_tokens_per_s(&self) -> f64 {
        per_s(self.prompt_tokens, self.prompt_ms)
    }

    /// Generation throughput.
    pub fn gen_tokens_per_s(&self) -> f64 {
        per_s(self.gen_tokens, self.gen_ms)
    }
}

fn per_s(n: usize, ms: f64) -> f64 {
    if ms > 0.0 {
        n as f64 * 1000.0 / ms
    } else {
        0.0
    }
}

/// Result of one generation.
#[derive(Clone, Debug)]
pub struct Output {
    /// Generated token ids (including a final end-of-generation token if one was sampled).
    pub tokens: Vec<u32>,
    /// Generated text (stop string excluded).
    pub text: String,
    /// Why it ended.
    pub finish: FinishReason,
    /// Timings.
    pub timings: Timings,
}

/// A model, its tokenizer and a live KV cache.
pub struct Session<'m> {
    model: &'m Model,
    tokenizer: &'m Tokenizer,
    kv: KvCache,
    scratch: Scratch,
    /// Tokens whose keys/values are in `kv`, in order.
    history: Vec<u32>,
}

impl<'m> Session<'m> {
    /// A session with a KV cache of `n_ctx` positions.
    pub fn new(model: &'m Model, tokenizer: &'m Tokenizer, n_ctx: usize) -> Self {
        Session {
            model,
            tokenizer,
            kv: model.kv_cache(n_ctx),
            scratch: model.scratch(PREFILL_CHUNK),
            history: Vec::new(),
        }
    }

    /// A session whose KV cache holds `kv_type` elements (q8_0 halves the memory).
    pub fn with_kv_type(
        model: &'m Model,
        tokenizer: &'m Tokenizer,
        n_ctx: usize,
        kv_type: KvType,
    ) -> Result<Self> {
        let mut s = Self::new(model, tokenizer, 1);
        s.kv = model.kv_cache_typed(n_ctx, kv_type)?;
        Ok(s)
    }

    /// Context capacity in tokens.
    pub fn n_ctx(&self) -> usize {
        self.kv.n_ctx()
    }

    /// Forgets the cached conversation.
    pub fn reset(&mut self) {
        self.kv.truncate(0);
        self.history.clear();
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        self.tokenizer
    }

    /// Runs `prompt` (reusing the longest cached prefix) and returns the last position's logits.
    pub fn prefill(&mut self, prompt: &[u32]) -> Result<(&[f32], usize)> {
        if prompt.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        if prompt.len() >= self.kv.n_ctx() {
            return Err(EngineError::PromptTooLong {
                tokens: prompt.len(),
                n_ctx: self.kv.n_ctx(),
            });
        }
        let mut common = self
            .history
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count();
        // The last prompt token must be run to get its logits.
        common = common.min(prompt.len() - 1);
        self.kv.truncate(common);
        self.history.truncate(common);
        let logits = self.model.forward(
            &prompt[common..],
            &mut self.kv,
            &mut self.scratch,
            Logits::Last,
        )?;
        self.history.extend_from_slice(&prompt[common..]);
        Ok((logits, common))
    }

    /// Generates a continuation of `prompt`, calling `on_text` with each new piece of text.
    /// Returning `ControlFlow::Break` from the callback cancels generation.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        params: &GenerateParams,
        mut on_text: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Output> {
        let n_vocab = self.model.config.n_vocab;
        let mut sampler = Sampler::new(params.sampling.clone(), n_vocab);
        for &t in prompt {
            sampler.accept(t);
        }
        let t0 = Instant::now();
        let (logits, cached) = self.prefill(prompt)?;
        let mut next = sampler.sample(logits);
        let prompt_ms = t0.elapsed().as_secs_f64() * 1000.0;

        let t1 = Instant::now();
        let mut stop = StopMatcher::new(&params.stop);
        let mut stopped_by_string = false;
        let mut decoder = self.tokenizer.stream_decoder(false);
        let mut out = Output {
            tokens: Vec::with_capacity(params.max_tokens.min(4096)),
            text: String::with_capacity(params.max_tokens.min(4096) * 4),
            finish: FinishReason::Length,
            timings: Timings {
                prompt_tokens: prompt.len() - cached,
                cached_tokens: cached,
                prompt_ms,
                ..Default::default()
            },
        };
        // Reused every token so the loop does not allocate.
        let (mut piece, mut shown) = (String::with_capacity(64), String::with_capacity(64));
        let mut emit = |text: &str, out: &mut Output| -> ControlFlow<()> {
            out.text.push_str(text);
            if text.is_empty() {
                ControlFlow::Continue(())
            } else {
                on_text(text)
            }
        };
        loop {
            if out.tokens.len() >= params.max_tokens {
                out.finish = FinishReason::Length;
                break;
            }
            out.tokens.push(next);
            sampler.accept(next);
            let eog = !params.ignore_eos && self.tokenizer.is_eog(next)
                || params.stop_tokens.contains(&next);
            if eog {
                out.finish = FinishReason::Stop;
                break;
            }
            piece.clear();
            shown.clear();
            decoder.push_into(next, &mut piece);
            if stop.push(&piece, &mut shown) {
                let _ = emit(&shown, &mut out);
                stopped_by_string = true;
                out.finish = FinishReason::Stop;
                break;
            }
            if emit(&shown, &mut out).is_break() {
                out.finish = FinishReason::Cancelled;
                break;
            }
            if out.tokens.len() >= params.max_tokens {
                out.finish = FinishReason::Length;
                break;
            }
            if self.history.len() + 1 >= self.kv.n_ctx() {
                out.finish = FinishReason::Length;
                break;
            }
            let logits =
                self.model
                    .forward(&[next], &mut self.kv, &mut self.scratch, Logits::Last)?;
            self.history.push(next);
            next = sampler.sample(logits);
        }
        if !stopped_by_string {
            let rest = decoder.finish();
            let mut tail = String::new();
            if !stop.push(&rest, &mut tail) {
                stop.finish(&mut tail);
            }
            let _ = emit(&tail, &mut out);
        }
        out.timings.gen_tokens = out.tokens.len();
        out.timings.gen_ms = t1.elapsed().as_secs_f64() * 1000.0;
        Ok(out)
    }
}
