//! Attention over the KV cache for a batch of rows, split over the thread pool by
//! (group of rows, head): a group is up to [`ATTN_GROUP`] consecutive rows of one sequence at
//! consecutive positions (a prefill chunk), whose queries share every key and value row read
//! from an f16 cache. Each item reads its own sequence's cache and writes its own output
//! slices; results are bit-identical to attending row by row.
//!
//! Keys are read through the sequence's block table one block segment at a time (each score is
//! its own dot product); the value kernel takes every key's row at once, by offset, since its
//! sums follow ggml's order across all keys (see `hanlin_kernels::Kernels::attn_values_f16`).
//! Splitting the keys at block boundaries therefore gives the same bits as one contiguous span.
//! Softmax is ggml's too ([`Kernels::attn_softmax`]), with chunks aligned to key position 0.

use std::sync::atomic::{AtomicUsize, Ordering};

use hanlin_kernels::{Kernels, ThreadPool, ATTN_GROUP};

use crate::kv::{KvSeqs, KvType, SeqKv};
use crate::model::BatchRow;
use crate::ops;

/// Per-thread working memory.
#[derive(Debug, Default)]
pub(crate) struct AttnBufs {
    scores: Vec<f32>,
    qh: Vec<f32>,
    qq: Vec<u8>,
    vrow: Vec<f32>,
    o: Vec<f32>,
    /// Scores or probabilities of one block segment for a group of queries.
    seg: Vec<f32>,
    /// Byte offsets of the value rows of the keys a group attends to.
    voff: Vec<usize>,
}

impl AttnBufs {
    pub(crate) fn new(head_dim: usize, span: usize) -> Self {
        AttnBufs {
            scores: Vec::with_capacity(span * ATTN_GROUP),
            qh: vec![0.0; head_dim],
            qq: Vec::with_capacity((head_dim * 2 + 34) * ATTN_GROUP),
            vrow: vec![0.0; head_dim.max(1) * 4],
            o: vec![0.0; head_dim.max(1) * ATTN_GROUP],
            seg: Vec::with_capacity(64 * ATTN_GROUP),
            voff: Vec::with_capacity(span),
        }
    }
}

/// Shapes of one layer's attention.
pub(crate) struct AttnShape {
    pub layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_k: usize,
    pub head_v: usize,
    /// Keys visible to a query at position p: `p + 1 - window ..= p` (None: all).
    pub window: Option<usize>,
    /// Applied to q·k (1 when queries were pre-scaled).
    pub score_scale: f32,
}

/// Raw output pointer; items write disjoint slices.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every (row, head) item writes only `out[(t*n_head + h)*hv ..][..hv]`, disjoint across
// items, and `attend` does not return before all workers are done (`ThreadPool::run` joins).
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Pointer `i` elements in (a method, so closures capture the whole Sync wrapper).
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// Per-thread buffers, each used by exactly one worker index.
#[derive(Clone, Copy)]
struct BufPtr(*mut AttnBufs);
// SAFETY: worker `tid` touches only `bufs[tid]`; indices are distinct per worker of one `run`.
unsafe impl Send for BufPtr {}
// SAFETY: as above.
unsafe impl Sync for BufPtr {}

impl BufPtr {
    fn at(self, i: usize) -> *mut AttnBufs {
        self.0.wrapping_add(i)
    }
}

