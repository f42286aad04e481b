//! AVX2 dots for the K-quants against Q8_K, after ggml's x86 kernels.
//!
//! Per super-block everything up to the final scale is exact i32 arithmetic: `maddubs` of
//! unsigned weights by signed activations (never saturating for these ranges), then `madd` by
//! the sub-block scales. The mins term uses the activations' precomputed `bsums`. Q4_K and
//! Q6_K apply the scales in the float order llama.cpp uses on x86 (bit-identical to it and
//! to the scalar kernels); Q2_K, Q3_K and Q5_K follow ggml's structure loosely.

use super::{fp16, hsum_ps, hsum_ps128, ld128, ld256};
use crate::layout::{
    blocks, f32_at, field, q2_k, q3_k, q4_k, q5_k, q6_k, q8_k, u16_at, unpack_k4_scales,
    unpack_q3_k_scales,
};
use core::arch::x86_64::*;

/// Pattern `i` broadcasts i16 lane `i` of a 128-bit half to all 16 lanes (shuffle_epi8).
pub(crate) static K4_SHUF: [[u8; 32]; 8] = {
    let mut t = [[0u8; 32]; 8];
    let mut i = 0;
    while i < 8 {
        let mut b = 0;
        while b < 32 {
            t[i][b] = (2 * i + b % 2) as u8;
            b += 1;
        }
        i += 1;
    }
    t
};

/// Pattern `i`: i16 lane `2i` across the low 128 bits, lane `2i + 1` across the high 128 bits.
static Q3K_SHUF: [[u8; 32]; 4] = {
    let mut t = [[0u8; 32]; 4];
    let mut i = 0;
    while i < 4 {
        let mut b = 0;
        while b < 32 {
            t[i][b] = (4 * i + 2 * (b / 16) + b % 2) as u8;
            b += 1;
        }
        i += 1;
    }
    t
};

/// Pattern `i`: byte `2i` in bytes 0..8, byte `2i + 1` in bytes 8..16 (Q6_K's i8 scales).
static K6_SHUF: [[u8; 16]; 8] = {
    let mut t = [[0u8; 16]; 8];
    let mut i = 0;
    while i < 8 {
        let mut b = 0;
        while b < 16 {
            t[i][b] = (2 * i + b / 8) as u8;
            b += 1;
        }
        i += 1;
    }
    t
};

/// 32-byte chunk `j` of a K-quant byte field.
#[inline(always)]
pub(crate) fn chunk32<const N: usize>(s: &[u8; N], j: usize) -> &[u8; 32] {
    &s.as_chunks::<32>().0[j]
}

/// Q8_K block scale.
#[inline(always)]
pub(crate) fn q8k_d(y: &[u8; q8_k::SIZE]) -> f32 {
    f32_at::<0, 292>(y)
}

/// Q8_K quants.
#[inline(always)]
pub(crate) fn q8k_qs(y: &[u8; q8_k::SIZE]) -> &[u8; 256] {
    field::<4, 256, 292>(y)
}

/// Pairwise sums of the 16 `bsums`: the 8 per-32-element activation sums, as i16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q8k_sums32(y: &[u8; q8_k::SIZE]) -> __m128i {
    let s = ld256(field::<260, 32, 292>(y));
    _mm_hadd_epi16(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s))
}

/// Q4_K / Q5_K 6-bit scales (low 128 bits) and mins (high 128 bits) widened to i16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn k4_mins_and_scales(packed: &[u8; 12]) -> __m256i {
    let u = unpack_k4_scales(packed);
    _mm256_cvtepu8_epi16(_mm_set_epi32(
        u[3] as i32,
        u[2] as i32,
        u[1] as i32,
        u[0] as i32,
    ))
}

