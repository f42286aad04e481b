//! AVX2 dots for the 32-element formats: one block per 256-bit register.
//!
//! Two accumulators per loop hide the FMA latency; the integer part of each block is exact, so
//! only float summation order differs from the scalar reference.

use super::{
    bytes_from_bits_32, bytes_from_nibbles_32, fp16, hsum_ps, ld256, mul_sum_i8_pairs,
    mul_sum_us8_pairs,
};
use crate::layout::{blocks, field, q4_0, q4_1, q5_0, q5_1, q8_0, q8_1, u16_at, u32_at};
use core::arch::x86_64::*;

/// Sums `d * p` over paired blocks with two accumulators so consecutive FMAs don't wait on
/// each other; the body maps one `(x, y)` block pair to `(d, p)` as `__m256` values.
macro_rules! fma_blocks {
    ($xs:expr, $ys:expr, |$x:ident, $y:ident| $body:expr) => {{
        let (xs, ys) = ($xs, $ys);
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut it = xs.iter().zip(ys);
        loop {
            let Some(($x, $y)) = it.next() else { break };
            let (d, p) = $body;
            acc0 = _mm256_fmadd_ps(d, p, acc0);
            let Some(($x, $y)) = it.next() else { break };
            let (d, p) = $body;
            acc1 = _mm256_fmadd_ps(d, p, acc1);
        }
        hsum_ps(_mm256_add_ps(acc0, acc1))
    }};
}

/// Signed Q4_0 block values minus 8, as 32 bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn q4_0_values(x: &[u8; q4_0::SIZE]) -> __m256i {
    _mm256_sub_epi8(
        bytes_from_nibbles_32(field::<2, 16, 18>(x)),
        _mm256_set1_epi8(8),
    )
}

/// Signed Q5_0 block values (nibble | fifth bit) minus 16, as 32 bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn q5_0_values(x: &[u8; q5_0::SIZE]) -> __m256i {
    let qx = bytes_from_nibbles_32(field::<6, 16, 22>(x));
    // 0xF0 where the fifth bit is clear turns nibble n into the i8 value n - 16.
    let hi = _mm256_andnot_si256(
        bytes_from_bits_32(u32_at::<2, 22>(x)),
        _mm256_set1_epi8(0xF0u8 as i8),
    );
    _mm256_or_si256(qx, hi)
}

/// Q4_0 weights · Q8_0 activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q4_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    let (xs, ys) = (
        blocks::<{ q4_0::SIZE }>(w, nb),
        blocks::<{ q8_0::SIZE }>(a, nb),
    );
    fma_blocks!(xs, ys, |x, y| {
        let d = _mm256_set1_ps(fp16(u16_at::<0, 18>(x)) * fp16(u16_at::<0, 34>(y)));
        let p = mul_sum_i8_pairs(q4_0_values(x), ld256(field::<2, 32, 34>(y)));
        (d, _mm256_cvtepi32_ps(p))
    })
}

/// Q4_1 weights · Q8_1 activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q4_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    let (xs, ys) = (
        blocks::<{ q4_1::SIZE }>(w, nb),
        blocks::<{ q8_1::SIZE }>(a, nb),
    );
    let summs: f32 = xs
        .iter()
        .zip(ys)
        .map(|(x, y)| fp16(u16_at::<2, 20>(x)) * fp16(u16_at::<2, 36>(y)))
        .sum();
    let dots = fma_blocks!(xs, ys, |x, y| {
        let d = _mm256_set1_ps(fp16(u16_at::<0, 20>(x)) * fp16(u16_at::<0, 36>(y)));
        let qx = bytes_from_nibbles_32(field::<4, 16, 20>(x));
        let p = mul_sum_us8_pairs(qx, ld256(field::<4, 32, 36>(y)));
        (d, _mm256_cvtepi32_ps(p))
    });
    dots + summs
}

/// Q5_0 weights · Q8_0 activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q5_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    let (xs, ys) = (
        blocks::<{ q5_0::SIZE }>(w, nb),
        blocks::<{ q8_0::SIZE }>(a, nb),
    );
    fma_blocks!(xs, ys, |x, y| {
        let d = _mm256_set1_ps(fp16(u16_at::<0, 22>(x)) * fp16(u16_at::<0, 34>(y)));
        let p = mul_sum_i8_pairs(q5_0_values(x), ld256(field::<2, 32, 34>(y)));
        (d, _mm256_cvtepi32_ps(p))
    })
}

/// Q5_1 weights · Q8_1 activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q5_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    let (xs, ys) = (
        blocks::<{ q5_1::SIZE }>(w, nb),
        blocks::<{ q8_1::SIZE }>(a, nb),
    );
    let summs: f32 = xs
        .iter()
        .zip(ys)
        .map(|(x, y)| fp16(u16_at::<2, 24>(x)) * fp16(u16_at::<2, 36>(y)))
        .sum();
    let dots = fma_blocks!(xs, ys, |x, y| {
        let d = _mm256_set1_ps(fp16(u16_at::<0, 24>(x)) * fp16(u16_at::<0, 36>(y)));
        let qx = bytes_from_nibbles_32(field::<8, 16, 24>(x));
        let hi = _mm256_and_si256(
            bytes_from_bits_32(u32_at::<4, 24>(x)),
            _mm256_set1_epi8(0x10),
        );
        let p = mul_sum_us8_pairs(_mm256_or_si256(qx, hi), ld256(field::<4, 32, 36>(y)));
        (d, _mm256_cvtepi32_ps(p))
    });
    dots + summs
}

/// Q8_0 weights · Q8_0 activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    let (xs, ys) = (
        blocks::<{ q8_0::SIZE }>(w, nb),
        blocks::<{ q8_0::SIZE }>(a, nb),
    );
    fma_blocks!(xs, ys, |x, y| {
        let d = _mm256_set1_ps(fp16(u16_at::<0, 34>(x)) * fp16(u16_at::<0, 34>(y)));
        let p = mul_sum_i8_pairs(ld256(field::<2, 32, 34>(x)), ld256(field::<2, 32, 34>(y)));
        (d, _mm256_cvtepi32_ps(p))
    })
}
