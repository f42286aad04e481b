//! AVX-512 VNNI kernels for packed Q4_0 and Q4_K matrices (`crate::packed`): 16 rows per zmm,
//! up to 4 tokens per pass over a group's weights.
//!
//! Q4_K: per sub-block of 32 values, eight `vpdpbusd` give each lane its row's exact
//! `Σ q · y`, `vpmulld` by the row's scale adds it to `isum`; the mins term is four
//! `vpdpwssd` of the rows' min pairs with the token's sub-block sums. Both totals are exact
//! integers, then one FMA each, as in the scalar kernel.
//!
//! Per 32-value block and token: eight `vpdpbusd` (unsigned nibbles × the token's quants,
//! each activation dword broadcast from memory) starting from the token's `−8 · Σ y`, which
//! gives every lane its row's exact block sum; then one conversion, one scale product
//! `d_w · d_y` and one FMA into the row's accumulator: the scalar kernel's operations, lane by
//! lane, so the results are the same bits.

use crate::layout::q8_0;
use crate::packed::{
    run_tiles, PackedArgs, GROUP, Q4K_D, Q4K_DMIN, Q4K_MINS, Q4K_SCALES, Q4_0_UNIT, Q4_K_UNIT,
    Q5_0_UNIT, Q8_0_UNIT,
};
use core::arch::x86_64::*;

/// Tokens per pass over a group's weights.
const TILE: usize = 4;

/// How far ahead single-token kernels prefetch weights.
const PREFETCH: usize = 4096;

/// Prefetches half `half` (0 or 1) of the `unit`-byte stretch [`PREFETCH`] bytes past `unit`.
///
/// Single tokens read every weight once, in order; on this class of CPU the hardware
/// prefetchers alone leave a single core well short of the memory bandwidth (measured +35–45%
/// decode speed on Llama-shaped Q4_0 with it). A hint: addresses past the end are harmless.
#[inline(always)]
fn prefetch_ahead(unit: *const u8, half: usize, unit_bytes: usize) {
    let from = unit.wrapping_add(PREFETCH + half * unit_bytes / 2);
    for l in 0..(unit_bytes / 2).div_ceil(64) {
        // SAFETY: prefetch never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(from.wrapping_add(64 * l).cast()) };
    }
}

/// f16 bits → f32, exactly.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn fp16(bits: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// The dword at byte `o` of `p`, in all 16 lanes.
///
/// # Safety
/// `p + o .. p + o + 4` must be readable.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn bcast(p: *const u8, o: usize) -> __m512i {
    // SAFETY: caller contract; unaligned read.
    _mm512_set1_epi32(unsafe { p.add(o).cast::<i32>().read_unaligned() })
}

/// `T` tokens from `t0` against group `g`.
///
/// # Safety
/// As [`q4_0x16`], with `t0 + T <= n_tokens` and `g` a group of the matrix.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<const T: usize>(a: &PackedArgs<'_>, g: usize, t0: usize) {
    let nb = a.cols / 32;
    let act_row = nb * q8_0::SIZE;
    let gw = &a.w[g * a.group_bytes..(g + 1) * a.group_bytes];
    let ys: [&[u8]; T] = std::array::from_fn(|t| &a.act[(t0 + t) * act_row..][..act_row]);
    let offs: [&[i32]; T] = std::array::from_fn(|t| &a.offs[(t0 + t) * nb..][..nb]);
    let m4 = _mm512_set1_epi8(0x0f);
    let mut acc = [_mm512_setzero_ps(); T];
    for b in 0..nb {
        let unit = &gw[(b / 2) * Q4_0_UNIT..][..Q4_0_UNIT];
        let half = b % 2;
        let qs = unit[half * 256..][..256].as_ptr();
        if T == 1 {
            prefetch_ahead(unit.as_ptr(), half, Q4_0_UNIT);
        }
        // SAFETY: `qs` has 256 readable bytes: four 64-byte loads.
        let w: [__m512i; 4] =
            std::array::from_fn(|k| unsafe { _mm512_loadu_si512(qs.add(64 * k).cast()) });
        let lo: [__m512i; 4] = std::array::from_fn(|k| _mm512_and_si512(w[k], m4));
        let hi: [__m512i; 4] =
            std::array::from_fn(|k| _mm512_and_si512(_mm512_srli_epi16::<4>(w[k]), m4));
        let sc = unit[512 + half * 32..][..32].as_ptr();
        // SAFETY: 32 readable bytes of f16 scales.
        let dw = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(sc.cast()) });
        for t in 0..T {
            let yb = &ys[t][b * q8_0::SIZE..][..q8_0::SIZE];
            let qa = yb[2..].as_ptr();
            let mut s0 = _mm512_set1_epi32(offs[t][b]);
            let mut s1 = _mm512_setzero_si512();
            // SAFETY: `qa` has 32 readable bytes; every offset + 4 stays inside them.
            unsafe {
                for k in 0..4 {
                    s0 = _mm512_dpbusd_epi32(s0, lo[k], bcast(qa, 4 * k));
                    s1 = _mm512_dpbusd_epi32(s1, hi[k], bcast(qa, 16 + 4 * k));
                }
            }
            let sum = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
            let d = _mm512_mul_ps(dw, _mm512_set1_ps(fp16(u16::from_le_bytes([yb[0], yb[1]]))));
            acc[t] = _mm512_fmadd_ps(sum, d, acc[t]);
        }
    }
    let valid = GROUP.min(a.rows - g * GROUP);
    let mask: __mmask16 = if valid == GROUP {
        !0
    } else {
        (1u16 << valid) - 1
    };
    for (t, acc) in acc.into_iter().enumerate() {
        // SAFETY: the first `valid` outputs of this group for token t0 + t lie inside `out`
        // (validated by the caller), and the caller owns them.
        unsafe { _mm512_mask_storeu_ps(a.out.add((t0 + t) * a.rows + g * GROUP), mask, acc) };
    }
}

