//! Scalar activation quantizers, byte-for-byte hanlin-quant's activation flavour.
//!
//! Q8_0 / Q8_1 follow ggml's x86 SIMD quantizers (what llama.cpp runs on every AVX machine):
//! scale by `127 / amax` and round half to even, which differs from the `*_ref` code
//! (`1 / (amax / 127)`, `roundf`) on a few elements per row. Q8_K follows `quantize_row_q8_K_ref`.

use crate::layout::{blocks_mut, q8_0, q8_1, q8_k};
use half::{bf16, f16};

/// ggml's `nearest_int`: round half to even via the 1.5 * 2^23 trick.
#[inline(always)]
fn nearest_int(x: f32) -> i32 {
    let v = (x + 12_582_912.0).to_bits() as i32;
    (v & 0x007f_ffff) - 0x0040_0000
}

/// `127 / amax` of a block (0 for an all-zero block) and its `d = amax / 127`.
#[inline(always)]
fn q8_scales(x: &[f32]) -> (f32, f32) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    (id, amax / 127.0)
}

/// f32 → Q8_0 (`d = amax / 127`, `q = round_ties_even(x * 127 / amax)`).
pub(crate) fn quantize_q8_0(src: &[f32], dst: &mut [u8]) {
    let nb = src.len() / 32;
    for (x, y) in src
        .chunks_exact(32)
        .zip(blocks_mut::<{ q8_0::SIZE }>(dst, nb))
    {
        let (id, d) = q8_scales(x);
        y[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        for (q, &v) in y[2..].iter_mut().zip(x) {
            *q = (v * id).round_ties_even() as i8 as u8;
        }
    }
}

/// f32 → Q8_1 (Q8_0 plus `s = d * sum(q)`).
pub(crate) fn quantize_q8_1(src: &[f32], dst: &mut [u8]) {
    let nb = src.len() / 32;
    for (x, y) in src
        .chunks_exact(32)
        .zip(blocks_mut::<{ q8_1::SIZE }>(dst, nb))
    {
        let (id, d) = q8_scales(x);
        let mut sum = 0i32;
        for (q, &v) in y[4..].iter_mut().zip(x) {
            let r = (v * id).round_ties_even() as i8;
            sum += r as i32;
            *q = r as u8;
        }
        y[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        y[2..4].copy_from_slice(&f16::from_f32(d * sum as f32).to_le_bytes());
    }
}

/// f32 → Q8_K (`iscale = -127 / max` of largest magnitude, round half to even, bsums).
pub(crate) fn quantize_q8_k(src: &[f32], dst: &mut [u8]) {
    let nb = src.len() / 256;
    for (x, y) in src
        .chunks_exact(256)
        .zip(blocks_mut::<{ q8_k::SIZE }>(dst, nb))
    {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            y.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in y[4..260].iter_mut().zip(x) {
            *q = nearest_int(iscale * v).min(127) as i8 as u8;
        }
        for j in 0..16 {
            let s: i32 = y[4 + 16 * j..4 + 16 * j + 16]
                .iter()
                .map(|&q| q as i8 as i32)
                .sum();
            y[260 + 2 * j..262 + 2 * j].copy_from_slice(&(s as i16).to_le_bytes());
        }
        y[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

/// f32 → F16 (round to nearest even).
pub(crate) fn quantize_f16(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.iter().zip(blocks_mut::<2>(dst, src.len())) {
        *y = f16::from_f32(*x).to_le_bytes();
    }
}

/// f32 → BF16 (round to nearest even, NaN kept quiet), as ggml's `GGML_FP32_TO_BF16`.
pub(crate) fn quantize_bf16(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.iter().zip(blocks_mut::<2>(dst, src.len())) {
        *y = bf16::from_f32(*x).to_le_bytes();
    }
}

/// f32 → F32 (a little-endian copy).
pub(crate) fn quantize_f32(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.iter().zip(blocks_mut::<4>(dst, src.len())) {
        *y = x.to_le_bytes();
    }
}
