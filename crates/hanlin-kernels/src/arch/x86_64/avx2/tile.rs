//! 1×4 tiles for batched matmul: one weight row against four activation rows.
//!
//! Unpacking a weight block (nibbles, high bits, scales) costs as much as multiplying it, so
//! during prefill each block is decoded once and reused for four tokens. Each column is
//! bit-identical to the 1×1 kernel: same integer lanes, same float steps in the same order.

use super::kquants::{
    chunk32, k4_mins_and_scales, q4k_fold, q4k_result, q6_k_offset, q6_k_scale, q6_k_values, q8k_d,
    q8k_qs, q8k_sums32,
};
use super::legacy::{d4, q4_0_values, q5_0_values, spill4};
use super::{fp16, hsum_ps, ld128, ld256, mul_sum_us8_pairs};
use crate::layout::{blocks, field, q4_0, q4_k, q5_0, q6_k, q8_0, q8_k, u16_at};
use core::arch::x86_64::*;

/// Shared loop of the 32-element formats whose values are signed bytes: `vals` decodes a
/// weight block into 32 i8 values. Scales and accumulator order (one 8-lane accumulator per
/// token) follow `legacy::signed_blocks`, so each column is bit-identical to the 1×1 kernel.
macro_rules! dot4_signed {
    ($n:expr, $w:expr, $a:expr, $size:expr, |$x:ident| $vals:expr) => {{
        let nb = $n / 32;
        let xs = blocks::<{ $size }>($w, nb);
        let ys = $a.map(|s| blocks::<{ q8_0::SIZE }>(s, nb));
        let mut acc = [_mm256_setzero_ps(); 4];
        let (xg, xr) = xs.as_chunks::<4>();
        let yg = ys.map(|y| y.as_chunks::<4>().0);
        for (g, x4) in xg.iter().enumerate() {
            let dx = d4(x4);
            let d: [[f32; 4]; 4] = std::array::from_fn(|t| spill4(_mm_mul_ps(dx, d4(&yg[t][g]))));
            for k in 0..4 {
                let $x = &x4[k];
                let qx = $vals;
                let ax = _mm256_sign_epi8(qx, qx);
                for t in 0..4 {
                    let sy = _mm256_sign_epi8(ld256(field::<2, 32, 34>(&yg[t][g][k])), qx);
                    let p = mul_sum_us8_pairs(ax, sy);
                    let dk = _mm256_broadcast_ss(&d[t][k]);
                    acc[t] = _mm256_fmadd_ps(dk, _mm256_cvtepi32_ps(p), acc[t]);
                }
            }
        }
        let base = xg.len() * 4;
        for (k, $x) in xr.iter().enumerate() {
            let qx = $vals;
            let ax = _mm256_sign_epi8(qx, qx);
            let dx = fp16(u16_at::<0, { $size }>($x));
            for t in 0..4 {
                let y = &ys[t][base + k];
                let sy = _mm256_sign_epi8(ld256(field::<2, 32, 34>(y)), qx);
                let p = mul_sum_us8_pairs(ax, sy);
                let d = _mm256_set1_ps(dx * fp16(u16_at::<0, 34>(y)));
                acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc[t]);
            }
        }
        acc.map(|a| hsum_ps(a))
    }};
}

/// Q4_0 weights · four Q8_0 activation rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot4_q4_0(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
    dot4_signed!(n, w, a, q4_0::SIZE, |x| q4_0_values(x))
}

/// Q5_0 weights · four Q8_0 activation rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot4_q5_0(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
    dot4_signed!(n, w, a, q5_0::SIZE, |x| q5_0_values(x))
}

/// Q8_0 weights · four Q8_0 activation rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot4_q8_0(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
    dot4_signed!(n, w, a, q8_0::SIZE, |x| ld256(field::<2, 32, 34>(x)))
}

