//! The engine thread of one local model: continuous batching over a fixed number of sequence
//! slots whose keys and values live in one paged KV pool with a prefix cache (see
//! [`crate::kvpool`]).
//!
//! Every step runs one forward pass over the next token of every decoding sequence plus a
//! slice of pending prompt tokens (chunked prefill), so a long prompt never stalls running
//! streams and the weights are read once per step for the whole batch.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use hanlin_api::{
    BackendError, FinishReason, GenerationEvent, GenerationSink, TokenLogprob, Usage,
};
use hanlin_models::{BatchRow, BlockTables, KvPool, Model, Scratch};
use hanlin_tokenizer::{StreamDecoder, Tokenizer};

use crate::constraint::{Next, SeqGrammar};
use crate::error::Result;
use crate::kvpool::{BlockPool, Hit};
use crate::sampler::{Sampler, SamplingParams};
use crate::stop::StopMatcher;

/// Hands the allocator's free memory back to the OS. glibc keeps what a burst of requests
/// freed (bodies, templates, token buffers on many threads) in its arenas; after an idle trim
/// the process should shrink back to its warm-up size.
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas and returns free pages to the OS; it
    // touches no memory the program holds and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Prompt tokens processed per step across all sequences.
const PREFILL_BUDGET: usize = 128;

/// A validated request on its way to the engine thread.
pub(crate) struct Job {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
    pub logprobs: Option<usize>,
    /// Compiled output grammar, if the request has one.
    pub grammar: Option<SeqGrammar>,
    pub sink: GenerationSink,
}

impl Job {
    fn is_cancelled(&self) -> bool {
        self.sink.cancel.is_cancelled() || self.sink.events.is_closed()
    }
}

/// Counters the engine thread updates and `/metrics` reads.
pub(crate) struct Gauges {
    pub waiting: Arc<AtomicUsize>,
    pub running: Arc<AtomicUsize>,
    /// Positions in pool blocks that running sequences hold.
    pub kv_used: Arc<AtomicUsize>,
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
    /// Tokens whose keys/values are in the slot's blocks, in position order.
    history: Vec<u32>,
    /// Chain hash of each full block of `history` (its prefix-cache key).
    hashes: Vec<u64>,
    /// Blocks the sequence may still take from its admission reservation.
    reserve: usize,
    active: Option<Active>,
}

pub(crate) struct Engine {
    model: Model,
    tokenizer: Tokenizer,
    n_ctx: usize,
    slots: Vec<Slot>,
    /// Keys and values of every slot, addressed through `tables`.
    kv: KvPool,
    tables: BlockTables,
    blocks: BlockPool,
    /// Hash of the empty prefix.
    root: u64,
    /// Reused by every admission's prefix lookup.
    hit: Hit,
    /// The oldest request, waiting for enough free blocks (requests are admitted in order).
    parked: Option<Job>,
    scratch: Scratch,
    /// Logits of the step's sampled rows, reused every step.
    logits: Vec<f32>,
    gauges: Gauges,
    /// Idle time after which the prefix cache and the pool's memory are released.
    idle_trim: Option<Duration>,
    /// Whether blocks have been written since the last trim.
    dirty: bool,
}

impl Engine {
    pub(crate) fn new(
        model: Model,
        tokenizer: Tokenizer,
        n_ctx: usize,
        parallel: usize,
        kv: KvPool,
        gauges: Gauges,
    ) -> Self {
        let parallel = parallel.max(1);
        let block = kv.block_size();
        let max_blocks = n_ctx.div_ceil(block);
        let slots = (0..parallel)
            .map(|_| Slot {
                history: Vec::with_capacity(n_ctx),
                hashes: Vec::with_capacity(max_blocks),
                reserve: 0,
                active: None,
            })
            .collect();
        let blocks = BlockPool::new(kv.n_blocks(), block);
        let scratch = model.scratch(parallel + PREFILL_BUDGET);
        let logits = Vec::with_capacity((parallel + 1) * model.config.n_vocab);
        Engine {
            root: blocks.root(),
            model,
            tokenizer,
            n_ctx,
            slots,
            kv,
            tables: BlockTables::new(parallel, max_blocks),
            blocks,
            hit: Hit {
                blocks: Vec::with_capacity(max_blocks),
                hashes: Vec::with_capacity(max_blocks),
                partial: None,
            },
            parked: None,
            scratch,
            logits,
            idle_trim: None,
            dirty: false,
            gauges,
        }
    }