/// `T` tokens from `t0` against group `g` of a packed Q4_K matrix.
///
/// # Safety
/// As [`q4_kx16`], with `t0 + T <= n_tokens` and `g` a group of the matrix.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_k<const T: usize>(a: &PackedArgs<'_>, g: usize, t0: usize) {
    let nsb = a.cols / 256;
    let act_row = nsb * 292;
    let gw = &a.w[g * a.group_bytes..(g + 1) * a.group_bytes];
    let ys: [&[u8]; T] = std::array::from_fn(|t| &a.act[(t0 + t) * act_row..][..act_row]);
    let offs: [&[i32]; T] = std::array::from_fn(|t| &a.offs[(t0 + t) * nsb * 4..][..nsb * 4]);
    let m4 = _mm512_set1_epi8(0x0f);
    let mut acc = [_mm512_setzero_ps(); T];
    let mut acc_min = [_mm512_setzero_ps(); T];
    for b in 0..nsb {
        let unit = gw[b * Q4_K_UNIT..][..Q4_K_UNIT].as_ptr();
        if T == 1 {
            prefetch_ahead(unit, 0, Q4_K_UNIT);
            prefetch_ahead(unit, 1, Q4_K_UNIT);
        }
        let mut isum = [_mm512_setzero_si512(); T];
        for j in 0..4 {
            // SAFETY: lines 8j..8j + 8 lie inside the unit's first 2048 bytes.
            let w: [__m512i; 8] = std::array::from_fn(|k| unsafe {
                _mm512_loadu_si512(unit.add((8 * j + k) * 64).cast())
            });
            let lo: [__m512i; 8] = std::array::from_fn(|k| _mm512_and_si512(w[k], m4));
            let hi: [__m512i; 8] =
                std::array::from_fn(|k| _mm512_and_si512(_mm512_srli_epi16::<4>(w[k]), m4));
            // SAFETY: 16 scale bytes per sub-block inside the unit.
            let (sc_lo, sc_hi) = unsafe {
                (
                    _mm512_cvtepu8_epi32(_mm_loadu_si128(unit.add(Q4K_SCALES + 32 * j).cast())),
                    _mm512_cvtepu8_epi32(_mm_loadu_si128(
                        unit.add(Q4K_SCALES + 32 * j + 16).cast(),
                    )),
                )
            };
            for t in 0..T {
                let qa = ys[t][b * 292 + 4 + 64 * j..][..64].as_ptr();
                let z = _mm512_setzero_si512();
                let (mut l0, mut l1, mut h0, mut h1) = (z, z, z, z);
                // SAFETY: `qa` has 64 readable bytes; every offset + 4 stays inside them.
                unsafe {
                    for k in (0..8).step_by(2) {
                        l0 = _mm512_dpbusd_epi32(l0, lo[k], bcast(qa, 4 * k));
                        l1 = _mm512_dpbusd_epi32(l1, lo[k + 1], bcast(qa, 4 * k + 4));
                        h0 = _mm512_dpbusd_epi32(h0, hi[k], bcast(qa, 32 + 4 * k));
                        h1 = _mm512_dpbusd_epi32(h1, hi[k + 1], bcast(qa, 36 + 4 * k));
                    }
                }
                let pl = _mm512_mullo_epi32(_mm512_add_epi32(l0, l1), sc_lo);
                let ph = _mm512_mullo_epi32(_mm512_add_epi32(h0, h1), sc_hi);
                isum[t] = _mm512_add_epi32(isum[t], _mm512_add_epi32(pl, ph));
            }
        }
        // SAFETY: the mins, d and dmin fields lie inside the unit.
        let (mins, dw, dminw) = unsafe {
            let mins: [__m512i; 4] = std::array::from_fn(|i| {
                _mm512_cvtepu8_epi16(_mm256_loadu_si256(unit.add(Q4K_MINS + 32 * i).cast()))
            });
            (
                mins,
                _mm512_cvtph_ps(_mm256_loadu_si256(unit.add(Q4K_D).cast())),
                _mm512_cvtph_ps(_mm256_loadu_si256(unit.add(Q4K_DMIN).cast())),
            )
        };
        for t in 0..T {
            let mut msum = _mm512_setzero_si512();
            for (i, m) in mins.iter().enumerate() {
                msum = _mm512_dpwssd_epi32(msum, *m, _mm512_set1_epi32(offs[t][4 * b + i]));
            }
            let yb = &ys[t][b * 292..][..4];
            let yd = _mm512_set1_ps(f32::from_le_bytes([yb[0], yb[1], yb[2], yb[3]]));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(dw, yd), acc[t]);
            acc_min[t] = _mm512_fmadd_ps(
                _mm512_cvtepi32_ps(msum),
                _mm512_mul_ps(dminw, yd),
                acc_min[t],
            );
        }
    }
    let valid = GROUP.min(a.rows - g * GROUP);
    let mask: __mmask16 = if valid == GROUP {
        !0
    } else {
        (1u16 << valid) - 1
    };
    for t in 0..T {
        let v = _mm512_sub_ps(acc[t], acc_min[t]);
        // SAFETY: the first `valid` outputs of this group for token t0 + t lie inside `out`
        // (validated by the caller), and the caller owns them.
        unsafe { _mm512_mask_storeu_ps(a.out.add((t0 + t) * a.rows + g * GROUP), mask, v) };
    }
}