/// `out[t][h] = softmax(q[t][h] · K) · V` for every row `t` and head `h`.
pub(crate) fn attend<K: KvSeqs + ?Sized>(
    pool: &ThreadPool,
    a: &AttnShape,
    rows: &[BatchRow],
    kvs: &K,
    q: &[f32],
    out: &mut [f32],
    bufs: &mut [AttnBufs],
) {
    let n_chunks = rows.len().div_ceil(ATTN_GROUP);
    let items = n_chunks * a.n_head;
    let (q_dim, o_dim) = (a.n_head * a.head_k, a.n_head * a.head_v);
    debug_assert!(out.len() >= rows.len() * o_dim && q.len() >= rows.len() * q_dim);
    let out_ptr = OutPtr(out.as_mut_ptr());
    let buf_ptr = BufPtr(bufs.as_mut_ptr());
    let n_bufs = bufs.len();
    // Handed out dynamically: later prefill rows see more keys, and a thread slowed by another
    // process should not hold the others back.
    let next = AtomicUsize::new(0);
    pool.run(|tid, nth| {
        let workers = nth.min(n_bufs);
        if tid >= workers {
            return;
        }
        // SAFETY: tid < n_bufs and each worker index is used by one thread (see BufPtr).
        let buf = unsafe { &mut *buf_ptr.at(tid) };
        loop {
            let item = next.fetch_add(1, Ordering::Relaxed);
            if item >= items {
                break;
            }
            let (c, h) = (item / a.n_head, item % a.n_head);
            let end = ((c + 1) * ATTN_GROUP).min(rows.len());
            let mut t0 = c * ATTN_GROUP;
            while t0 < end {
                // A run: same sequence, consecutive positions.
                let mut t1 = t0 + 1;
                while t1 < end
                    && rows[t1].seq == rows[t0].seq
                    && rows[t1].pos == rows[t1 - 1].pos + 1
                {
                    t1 += 1;
                }
                let kv = kvs.view(rows[t0].seq);
                if !attend_group(a, &rows[t0..t1], t0, h, &kv, q, out_ptr, buf) {
                    for (i, r) in rows[t0..t1].iter().enumerate() {
                        attend_row(a, r.pos, t0 + i, h, &kv, q, out_ptr, buf);
                    }
                }
                t0 = t1;
            }
        }
    });
}

/// First key position row `pos` sees.
fn first_key(a: &AttnShape, pos: usize) -> usize {
    a.window.map_or(0, |w| (pos + 1).saturating_sub(w))
}