    pub(crate) fn run(mut self, rx: Receiver<Job>) {
        let cap = self.slots.len() + PREFILL_BUDGET;
        let mut rows: Vec<BatchRow> = Vec::with_capacity(cap);
        let mut owners: Vec<usize> = Vec::with_capacity(cap);
        loop {
            self.drop_cancelled();
            if !self.admit_queued(&rx) {
                return;
            }
            self.publish_gauges();
            rows.clear();
            owners.clear();
            self.plan(&mut rows, &mut owners);
            if rows.is_empty() {
                continue;
            }
            if let Err(e) = self.step(&rows, &owners) {
                tracing::error!(error = %e, "forward pass failed");
                for i in 0..self.slots.len() {
                    self.fail(i, BackendError::Internal(e.to_string()));
                }
            }
        }
    }

    /// Sets how long the engine idles before releasing the KV pool (see
    /// `LocalOptions::kv_idle_trim`).
    pub(crate) fn set_idle_trim(&mut self, after: Option<Duration>) {
        self.idle_trim = after;
    }

    /// Waits for the next job while nothing runs; after the idle-trim time, drops the prefix
    /// cache and gives the pool's memory back once, then waits on. `None`: channel closed.
    fn wait_idle(&mut self, rx: &Receiver<Job>) -> Option<Job> {
        if let (Some(after), true) = (self.idle_trim, self.dirty) {
            match rx.recv_timeout(after) {
                Ok(j) => return Some(j),
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => self.trim(),
            }
        }
        rx.recv().ok()
    }

    /// Forgets every cached block and releases the pool's memory (nothing may be running).
    fn trim(&mut self) {
        let block = self.blocks.block_size();
        self.blocks = BlockPool::new(self.kv.n_blocks(), block);
        for (i, slot) in self.slots.iter_mut().enumerate() {
            slot.history.clear();
            slot.hashes.clear();
            slot.reserve = 0;
            self.tables.clear(i);
        }
        self.kv.release_memory();
        release_free_heap();
        self.dirty = false;
        tracing::debug!("idle: prefix cache dropped, KV memory released");
    }

