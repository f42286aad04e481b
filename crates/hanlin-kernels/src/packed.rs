//! Weights repacked at load into row-interleaved groups, and the mat-muls over them.
//!
//! **Why.** A plain ggml matrix is read one row at a time, and each row's dot product ends in
//! a horizontal reduction. Here 16 rows are interleaved block by block, so one 512-bit
//! register holds the same 4 quants of 16 rows: one `vpdpbusd` serves 16 rows, every
//! activation dword is a broadcast straight from memory, the 16 results leave as one vector,
//! and the weights are still one sequential stream (reading several row streams in step
//! defeats this CPU's prefetcher; see `docs/performance.md`).
//!
//! **Which float order.** llama.cpp's CPU backend repacks Q4_0 matrices whose row count is a
//! multiple of 8 (`q4_0_8x8`, on every x86 CPU with AVX2) and then sums each row *per block*:
//! `acc = fma(f32(Σ_block (q − 8)·y), d_w · d_y, acc)`, block by block from `acc = 0`. That is
//! a different rounding from its plain `vec_dot` (8 lanes, reduced at the end), so a packed
//! matrix here computes exactly the per-block order, on every ISA, for every batch size: the
//! same bits as llama.cpp's single-token path on the same file. Matrices llama.cpp leaves
//! alone (row count not a multiple of 8) stay in their file layout and keep `vec_dot`'s order.
//!
//! **Layout (Q4_0).** Rows are taken 16 at a time (a final partial group is padded with zero
//! rows whose results are never written). Each group holds `⌈nb/2⌉` units of 576 bytes, one
//! per pair of 32-value blocks: `qs(b)`, `qs(b + 1)` (256 bytes each), then the 16 f16 scales
//! of `b` and of `b + 1` (32 bytes each). In `qs(b)`, bytes `64k + 4r .. 64k + 4r + 4` are
//! bytes `4k .. 4k + 4` of row `r`'s block: their low nibbles are elements `4k .. 4k + 4`,
//! their high nibbles elements `16 + 4k .. 16 + 4k + 4`. Units are 64-byte aligned.
//!
//! **Layout (Q4_K).** Same grouping; one 2368-byte unit per 256-value super-block: 32 lines of
//! 64 bytes (line `8j + k`, lane `r` = bytes `32j + 4k .. 32j + 4k + 4` of row `r`'s quants:
//! low nibbles are sub-block `2j`, high nibbles sub-block `2j + 1`), then the 6-bit scales
//! unpacked to bytes (16 per sub-block), the mins as byte pairs `(min 2i, min 2i + 1)` per
//! row, the 16 `d` and the 16 `dmin`. Llama.cpp's `q4_K_8x8` order is the same per-super-block
//! sum: `acc += f32(Σ scale · q · y) · (d · d_y)`, `acc_min += f32(Σ min · bsum) · (dmin · d_y)`,
//! result `acc − acc_min` (what the row kernels already compute for Q4_K).
//!
//! **Layout (Q8_0).** Same grouping and units of two blocks (1088 bytes): `qs(b)`, `qs(b + 1)`
//! (512 bytes each; line `k`, lane `r` = quants `4k .. 4k + 4` of row `r`, stored `q ^ 0x80`),
//! then the two blocks' 16 scales. llama.cpp does not repack Q8_0 and runs `vec_dot`: per
//! block 8 exact lanes of 4 products, `acc_k = fma(d_x · d_y, lane_k, acc_k)`, then ggml's
//! `hsum_float_8`. The packed kernels keep exactly that, with the 8 accumulators of 16 rows in
//! 8 registers; the interleave only removes the per-row reduction and call.
//!
//! **Layout (Q5_0).** Units of two blocks (704 bytes): the nibbles as in Q4_0 (`qs(b)`,
//! `qs(b + 1)`, 256 bytes each), then per block 8 little-endian u64 masks (mask `k`, bit
//! `4r + i` = fifth bit of element `4k + i` of row `r`), then the scales. Kept in `vec_dot`'s
//! 8-lane order like Q8_0.
//!
//! The buffer is anonymous memory advised for transparent huge pages; the caller releases the
//! file pages it was copied from, so resident memory stays about the file's size.

