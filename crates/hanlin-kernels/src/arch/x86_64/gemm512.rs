//! AVX-512 register-blocked GEMM for the Q8_0-activation formats (Q4_0, Q5_0, Q8_0), used by
//! batched mat-muls of [`crate::Isa::Avx512Vnni`]: 8 weight rows × 4 tokens per tile, one
//! 32-value block of two weight rows per 512-bit register.
//!
//! Why it is bit-identical to the 1×1 kernels: those keep one 8-lane accumulator per output
//! and add `(d_x · d_y) · f32(p)` block by block, `p` the block's exact i32 lanes (ggml's
//! order), then return `hsum(acc)`. Here one zmm holds the accumulators of two rows for one
//! token (low half: row `r`, high half: row `r + 1`) and each block updates both halves with
//! the same per-lane operations. An odd last row is paired with itself and the copy's result
//! dropped.
//!
//! The integer part uses the offset form: weights become unsigned (`n` for Q4_0 with offset 8,
//! `n | fifth bit << 4` with 16 for Q5_0, `q xor 0x80` with 128 for Q8_0) and
//! `vpdpbusd(−o·Σy, u, y)` gives each lane `Σ (u − o) · y` exactly. The activation side
//! (`−o·Σy` per lane, and the scales) depends only on the token, so [`pack`] computes it once
//! per mat-mul instead of once per weight row; the tile broadcasts each block's 32 quants and
//! 8 offset lanes into both halves straight from memory.

use crate::arch::x86_64::avx2::hsum_ps;
use crate::layout::{blocks, field, q4_0, q5_0, q8_0, u16_at, u32_at};
use core::arch::x86_64::*;

/// One 64-byte line of packed activations.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Line(pub(crate) [u8; 64]);

impl Line {
    /// An all-zero line.
    pub(crate) const ZERO: Line = Line([0; 64]);
}

/// Lines per pair of blocks: the 64 activation quants, the 16 offset terms (i32), the 16
/// scales (f32, each block's `d_y` in its 8 lanes).
const LINES: usize = 3;

/// Packed lines per token for rows of `cols` values.
pub(crate) fn lines_per_token(cols: usize) -> usize {
    (cols / 32).div_ceil(2) * LINES
}

/// Two f16 scales (`lo` for the even block, `hi` for the odd one) broadcast into the low and
/// high 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn scale_pair(lo: u16, hi: u16) -> __m512 {
    let two = _mm_cvtph_ps(_mm_cvtsi32_si128((lo as u32 | (hi as u32) << 16) as i32));
    let idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(two))
}

/// Aligned 64-byte load of a line.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn ld_line(l: &Line) -> __m512i {
    // SAFETY: `Line` is 64 readable bytes aligned to 64.
    unsafe { _mm512_load_si512(l.0.as_ptr().cast()) }
}

/// Packs `n_tokens` Q8_0 activation rows of `cols` values for weights with offset `1 << SHIFT`.
///
/// # Safety
/// The CPU must support the features above; `act` must hold `n_tokens` rows and `dst`
/// `n_tokens * lines_per_token(cols)` lines.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pack_shift<const SHIFT: u32>(cols: usize, act: &[u8], n_tokens: usize, dst: &mut [Line]) {
    let nb = cols / 32;
    let row = nb * q8_0::SIZE;
    let lpt = lines_per_token(cols);
    let ones = _mm512_set1_epi8(1);
    for t in 0..n_tokens {
        let ys = blocks::<{ q8_0::SIZE }>(&act[t * row..(t + 1) * row], nb);
        let out = &mut dst[t * lpt..(t + 1) * lpt];
        for (m, l) in out.chunks_exact_mut(LINES).enumerate() {
            let b0 = &ys[2 * m];
            let b1 = ys.get(2 * m + 1);
            l[0] = Line::ZERO;
            l[0].0[..32].copy_from_slice(field::<2, 32, 34>(b0));
            if let Some(b1) = b1 {
                l[0].0[32..].copy_from_slice(field::<2, 32, 34>(b1));
            }
            let y = ld_line(&l[0]);
            let sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, y);
            let init = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32::<SHIFT>(sums));
            let dy = scale_pair(u16_at::<0, 34>(b0), b1.map_or(0, u16_at::<0, 34>));
            // SAFETY: each line is 64 writable bytes aligned to 64.
            unsafe {
                _mm512_store_si512(l[1].0.as_mut_ptr().cast(), init);
                _mm512_store_ps(l[2].0.as_mut_ptr().cast(), dy);
            }
        }
    }
}

