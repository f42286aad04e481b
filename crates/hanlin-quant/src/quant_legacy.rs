//! Reference quantizers for the 32-element formats (`quantize_row_q{4,5,8}_{0,1}_ref`).
//!
//! These truncate `x + 8.5` style offsets or use `roundf` exactly as ggml does; note that ggml's
//! SIMD `quantize_row_q8_0` rounds ties to even instead, so only the `_ref` results are matched.

use half::f16;

use crate::blocks::{Block, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1};
use crate::{QK8_0, QK8_1};

/// The value with the largest magnitude (first one on ties), as `q4_0` / `q5_0` pick it.
fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// Minimum and maximum as ggml computes them (starting from `±FLT_MAX`).
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// `1/d`, or 0 for a zero scale.
fn inv(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// `quantize_row_q4_0_ref` for one block.
pub(crate) fn quantize_q4_0(x: &[f32]) -> BlockQ4_0 {
    let d = signed_absmax(x) / -8.0;
    let id = inv(d);
    let mut qs = [0u8; 16];
    for (j, q) in qs.iter_mut().enumerate() {
        // `(int8_t)(v + 8.5f)` truncates toward zero; `as i8` does the same in range.
        let xi0 = ((x[j] * id + 8.5) as i8).min(15) as u8;
        let xi1 = ((x[j + 16] * id + 8.5) as i8).min(15) as u8;
        *q = xi0 | (xi1 << 4);
    }
    BlockQ4_0 {
        d: f16::from_f32(d),
        qs,
    }
}

/// `quantize_row_q4_1_ref` for one block.
pub(crate) fn quantize_q4_1(x: &[f32]) -> BlockQ4_1 {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inv(d);
    let mut qs = [0u8; 16];
    for (j, q) in qs.iter_mut().enumerate() {
        let xi0 = (((x[j] - min) * id + 0.5) as i8).min(15) as u8;
        let xi1 = (((x[j + 16] - min) * id + 0.5) as i8).min(15) as u8;
        *q = xi0 | (xi1 << 4);
    }
    BlockQ4_1 {
        d: f16::from_f32(d),
        m: f16::from_f32(min),
        qs,
    }
}

/// `quantize_row_q5_0_ref` for one block.
pub(crate) fn quantize_q5_0(x: &[f32]) -> BlockQ5_0 {
    let d = signed_absmax(x) / -16.0;
    let id = inv(d);
    let mut qs = [0u8; 16];
    let mut qh = 0u32;
    for (j, q) in qs.iter_mut().enumerate() {
        let xi0 = ((x[j] * id + 16.5) as i8).min(31) as u8;
        let xi1 = ((x[j + 16] * id + 16.5) as i8).min(31) as u8;
        *q = (xi0 & 0x0f) | ((xi1 & 0x0f) << 4);
        qh |= u32::from((xi0 & 0x10) >> 4) << j;
        qh |= u32::from((xi1 & 0x10) >> 4) << (j + 16);
    }
    BlockQ5_0 {
        d: f16::from_f32(d),
        qh: qh.to_le_bytes(),
        qs,
    }
}

/// `quantize_row_q5_1_ref` for one block.
pub(crate) fn quantize_q5_1(x: &[f32]) -> BlockQ5_1 {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inv(d);
    let mut qs = [0u8; 16];
    let mut qh = 0u32;
    for (j, q) in qs.iter_mut().enumerate() {
        // No clamp here in ggml: `(uint8_t)(v + 0.5f)`.
        let xi0 = ((x[j] - min) * id + 0.5) as u8;
        let xi1 = ((x[j + 16] - min) * id + 0.5) as u8;
        *q = (xi0 & 0x0f) | ((xi1 & 0x0f) << 4);
        qh |= u32::from((xi0 & 0x10) >> 4) << j;
        qh |= u32::from((xi1 & 0x10) >> 4) << (j + 16);
    }
    BlockQ5_1 {
        d: f16::from_f32(d),
        m: f16::from_f32(min),
        qh: qh.to_le_bytes(),
        qs,
    }
}

/// Absolute maximum as `MAX(amax, fabsf(v))`.
fn absmax(x: &[f32]) -> f32 {
    x.iter()
        .fold(0f32, |a, &v| if a > v.abs() { a } else { v.abs() })
}

/// `quantize_row_q8_0_ref` for one block.
pub(crate) fn quantize_q8_0(x: &[f32]) -> BlockQ8_0 {
    let d = absmax(x) / 127.0;
    let id = inv(d);
    let mut qs = [0i8; QK8_0];
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = (v * id).round() as i8;
    }
    BlockQ8_0 {
        d: f16::from_f32(d),
        qs,
    }
}

