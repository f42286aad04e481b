//! Scalar dots for F32, F16 and BF16 rows.
//!
//! Eight independent f32 lanes keep the loop vectorisable on any target and bound rounding
//! growth; ggml's scalar path sums in f64, so results agree to float tolerance, not bits.

use crate::layout::blocks;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
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

/// Elements converted per batch in [`dot_f16`].
const F16_BATCH: usize = 64;

/// `src` little-endian f16 bytes widened into `dst`, using half's bulk conversion (hardware
/// F16C / FP16 when the CPU has it; per-element conversion checks for it every time).
#[inline(always)]
fn widen_f16(src: &[[u8; 2]], dst: &mut [f32]) {
    let mut bits = [0u16; F16_BATCH];
    for (b, s) in bits.iter_mut().zip(src) {
        *b = u16::from_le_bytes(*s);
    }
    let halves = bits[..src.len()].reinterpret_cast::<f16>();
    halves.convert_to_f32_slice(&mut dst[..src.len()]);
}

/// F16 weights · F16 activations.
pub(crate) fn dot_f16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (w, a) = (blocks::<2>(w, n), blocks::<2>(a, n));
    let mut sum = 0.0f32;
    let (mut wf, mut af) = ([0f32; F16_BATCH], [0f32; F16_BATCH]);
    for (wc, ac) in w.chunks(F16_BATCH).zip(a.chunks(F16_BATCH)) {
        widen_f16(wc, &mut wf);
        widen_f16(ac, &mut af);
        sum += dot_lanes(wc.len(), |i| wf[i] * af[i]);
    }
    sum
}

/// BF16 weights · BF16 activations.
pub(crate) fn dot_bf16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (w, a) = (blocks::<2>(w, n), blocks::<2>(a, n));
    dot_lanes(n, |i| {
        bf16::from_le_bytes(w[i]).to_f32() * bf16::from_le_bytes(a[i]).to_f32()
    })
}