/// # Safety
/// As [`pack_shift`].
///
/// [`pack_shift`] for Q4_0 weights (offset 8).
pub(crate) unsafe fn pack_q4_0(cols: usize, act: &[u8], n: usize, dst: &mut [Line]) {
    // SAFETY: forwarded caller contract.
    unsafe { pack_shift::<3>(cols, act, n, dst) }
}

/// # Safety
/// As [`pack_shift`].
///
/// [`pack_shift`] for Q5_0 weights (offset 16).
pub(crate) unsafe fn pack_q5_0(cols: usize, act: &[u8], n: usize, dst: &mut [Line]) {
    // SAFETY: forwarded caller contract.
    unsafe { pack_shift::<4>(cols, act, n, dst) }
}

/// # Safety
/// As [`pack_shift`].
///
/// [`pack_shift`] for Q8_0 weights (offset 128).
pub(crate) unsafe fn pack_q8_0(cols: usize, act: &[u8], n: usize, dst: &mut [Line]) {
    // SAFETY: forwarded caller contract.
    unsafe { pack_shift::<7>(cols, act, n, dst) }
}

/// Unsigned 4-bit values of blocks `q0`, `q1` in the low and high 256 bits.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn nibbles_pair(q0: &[u8; 16], q1: &[u8; 16]) -> __m512i {
    // SAFETY: each is 16 readable bytes; the loads have no alignment requirement.
    let (lo, hi) = unsafe {
        (
            _mm_loadu_si128(q0.as_ptr().cast()),
            _mm_loadu_si128(q1.as_ptr().cast()),
        )
    };
    let v = _mm512_mask_broadcast_i32x4(_mm512_broadcast_i32x4(lo), 0xFF00, hi);
    let shifted = _mm512_srlv_epi64(v, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0));
    _mm512_and_si512(shifted, _mm512_set1_epi8(0x0F))
}

/// Q4_0 pair (row `r`'s block, row `r + 1`'s): unsigned values and scales.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dec_q4_0(b0: &[u8; q4_0::SIZE], b1: &[u8; q4_0::SIZE]) -> (__m512i, __m512) {
    let u = nibbles_pair(field::<2, 16, 18>(b0), field::<2, 16, 18>(b1));
    (u, scale_pair(u16_at::<0, 18>(b0), u16_at::<0, 18>(b1)))
}

/// Q5_0 pair: unsigned values (fifth bit from `qh` by a masked move) and scales.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dec_q5_0(b0: &[u8; q5_0::SIZE], b1: &[u8; q5_0::SIZE]) -> (__m512i, __m512) {
    let n = nibbles_pair(field::<6, 16, 22>(b0), field::<6, 16, 22>(b1));
    let qh = u32_at::<2, 22>(b0) as u64 | (u32_at::<2, 22>(b1) as u64) << 32;
    let u = _mm512_or_si512(n, _mm512_maskz_mov_epi8(qh, _mm512_set1_epi8(0x10)));
    (u, scale_pair(u16_at::<0, 22>(b0), u16_at::<0, 22>(b1)))
}

/// Q8_0 pair: values moved to unsigned (`q xor 0x80` = `q + 128`) and scales.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dec_q8_0(b0: &[u8; q8_0::SIZE], b1: &[u8; q8_0::SIZE]) -> (__m512i, __m512) {
    // SAFETY: 32 readable bytes each; no alignment requirement.
    let (lo, hi) = unsafe {
        (
            _mm256_loadu_si256(field::<2, 32, 34>(b0).as_ptr().cast()),
            _mm256_loadu_si256(field::<2, 32, 34>(b1).as_ptr().cast()),
        )
    };
    let q = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
    let u = _mm512_xor_si512(q, _mm512_set1_epi8(0x80u8 as i8));
    (u, scale_pair(u16_at::<0, 34>(b0), u16_at::<0, 34>(b1)))
}