/// `quantize_row_q8_1_ref` for one block.
fn quantize_q8_1(x: &[f32]) -> BlockQ8_1 {
    let d = absmax(x) / 127.0;
    let id = inv(d);
    let mut qs = [0i8; QK8_1];
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = (v * id).round() as i8;
    }
    let sum: i32 = qs.iter().map(|&q| i32::from(q)).sum();
    BlockQ8_1 {
        d: f16::from_f32(d),
        s: f16::from_f32(sum as f32 * d),
        qs,
    }
}

/// Q8_0 activations as ggml's x86 SIMD `quantize_row_q8_0` makes them — what llama.cpp runs
/// on every AVX machine: scale by `127/amax` (not `1/d`) and round half to even. The two
/// differ from the `_ref` rounding on a few elements per row, which is enough to change
/// greedy outputs, so activations use this flavour everywhere (every ISA agrees with it).
///
/// # Panics
/// If `src.len()` is not a multiple of 32 or `dst` is not exactly `src.len() / 32 * 34` bytes.
pub fn quantize_row_q8_0_x86(src: &[f32], dst: &mut [u8]) {
    assert_lengths::<BlockQ8_0>(src, dst);
    quantize_blocks(src, dst, |x| {
        let amax = absmax(x);
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut qs = [0i8; QK8_0];
        for (q, &v) in qs.iter_mut().zip(x) {
            *q = (v * id).round_ties_even() as i8;
        }
        BlockQ8_0 {
            d: f16::from_f32(amax / 127.0),
            qs,
        }
    });
}

/// Q8_1 activations as ggml's x86 SIMD `quantize_row_q8_1` makes them (see
/// [`quantize_row_q8_0_x86`]); `s = d * Σq` in f32 before rounding to f16.
///
/// # Panics
/// If `src.len()` is not a multiple of 32 or `dst` is not exactly `src.len() / 32 * 36` bytes.
pub fn quantize_row_q8_1_x86(src: &[f32], dst: &mut [u8]) {
    assert_lengths::<BlockQ8_1>(src, dst);
    quantize_blocks(src, dst, |x| {
        let amax = absmax(x);
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut qs = [0i8; QK8_1];
        for (q, &v) in qs.iter_mut().zip(x) {
            *q = (v * id).round_ties_even() as i8;
        }
        let sum: i32 = qs.iter().map(|&q| i32::from(q)).sum();
        BlockQ8_1 {
            d: f16::from_f32(d),
            s: f16::from_f32(d * sum as f32),
            qs,
        }
    });
}

/// Quantizes a row block by block with `f`; the caller has checked the lengths.
pub(crate) fn quantize_blocks<B: Block>(src: &[f32], dst: &mut [u8], f: fn(&[f32]) -> B) {
    for (x, out) in src.chunks_exact(B::QK).zip(dst.chunks_exact_mut(B::SIZE)) {
        f(x).write(out);
    }
}

/// Panics unless `src` is whole blocks of `B` and `dst` exactly their size.
fn assert_lengths<B: Block>(src: &[f32], dst: &[u8]) {
    assert!(
        src.len().is_multiple_of(B::QK),
        "{}: {} floats is not whole blocks",
        B::TYPE,
        src.len()
    );
    assert_eq!(
        dst.len(),
        src.len() / B::QK * B::SIZE,
        "{}: destination bytes",
        B::TYPE
    );
}

/// Quantizes activations to Q8_0 exactly like ggml's `quantize_row_q8_0_ref` (`roundf`, i.e.
/// ties away from zero).
///
/// # Panics
/// If `src.len()` is not a multiple of 32 or `dst` is not exactly `src.len() / 32 * 34` bytes
/// (a caller bug, not bad data).
pub fn quantize_row_q8_0(src: &[f32], dst: &mut [u8]) {
    assert_lengths::<BlockQ8_0>(src, dst);
    quantize_blocks(src, dst, quantize_q8_0);
}

/// Quantizes activations to Q8_1 exactly like ggml's `quantize_row_q8_1_ref`.
///
/// # Panics
/// If `src.len()` is not a multiple of 32 or `dst` is not exactly `src.len() / 32 * 36` bytes.
pub fn quantize_row_q8_1(src: &[f32], dst: &mut [u8]) {
    assert_lengths::<BlockQ8_1>(src, dst);
    quantize_blocks(src, dst, quantize_q8_1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_rounds_ties_away_from_zero() {
        // amax 127 gives d = 1 exactly, so the quants are roundf of the inputs.
        let mut x = [0f32; 32];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -2.5;
        x[3] = 0.5;
        let b = quantize_q8_0(&x);
        assert_eq!(&b.qs[..4], &[127, 3, -3, 1]);
        assert_eq!(b.d.to_f32(), 1.0);
    }

    #[test]
    #[should_panic(expected = "Q8_1")]
    fn q8_1_rejects_partial_blocks() {
        quantize_row_q8_1(&[0.0; 31], &mut [0u8; 36]);
    }
}
