//! AVX2 dots for the 32-element formats: one block per 256-bit register.
//!
//! One 8-lane accumulator takes `fma(d_x · d_y, lanes)` per block, ggml's order exactly (so
//! the result is bit-identical to the scalar kernels and to llama.cpp); the integer part of
//! each block is exact.
//!
//! These loops are bound by the shuffle port, not by arithmetic: converting two f16 scales and
//! broadcasting their product costs five shuffle-port µops per 32 values. Q4_0 / Q5_0 / Q8_0
//! therefore convert the scales of four blocks at once and broadcast each product from memory
//! (a load, not a shuffle).

use super::{
    bytes_from_bits_32, bytes_from_nibbles_32, fp16, hsum_ps, ld256, mul_sum_i8_pairs,
    mul_sum_us8_pairs,
};
use crate::layout::{blocks, field, q4_0, q4_1, q5_0, q5_1, q8_0, q8_1, u16_at, u32_at};
use core::arch::x86_64::*;

/// The f16 at byte `O` of four consecutive blocks, as f32 (one conversion for four).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn f16x4<const O: usize, const N: usize>(b: &[[u8; N]; 4]) -> __m128 {
    let bits = u16_at::<O, N>(&b[0]) as u64
        | (u16_at::<O, N>(&b[1]) as u64) << 16
        | (u16_at::<O, N>(&b[2]) as u64) << 32
        | (u16_at::<O, N>(&b[3]) as u64) << 48;
    _mm_cvtph_ps(_mm_cvtsi64_si128(bits as i64))
}

/// The `d` scales (f16 at byte 0) of four consecutive blocks.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn d4<const N: usize>(b: &[[u8; N]; 4]) -> __m128 {
    f16x4::<0, N>(b)
}

/// Lanes of `v` in memory, so a later `_mm256_broadcast_ss` is a load.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn spill4(v: __m128) -> [f32; 4] {
    let mut out = [0f32; 4];
    // SAFETY: `out` is 16 writable bytes; storeu has no alignment requirement.
    unsafe { _mm_storeu_ps(out.as_mut_ptr(), v) };
    out
}

/// Dot of weight blocks holding signed byte values (Q4_0, Q5_0, Q8_0: f16 `d` at byte 0)
/// with Q8_0 activations; `vals` decodes one weight block `x` into 32 i8 values. One 8-lane
/// accumulator takes `fma(d_x · d_y, lanes)` block by block, as ggml's `ggml_vec_dot_*_q8_0`
/// and llamafile's tinyBLAS do, and the 1×4 tile reproduces.
macro_rules! signed_blocks {
    ($n:expr, $w:expr, $a:expr, $size:expr, |$x:ident| $vals:expr) => {{
        let nb = $n / 32;
        let xs = blocks::<{ $size }>($w, nb);
        let ys = blocks::<{ q8_0::SIZE }>($a, nb);
        let mut acc = _mm256_setzero_ps();
        let (xg, xr) = xs.as_chunks::<4>();
        let (yg, yr) = ys.as_chunks::<4>();
        for (x4, y4) in xg.iter().zip(yg) {
            let d = spill4(_mm_mul_ps(d4(x4), d4(y4)));
            for k in 0..4 {
                let $x = &x4[k];
                let p = mul_sum_i8_pairs($vals, ld256(field::<2, 32, 34>(&y4[k])));
                let dk = _mm256_broadcast_ss(&d[k]);
                acc = _mm256_fmadd_ps(dk, _mm256_cvtepi32_ps(p), acc);
            }
        }
        for ($x, y) in xr.iter().zip(yr) {
            let d = fp16(u16_at::<0, { $size }>($x)) * fp16(u16_at::<0, 34>(y));
            let p = mul_sum_i8_pairs($vals, ld256(field::<2, 32, 34>(y)));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc);
        }
        hsum_ps(acc)
    }};
}

/// Dot of Q4_1 / Q5_1 weights (f16 `d` @0, `m` @2; unsigned values from `vals`) with Q8_1
/// activations (f16 `d` @0, `s` @2): one 8-lane accumulator of `fma(d_x · d_y, lanes)` plus
/// the scalar `Σ m_x · s_y` (fused, as GCC compiles ggml's loop), added at the end.
macro_rules! offset_blocks {
    ($n:expr, $w:expr, $a:expr, $size:expr, |$x:ident| $vals:expr) => {{
        let nb = $n / 32;
        let xs = blocks::<{ $size }>($w, nb);
        let ys = blocks::<{ q8_1::SIZE }>($a, nb);
        let mut acc = _mm256_setzero_ps();
        let mut summs = 0f32;
        for ($x, y) in xs.iter().zip(ys) {
            summs = fp16(u16_at::<2, { $size }>($x)).mul_add(fp16(u16_at::<2, 36>(y)), summs);
            let d = fp16(u16_at::<0, { $size }>($x)) * fp16(u16_at::<0, 36>(y));
            let p = mul_sum_us8_pairs($vals, ld256(field::<4, 32, 36>(y)));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc);
        }
        hsum_ps(acc) + summs
    }};
}

/// Signed Q4_0 block values minus 8, as 32 bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q4_0_values(x: &[u8; q4_0::SIZE]) -> __m256i {
    _mm256_sub_epi8(
        bytes_from_nibbles_32(field::<2, 16, 18>(x)),
        _mm256_set1_epi8(8),
    )
}

/// Signed Q5_0 block values (nibble | fifth bit) minus 16, as 32 bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q5_0_values(x: &[u8; q5_0::SIZE]) -> __m256i {
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
    signed_blocks!(n, w, a, q4_0::SIZE, |x| q4_0_values(x))
}

/// Q4_1 weights · Q8_1 activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q4_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    offset_blocks!(n, w, a, q4_1::SIZE, |x| bytes_from_nibbles_32(field::<
        4,
        16,
        20,
    >(x)))
}

/// Q5_0 weights · Q8_0 activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q5_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    signed_blocks!(n, w, a, q5_0::SIZE, |x| q5_0_values(x))
}

/// Q5_1 weights · Q8_1 activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q5_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    offset_blocks!(n, w, a, q5_1::SIZE, |x| {
        let hi = _mm256_and_si256(
            bytes_from_bits_32(u32_at::<4, 24>(x)),
            _mm256_set1_epi8(0x10),
        );
        _mm256_or_si256(bytes_from_nibbles_32(field::<8, 16, 24>(x)), hi)
    })
}

/// Q8_0 weights · Q8_0 activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    signed_blocks!(n, w, a, q8_0::SIZE, |x| ld256(field::<2, 32, 34>(x)))
}