use crate::error::KernelError;
use crate::kernels::{checked_row_bytes, expect_len, mul, Kernels};
use crate::layout::q8_0;
use crate::pool::ThreadPool;
use hanlin_gguf::GgmlType;

/// Source bytes packed between two `release` calls of [`PackedMatrix::pack_releasing`].
const RELEASE_STEP: usize = 1 << 20;

/// Rows per interleaved group.
pub(crate) const GROUP: usize = 16;
/// Bytes of one Q4_0 unit: two blocks of 16 rows (2 × 256 quant bytes, 2 × 32 scale bytes).
pub(crate) const Q4_0_UNIT: usize = 576;
/// Bytes of one Q5_0 unit: two blocks of 16 rows (2 × 256 nibble bytes, 2 × 64 bytes of
/// fifth-bit masks, 2 × 32 scale bytes).
pub(crate) const Q5_0_UNIT: usize = 704;
/// Bytes of one Q8_0 unit: two blocks of 16 rows (2 × 512 quant bytes, 2 × 32 scale bytes).
pub(crate) const Q8_0_UNIT: usize = 1088;

/// Bytes of one Q4_K unit: one 256-value super-block of 16 rows (see the module docs).
pub(crate) const Q4_K_UNIT: usize = 2368;
/// Offsets inside a Q4_K unit: 8 × 16 scales (u8), 4 × 16 min pairs (u8, u8), 16 f16 `d`,
/// 16 f16 `dmin`.
pub(crate) const Q4K_SCALES: usize = 2048;
pub(crate) const Q4K_MINS: usize = 2176;
pub(crate) const Q4K_D: usize = 2304;
pub(crate) const Q4K_DMIN: usize = 2336;

/// How a [`PackedMatrix`] is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackedLayout {
    /// Q4_0, 16 rows interleaved per 4-byte column (see the module docs).
    Q4_0x16,
    /// Q4_K, 16 rows interleaved per 4-byte column, 6-bit scales and mins unpacked.
    Q4Kx16,
    /// Q8_0, 16 rows interleaved per 4-byte column, quants offset to unsigned.
    Q80x16,
    /// Q5_0, nibbles as Q4_0, fifth bits as one 64-bit byte mask per 4-value column.
    Q50x16,
}

/// Anonymous, 64-byte-aligned bytes (page-aligned in practice), advised for huge pages.
struct AnonBuf(memmap2::MmapMut);

impl AnonBuf {
    fn zeroed(len: usize) -> Result<Self, KernelError> {
        let map = memmap2::MmapMut::map_anon(len.max(1))
            .map_err(|e| KernelError::Alloc(format!("{len} bytes of packed weights: {e}")))?;
        #[cfg(target_os = "linux")]
        {
            // Fewer page faults while packing and fewer TLB misses while streaming; merely
            // advice, so a kernel without THP is fine.
            if std::env::var_os("HANLIN_NO_THP").is_none() {
                let _ = map.advise(memmap2::Advice::HugePage);
            }
        }
        Ok(Self(map))
    }
}

/// A weight matrix repacked for the interleaved kernels; see the module docs.
pub struct PackedMatrix {
    layout: PackedLayout,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    group_bytes: usize,
    buf: AnonBuf,
}

impl std::fmt::Debug for PackedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedMatrix")
            .field("layout", &self.layout)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish()
    }
}