/// Folds one Q4_K super-block into `acc` = `[Σ d · isum, Σ dmin · msum, ·, ·]` in the order of
/// ggml's repacked `q4_K_8x8` kernels (what llama.cpp runs for Q4_K on AVX2 machines): the
/// exact totals of `sumi`'s 8 lanes and `msum`'s 4 lanes, then `fma(f32(total), scale, acc)`
/// with `d = d_x · d_y`, `dmin = dmin_x · d_y`. The result is `acc[0] − acc[1]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q4k_fold(acc: __m128, sumi: __m256i, msum: __m128i, d: f32, dmin: f32) -> __m128 {
    let s4 = _mm_add_epi32(
        _mm256_castsi256_si128(sumi),
        _mm256_extracti128_si256::<1>(sumi),
    );
    let h = _mm_hadd_epi32(s4, msum);
    let h = _mm_hadd_epi32(h, h);
    _mm_fmadd_ps(_mm_cvtepi32_ps(h), _mm_setr_ps(d, dmin, 0.0, 0.0), acc)
}

/// `acc[0] − acc[1]` of [`q4k_fold`]'s accumulator.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q4k_result(acc: __m128) -> f32 {
    _mm_cvtss_f32(_mm_sub_ss(acc, _mm_movehdup_ps(acc)))
}

/// Q4_K weights · Q8_K activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q4_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    let m4 = _mm256_set1_epi8(0xF);
    let mut acc = _mm_setzero_ps();
    for (x, y) in blocks::<{ q4_k::SIZE }>(w, nb)
        .iter()
        .zip(blocks::<{ q8_k::SIZE }>(a, nb))
    {
        let yd = q8k_d(y);
        let d = fp16(u16_at::<0, 144>(x)) * yd;
        let dmin = fp16(u16_at::<2, 144>(x)) * yd;
        let ms = k4_mins_and_scales(field::<4, 12, 144>(x));
        let prod = _mm_madd_epi16(_mm256_extracti128_si256::<1>(ms), q8k_sums32(y));
        let sc128 = _mm256_castsi256_si128(ms);
        let scales = _mm256_set_m128i(sc128, sc128);
        let qs = field::<16, 128, 144>(x);
        let q8 = q8k_qs(y);
        let mut sumi = _mm256_setzero_si256();
        for j in 0..4 {
            let scale_l = _mm256_shuffle_epi8(scales, ld256(&K4_SHUF[2 * j]));
            let scale_h = _mm256_shuffle_epi8(scales, ld256(&K4_SHUF[2 * j + 1]));
            let q4bits = ld256(chunk32(qs, j));
            let q4l = _mm256_and_si256(q4bits, m4);
            let q4h = _mm256_and_si256(_mm256_srli_epi16::<4>(q4bits), m4);
            let pl = _mm256_maddubs_epi16(q4l, ld256(chunk32(q8, 2 * j)));
            let ph = _mm256_maddubs_epi16(q4h, ld256(chunk32(q8, 2 * j + 1)));
            let pl = _mm256_madd_epi16(scale_l, pl);
            let ph = _mm256_madd_epi16(scale_h, ph);
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
        }
        acc = q4k_fold(acc, sumi, prod, d, dmin);
    }
    q4k_result(acc)
}

