//! A loaded decoder model and its fast forward pass.

use std::path::Path;

use hanlin_gguf::GgufFile;

use crate::arch::Slot;
use crate::config::{Activation, Arch, ModelConfig};
use crate::error::{ModelError, Result};
use hanlin_kernels::ThreadPool;

use crate::attention::{attend, AttnBufs, AttnShape};
use crate::kv::{BlockTables, KvCache, KvPool, KvSeqs, KvType, PagedSeqs};
use crate::linear::{self, ActBuf};
use crate::ops;
use crate::weights::{Weight, Weights};

/// Small per-layer vectors (norms, biases) converted to f32 once at load.
#[derive(Debug)]
struct LayerVecs {
    attn_norm: Vec<f32>,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    attn_post_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    ffn_post_norm: Option<Vec<f32>>,
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
}

/// A runnable decoder-only model over a memory-mapped GGUF file.
pub struct Model {
    /// Hyperparameters.
    pub config: ModelConfig,
    file: GgufFile,
    weights: Weights,
    vecs: Vec<LayerVecs>,
    output_norm: Vec<f32>,
    rope_freqs: Option<Vec<f32>>,
    /// Queries scaled before the f16 K dot (Gemma) rather than scores after (everyone else).
    prescale_q: bool,
    /// Drop the embedding table's pages after each lookup (nothing else reads them).
    release_embd: bool,
    pool: ThreadPool,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("config", &self.config)
            .finish()
    }
}

/// Which logits a forward call returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Only for the last token of the batch.
    Last,
    /// For every token of the batch (`n * n_vocab`).
    All,
}

/// One token of a batch: which sequence, at which position, and whether to return its logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchRow {
    /// Token id.
    pub token: u32,
    /// Index of the sequence's KV cache in the `kvs` slice.
    pub seq: usize,
    /// Position in that sequence.
    pub pos: usize,
    /// Return this row's logits.
    pub logits: bool,
}

/// Receives named intermediate tensors of a forward pass, for op-by-op comparison with
/// llama.cpp's eval callback: `(name, layer, cols, data)`, `data` holding one row of `cols`
/// f32 per batch token (`result_norm` and `result_output` come one token at a time). `layer`
/// is `None` outside the layers. Names follow llama.cpp's Gemma 3 graph: `inp_scaled`, then per
/// layer `attn_norm`, `Qcur`, `Kcur`, `Vcur` (projections), `Qcur_normed`, `Kcur_normed`,
/// `Qcur_rope`, `Kcur_rope` (llama.cpp names these `Qcur` / `Kcur` again), `Qcur_scaled`,
/// `kqv_out`, `attn_out` (unnamed there), `attn_post_norm`, `sa_out`, `ffn_norm`, `ffn_gate`,
/// `ffn_up`, `ffn_geglu`, `ffn_out`, `ffn_post_norm`, `l_out`. See [`Model::forward_traced`].
pub type Trace<'a> = dyn FnMut(&str, Option<usize>, usize, &[f32]) + 'a;

/// Emits `data` to the trace, if any.
fn emit(
    trace: &mut Option<&mut Trace<'_>>,
    name: &str,
    layer: Option<usize>,
    cols: usize,
    data: &[f32],
) {
    if let Some(t) = trace.as_mut() {
        t(name, layer, cols, data);
    }
}

/// Working memory for forward passes, allocated once and reused for every step.
#[derive(Debug, Default)]
pub struct Scratch {
    cap: usize,
    rows: Vec<BatchRow>,
    x: Vec<f32>,
    xn: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    proj: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    att: Vec<AttnBufs>,
    rope: Vec<f32>,
    logits: Vec<f32>,
    act: ActBuf,
}