/// 256 bits at byte `off` of a line, broadcast to both halves (a load, not a shuffle).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn bcast_half(l: &Line, off: usize) -> __m512i {
    debug_assert!(off == 0 || off == 32);
    // SAFETY: `off + 32 <= 64` keeps the 32-byte read inside the line; no alignment needed.
    unsafe { _mm512_broadcast_i64x4(_mm256_loadu_si256(l.0.as_ptr().add(off).cast())) }
}

/// The f32 at byte `off` of a line, in all 16 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn bcast_f32(l: &Line, off: usize) -> __m512 {
    debug_assert!(off == 0 || off == 32);
    // SAFETY: `off + 4 <= 64` keeps the 4-byte read inside the line; the read is unaligned.
    _mm512_set1_ps(unsafe { l.0.as_ptr().add(off).cast::<f32>().read_unaligned() })
}

/// `2P` weight rows (`S`-byte blocks, `P` pairs) × `T` packed tokens; `out[p][h][t]` is row
/// `2p + h`, token `t`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn tile<const S: usize, const P: usize, const T: usize>(
    nb: usize,
    w: [(&[u8], &[u8]); P],
    a: [&[Line]; T],
    dec: impl Fn(&[u8; S], &[u8; S]) -> (__m512i, __m512),
) -> [[[f32; T]; 2]; P] {
    let xs = w.map(|(r0, r1)| (blocks::<S>(r0, nb), blocks::<S>(r1, nb)));
    let mut acc = [[_mm512_setzero_ps(); T]; P];
    // Plain loops throughout: `array::from_fn` is not always inlined, and an out-of-line call
    // returns the registers through memory.
    for b in 0..nb {
        let mut wx = [(_mm512_setzero_si512(), _mm512_setzero_ps()); P];
        for (p, v) in wx.iter_mut().enumerate() {
            *v = dec(&xs[p].0[b], &xs[p].1[b]);
        }
        let (m, off) = (b / 2, 32 * (b % 2));
        for t in 0..T {
            let l = &a[t][m * LINES..m * LINES + LINES];
            let y = bcast_half(&l[0], off);
            let init = bcast_half(&l[1], off);
            let dy = bcast_f32(&l[2], off);
            for p in 0..P {
                let q = _mm512_dpbusd_epi32(init, wx[p].0, y);
                let d = _mm512_mul_ps(wx[p].1, dy);
                acc[p][t] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(q), acc[p][t]);
            }
        }
    }
    let mut out = [[[0f32; T]; 2]; P];
    for (o, a) in out.iter_mut().zip(&acc) {
        for (t, &v) in a.iter().enumerate() {
            let lo = _mm512_castps512_ps256(v);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
            o[0][t] = hsum_ps(lo);
            o[1][t] = hsum_ps(hi);
        }
    }
    out
}

/// Tokens per tile.
const TT: usize = 4;