/// Rows `t0..t0 + run.len()` (consecutive positions of one sequence), head `h`, through the
/// grouped f16 kernels; `false` (nothing written) when the cache is not f16.
#[allow(clippy::too_many_arguments)]
fn attend_group(
    a: &AttnShape,
    run: &[BatchRow],
    t0: usize,
    h: usize,
    kv: &SeqKv<'_>,
    q: &[f32],
    out: OutPtr,
    buf: &mut AttnBufs,
) -> bool {
    let (hk, hv) = (a.head_k, a.head_v);
    let (q_dim, o_dim) = (a.n_head * hk, a.n_head * hv);
    let kvh = h / (a.n_head / a.n_head_kv);
    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return true;
    };
    let lo = first_key(a, first.pos);
    let hi = last.pos + 1;
    let span = hi - lo;
    if kv.pool.kv_type() != KvType::F16 {
        return false;
    }
    let ng = run.len();
    // ggml converts the query to f16 to dot it with an f16 key cache.
    buf.qq.clear();
    for t in t0..t0 + ng {
        let qh = &q[t * q_dim + h * hk..t * q_dim + (h + 1) * hk];
        buf.qq.extend(
            qh.iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes()),
        );
    }
    buf.scores.resize(ng * span, 0.0);
    let k = Kernels::detected();
    let scores = &mut buf.scores[..ng * span];
    let mut j = lo;
    while j < hi {
        let (blk, off) = kv.locate(j);
        let n = (kv.pool.block_size() - off).min(hi - j);
        let Some((keys, ks)) = kv.pool.f16_keys(blk, a.layer, off, kvh) else {
            return false;
        };
        let done = if n == span {
            k.attn_scores_f16(keys, ks, n, hk, &buf.qq, scores)
        } else if ng == 1 {
            k.attn_scores_f16(keys, ks, n, hk, &buf.qq, &mut scores[j - lo..j - lo + n])
        } else {
            // The kernel writes each query's scores back to back; spread them into the rows.
            buf.seg.resize(ng * n, 0.0);
            let seg = &mut buf.seg[..ng * n];
            let r = k.attn_scores_f16(keys, ks, n, hk, &buf.qq, seg);
            for (row, src) in scores.chunks_mut(span).zip(seg.chunks(n)) {
                row[j - lo..j - lo + n].copy_from_slice(src);
            }
            r
        };
        if done.is_err() {
            return false;
        }
        j += n;
    }
    for (r, sc) in run.iter().zip(scores.chunks_mut(span)) {
        let (l, e) = (first_key(a, r.pos) - lo, r.pos + 1 - lo);
        let own = &mut sc[l..e];
        own.iter_mut().for_each(|v| *v *= a.score_scale);
        k.attn_softmax(own, lo + l);
        // ggml converts probabilities to f16 for the f16 V product.
        own.iter_mut().for_each(|v| *v = ops::round_f16(*v));
        sc[..l].iter_mut().for_each(|v| *v = 0.0);
        sc[e..].iter_mut().for_each(|v| *v = 0.0);
    }
    if buf.o.len() < ng * hv {
        buf.o.resize(ng * hv, 0.0);
    }
    let o = &mut buf.o[..ng * hv];
    buf.voff.clear();
    let mut values: &[u8] = &[];
    for j in lo..hi {
        let (blk, off) = kv.locate(j);
        let Some((v, at)) = kv.pool.f16_value_at(blk, a.layer, off, kvh) else {
            return false;
        };
        values = v;
        buf.voff.push(at);
    }
    if k.attn_values_f16(values, &buf.voff, lo, hv, scores, o)
        .is_err()
    {
        return false;
    }
    for (i, src) in o.chunks(hv).enumerate() {
        let t = t0 + i;
        // SAFETY: the slice for (t, h) lies inside `out` and no other item writes it.
        let dst = unsafe { std::slice::from_raw_parts_mut(out.at(t * o_dim + h * hv), hv) };
        dst.copy_from_slice(src);
    }
    true
}

/// One row at position `pos`, head `h`, one key at a time (any cache type).
#[allow(clippy::too_many_arguments)]
fn attend_row(
    a: &AttnShape,
    p: usize,
    t: usize,
    h: usize,
    kv: &SeqKv<'_>,
    q: &[f32],
    out_ptr: OutPtr,
    buf: &mut AttnBufs,
) {
    let (q_dim, o_dim) = (a.n_head * a.head_k, a.n_head * a.head_v);
    let lo = first_key(a, p);
    let span = p + 1 - lo;
    let kvh = h / (a.n_head / a.n_head_kv);
    let qh = &q[t * q_dim + h * a.head_k..t * q_dim + (h + 1) * a.head_k];
    kv.pool.prepare_query(qh, &mut buf.qh, &mut buf.qq);
    buf.scores.clear();
    buf.scores
        .extend((lo..=p).map(|j| kv.score(a.layer, j, kvh, &buf.qq) * a.score_scale));
    Kernels::detected().attn_softmax(&mut buf.scores[..span], lo);
    // SAFETY: the slice for (t, h) lies inside `out` and no other item writes it.
    let o =
        unsafe { std::slice::from_raw_parts_mut(out_ptr.at(t * o_dim + h * a.head_v), a.head_v) };
    o.iter_mut().for_each(|v| *v = 0.0);
    for (j, &pj) in buf.scores[..span].iter().enumerate() {
        // ggml converts probabilities to f16 for the f16 V product.
        let pj = ops::round_f16(pj);
        if pj != 0.0 {
            if buf.vrow.len() < a.head_v {
                buf.vrow.resize(a.head_v, 0.0);
            }
            kv.add_value(a.layer, lo + j, kvh, pj, o, &mut buf.vrow);
        }
    }
}

#[cfg(test)]
#[path = "attention_paged_tests.rs"]
mod paged_tests;
