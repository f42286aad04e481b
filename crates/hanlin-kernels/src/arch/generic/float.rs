//! Scalar dots for F32, F16 and BF16 rows.
//!
//! F16 follows ggml's AVX-512 summation order bit for bit (see [`dot_f16`]). F32 and BF16 use
//! eight independent f32 lanes, which keep the loop vectorisable on any target and bound
//! rounding growth; ggml's scalar path sums those in f64, so they agree to float tolerance.

use crate::layout::blocks;
use half::{bf16, f16};

const LANES: usize = 8;

#[inline(always)]
fn dot_lanes(n: usize, mut prod: impl FnMut(usize) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let main = n - n % LANES;
    for i in (0..main).step_by(LANES) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += prod(i + l);
        }
    }
    let mut tail = 0.0f32;
    for i in main..n {
        tail += prod(i);
    }
    acc.iter().sum::<f32>() + tail
}

/// F32 weights · F32 activations.
pub(crate) fn dot_f32(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (w, a) = (blocks::<4>(w, n), blocks::<4>(a, n));
    dot_lanes(n, |i| f32::from_le_bytes(w[i]) * f32::from_le_bytes(a[i]))
}

/// ggml's `_mm512_reduce_add_ps` as GCC expands it: the two 8-lane halves added, then
/// [`hsum8`](super::legacy::hsum8).
#[inline(always)]
pub(crate) fn reduce16(v: &[f32; 16]) -> f32 {
    super::legacy::hsum8(std::array::from_fn(|i| v[8 + i] + v[i]))
}

/// F16 weights · F16 activations in the order of ggml's AVX-512 `ggml_vec_dot_f16` (what
/// llama.cpp runs for single-token F16 products, attention included): four 16-lane
/// accumulators over 64-element steps (`fma(x, y, acc)`), reduced `(0 + 2) + (1 + 3)` and by
/// [`reduce16`], then the tail of fewer than 64 elements added in f64.
pub(crate) fn dot_f16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (w, a) = (blocks::<2>(w, n), blocks::<2>(a, n));
    let f = |b: [u8; 2]| f16::from_le_bytes(b).to_f32();
    let np = n & !63;
    let mut acc = [[0f32; 16]; 4];
    for i in (0..np).step_by(64) {
        for (j, acc) in acc.iter_mut().enumerate() {
            for (l, acc) in acc.iter_mut().enumerate() {
                let k = i + 16 * j + l;
                *acc = f(w[k]).mul_add(f(a[k]), *acc);
            }
        }
    }
    let v: [f32; 16] = std::array::from_fn(|l| (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]));
    let mut sum = f64::from(reduce16(&v));
    for k in np..n {
        sum += f64::from(f(w[k]) * f(a[k]));
    }
    sum as f32
}

/// BF16 weights · BF16 activations.
pub(crate) fn dot_bf16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (w, a) = (blocks::<2>(w, n), blocks::<2>(a, n));
    dot_lanes(n, |i| {
        bf16::from_le_bytes(w[i]).to_f32() * bf16::from_le_bytes(a[i]).to_f32()
    })
}
