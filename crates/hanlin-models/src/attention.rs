//! Attention over the KV cache for a batch of rows, split over the thread pool by
//! (row, head): each item reads its own sequence's cache and writes its own output slice.

use hanlin_kernels::ThreadPool;

use crate::kv::KvCache;
use crate::model::BatchRow;
use crate::ops;

/// Per-thread working memory.
#[derive(Debug, Default)]
pub(crate) struct AttnBufs {
    scores: Vec<f32>,
    qh: Vec<f32>,
    qq: Vec<u8>,
    vrow: Vec<f32>,
}

impl AttnBufs {
    pub(crate) fn new(head_dim: usize, span: usize) -> Self {
        AttnBufs {
            scores: Vec::with_capacity(span),
            qh: vec![0.0; head_dim],
            qq: Vec::with_capacity(head_dim * 2 + 34),
            vrow: vec![0.0; head_dim.max(1) * 4],
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
pub(crate) fn attend(
    pool: &ThreadPool,
    a: &AttnShape,
    rows: &[BatchRow],
    kvs: &[&mut KvCache],
    q: &[f32],
    out: &mut [f32],
    bufs: &mut [AttnBufs],
) {
    let items = rows.len() * a.n_head;
    let (q_dim, o_dim) = (a.n_head * a.head_k, a.n_head * a.head_v);
    debug_assert!(out.len() >= rows.len() * o_dim && q.len() >= rows.len() * q_dim);
    let group = a.n_head / a.n_head_kv;
    let out_ptr = OutPtr(out.as_mut_ptr());
    let buf_ptr = BufPtr(bufs.as_mut_ptr());
    let n_bufs = bufs.len();
    pool.run(|tid, nth| {
        let workers = nth.min(n_bufs);
        if tid >= workers {
            return;
        }
        // SAFETY: tid < n_bufs and each worker index is used by one thread (see BufPtr).
        let buf = unsafe { &mut *buf_ptr.at(tid) };
        let mut item = tid;
        while item < items {
            let (t, h) = (item / a.n_head, item % a.n_head);
            let (p, kv) = (rows[t].pos, &*kvs[rows[t].seq]);
            let lo = a.window.map_or(0, |w| (p + 1).saturating_sub(w));
            let span = p + 1 - lo;
            let kvh = h / group;
            let qh = &q[t * q_dim + h * a.head_k..t * q_dim + (h + 1) * a.head_k];
            kv.prepare_query(qh, &mut buf.qh, &mut buf.qq);
            buf.scores.clear();
            buf.scores.extend(
                (lo..=p).map(|j| kv.score(a.layer, j, kvh, &buf.qh, &buf.qq) * a.score_scale),
            );
            ops::softmax(&mut buf.scores[..span]);
            // SAFETY: the slice for (t, h) lies inside `out` and no other item writes it.
            let o = unsafe {
                std::slice::from_raw_parts_mut(out_ptr.at(t * o_dim + h * a.head_v), a.head_v)
            };
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
            item += workers;
        }
    });
}
