//! Matrix × activation products split over a [`ThreadPool`].
//!
//! Rows are cut into chunks handed out dynamically, so a thread slowed by another process does
//! not hold everyone back. Every output element is one dot product computed the same way
//! whatever the thread count or batch size (the 1×4 and 1×8 tiles and the packed-activation
//! GEMMs are bit-identical to the 1×1 kernels), so results are deterministic.

use crate::error::KernelError;
use crate::kernels::{checked_row_bytes, expect_len, mul, Kernels};
use crate::pool::ThreadPool;
use crate::table::DotEntry;
use hanlin_gguf::GgmlType;

/// A row-major weight matrix in a ggml format: `rows` rows of `cols` elements.
#[derive(Clone, Copy, Debug)]
pub struct WeightMatrix<'a> {
    ty: GgmlType,
    data: &'a [u8],
    rows: usize,
    cols: usize,
    row_bytes: usize,
}

impl<'a> WeightMatrix<'a> {
    /// Wraps `data`, checking that it holds exactly `rows` rows of `cols` elements of `ty`.
    pub fn new(
        ty: GgmlType,
        data: &'a [u8],
        rows: usize,
        cols: usize,
    ) -> Result<Self, KernelError> {
        let row_bytes = checked_row_bytes(ty, cols)?;
        expect_len(
            "weight matrix (bytes)",
            mul(rows, row_bytes, "weight matrix")?,
            data.len(),
        )?;
        Ok(Self {
            ty,
            data,
            rows,
            cols,
            row_bytes,
        })
    }

    /// Element type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Number of rows (output features).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Elements per row (input features).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    /// The raw bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    fn row(&self, r: usize) -> &'a [u8] {
        &self.data[r * self.row_bytes..(r + 1) * self.row_bytes]
    }
}

/// Output pointer shared by chunks that write disjoint elements.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: each chunk writes only the elements of its own rows (see `run_chunk`), so sharing
// the pointer across threads never produces overlapping writes.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Pointer `i` elements in (a method, so closures capture the whole Sync wrapper).
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// Fewest tokens for which a mat-mul packs its activations for the weight type's GEMM.
#[cfg(target_arch = "x86_64")]
const GEMM_MIN_TOKENS: usize = 4;

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// Packed activations of the GEMM this thread is running; grown on demand, never shrunk,
    /// so steady-state mat-muls allocate nothing.
    static PACKED: std::cell::RefCell<Vec<crate::table::Line>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Below this many weight bytes × tokens a product runs on the calling thread: waking workers
/// costs a few microseconds, more than such a product takes.
const MIN_PARALLEL_BYTES: usize = 48 * 1024;

/// Rows per work item: enough items to balance threads, few enough to keep the handoff cheap,
/// and small when batching so a chunk's weights stay in cache across the token groups.
fn chunk_rows(rows: usize, n_tokens: usize, threads: usize) -> usize {
    if threads <= 1 && n_tokens < 4 {
        return rows.max(1);
    }
    let balanced = rows.div_ceil(threads * 8).max(1);
    if n_tokens >= 4 {
        balanced.min(16)
    } else {
        balanced
    }
}

impl Kernels {
    /// `out[r] = dot(w[r], act)` for every row: a mat-vec with one activation row in
    /// [`crate::activation_type`]`(w.ty())` format.
    pub fn matvec(
        &self,
        pool: &ThreadPool,
        w: &WeightMatrix<'_>,
        act: &[u8],
        out: &mut [f32],
    ) -> Result<(), KernelError> {
        self.matmul(pool, w, act, 1, out)
    }