/// Whether weights of type `ty` with `rows` rows are repacked. Q4_0 and Q4_K: exactly the
/// matrices llama.cpp's x86 backend repacks (a multiple of 8 rows), so both compute the same
/// per-block order. Q8_0 and Q5_0: any matrix of 16 rows or more; their packed kernels keep
/// `vec_dot`'s 8-lane order, which is what llama.cpp runs for them (so packing them or not
/// gives the same bits; the models pack Q5_0 only where the 512-bit kernel exists).
pub fn packs(ty: GgmlType, rows: usize) -> bool {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q4_K => rows > 0 && rows.is_multiple_of(8),
        GgmlType::Q8_0 | GgmlType::Q5_0 => rows >= GROUP,
        _ => false,
    }
}

/// The 4 bytes of `src` at `at`, as a little-endian word.
#[inline(always)]
fn word(src: &[u8], at: usize) -> u32 {
    // One bounds check and one 4-byte load (the slice has exactly 4 bytes, so the fallback is
    // never taken).
    u32::from_le_bytes(src[at..at + 4].try_into().unwrap_or([0; 4]))
}

/// Writes `f(r)` for each valid row into lane `r` of a 64-byte line (in order, so the
/// destination is written sequentially).
#[inline(always)]
fn fill_line(line: &mut [u8], n: usize, f: impl Fn(usize) -> u32) {
    for (r, lane) in line.chunks_exact_mut(4).take(n).enumerate() {
        lane.copy_from_slice(&f(r).to_le_bytes());
    }
}

/// One group (`src[r]` = row `r`'s file bytes) into the Q8_0 layout (quants stored
/// `q ^ 0x80`).
fn pack_q8_0_group(gdst: &mut [u8], src: &[&[u8]]) {
    let nb = src.first().map_or(0, |r| r.len() / 34);
    for (u, unit) in gdst.chunks_exact_mut(Q8_0_UNIT).enumerate() {
        for half in 0..2 {
            let b = 2 * u + half;
            if b >= nb {
                break;
            }
            for k in 0..8 {
                let line = &mut unit[half * 512 + 64 * k..][..64];
                fill_line(line, src.len(), |r| {
                    word(src[r], 34 * b + 2 + 4 * k) ^ 0x8080_8080
                });
            }
            let sc = &mut unit[1024 + half * 32..][..32];
            for (d, r) in sc.chunks_exact_mut(2).zip(src) {
                d.copy_from_slice(&r[34 * b..34 * b + 2]);
            }
        }
    }
}

/// One group into the Q5_0 layout.
fn pack_q5_0_group(gdst: &mut [u8], src: &[&[u8]]) {
    let nb = src.first().map_or(0, |r| r.len() / 22);
    for (u, unit) in gdst.chunks_exact_mut(Q5_0_UNIT).enumerate() {
        for half in 0..2 {
            let b = 2 * u + half;
            if b >= nb {
                break;
            }
            for k in 0..4 {
                let line = &mut unit[half * 256 + 64 * k..][..64];
                fill_line(line, src.len(), |r| word(src[r], 22 * b + 6 + 4 * k));
            }
            for k in 0..8 {
                // Bit 4r + i: fifth bit of element 4k + i of row r.
                let mut m = 0u64;
                for (r, row) in src.iter().enumerate() {
                    let qh = word(row, 22 * b + 2);
                    m |= u64::from((qh >> (4 * k)) & 15) << (4 * r);
                }
                let at = 512 + half * 64 + 8 * k;
                unit[at..at + 8].copy_from_slice(&m.to_le_bytes());
            }
            let sc = &mut unit[640 + half * 32..][..32];
            for (d, r) in sc.chunks_exact_mut(2).zip(src) {
                d.copy_from_slice(&r[22 * b..22 * b + 2]);
            }
        }
    }
}