/// Groups `g0..g1` of a packed Q4_K matrix for every token.
///
/// # Safety
/// The CPU must support AVX2, FMA, F16C, AVX-512 F/BW/VL and VNNI; `a` must satisfy
/// [`PackedArgs`]'s contract and no other thread may write these groups' rows.
pub(crate) unsafe fn q4_kx16(a: &PackedArgs<'_>, g0: usize, g1: usize) {
    // SAFETY: forwarded caller contract; the tiles handle TILE and 1 tokens.
    unsafe { run_tiles(a, g0, g1, TILE, tile_k::<TILE>, tile_k::<1>) }
}

/// Groups `g0..g1` of a packed Q4_0 matrix for every token.
///
/// # Safety
/// The CPU must support AVX2, FMA, F16C, AVX-512 F/BW/VL and VNNI; `a` must satisfy
/// [`PackedArgs`]'s contract and no other thread may write these groups' rows.
pub(crate) unsafe fn q4_0x16(a: &PackedArgs<'_>, g0: usize, g1: usize) {
    // SAFETY: forwarded caller contract; the tiles handle TILE and 1 tokens.
    unsafe { run_tiles(a, g0, g1, TILE, tile::<TILE>, tile::<1>) }
}

/// `T` tokens from `t0` against group `g` of a packed Q8_0 (`Q5 = false`) or Q5_0 (`Q5 = true`)
/// matrix: per block, lane `k` of every row is one `vpdpbusd` (from `−128 · Σ y` / `−16 · Σ y`
/// of the lane), and accumulator `k` takes `fma(f32(lane), d_x · d_y, acc_k)`; ggml's
/// `hsum_float_8` over the 8 accumulators at the end. Q5_0's 8 lines of unsigned 5-bit values
/// are rebuilt per block: nibbles, plus 16 where the line's byte mask says so.
///
/// # Safety
/// As [`q8_0x16`], with `t0 + T <= n_tokens` and `g` a group of the matrix.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_lanes<const T: usize, const Q5: bool>(a: &PackedArgs<'_>, g: usize, t0: usize) {
    let (unit_bytes, scales) = if Q5 {
        (Q5_0_UNIT, 640)
    } else {
        (Q8_0_UNIT, 1024)
    };
    let nb = a.cols / 32;
    let act_row = nb * q8_0::SIZE;
    let gw = &a.w[g * a.group_bytes..(g + 1) * a.group_bytes];
    let ys: [&[u8]; T] = std::array::from_fn(|t| &a.act[(t0 + t) * act_row..][..act_row]);
    let offs: [&[i32]; T] = std::array::from_fn(|t| &a.offs[(t0 + t) * nb * 8..][..nb * 8]);
    let (m4, bit5) = (_mm512_set1_epi8(0x0f), _mm512_set1_epi8(0x10));
    let mut acc = [[_mm512_setzero_ps(); 8]; T];
    for b in 0..nb {
        let unit = &gw[(b / 2) * unit_bytes..][..unit_bytes];
        let half = b % 2;
        if T == 1 {
            prefetch_ahead(unit.as_ptr(), half, unit_bytes);
        }
        let w: [__m512i; 8] = if Q5 {
            let qs = unit[half * 256..][..256].as_ptr();
            let masks = &unit[512 + half * 64..][..64];
            // SAFETY: `qs` has 256 readable bytes: four 64-byte loads.
            let raw: [__m512i; 4] =
                std::array::from_fn(|k| unsafe { _mm512_loadu_si512(qs.add(64 * k).cast()) });
            std::array::from_fn(|k| {
                let nib = if k < 4 {
                    _mm512_and_si512(raw[k], m4)
                } else {
                    _mm512_and_si512(_mm512_srli_epi16::<4>(raw[k - 4]), m4)
                };
                let mut m = [0u8; 8];
                m.copy_from_slice(&masks[8 * k..8 * k + 8]);
                _mm512_mask_add_epi8(nib, u64::from_le_bytes(m), nib, bit5)
            })
        } else {
            let qs = unit[half * 512..][..512].as_ptr();
            // SAFETY: `qs` has 512 readable bytes: eight 64-byte loads.
            std::array::from_fn(|k| unsafe { _mm512_loadu_si512(qs.add(64 * k).cast()) })
        };
        let sc = unit[scales + half * 32..][..32].as_ptr();
        // SAFETY: 32 readable bytes of f16 scales.
        let dw = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(sc.cast()) });
        for t in 0..T {
            let yb = &ys[t][b * q8_0::SIZE..][..q8_0::SIZE];
            let qa = yb[2..].as_ptr();
            let d = _mm512_mul_ps(dw, _mm512_set1_ps(fp16(u16::from_le_bytes([yb[0], yb[1]]))));
            let o = &offs[t][8 * b..][..8];
            for k in 0..8 {
                // SAFETY: `qa` has 32 readable bytes; 4k + 4 <= 32.
                let lane =
                    _mm512_dpbusd_epi32(_mm512_set1_epi32(o[k]), w[k], unsafe { bcast(qa, 4 * k) });
                acc[t][k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lane), d, acc[t][k]);
            }
        }
    }
    let valid = GROUP.min(a.rows - g * GROUP);
    let mask: __mmask16 = if valid == GROUP {
        !0
    } else {
        (1u16 << valid) - 1
    };
    for (t, acc) in acc.iter().enumerate() {
        let s: [__m512; 4] = std::array::from_fn(|k| _mm512_add_ps(acc[k + 4], acc[k]));
        let v = _mm512_add_ps(_mm512_add_ps(s[0], s[2]), _mm512_add_ps(s[1], s[3]));
        // SAFETY: the first `valid` outputs of this group for token t0 + t lie inside `out`
        // (validated by the caller), and the caller owns them.
        unsafe { _mm512_mask_storeu_ps(a.out.add((t0 + t) * a.rows + g * GROUP), mask, v) };
    }
}

/// Groups `g0..g1` of a packed Q8_0 matrix for every token.
///
/// # Safety
/// The CPU must support AVX2, FMA, F16C, AVX-512 F/BW/VL and VNNI; `a` must satisfy
/// [`PackedArgs`]'s contract and no other thread may write these groups' rows.
pub(crate) unsafe fn q8_0x16(a: &PackedArgs<'_>, g0: usize, g1: usize) {
    // SAFETY: forwarded caller contract; the tiles handle 2 and 1 tokens.
    unsafe { run_tiles(a, g0, g1, 2, tile_lanes::<2, false>, tile_lanes::<1, false>) }
}

/// Groups `g0..g1` of a packed Q5_0 matrix for every token.
///
/// # Safety
/// The CPU must support AVX2, FMA, F16C, AVX-512 F/BW/VL and VNNI; `a` must satisfy
/// [`PackedArgs`]'s contract and no other thread may write these groups' rows.
pub(crate) unsafe fn q5_0x16(a: &PackedArgs<'_>, g0: usize, g1: usize) {
    // SAFETY: forwarded caller contract; the tiles handle 2 and 1 tokens.
    unsafe { run_tiles(a, g0, g1, 2, tile_lanes::<2, true>, tile_lanes::<1, true>) }
}