impl Model {
    /// Opens, checks and maps a GGUF model.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_gguf(GgufFile::open(path)?)
    }

    /// Builds a model from an opened GGUF file.
    pub fn from_gguf(file: GgufFile) -> Result<Self> {
        let config = ModelConfig::from_gguf(&file)?;
        let mut weights = Weights::load(&file, &config)?;
        for w in std::iter::once(&weights.token_embd)
            .chain(std::iter::once(&weights.output))
            .chain(weights.layers.iter().flat_map(|l| {
                [
                    Slot::Wq,
                    Slot::Wk,
                    Slot::Wv,
                    Slot::Wo,
                    Slot::FfnGate,
                    Slot::FfnUp,
                    Slot::FfnDown,
                ]
                .into_iter()
                .filter_map(move |s| l.get(s))
            }))
        {
            if !linear::supported(w.ty) {
                return Err(ModelError::UnsupportedType {
                    name: w.name.clone(),
                    ty: w.ty,
                    op: "matmul",
                });
            }
        }
        let bytes = file.as_bytes();
        let vec_of = |w: Option<&Weight>| -> Result<Option<Vec<f32>>> {
            w.map(|w| linear::to_f32(bytes, w)).transpose()
        };
        let mut vecs = Vec::with_capacity(config.n_layer);
        for l in &weights.layers {
            vecs.push(LayerVecs {
                attn_norm: linear::to_f32(bytes, l.req(Slot::AttnNorm))?,
                q_norm: vec_of(l.get(Slot::QNorm))?,
                k_norm: vec_of(l.get(Slot::KNorm))?,
                attn_post_norm: vec_of(l.get(Slot::AttnPostNorm))?,
                ffn_norm: linear::to_f32(bytes, l.req(Slot::FfnNorm))?,
                ffn_post_norm: vec_of(l.get(Slot::FfnPostNorm))?,
                bq: vec_of(l.get(Slot::Bq))?,
                bk: vec_of(l.get(Slot::Bk))?,
                bv: vec_of(l.get(Slot::Bv))?,
            });
        }
        let output_norm = linear::to_f32(bytes, &weights.output_norm)?;
        let rope_freqs = vec_of(weights.rope_freqs.as_ref())?;
        let prescale_q = config.arch == Arch::Gemma3;
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let pool = ThreadPool::new(threads);
        crate::repack::pack_weights(&file, &mut weights, &pool)?;
        // The embedding table is only looked up row by row unless it doubles as an LM head
        // read from the file.
        let release_embd =
            weights.output.start != weights.token_embd.start || weights.output.packed.is_some();
        Ok(Model {
            config,
            file,
            weights,
            vecs,
            output_norm,
            rope_freqs,
            prescale_q,
            release_embd,
            pool,
        })
    }

    /// Sets how many threads matrix products use.
    pub fn set_threads(&mut self, n: usize) {
        if n.max(1) != self.pool.threads() {
            self.pool = ThreadPool::new(n.max(1));
        }
    }

    /// Threads used for matrix products.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// The underlying GGUF file (for the tokenizer and metadata).
    pub fn gguf(&self) -> &GgufFile {
        &self.file
    }

    /// Drops the parsed vocabulary arrays from the file's metadata once the tokenizer has been
    /// built from them; the weights are unaffected.
    pub fn release_vocab_metadata(&mut self) {
        let n = self.file.release_large_arrays(1024);
        tracing::debug!(arrays = n, "released vocabulary metadata");
    }

    /// Scratch space for batches of up to `cap` tokens.
    pub fn scratch(&self, cap: usize) -> Scratch {
        let c = &self.config;
        let cap = cap.max(1);
        let q_dim = c.n_head * c.head_dim_k;
        Scratch {
            cap,
            rows: Vec::with_capacity(cap),
            x: vec![0.0; cap * c.n_embd],
            xn: vec![0.0; cap * c.n_embd],
            q: vec![0.0; cap * q_dim],
            k: vec![0.0; cap * c.kv_dim_k()],
            v: vec![0.0; cap * c.kv_dim_v()],
            attn: vec![0.0; cap * c.n_head * c.head_dim_v],
            proj: vec![0.0; cap * c.n_embd],
            gate: vec![0.0; cap * c.n_ff],
            up: vec![0.0; cap * c.n_ff],
            att: (0..self.pool.threads())
                .map(|_| AttnBufs::new(c.head_dim_k, 512))
                .collect(),
            rope: vec![0.0; c.n_rot],
            logits: vec![0.0; c.n_vocab],
            act: ActBuf::default(),
        }
    }

    /// A KV cache of type `ty` for `n_ctx` positions (clamped to the training context).
    pub fn kv_cache_typed(&self, n_ctx: usize, ty: KvType) -> Result<KvCache> {
        KvCache::with_type(
            &self.config,
            n_ctx.clamp(1, self.config.context_length.max(1)),
            ty,
        )
    }

    /// A pool of `n_blocks` KV blocks of `block_size` positions, shared by many sequences
    /// through [`BlockTables`] (see [`Model::forward_paged`]).
    pub fn kv_pool(&self, block_size: usize, n_blocks: usize, ty: KvType) -> Result<KvPool> {
        KvPool::new(&self.config, block_size, n_blocks, ty)
    }

    /// A KV cache for `n_ctx` positions (clamped to the training context).
    pub fn kv_cache(&self, n_ctx: usize) -> KvCache {
        KvCache::new(
            &self.config,
            n_ctx.clamp(1, self.config.context_length.max(1)),
        )
    }

    /// Runs `tokens` at positions `kv.len()..`, appends their keys/values, returns logits.
    pub fn forward<'s>(
        &self,
        tokens: &[u32],
        kv: &mut KvCache,
        s: &'s mut Scratch,
        want: Logits,
    ) -> Result<&'s [f32]> {
        self.forward_traced(tokens, kv, s, want, None)
    }

    /// [`Model::forward`], handing every named intermediate tensor to `trace` (llama.cpp's
    /// names; see [`Trace`]) — for checking our numerics against llama.cpp op by op.
    pub fn forward_traced<'s>(
        &self,
        tokens: &[u32],
        kv: &mut KvCache,
        s: &'s mut Scratch,
        want: Logits,
        mut trace: Option<&mut Trace<'_>>,
    ) -> Result<&'s [f32]> {
        let pos0 = kv.len();
        kv.check_fits(pos0, tokens.len())?;
        let n_vocab = self.config.n_vocab;
        if want == Logits::All && s.logits.len() < tokens.len() * n_vocab {
            s.logits.resize(tokens.len() * n_vocab, 0.0);
        }
        let mut rows = std::mem::take(&mut s.rows);
        let mut done = 0;
        let mut result = Ok(());
        for chunk in tokens.chunks(s.cap) {
            rows.clear();
            rows.extend(chunk.iter().enumerate().map(|(t, &token)| BatchRow {
                token,
                seq: 0,
                pos: pos0 + done + t,
                logits: want == Logits::All || done + t + 1 == tokens.len(),
            }));
            if let Err(e) = self.run_rows(
                &rows,
                &mut [&mut *kv][..],
                s,
                if want == Logits::All { done } else { 0 },
                &mut trace,
            ) {
                result = Err(e);
                break;
            }
            done += chunk.len();
        }
        s.rows = rows;
        result?;
        let n_out = if want == Logits::All { tokens.len() } else { 1 };
        Ok(&s.logits[..n_out * n_vocab])
    }

    /// Runs one batch of rows from any sequences (continuous batching): each row is a token at
    /// a position of sequence `kvs[row.seq]`. Logits of the rows marked `logits` are returned
    /// in row order. Each row's result is the same whatever else shares the batch.
    pub fn forward_batch<'s>(
        &self,
        rows: &[BatchRow],
        kvs: &mut [&mut KvCache],
        s: &'s mut Scratch,
    ) -> Result<&'s [f32]> {
        self.batch(rows, kvs, s)
    }

    /// [`Model::forward_batch`] over a shared block pool: row `seq` indexes `tables`, and the
    /// blocks of each row's position must already be in its sequence's table. Sequences may
    /// share blocks for positions they only read; logits equal the contiguous cache's bit for
    /// bit.
    pub fn forward_paged<'s>(
        &self,
        rows: &[BatchRow],
        pool: &mut KvPool,
        tables: &BlockTables,
        s: &'s mut Scratch,
    ) -> Result<&'s [f32]> {
        self.batch(rows, &mut PagedSeqs { pool, tables }, s)
    }

    fn batch<'s, K: KvSeqs + ?Sized>(
        &self,
        rows: &[BatchRow],
        kvs: &mut K,
        s: &'s mut Scratch,
    ) -> Result<&'s [f32]> {
        let n_out = rows.iter().filter(|r| r.logits).count();
        let n_vocab = self.config.n_vocab;
        if s.logits.len() < n_out * n_vocab {
            s.logits.resize(n_out * n_vocab, 0.0);
        }
        let mut done = 0;
        let mut out = 0;
        for chunk in rows.chunks(s.cap) {
            self.run_rows(chunk, kvs, s, out, &mut None)?;
            out += chunk.iter().filter(|r| r.logits).count();
            done += chunk.len();
        }
        debug_assert_eq!(done, rows.len());
        Ok(&s.logits[..n_out * n_vocab])
    }

    /// Checks rows, runs them, writes logits of marked rows from `first_out` on, updates lengths.
    fn run_rows<K: KvSeqs + ?Sized>(
        &self,
        rows: &[BatchRow],
        kvs: &mut K,
        s: &mut Scratch,
        first_out: usize,
        trace: &mut Option<&mut Trace<'_>>,
    ) -> Result<()> {
        let c = &self.config;
        for r in rows {
            if r.token as usize >= c.n_vocab {
                return Err(ModelError::BadToken {
                    id: r.token,
                    n_vocab: c.n_vocab,
                });
            }
            if r.seq >= kvs.n_seqs() {
                return Err(ModelError::Kernel(format!(
                    "row names sequence {} of {}",
                    r.seq,
                    kvs.n_seqs()
                )));
            }
            let kv = kvs.view(r.seq);
            if r.pos >= kv.capacity() {
                return Err(ModelError::ContextFull {
                    needed: r.pos + 1,
                    n_ctx: kv.capacity(),
                });
            }
            let n_blocks = kv.pool.n_blocks();
            if let Some(id) = kv.blocks_through(r.pos).find(|&b| b >= n_blocks) {
                return Err(ModelError::Kernel(format!(
                    "block {id} of sequence {} is outside the pool",
                    r.seq
                )));
            }
        }
        self.forward_rows(rows, kvs, s, trace)?;
        let mut out = first_out;
        for (t, r) in rows.iter().enumerate() {
            if r.logits {
                self.lm_head(s, t, out, trace)?;
                out += 1;
            }
            kvs.filled(r.seq, r.pos + 1);
        }
        Ok(())
    }

    fn mm(&self, w: &Weight, x: &[f32], n: usize, out: &mut [f32], act: &mut ActBuf) -> Result<()> {
        linear::matmul(self.file.as_bytes(), w, x, n, out, act, &self.pool)
    }

    fn lm_head(
        &self,
        s: &mut Scratch,
        t: usize,
        dst: usize,
        trace: &mut Option<&mut Trace<'_>>,
    ) -> Result<()> {
        let c = &self.config;
        let n = c.n_embd;
        ops::rms_norm(
            &s.x[t * n..(t + 1) * n],
            &self.output_norm,
            c.norm_eps,
            &mut s.xn[..n],
        );
        emit(trace, "result_norm", None, n, &s.xn[..n]);
        let out = &mut s.logits[dst * c.n_vocab..(dst + 1) * c.n_vocab];
        self.mm(&self.weights.output, &s.xn[..n], 1, out, &mut s.act)?;
        if let Some(cap) = c.final_softcap {
            for v in out.iter_mut() {
                *v = (*v / cap).tanh() * cap;
            }
        }
        emit(trace, "result_output", None, c.n_vocab, out);
        Ok(())
    }

    /// Runs `rows` (any mix of sequences and positions) through every layer, writing each
    /// row's keys/values into its sequence's cache; hidden states are left in `s.x`.
    fn forward_rows<K: KvSeqs + ?Sized>(
        &self,
        rows: &[BatchRow],
        kvs: &mut K,
        s: &mut Scratch,
        trace: &mut Option<&mut Trace<'_>>,
    ) -> Result<()> {
        let c = &self.config;
        let bytes = self.file.as_bytes();
        let n = rows.len();
        let d = c.n_embd;
        let (hk, hv) = (c.head_dim_k, c.head_dim_v);
        let (q_dim, k_dim, v_dim) = (c.n_head * hk, c.kv_dim_k(), c.kv_dim_v());

        let e = &self.weights.token_embd;
        for (t, r) in rows.iter().enumerate() {
            let row = &mut s.x[t * d..(t + 1) * d];
            linear::get_row(bytes, e, r.token as usize, row)?;
            if let Some(scale) = c.embed_scale {
                row.iter_mut().for_each(|v| *v *= scale);
            }
            if self.release_embd && (t % 16 == 15 || t + 1 == n) {
                // The kernel maps whole page-cache folios (up to 2 MiB) around each looked-up
                // row; drop them every few rows so lookups do not keep megabytes of a table
                // nothing else reads.
                self.file.release_range(e.start, e.rows * e.row_bytes);
            }
        }
        emit(trace, "inp_scaled", None, d, &s.x[..n * d]);
        // Per-stage copies of the queries and keys, only while tracing.
        let mut staged: Option<[Vec<f32>; 4]> = trace.as_ref().map(|_| Default::default());

        for (il, (lw, lv)) in self.weights.layers.iter().zip(&self.vecs).enumerate() {
            for t in 0..n {
                ops::rms_norm(
                    &s.x[t * d..(t + 1) * d],
                    &lv.attn_norm,
                    c.norm_eps,
                    &mut s.xn[t * d..(t + 1) * d],
                );
            }
            let l = Some(il);
            emit(trace, "attn_norm", l, d, &s.xn[..n * d]);
            let xn = &s.xn[..n * d];
            self.mm(lw.req(Slot::Wq), xn, n, &mut s.q[..n * q_dim], &mut s.act)?;
            self.mm(lw.req(Slot::Wk), xn, n, &mut s.k[..n * k_dim], &mut s.act)?;
            self.mm(lw.req(Slot::Wv), xn, n, &mut s.v[..n * v_dim], &mut s.act)?;
            add_bias(&mut s.q[..n * q_dim], lv.bq.as_deref());
            add_bias(&mut s.k[..n * k_dim], lv.bk.as_deref());
            add_bias(&mut s.v[..n * v_dim], lv.bv.as_deref());
            emit(trace, "Qcur", l, q_dim, &s.q[..n * q_dim]);
            emit(trace, "Kcur", l, k_dim, &s.k[..n * k_dim]);
            emit(trace, "Vcur", l, v_dim, &s.v[..n * v_dim]);
            if let Some(st) = staged.as_mut() {
                st.iter_mut().for_each(Vec::clear);
            }

            let swa = c.swa_layers[il];
            let base = if swa { c.rope_base_swa } else { c.rope_base };
            let scale = c.rope_scale(base, swa);
            for (t, row) in rows.iter().enumerate() {
                ops::rope_cache_scaled(
                    row.pos,
                    c.n_rot,
                    base,
                    &scale,
                    self.rope_freqs.as_deref(),
                    &mut s.rope,
                );
                for h in 0..c.n_head {
                    let head = &mut s.q[t * q_dim + h * hk..t * q_dim + (h + 1) * hk];
                    if let Some(w) = &lv.q_norm {
                        ops::rms_norm_inplace(head, w, c.norm_eps);
                    }
                    if let Some(st) = staged.as_mut() {
                        st[0].extend_from_slice(head);
                    }
                    ops::rope_apply(head, c.n_rot, c.rope_layout, &s.rope);
                    if let Some(st) = staged.as_mut() {
                        st[1].extend_from_slice(head);
                    }
                    if self.prescale_q {
                        head.iter_mut().for_each(|v| *v *= c.attn_scale);
                    }
                }
                for h in 0..c.n_head_kv {
                    let head = &mut s.k[t * k_dim + h * hk..t * k_dim + (h + 1) * hk];
                    if let Some(w) = &lv.k_norm {
                        ops::rms_norm_inplace(head, w, c.norm_eps);
                    }
                    if let Some(st) = staged.as_mut() {
                        st[2].extend_from_slice(head);
                    }
                    ops::rope_apply(head, c.n_rot, c.rope_layout, &s.rope);
                    if let Some(st) = staged.as_mut() {
                        st[3].extend_from_slice(head);
                    }
                }
                kvs.write(
                    row.seq,
                    il,
                    row.pos,
                    &s.k[t * k_dim..(t + 1) * k_dim],
                    &s.v[t * v_dim..(t + 1) * v_dim],
                );
            }

            if let Some(st) = staged.as_ref() {
                emit(trace, "Qcur_normed", l, q_dim, &st[0]);
                emit(trace, "Kcur_normed", l, k_dim, &st[2]);
                emit(trace, "Qcur_rope", l, q_dim, &st[1]);
                emit(trace, "Kcur_rope", l, k_dim, &st[3]);
                emit(trace, "Qcur_scaled", l, q_dim, &s.q[..n * q_dim]);
            }
            let shape = AttnShape {
                layer: il,
                n_head: c.n_head,
                n_head_kv: c.n_head_kv,
                head_k: hk,
                head_v: hv,
                window: if swa { c.sliding_window } else { None },
                score_scale: if self.prescale_q { 1.0 } else { c.attn_scale },
            };
            attend(
                &self.pool,
                &shape,
                rows,
                &*kvs,
                &s.q,
                &mut s.attn,
                &mut s.att,
            );
            let o_dim = c.n_head * hv;
            emit(trace, "kqv_out", l, o_dim, &s.attn[..n * o_dim]);
            self.mm(
                lw.req(Slot::Wo),
                &s.attn[..n * o_dim],
                n,
                &mut s.proj[..n * d],
                &mut s.act,
            )?;
            emit(trace, "attn_out", l, d, &s.proj[..n * d]);
            for t in 0..n {
                let pr = &mut s.proj[t * d..(t + 1) * d];
                if let Some(w) = &lv.attn_post_norm {
                    ops::rms_norm_inplace(pr, w, c.norm_eps);
                }
                for (x, &a) in s.x[t * d..(t + 1) * d].iter_mut().zip(pr.iter()) {
                    *x += a;
                }
                ops::rms_norm(
                    &s.x[t * d..(t + 1) * d],
                    &lv.ffn_norm,
                    c.norm_eps,
                    &mut s.xn[t * d..(t + 1) * d],
                );
            }
            emit(trace, "attn_post_norm", l, d, &s.proj[..n * d]);
            emit(trace, "sa_out", l, d, &s.x[..n * d]);
            emit(trace, "ffn_norm", l, d, &s.xn[..n * d]);
            let f = c.n_ff;
            let xn = &s.xn[..n * d];
            self.mm(
                lw.req(Slot::FfnGate),
                xn,
                n,
                &mut s.gate[..n * f],
                &mut s.act,
            )?;
            self.mm(lw.req(Slot::FfnUp), xn, n, &mut s.up[..n * f], &mut s.act)?;
            emit(trace, "ffn_gate", l, f, &s.gate[..n * f]);
            emit(trace, "ffn_up", l, f, &s.up[..n * f]);
            {
                let (gate, up) = (&mut s.gate[..n * f], &s.up[..n * f]);
                let f = match c.activation {
                    Activation::Silu => ops::swiglu_inplace,
                    Activation::Gelu => ops::geglu_inplace,
                };
                linear::glu_rows(&self.pool, gate, up, n, f);
            }
            emit(trace, "ffn_geglu", l, f, &s.gate[..n * f]);
            self.mm(
                lw.req(Slot::FfnDown),
                &s.gate[..n * f],
                n,
                &mut s.proj[..n * d],
                &mut s.act,
            )?;
            emit(trace, "ffn_out", l, d, &s.proj[..n * d]);
            for t in 0..n {
                let pr = &mut s.proj[t * d..(t + 1) * d];
                if let Some(w) = &lv.ffn_post_norm {
                    ops::rms_norm_inplace(pr, w, c.norm_eps);
                }
                for (x, &a) in s.x[t * d..(t + 1) * d].iter_mut().zip(pr.iter()) {
                    *x += a;
                }
            }
            emit(trace, "ffn_post_norm", l, d, &s.proj[..n * d]);
            emit(trace, "l_out", l, d, &s.x[..n * d]);
        }
        Ok(())
    }
}

fn add_bias(x: &mut [f32], b: Option<&[f32]>) {
    if let Some(b) = b {
        for row in x.chunks_mut(b.len()) {
            row.iter_mut().zip(b).for_each(|(v, &bb)| *v += bb);
        }
    }
}