/// One group into the Q4_0 layout.
fn pack_q4_0_group(gdst: &mut [u8], src: &[&[u8]]) {
    let nb = src.first().map_or(0, |r| r.len() / 18);
    for (u, unit) in gdst.chunks_exact_mut(Q4_0_UNIT).enumerate() {
        for half in 0..2 {
            let b = 2 * u + half;
            if b >= nb {
                break;
            }
            for k in 0..4 {
                let line = &mut unit[half * 256 + 64 * k..][..64];
                fill_line(line, src.len(), |r| word(src[r], 18 * b + 2 + 4 * k));
            }
            let sc = &mut unit[512 + half * 32..][..32];
            for (d, r) in sc.chunks_exact_mut(2).zip(src) {
                d.copy_from_slice(&r[18 * b..18 * b + 2]);
            }
        }
    }
}

/// One group into the Q4_K layout (scales and mins unpacked).
fn pack_q4_k_group(gdst: &mut [u8], src: &[&[u8]]) {
    for (b, unit) in gdst.chunks_exact_mut(Q4_K_UNIT).enumerate() {
        for j in 0..4 {
            for k in 0..8 {
                let line = &mut unit[(8 * j + k) * 64..][..64];
                fill_line(line, src.len(), |r| {
                    word(src[r], 144 * b + 16 + 32 * j + 4 * k)
                });
            }
        }
        for (r, row) in src.iter().enumerate() {
            let blk = &row[144 * b..][..144];
            let mut packed = [0u8; 12];
            packed.copy_from_slice(&blk[4..16]);
            let u = crate::layout::unpack_k4_scales(&packed);
            let sm: [u8; 16] = std::array::from_fn(|i| u[i / 4].to_le_bytes()[i % 4]);
            for s in 0..8 {
                unit[Q4K_SCALES + 16 * s + r] = sm[s];
                unit[Q4K_MINS + 32 * (s / 2) + 2 * r + s % 2] = sm[8 + s];
            }
            unit[Q4K_D + 2 * r..Q4K_D + 2 * r + 2].copy_from_slice(&blk[..2]);
            unit[Q4K_DMIN + 2 * r..Q4K_DMIN + 2 * r + 2].copy_from_slice(&blk[2..4]);
        }
    }
}

impl PackedMatrix {
    /// Repacks a row-major matrix of `rows` × `cols` `ty` values (`data`, straight from the
    /// file), or `Ok(None)` when [`packs`] says this matrix keeps its file layout.
    pub fn pack(
        ty: GgmlType,
        data: &[u8],
        rows: usize,
        cols: usize,
    ) -> Result<Option<Self>, KernelError> {
        Self::pack_releasing(ty, data, rows, cols, &mut |_, _| {})
    }