/// Q5_K weights · Q8_K activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q5_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    let m4 = _mm256_set1_epi8(0xF);
    let m16 = _mm256_set1_epi8(16);
    let mut acc = _mm256_setzero_ps();
    let mut acc_m = _mm_setzero_ps();
    for (x, y) in blocks::<{ q5_k::SIZE }>(w, nb)
        .iter()
        .zip(blocks::<{ q8_k::SIZE }>(a, nb))
    {
        let yd = q8k_d(y);
        let d = yd * fp16(u16_at::<0, 176>(x));
        let dmin = -yd * fp16(u16_at::<2, 176>(x));
        let ms = k4_mins_and_scales(field::<4, 12, 176>(x));
        let prod = _mm_madd_epi16(_mm256_extracti128_si256::<1>(ms), q8k_sums32(y));
        acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);
        let sc128 = _mm256_castsi256_si128(ms);
        let scales = _mm256_set_m128i(sc128, sc128);
        let hbits = ld256(field::<16, 32, 176>(x));
        let qs = field::<48, 128, 176>(x);
        let q8 = q8k_qs(y);
        let mut sumi = _mm256_setzero_si256();
        for j in 0..4 {
            let scale_l = _mm256_shuffle_epi8(scales, ld256(&K4_SHUF[2 * j]));
            let scale_h = _mm256_shuffle_epi8(scales, ld256(&K4_SHUF[2 * j + 1]));
            let q5bits = ld256(chunk32(qs, j));
            let mask_l = _mm256_set1_epi8((1u8 << (2 * j)) as i8);
            let mask_h = _mm256_set1_epi8((1u8 << (2 * j + 1)) as i8);
            let hl = _mm256_cmpeq_epi8(_mm256_and_si256(hbits, mask_l), mask_l);
            let hh = _mm256_cmpeq_epi8(_mm256_and_si256(hbits, mask_h), mask_h);
            let q5l = _mm256_or_si256(_mm256_and_si256(q5bits, m4), _mm256_and_si256(hl, m16));
            let q5h = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16::<4>(q5bits), m4),
                _mm256_and_si256(hh, m16),
            );
            let pl = _mm256_maddubs_epi16(q5l, ld256(chunk32(q8, 2 * j)));
            let ph = _mm256_maddubs_epi16(q5h, ld256(chunk32(q8, 2 * j + 1)));
            let pl = _mm256_madd_epi16(scale_l, pl);
            let ph = _mm256_madd_epi16(scale_h, ph);
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc) + hsum_ps128(acc_m)
}

/// The four 32-element groups of 6-bit Q6_K values (0..63) in one 128-element half `c`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q6_k_values(x: &[u8; q6_k::SIZE], c: usize) -> [__m256i; 4] {
    let m4 = _mm256_set1_epi8(0xF);
    let m2 = _mm256_set1_epi8(3);
    let ql = field::<0, 128, 210>(x);
    let qh = ld256(chunk32(field::<128, 64, 210>(x), c));
    let b1 = ld256(chunk32(ql, 2 * c));
    let b2 = ld256(chunk32(ql, 2 * c + 1));
    let h0 = _mm256_slli_epi16::<4>(_mm256_and_si256(qh, m2));
    let h1 = _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<2>(qh), m2));
    let h2 = _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<4>(qh), m2));
    let h3 = _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<6>(qh), m2));
    [
        _mm256_or_si256(_mm256_and_si256(b1, m4), h0),
        _mm256_or_si256(_mm256_and_si256(b2, m4), h1),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(b1), m4), h2),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(b2), m4), h3),
    ]
}

/// Q6_K scales for group `g` (0..8) of 32 elements: two i8 scales widened to 16 i16 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q6_k_scale(scales: __m128i, g: usize) -> __m256i {
    _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, ld128(&K6_SHUF[g])))
}

/// `-32 * sum(scale_g * bsum_g)`: Q6_K's constant offset of 32, folded through the
/// activations' 16-element sums so the main loop needs one `maddubs` per 32 values.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q6_k_offset(scales: __m128i, y: &[u8; q8_k::SIZE]) -> __m256i {
    let bs = ld256(field::<260, 32, 292>(y));
    let p = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scales), bs);
    _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32::<5>(p))
}