    /// `out[t * rows + r] = dot(w[r], act[t])` for `n_tokens` activation rows stored back to
    /// back (each `cols` elements in [`crate::activation_type`]`(w.ty())` format).
    pub fn matmul(
        &self,
        pool: &ThreadPool,
        w: &WeightMatrix<'_>,
        act: &[u8],
        n_tokens: usize,
        out: &mut [f32],
    ) -> Result<(), KernelError> {
        let e = *self.entry(w.ty)?;
        let act_row = checked_row_bytes(e.act, w.cols)?;
        expect_len(
            "activations (bytes)",
            mul(n_tokens, act_row, "activations")?,
            act.len(),
        )?;
        expect_len("output", mul(n_tokens, w.rows, "output")?, out.len())?;
        if w.rows == 0 || n_tokens == 0 {
            return Ok(());
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(g) = e.gemm.filter(|_| n_tokens >= GEMM_MIN_TOKENS) {
            if run_gemm(pool, w, g, act, n_tokens, out) {
                return Ok(());
            }
        }
        let job = Job {
            e,
            w,
            act,
            act_row,
            n_tokens,
            out: OutPtr(out.as_mut_ptr()),
        };
        if w.data.len().saturating_mul(n_tokens) < MIN_PARALLEL_BYTES {
            // SAFETY: ISA verified at construction, lengths validated above, and this thread
            // is the only writer.
            unsafe { job.run_chunk(0, w.rows) };
            return Ok(());
        }
        let chunk = chunk_rows(w.rows, n_tokens, pool.threads());
        let n_chunks = w.rows.div_ceil(chunk);
        pool.for_each_index(n_chunks, |c| {
            let r0 = c * chunk;
            let r1 = (r0 + chunk).min(w.rows);
            // SAFETY: the table's ISA was verified at construction; `job` lengths were
            // validated above; chunks cover disjoint row ranges.
            unsafe { job.run_chunk(r0, r1) }
        });
        Ok(())
    }
}

/// Packs `act` into this thread's buffer and runs GEMM `g` over row chunks; `false` (nothing
/// written) if the buffer is already in use by an outer call on this thread.
#[cfg(target_arch = "x86_64")]
fn run_gemm(
    pool: &ThreadPool,
    w: &WeightMatrix<'_>,
    g: crate::table::Gemm,
    act: &[u8],
    n_tokens: usize,
    out: &mut [f32],
) -> bool {
    use crate::arch::x86_64::gemm512::lines_per_token;
    use crate::table::Line;
    PACKED.with(|cell| {
        let Ok(mut buf) = cell.try_borrow_mut() else {
            return false;
        };
        let lines = lines_per_token(w.cols) * n_tokens;
        if buf.len() < lines {
            buf.resize(lines, Line::ZERO);
        }
        let packed = &mut buf[..lines];
        // SAFETY: the table holding `g` was built for an ISA this CPU supports; `act` holds
        // `n_tokens` rows of `w.cols` values (validated by `matmul`) and `packed` the lines.
        unsafe { (g.pack)(w.cols, act, n_tokens, packed) };
        let packed = &*packed;
        let out_ptr = OutPtr(out.as_mut_ptr());
        let rb = w.row_bytes;
        let run = |r0: usize, r1: usize| {
            // SAFETY: as above for the kernels; rows r0..r1 of every token are written by
            // this chunk alone, and `out` holds `n_tokens * w.rows` floats.
            unsafe {
                (g.run)(
                    w.cols,
                    &w.data[r0 * rb..r1 * rb],
                    r1 - r0,
                    packed,
                    n_tokens,
                    out_ptr.at(r0),
                    w.rows,
                )
            }
        };
        if w.data.len().saturating_mul(n_tokens) < MIN_PARALLEL_BYTES {
            run(0, w.rows);
            return true;
        }
        // Whole 8-row tiles per chunk.
        let chunk = chunk_rows(w.rows, n_tokens, pool.threads()).next_multiple_of(8);
        let n_chunks = w.rows.div_ceil(chunk);
        pool.for_each_index(n_chunks, |c| {
            let r0 = c * chunk;
            run(r0, (r0 + chunk).min(w.rows));
        });
        true
    })
}

/// Asks the CPU to bring `row` into cache: on the x86 CPUs measured, a single core streaming a
/// mat-vec gets markedly closer to the memory bandwidth with software prefetch a few KiB ahead
/// than with the hardware prefetchers alone. A hint; no effect on results.
#[inline(always)]
fn prefetch_row(row: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for l in (0..row.len()).step_by(64) {
        // SAFETY: prefetching never faults; the address is inside `row` anyway.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                row.as_ptr().add(l).cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// Everything one chunk needs, validated.
struct Job<'a, 'w> {
    e: DotEntry,
    w: &'a WeightMatrix<'w>,
    act: &'a [u8],
    act_row: usize,
    n_tokens: usize,
    out: OutPtr,
}

impl Job<'_, '_> {
    /// Computes rows `r0..r1` for every token.
    ///
    /// # Safety
    /// The kernels in `e` must be runnable on this CPU, `out` must point to
    /// `n_tokens * w.rows` floats, and no other thread may write rows `r0..r1` concurrently.
    unsafe fn run_chunk(&self, r0: usize, r1: usize) {
        let (w, n) = (self.w, self.w.cols);
        let tok = |t: usize| &self.act[t * self.act_row..(t + 1) * self.act_row];
        let write = |t: usize, r: usize, v: f32| {
            debug_assert!(t < self.n_tokens && r < w.rows);
            // SAFETY: t < n_tokens and r < rows keep the index inside `out`, and row r belongs
            // to this chunk alone (caller contract).
            unsafe { *self.out.0.add(t * w.rows + r) = v };
        };
        let mut t = 0;
        if let Some(dot8) = self.e.dot8 {
            while t + 8 <= self.n_tokens {
                let a: [&[u8]; 8] = std::array::from_fn(|k| tok(t + k));
                for r in r0..r1 {
                    // SAFETY: ISA verified by the caller; slices have validated lengths.
                    let v = unsafe { dot8(n, w.row(r), a) };
                    for (k, v) in v.into_iter().enumerate() {
                        write(t + k, r, v);
                    }
                }
                t += 8;
            }
        }
        if let Some(dot4) = self.e.dot4 {
            while t + 4 <= self.n_tokens {
                let a = [tok(t), tok(t + 1), tok(t + 2), tok(t + 3)];
                for r in r0..r1 {
                    // SAFETY: ISA verified by the caller; slices have validated lengths.
                    let v = unsafe { dot4(n, w.row(r), a) };
                    for (k, v) in v.into_iter().enumerate() {
                        write(t + k, r, v);
                    }
                }
                t += 4;
            }
        }
        // A single token streams each row once: prefetch the row about 4 KiB ahead (see
        // `prefetch_row`).
        let ahead = (4096 / w.row_bytes.max(1)).max(1);
        for t in t..self.n_tokens {
            let a = tok(t);
            for r in r0..r1 {
                if self.n_tokens == 1 && r + ahead < w.rows {
                    prefetch_row(w.row(r + ahead));
                }
                // SAFETY: ISA verified by the caller; slices have validated lengths.
                write(t, r, unsafe { (self.e.dot)(n, w.row(r), a) });
            }
        }
    }
}