    /// [`PackedMatrix::pack`], calling `release(offset, len)` for each stretch of `data` (about
    /// 1 MiB, whole groups) as soon as it is copied, so a caller reading `data` from a mapped
    /// file can drop those pages while the rest is still being packed: resident memory then
    /// peaks near the file's size instead of file plus copy.
    pub fn pack_releasing(
        ty: GgmlType,
        data: &[u8],
        rows: usize,
        cols: usize,
        release: &mut dyn FnMut(usize, usize),
    ) -> Result<Option<Self>, KernelError> {
        if !packs(ty, rows) {
            return Ok(None);
        }
        let row_bytes = checked_row_bytes(ty, cols)?;
        expect_len(
            "weight matrix (bytes)",
            mul(rows, row_bytes, "weight matrix")?,
            data.len(),
        )?;
        let (layout, group_bytes) = match ty {
            GgmlType::Q8_0 => (
                PackedLayout::Q80x16,
                mul((cols / 32).div_ceil(2), Q8_0_UNIT, "packed group")?,
            ),
            GgmlType::Q5_0 => (
                PackedLayout::Q50x16,
                mul((cols / 32).div_ceil(2), Q5_0_UNIT, "packed group")?,
            ),
            GgmlType::Q4_K => (
                PackedLayout::Q4Kx16,
                mul(cols / 256, Q4_K_UNIT, "packed group")?,
            ),
            _ => (
                PackedLayout::Q4_0x16,
                mul((cols / 32).div_ceil(2), Q4_0_UNIT, "packed group")?,
            ),
        };
        let groups = rows.div_ceil(GROUP);
        let mut buf = AnonBuf::zeroed(mul(groups, group_bytes, "packed matrix")?)?;
        let dst = &mut buf.0[..];
        let step = (RELEASE_STEP / (GROUP * row_bytes).max(1)).max(1);
        let mut released = 0;
        for g in 0..groups {
            let gdst = &mut dst[g * group_bytes..(g + 1) * group_bytes];
            let n = GROUP.min(rows - g * GROUP);
            let mut src: [&[u8]; GROUP] = [&[]; GROUP];
            for (r, s) in src.iter_mut().take(n).enumerate() {
                *s = &data[(g * GROUP + r) * row_bytes..][..row_bytes];
            }
            match layout {
                PackedLayout::Q4_0x16 => pack_q4_0_group(gdst, &src[..n]),
                PackedLayout::Q80x16 => pack_q8_0_group(gdst, &src[..n]),
                PackedLayout::Q50x16 => pack_q5_0_group(gdst, &src[..n]),
                PackedLayout::Q4Kx16 => pack_q4_k_group(gdst, &src[..n]),
            }
            if (g + 1) % step == 0 || g + 1 == groups {
                let done = ((g + 1) * GROUP).min(rows) * row_bytes;
                release(released, done - released);
                released = done;
            }
        }
        Ok(Some(Self {
            layout,
            ty,
            rows,
            cols,
            group_bytes,
            buf,
        }))
    }

    /// The layout.
    pub fn layout(&self) -> PackedLayout {
        self.layout
    }

    /// The original element type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Rows (output features).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Elements per row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes of packed memory.
    pub fn bytes(&self) -> usize {
        self.buf.0.len()
    }
}

/// Everything a packed kernel needs for groups `g0..g1` and all tokens; lengths validated.
pub(crate) struct PackedArgs<'a> {
    /// Elements per row.
    pub cols: usize,
    /// Rows of the matrix (outputs per token).
    pub rows: usize,
    /// The packed bytes.
    pub w: &'a [u8],
    /// Bytes per group.
    pub group_bytes: usize,
    /// `n_tokens` Q8_0 rows of `cols` values.
    pub act: &'a [u8],
    /// Per-token side terms: Q4_0, `−8 · Σ y` per block (`cols / 32` per token); Q8_0 / Q5_0,
    /// `−128 · Σ y` / `−16 · Σ y` over each 4-value lane (8 per block); Q4_K, per
    /// super-block 4 dwords of i16 pairs `(bsum 2i, bsum 2i + 1)`, `bsum s` the sum of
    /// sub-block `s`'s 32 quants (`cols / 64` per token).
    pub offs: &'a [i32],
    /// Tokens.
    pub n_tokens: usize,
    /// `out[t * rows + r]`.
    pub out: *mut f32,
}

// SAFETY: the pointer is only written at rows of the groups a chunk owns (callers hand out
// disjoint group ranges), and the pool joins before the borrow behind it ends.
unsafe impl Sync for PackedArgs<'_> {}