    /// Admits queued requests into free slots while the pool has room for them; sleeps when
    /// there is nothing to do. `false` when the channel is closed and nothing runs.
    fn admit_queued(&mut self, rx: &Receiver<Job>) -> bool {
        while let Some(free) = self.slots.iter().position(|s| s.active.is_none()) {
            let idle = self.slots.iter().all(|s| s.active.is_none());
            let job = match self.parked.take() {
                Some(j) => j,
                None if idle => {
                    // Nothing runs while we sleep; say so before sleeping (idle unload and
                    // /metrics read this).
                    self.publish_gauges();
                    match self.wait_idle(rx) {
                        Some(j) => j,
                        None => return false,
                    }
                }
                None => match rx.try_recv() {
                    Ok(j) => j,
                    // Closed while busy (the model is being unloaded): finish the running
                    // sequences first; the idle `recv` above then ends the thread.
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                },
            };
            if job.is_cancelled() {
                self.gauges.waiting.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            match self.room_for(&job) {
                Some(need) => {
                    self.admit(job, free, need);
                    self.gauges.waiting.fetch_sub(1, Ordering::SeqCst);
                }
                None if idle => {
                    // An empty pool holds any request the context check lets through, so this
                    // only guards against a pool smaller than the advertised context.
                    self.gauges.waiting.fetch_sub(1, Ordering::SeqCst);
                    let needed = job.prompt.len() + job.max_tokens;
                    let _ = job
                        .sink
                        .events
                        .try_send(Err(BackendError::ContextLengthExceeded {
                            n_ctx: self.kv.n_blocks() * self.kv.block_size(),
                            needed,
                        }));
                }
                None => {
                    self.parked = Some(job);
                    break;
                }
            }
        }
        true
    }

    fn publish_gauges(&self) {
        let running = self.slots.iter().filter(|s| s.active.is_some()).count();
        self.gauges.running.store(running, Ordering::Relaxed);
        let used = self.blocks.usage().in_use * self.blocks.block_size();
        self.gauges.kv_used.store(used, Ordering::Relaxed);
    }

    /// Looks up `job`'s cached prefix (into `self.hit`) and returns how many blocks beyond
    /// the shared ones it may need, or `None` when the pool cannot promise them yet.
    fn room_for(&mut self, job: &Job) -> Option<usize> {
        let b = self.blocks.block_size();
        let p = job.prompt.len();
        let planned = (p + job.max_tokens).min(self.n_ctx).div_ceil(b);
        // The last prompt token always runs, to produce the first logits, and it must land in
        // a block this sequence owns: shared blocks are read-only.
        self.blocks
            .lookup(&job.prompt, (p - 1) / b, p - 1, &mut self.hit);
        let need = planned.saturating_sub(self.hit.blocks.len());
        self.blocks.can_admit(&self.hit, need).then_some(need)
    }

    /// Starts `job` in free slot `idx` on the prefix [`Engine::room_for`] found, reserving
    /// the `need` blocks it may take.
    fn admit(&mut self, mut job: Job, idx: usize, need: usize) {
        self.dirty = true;
        let b = self.blocks.block_size();
        self.tables.clear(idx);
        for &id in &self.hit.blocks {
            self.blocks.acquire(id);
            self.tables.push(idx, id);
        }
        self.blocks.reserve(need);
        let slot = &mut self.slots[idx];
        slot.reserve = need;
        if let Some(part) = self.hit.partial {
            let id = if part.copy {
                // Shared full block: copy the matching positions into a block of our own,
                // holding the source so the allocation cannot evict it.
                self.blocks.acquire(part.block);
                let dst = self.blocks.alloc();
                if let Some(dst) = dst {
                    self.kv
                        .copy_prefix(part.block as usize, dst as usize, part.tokens);
                }
                self.blocks.release(part.block, None);
                dst
            } else {
                self.blocks.take_tail(part.block);
                Some(part.block)
            };
            match id {
                Some(id) => {
                    self.tables.push(idx, id);
                    slot.reserve -= 1;
                }
                // `can_admit` counted this block, so it cannot happen; recompute instead.
                None => self.hit.partial = None,
            }
        }
        let cached = self.hit.tokens(b);
        slot.history.clear();
        slot.history.extend_from_slice(&job.prompt[..cached]);
        slot.hashes.clear();
        slot.hashes.extend_from_slice(&self.hit.hashes);
        let mut sampler = Sampler::new(job.sampling.clone(), self.model.config.n_vocab);
        for &t in &job.prompt {
            sampler.accept(t);
        }
        let stop = StopMatcher::new(&job.stop);
        let mut grammar = job.grammar.take();
        if let Some(g) = grammar.as_mut() {
            g.set_budget(job.max_tokens);
        }
        slot.active = Some(Active {
            grammar,
            sampler,
            cursor: cached,
            cached,
            generated: 0,
            pending: None,
            decoder: self.tokenizer.stream_decoder(false),
            stop,
            text: String::with_capacity(64),
            job,
        });
    }

    /// Ends slot `i`'s request (if any) and gives its blocks back: full ones stay in the
    /// prefix cache, the partial last one is kept as its chain's tail, the rest are freed.
    fn release(&mut self, i: usize) {
        let b = self.blocks.block_size();
        let s = &mut self.slots[i];
        s.active = None;
        let n_full = s.hashes.len();
        // Last block first, so a chain's deeper blocks are evicted before its first ones.
        for (k, &id) in self.tables.seq(i).iter().enumerate().rev() {
            let tail = (k == n_full && s.history.len() > k * b).then(|| {
                let parent = if k == 0 { self.root } else { s.hashes[k - 1] };
                (parent, &s.history[k * b..])
            });
            self.blocks.release(id, tail);
        }
        self.blocks.unreserve(s.reserve);
        s.reserve = 0;
        self.tables.clear(i);
        s.history.clear();
        s.hashes.clear();
    }

    /// Ends slot `i`'s request with `err`.
    fn fail(&mut self, i: usize, err: BackendError) {
        if let Some(a) = &self.slots[i].active {
            let _ = a.job.sink.events.try_send(Err(err));
        }
        self.release(i);
    }

    fn drop_cancelled(&mut self) {
        for i in 0..self.slots.len() {
            if self.slots[i]
                .active
                .as_ref()
                .is_some_and(|a| a.job.is_cancelled())
            {
                self.release(i);
            }
        }
        if self.parked.as_ref().is_some_and(Job::is_cancelled) {
            self.parked = None;
            self.gauges.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Makes sure slot `i`'s table has a block for position `pos`, taking reserved blocks.
    fn ensure_block(&mut self, i: usize, pos: usize) -> bool {
        let b = self.blocks.block_size();
        while self.tables.seq(i).len() * b <= pos {
            if self.slots[i].reserve == 0 {
                return false;
            }
            let Some(id) = self.blocks.alloc() else {
                return false;
            };
            self.slots[i].reserve -= 1;
            if !self.tables.push(i, id) {
                self.blocks.release(id, None);
                return false;
            }
        }
        true
    }

    /// One row per decoding sequence, then prompt tokens up to the prefill budget.
    fn plan(&mut self, rows: &mut Vec<BatchRow>, owners: &mut Vec<usize>) {
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            let Some(t) = s.active.as_ref().and_then(|a| a.pending) else {
                continue;
            };
            let pos = s.history.len();
            if !self.ensure_block(i, pos) {
                self.fail(i, out_of_blocks());
                continue;
            }
            rows.push(BatchRow {
                token: t,
                seq: i,
                pos,
                logits: true,
            });
            owners.push(i);
        }
        let mut budget = PREFILL_BUDGET;
        for i in 0..self.slots.len() {
            let Some(a) = &self.slots[i].active else {
                continue;
            };
            if a.pending.is_some() || a.cursor >= a.job.prompt.len() || budget == 0 {
                continue;
            }
            let take = (a.job.prompt.len() - a.cursor).min(budget);
            let cursor = a.cursor;
            if !self.ensure_block(i, cursor + take - 1) {
                self.fail(i, out_of_blocks());
                continue;
            }
            budget -= take;
            let Some(a) = &self.slots[i].active else {
                continue;
            };
            for k in 0..take {
                let idx = cursor + k;
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
            let out =
                self.model
                    .forward_paged(rows, &mut self.kv, &self.tables, &mut self.scratch)?;
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
        for i in 0..self.slots.len() {
            self.publish_full_blocks(i);
        }
        for (k, &i) in owners.iter().enumerate() {
            self.after_logits(i, &logits[k * n_vocab..(k + 1) * n_vocab]);
        }
        self.logits = logits;
        Ok(())
    }

    /// Puts slot `i`'s newly filled blocks into the prefix cache.
    fn publish_full_blocks(&mut self, i: usize) {
        let b = self.blocks.block_size();
        let s = &mut self.slots[i];
        while (s.hashes.len() + 1) * b <= s.history.len() {
            let k = s.hashes.len();
            let parent = if k == 0 { self.root } else { s.hashes[k - 1] };
            let tokens = &s.history[k * b..(k + 1) * b];
            let hash = BlockPool::chain(parent, tokens);
            if let Some(&id) = self.tables.seq(i).get(k) {
                self.blocks.register(id, parent, hash, tokens);
            }
            s.hashes.push(hash);
        }
    }

    /// Samples the next token of slot `i`, streams its text and decides whether to go on.
    fn after_logits(&mut self, i: usize, logits: &[f32]) {
        let n_ctx = self.n_ctx;
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
                self.release(i);
                return;
            }
        }
        let mut token = a
            .sampler
            .sample_masked(logits, a.grammar.as_ref().map(SeqGrammar::mask));
        // Near max_tokens a JSON grammar may refuse a token that leaves no room to close.
        if let Some(mask) = a.grammar.as_mut().and_then(|g| g.veto(token)) {
            token = a.sampler.sample_masked(logits, Some(mask));
        }
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
        // A JSON document the budget steered to an early close is complete, but shorter than
        // the model would have made it: reported as cut by max_tokens.
        let grammar_end = if a.grammar.as_ref().is_some_and(SeqGrammar::closed_early) {
            FinishReason::Length
        } else {
            FinishReason::Stop
        };
        if tokenizer.is_eog(token) {
            finish = Some(grammar_end);
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
                finish = Some(grammar_end);
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
            self.release(i);
        }
    }
}

/// A running sequence found no block for its next position: reservations make this a bug.
fn out_of_blocks() -> BackendError {
    BackendError::Internal("the KV cache ran out of reserved blocks".into())
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