/// Q4_K weights · four Q8_K activation rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot4_q4_k(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
    let nb = n / 256;
    let xs = blocks::<{ q4_k::SIZE }>(w, nb);
    let ys = a.map(|s| blocks::<{ q8_k::SIZE }>(s, nb));
    let m4 = _mm256_set1_epi8(0xF);
    let mut acc = [_mm_setzero_ps(); 4];
    for (i, x) in xs.iter().enumerate() {
        let y: [&[u8; q8_k::SIZE]; 4] = [&ys[0][i], &ys[1][i], &ys[2][i], &ys[3][i]];
        let dx = fp16(u16_at::<0, 144>(x));
        let dminx = fp16(u16_at::<2, 144>(x));
        let ms = k4_mins_and_scales(field::<4, 12, 144>(x));
        let mins = _mm256_extracti128_si256::<1>(ms);
        let sc128 = _mm256_castsi256_si128(ms);
        let scales = _mm256_set_m128i(sc128, sc128);
        let qs = field::<16, 128, 144>(x);
        let mut sumi = [_mm256_setzero_si256(); 4];
        for j in 0..4 {
            let scale_l = _mm256_shuffle_epi8(scales, ld256(&K4_SHUF_L[j]));
            let scale_h = _mm256_shuffle_epi8(scales, ld256(&K4_SHUF_H[j]));
            let q4bits = ld256(chunk32(qs, j));
            let q4l = _mm256_and_si256(q4bits, m4);
            let q4h = _mm256_and_si256(_mm256_srli_epi16::<4>(q4bits), m4);
            for t in 0..4 {
                let q8 = q8k_qs(y[t]);
                let pl = _mm256_maddubs_epi16(q4l, ld256(chunk32(q8, 2 * j)));
                let ph = _mm256_maddubs_epi16(q4h, ld256(chunk32(q8, 2 * j + 1)));
                let s = _mm256_add_epi32(
                    _mm256_madd_epi16(scale_l, pl),
                    _mm256_madd_epi16(scale_h, ph),
                );
                sumi[t] = _mm256_add_epi32(sumi[t], s);
            }
        }
        for t in 0..4 {
            let prod = _mm_madd_epi16(mins, q8k_sums32(y[t]));
            let yd = q8k_d(y[t]);
            acc[t] = q4k_fold(acc[t], sumi[t], prod, dx * yd, dminx * yd);
        }
    }
    acc.map(|v| q4k_result(v))
}

/// Shuffle patterns broadcasting scale `2j` (low nibbles) and `2j + 1` (high nibbles).
static K4_SHUF_L: [[u8; 32]; 4] = k4_shuf(0);
static K4_SHUF_H: [[u8; 32]; 4] = k4_shuf(1);

const fn k4_shuf(odd: usize) -> [[u8; 32]; 4] {
    let mut t = [[0u8; 32]; 4];
    let mut j = 0;
    while j < 4 {
        let mut b = 0;
        while b < 32 {
            t[j][b] = (2 * (2 * j + odd) + b % 2) as u8;
            b += 1;
        }
        j += 1;
    }
    t
}

/// Q6_K weights · four Q8_K activation rows.
///
/// The `-32` offset is folded into the activations' `bsums` (one `madd` per block and row)
/// instead of a second `maddubs` per 32 values.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot4_q6_k(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
    let nb = n / 256;
    let xs = blocks::<{ q6_k::SIZE }>(w, nb);
    let ys = a.map(|s| blocks::<{ q8_k::SIZE }>(s, nb));
    let mut acc = [_mm256_setzero_ps(); 4];
    for (i, x) in xs.iter().enumerate() {
        let y: [&[u8; q8_k::SIZE]; 4] = [&ys[0][i], &ys[1][i], &ys[2][i], &ys[3][i]];
        let dx = fp16(u16_at::<208, 210>(x));
        let scales = ld128(field::<192, 16, 210>(x));
        let mut sumi = y.map(|yt| q6_k_offset(scales, yt));
        for c in 0..2 {
            let q6 = q6_k_values(x, c);
            for (k, q) in q6.iter().enumerate() {
                let sc = q6_k_scale(scales, 4 * c + k);
                for t in 0..4 {
                    let q8v = ld256(chunk32(q8k_qs(y[t]), 4 * c + k));
                    let p = _mm256_madd_epi16(sc, _mm256_maddubs_epi16(*q, q8v));
                    sumi[t] = _mm256_add_epi32(sumi[t], p);
                }
            }
        }
        for t in 0..4 {
            let d = _mm256_set1_ps(dx * q8k_d(y[t]));
            acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi[t]), acc[t]);
        }
    }
    acc.map(|v| hsum_ps(v))
}