/// Computes groups `g0..g1` for every token.
///
/// # Safety
/// The kernel must suit this CPU, `a` must be validated as documented on [`PackedArgs`], and no
/// other thread may write the rows of groups `g0..g1`.
pub(crate) type PackedFn = unsafe fn(a: &PackedArgs<'_>, g0: usize, g1: usize);

/// `T` tokens from `t0` against group `g`, for some tile size `T` fixed by the function.
///
/// # Safety
/// As [`PackedFn`], with `t0 + T <= n_tokens` and `g` a group of the matrix.
pub(crate) type TileFn = unsafe fn(a: &PackedArgs<'_>, g: usize, t0: usize);

/// Groups `g0..g1` for every token: tiles of `tile` tokens through `full`, the remaining tokens
/// one at a time through `one`; each tile sweeps all the groups, which stay in cache.
///
/// # Safety
/// As [`PackedFn`]; `full` must handle exactly `tile` tokens and `one` exactly one.
pub(crate) unsafe fn run_tiles(
    a: &PackedArgs<'_>,
    g0: usize,
    g1: usize,
    tile: usize,
    full: TileFn,
    one: TileFn,
) {
    let whole = a.n_tokens / tile * tile;
    for t0 in (0..whole).step_by(tile) {
        for g in g0..g1 {
            // SAFETY: forwarded contract; t0 + tile <= n_tokens.
            unsafe { full(a, g, t0) };
        }
    }
    for t0 in whole..a.n_tokens {
        for g in g0..g1 {
            // SAFETY: forwarded contract; t0 < n_tokens.
            unsafe { one(a, g, t0) };
        }
    }
}

thread_local! {
    /// Per-token block offsets of the mat-mul this thread is running; grown, never shrunk.
    static OFFS: std::cell::RefCell<Vec<i32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Below this many weight bytes × tokens a packed product runs on the calling thread.
const MIN_PARALLEL_BYTES: usize = 48 * 1024;

/// Fills `offs` (see [`PackedArgs::offs`]) from the activations of every token.
fn side_terms(layout: PackedLayout, act: &[u8], offs: &mut [i32]) {
    match layout {
        PackedLayout::Q4_0x16 => {
            for (o, blk) in offs.iter_mut().zip(act.chunks_exact(q8_0::SIZE)) {
                *o = -8 * blk[2..].iter().map(|&y| y as i8 as i32).sum::<i32>();
            }
        }
        PackedLayout::Q80x16 | PackedLayout::Q50x16 => {
            let off = if layout == PackedLayout::Q80x16 {
                128
            } else {
                16
            };
            for (o, blk) in offs.chunks_exact_mut(8).zip(act.chunks_exact(q8_0::SIZE)) {
                for (k, o) in o.iter_mut().enumerate() {
                    let s: i32 = blk[2 + 4 * k..6 + 4 * k]
                        .iter()
                        .map(|&y| y as i8 as i32)
                        .sum();
                    *o = -off * s;
                }
            }
        }
        PackedLayout::Q4Kx16 => {
            for (o, blk) in offs
                .chunks_exact_mut(4)
                .zip(act.chunks_exact(crate::layout::q8_k::SIZE))
            {
                let bs = |i: usize| i16::from_le_bytes([blk[260 + 2 * i], blk[261 + 2 * i]]) as i32;
                // Sums of 32 quants: at most 32 · 127 in magnitude, so they fit an i16.
                let sub = |s: usize| (bs(2 * s) + bs(2 * s + 1)) as i16 as u16 as u32;
                for (i, o) in o.iter_mut().enumerate() {
                    *o = (sub(2 * i) | sub(2 * i + 1) << 16) as i32;
                }
            }
        }
    }
}

impl Kernels {
    /// `out[t * rows + r] = dot(w[r], act[t])` for a packed matrix and `n_tokens` activation
    /// rows (Q8_0 for Q4_0, Q8_K for Q4_K), in llama.cpp's repacked order (see the module
    /// docs).
    pub fn matmul_packed(
        &self,
        pool: &ThreadPool,
        w: &PackedMatrix,
        act: &[u8],
        n_tokens: usize,
        out: &mut [f32],
    ) -> Result<(), KernelError> {
        let act_ty = match w.layout {
            PackedLayout::Q4_0x16 | PackedLayout::Q80x16 | PackedLayout::Q50x16 => GgmlType::Q8_0,
            PackedLayout::Q4Kx16 => GgmlType::Q8_K,
        };
        let act_row = checked_row_bytes(act_ty, w.cols)?;
        expect_len(
            "activations (bytes)",
            mul(n_tokens, act_row, "activations")?,
            act.len(),
        )?;
        expect_len("output", mul(n_tokens, w.rows, "output")?, out.len())?;
        if w.rows == 0 || n_tokens == 0 {
            return Ok(());
        }
        let kernel = self.packed_kernel(w.layout);
        let per_token = match w.layout {
            PackedLayout::Q4_0x16 => w.cols / 32,
            PackedLayout::Q80x16 | PackedLayout::Q50x16 => w.cols / 32 * 8,
            PackedLayout::Q4Kx16 => w.cols / 64,
        };
        OFFS.with(|cell| {
            let mut own = Vec::new();
            let mut guard = cell.try_borrow_mut();
            let offs = match guard.as_deref_mut() {
                Ok(v) => v,
                Err(_) => &mut own,
            };
            if offs.len() < n_tokens * per_token {
                offs.resize(n_tokens * per_token, 0);
            }
            let offs = &mut offs[..n_tokens * per_token];
            side_terms(w.layout, act, offs);
            let args = PackedArgs {
                cols: w.cols,
                rows: w.rows,
                w: &w.buf.0,
                group_bytes: w.group_bytes,
                act,
                offs,
                n_tokens,
                out: out.as_mut_ptr(),
            };
            let groups = w.rows.div_ceil(GROUP);
            // Batches: a few groups per item so their weights stay in cache across all the
            // token tiles (also on one thread: one pass over the matrix, not one per tile);
            // single tokens: enough items to balance the threads.
            let per = if n_tokens >= 2 {
                groups.div_ceil(pool.threads() * 4).clamp(1, 4)
            } else {
                groups.div_ceil(pool.threads() * 8).max(1)
            };
            let items = groups.div_ceil(per);
            if w.bytes().saturating_mul(n_tokens) < MIN_PARALLEL_BYTES || pool.threads() == 1 {
                for i in 0..items {
                    let g0 = i * per;
                    // SAFETY: kernel chosen for this CPU's ISA; lengths validated above; this
                    // thread is the only writer.
                    unsafe { kernel(&args, g0, (g0 + per).min(groups)) };
                }
                return;
            }
            pool.for_each_index(items, |i| {
                let g0 = i * per;
                // SAFETY: as above; items own disjoint group ranges.
                unsafe { kernel(&args, g0, (g0 + per).min(groups)) };
            });
        });
        Ok(())
    }

    /// The kernel for `layout` on this ISA: the widest one written for it, else the scalar.
    fn packed_kernel(&self, layout: PackedLayout) -> PackedFn {
        use crate::arch::generic::packed as scalar;
        use PackedLayout as L;
        #[cfg(target_arch = "x86_64")]
        {
            use crate::arch::x86_64::{avx2::packed as v256, packed512 as v512};
            use crate::Isa;
            let simd: Option<PackedFn> = match (self.isa(), layout) {
                (Isa::Avx512Vnni, L::Q4_0x16) => Some(v512::q4_0x16),
                (Isa::Avx512Vnni, L::Q4Kx16) => Some(v512::q4_kx16),
                (Isa::Avx512Vnni, L::Q80x16) => Some(v512::q8_0x16),
                (Isa::Avx512Vnni, L::Q50x16) => Some(v512::q5_0x16),
                (Isa::Avx2 | Isa::AvxVnni, L::Q4_0x16) => Some(v256::q4_0x16),
                (Isa::Avx2 | Isa::AvxVnni, L::Q4Kx16) => Some(v256::q4_kx16),
                (Isa::Avx2 | Isa::AvxVnni, L::Q80x16) => Some(v256::q8_0x16),
                _ => None,
            };
            if let Some(f) = simd {
                return f;
            }
        }
        match layout {
            L::Q4_0x16 => scalar::q4_0x16,
            L::Q4Kx16 => scalar::q4_kx16,
            L::Q80x16 => scalar::q8_0x16,
            L::Q50x16 => scalar::q5_0x16,
        }
    }
}
