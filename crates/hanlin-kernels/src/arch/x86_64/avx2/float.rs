//! AVX2 dots for F32, F16 (F16C) and BF16 rows, 32 elements per step in four accumulators.

use super::{hsum_ps, ld128, ld_ps};
use crate::arch::generic;
use core::arch::x86_64::*;

/// Eight bf16 (16 bytes) widened to f32 by shifting into the high half.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn ld_bf16(b: &[u8; 16]) -> __m256 {
    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(ld128(b))))
}

/// Eight f16 (16 bytes) widened to f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn ld_f16(b: &[u8; 16]) -> __m256 {
    _mm256_cvtph_ps(ld128(b))
}

/// The shared loop: `E` bytes per element, `load` widens one 8-element chunk; the tail of
/// fewer than 8 elements goes to the scalar kernel `tail`.
macro_rules! float_dot {
    ($n:expr, $w:expr, $a:expr, $e:literal, $load:ident, $tail:path) => {{
        const CH: usize = 8 * $e;
        let (n, w, a) = ($n, $w, $a);
        let main = n - n % 8;
        let (wc, _) = w[..main * $e].as_chunks::<CH>();
        let (ac, _) = a[..main * $e].as_chunks::<CH>();
        let mut acc = [_mm256_setzero_ps(); 4];
        let (w4, wr) = wc.as_chunks::<4>();
        let (a4, ar) = ac.as_chunks::<4>();
        for (x, y) in w4.iter().zip(a4) {
            for k in 0..4 {
                acc[k] = _mm256_fmadd_ps($load(&x[k]), $load(&y[k]), acc[k]);
            }
        }
        for (k, (x, y)) in wr.iter().zip(ar).enumerate() {
            acc[k] = _mm256_fmadd_ps($load(x), $load(y), acc[k]);
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        hsum_ps(sum) + $tail(n - main, &w[main * $e..], &a[main * $e..])
    }};
}

/// F32 weights · F32 activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_f32(n: usize, w: &[u8], a: &[u8]) -> f32 {
    float_dot!(n, w, a, 4, ld_ps, generic::float::dot_f32)
}

/// F16 weights · F16 activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_f16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    float_dot!(n, w, a, 2, ld_f16, generic::float::dot_f16)
}

/// BF16 weights · BF16 activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_bf16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    float_dot!(n, w, a, 2, ld_bf16, generic::float::dot_bf16)
}