/// Rows × tokens in 8 × 4 tiles (2-row / 1-token tiles for the edges).
///
/// # Safety
/// The CPU must support the features above; `w` holds `n_rows` rows of `cols` values, `a` holds
/// `n_tokens * lines_per_token(cols)` lines packed for this type, and `out` points to
/// `(n_tokens - 1) * stride + n_rows` writable floats no other thread writes (element
/// `t * stride + r` receives row `r`, token `t`).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm<const S: usize>(
    cols: usize,
    w: &[u8],
    n_rows: usize,
    a: &[Line],
    n_tokens: usize,
    out: *mut f32,
    stride: usize,
    dec: impl Fn(&[u8; S], &[u8; S]) -> (__m512i, __m512) + Copy,
) {
    let nb = cols / 32;
    let rb = nb * S;
    let lpt = lines_per_token(cols);
    let row = |r: usize| &w[r * rb..(r + 1) * rb];
    let pair = |r: usize| (row(r), row((r + 1).min(n_rows - 1)));
    let tok = |t: usize| &a[t * lpt..(t + 1) * lpt];
    let put = |r: usize, t: usize, v: f32| {
        if r < n_rows {
            // SAFETY: r < n_rows and t < n_tokens keep the index inside `out` (caller
            // contract).
            unsafe { *out.add(t * stride + r) = v };
        }
    };
    let mut t = 0;
    while t < n_tokens {
        let full_t = t + TT <= n_tokens;
        let mut r = 0;
        while r < n_rows {
            let eight_r = r + 8 <= n_rows;
            match (eight_r, full_t) {
                (true, true) => {
                    let v = tile::<S, 4, TT>(
                        nb,
                        core::array::from_fn(|i| pair(r + 2 * i)),
                        core::array::from_fn(|i| tok(t + i)),
                        dec,
                    );
                    for (p, vp) in v.iter().enumerate() {
                        for (h, vr) in vp.iter().enumerate() {
                            for (k, &x) in vr.iter().enumerate() {
                                put(r + 2 * p + h, t + k, x);
                            }
                        }
                    }
                }
                (false, true) => {
                    let v =
                        tile::<S, 1, TT>(nb, [pair(r)], core::array::from_fn(|i| tok(t + i)), dec);
                    for (h, vr) in v[0].iter().enumerate() {
                        for (k, &x) in vr.iter().enumerate() {
                            put(r + h, t + k, x);
                        }
                    }
                }
                (true, false) => {
                    let v = tile::<S, 4, 1>(
                        nb,
                        core::array::from_fn(|i| pair(r + 2 * i)),
                        [tok(t)],
                        dec,
                    );
                    for (p, vp) in v.iter().enumerate() {
                        for (h, vr) in vp.iter().enumerate() {
                            put(r + 2 * p + h, t, vr[0]);
                        }
                    }
                }
                (false, false) => {
                    let v = tile::<S, 1, 1>(nb, [pair(r)], [tok(t)], dec);
                    for (h, vr) in v[0].iter().enumerate() {
                        put(r + h, t, vr[0]);
                    }
                }
            }
            r += if eight_r { 8 } else { 2 };
        }
        t += if full_t { TT } else { 1 };
    }
}

/// [`gemm`] for Q4_0 weights.
///
/// # Safety
/// As [`gemm`].
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn gemm_q4_0(
    cols: usize,
    w: &[u8],
    n_rows: usize,
    a: &[Line],
    n_tokens: usize,
    out: *mut f32,
    stride: usize,
) {
    // SAFETY: forwarded caller contract.
    unsafe {
        gemm::<{ q4_0::SIZE }>(cols, w, n_rows, a, n_tokens, out, stride, |x, y| {
            dec_q4_0(x, y)
        })
    }
}

/// [`gemm`] for Q5_0 weights.
///
/// # Safety
/// As [`gemm`].
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn gemm_q5_0(
    cols: usize,
    w: &[u8],
    n_rows: usize,
    a: &[Line],
    n_tokens: usize,
    out: *mut f32,
    stride: usize,
) {
    // SAFETY: forwarded caller contract.
    unsafe {
        gemm::<{ q5_0::SIZE }>(cols, w, n_rows, a, n_tokens, out, stride, |x, y| {
            dec_q5_0(x, y)
        })
    }
}

/// [`gemm`] for Q8_0 weights.
///
/// # Safety
/// As [`gemm`].
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn gemm_q8_0(
    cols: usize,
    w: &[u8],
    n_rows: usize,
    a: &[Line],
    n_tokens: usize,
    out: *mut f32,
    stride: usize,
) {
    // SAFETY: forwarded caller contract.
    unsafe {
        gemm::<{ q8_0::SIZE }>(cols, w, n_rows, a, n_tokens, out, stride, |x, y| {
            dec_q8_0(x, y)
        })
    }
}

/// Adds the GEMMs for Q4_0 / Q5_0 / Q8_0 to a table already holding the
/// [`crate::Isa::Avx512Vnni`] kernels (whose 1×1 dots they reproduce).
///
/// # Safety
/// The CPU must support every feature in this module's `target_feature` string.
pub(crate) unsafe fn install(t: &mut crate::table::Table) {
    use crate::table::Gemm;
    use hanlin_gguf::GgmlType as T;
    let gemms: [(T, Gemm); 3] = [
        (
            T::Q4_0,
            Gemm {
                pack: pack_q4_0,
                run: gemm_q4_0,
            },
        ),
        (
            T::Q5_0,
            Gemm {
                pack: pack_q5_0,
                run: gemm_q5_0,
            },
        ),
        (
            T::Q8_0,
            Gemm {
                pack: pack_q8_0,
                run: gemm_q8_0,
            },
        ),
    ];
    for (ty, g) in gemms {
        t.set_gemm(ty, g);
    }
}