/// Q6_K weights · Q8_K activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q6_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    let mut acc = _mm256_setzero_ps();
    for (x, y) in blocks::<{ q6_k::SIZE }>(w, nb)
        .iter()
        .zip(blocks::<{ q8_k::SIZE }>(a, nb))
    {
        let d = q8k_d(y) * fp16(u16_at::<208, 210>(x));
        let scales = ld128(field::<192, 16, 210>(x));
        let q8 = q8k_qs(y);
        let mut sumi = q6_k_offset(scales, y);
        for c in 0..2 {
            let q6 = q6_k_values(x, c);
            for (k, q) in q6.iter().enumerate() {
                let p = _mm256_maddubs_epi16(*q, ld256(chunk32(q8, 4 * c + k)));
                let p = _mm256_madd_epi16(q6_k_scale(scales, 4 * c + k), p);
                sumi = _mm256_add_epi32(sumi, p);
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc)
}

/// Q2_K weights · Q8_K activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q2_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    let m3 = _mm256_set1_epi8(3);
    let m4 = _mm_set1_epi8(0xF);
    let mut acc = _mm256_setzero_ps();
    for (x, y) in blocks::<{ q2_k::SIZE }>(w, nb)
        .iter()
        .zip(blocks::<{ q8_k::SIZE }>(a, nb))
    {
        let yd = q8k_d(y);
        let d = yd * fp16(u16_at::<80, 84>(x));
        let dmin = -yd * fp16(u16_at::<82, 84>(x));
        let ms = ld128(field::<0, 16, 84>(x));
        let mins = _mm256_cvtepi8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(ms), m4));
        let prod = _mm256_madd_epi16(mins, ld256(field::<260, 32, 292>(y)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prod), acc);
        let all = _mm256_cvtepi8_epi16(_mm_and_si128(ms, m4));
        let (lo, hi) = (
            _mm256_castsi256_si128(all),
            _mm256_extracti128_si256::<1>(all),
        );
        let scales = [_mm256_set_m128i(lo, lo), _mm256_set_m128i(hi, hi)];
        let qs = field::<16, 64, 84>(x);
        let q8 = q8k_qs(y);
        let mut sumi = _mm256_setzero_si256();
        for (c, sc) in scales.iter().enumerate() {
            let bits = ld256(chunk32(qs, c));
            let q2 = [
                _mm256_and_si256(bits, m3),
                _mm256_and_si256(_mm256_srli_epi16::<2>(bits), m3),
                _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m3),
                _mm256_and_si256(_mm256_srli_epi16::<6>(bits), m3),
            ];
            for (s, q) in q2.iter().enumerate() {
                let p = _mm256_maddubs_epi16(*q, ld256(chunk32(q8, 4 * c + s)));
                let sc = _mm256_shuffle_epi8(*sc, ld256(&Q3K_SHUF[s]));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(sc, p));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc)
}

/// Q3_K weights · Q8_K activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q3_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    let m3 = _mm256_set1_epi8(3);
    let four = _mm256_set1_epi8(4);
    let mut acc = _mm256_setzero_ps();
    for (x, y) in blocks::<{ q3_k::SIZE }>(w, nb)
        .iter()
        .zip(blocks::<{ q8_k::SIZE }>(a, nb))
    {
        let d = q8k_d(y) * fp16(u16_at::<108, 110>(x));
        let sc8 = unpack_q3_k_scales(field::<96, 12, 110>(x));
        let sc8: [u8; 16] = sc8.map(|v| v as u8);
        let all = _mm256_cvtepi8_epi16(ld128(&sc8));
        let (lo, hi) = (
            _mm256_castsi256_si128(all),
            _mm256_extracti128_si256::<1>(all),
        );
        let scales = [_mm256_set_m128i(lo, lo), _mm256_set_m128i(hi, hi)];
        let hbits = ld256(field::<0, 32, 110>(x));
        let qs = field::<32, 64, 110>(x);
        let q8 = q8k_qs(y);
        let mut sumi = _mm256_setzero_si256();
        for (c, sc) in scales.iter().enumerate() {
            let bits = ld256(chunk32(qs, c));
            let q3 = [
                _mm256_and_si256(bits, m3),
                _mm256_and_si256(_mm256_srli_epi16::<2>(bits), m3),
                _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m3),
                _mm256_and_si256(_mm256_srli_epi16::<6>(bits), m3),
            ];
            for (s, q) in q3.iter().enumerate() {
                let mask = _mm256_set1_epi8((1u8 << (4 * c + s)) as i8);
                // 4 where the high bit is clear: value = low bits - 4 * (1 - bit).
                let h = _mm256_andnot_si256(
                    _mm256_cmpeq_epi8(_mm256_and_si256(hbits, mask), mask),
                    four,
                );
                let q8v = ld256(chunk32(q8, 4 * c + s));
                let p =
                    _mm256_sub_epi16(_mm256_maddubs_epi16(*q, q8v), _mm256_maddubs_epi16(h, q8v));
                let sc = _mm256_shuffle_epi8(*sc, ld256(&Q3K_SHUF[s]));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(sc, p));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc)
}
