//! AVX2 dots for F32, F16 (F16C) and BF16 rows. F32 and BF16: 32 elements per step in four
//! accumulators; F16: ggml's AVX-512 order emulated with pairs of 8-lane registers.

use super::{fp16, hsum_ps, ld128, ld_ps};
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

/// Sixteen f16 lanes of ggml's AVX-512 accumulators, as two 8-lane halves.
type Acc16 = [__m256; 2];

/// ggml's `_mm512_reduce_add_ps` (GCC's expansion) of 16 lanes held as two halves: the halves
/// added, then `hsum_float_8`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn reduce16(v: Acc16) -> f32 {
    hsum_ps(_mm256_add_ps(v[1], v[0]))
}

/// `(a0 + a2) + (a1 + a3)` lane-wise: the first step of ggml's `GGML_F32Cx16_REDUCE`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn fold4(a: [Acc16; 4]) -> Acc16 {
    std::array::from_fn(|h| {
        _mm256_add_ps(
            _mm256_add_ps(a[0][h], a[2][h]),
            _mm256_add_ps(a[1][h], a[3][h]),
        )
    })
}

/// F16 weights · F16 activations in the order of ggml's AVX-512 `ggml_vec_dot_f16`, bit for
/// bit (see `generic::float::dot_f16`): four 16-lane accumulators over 64-element steps.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_f16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let np = n & !63;
    let (wc, _) = w[..np * 2].as_chunks::<128>();
    let (ac, _) = a[..np * 2].as_chunks::<128>();
    let mut acc = [[_mm256_setzero_ps(); 2]; 4];
    for (x, y) in wc.iter().zip(ac) {
        let (x, _) = x.as_chunks::<16>();
        let (y, _) = y.as_chunks::<16>();
        for (k, (x, y)) in x.iter().zip(y).enumerate() {
            acc[k / 2][k % 2] = _mm256_fmadd_ps(ld_f16(x), ld_f16(y), acc[k / 2][k % 2]);
        }
    }
    let mut sum = f64::from(reduce16(fold4(acc)));
    let (wt, at) = (&w[np * 2..n * 2], &a[np * 2..n * 2]);
    for (x, y) in wt.as_chunks::<2>().0.iter().zip(at.as_chunks::<2>().0) {
        sum += f64::from(fp16(u16::from_le_bytes(*x)) * fp16(u16::from_le_bytes(*y)));
    }
    sum as f32
}

/// BF16 weights · BF16 activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_bf16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    float_dot!(n, w, a, 2, ld_bf16, generic::float::dot_bf16)
}
