//! Scalar dots for the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0).
//!
//! Each block is summed in exact integer arithmetic and scaled once, as ggml's `*_generic`.

use crate::layout::{blocks, field, q4_0, q4_1, q5_0, q5_1, q8_0, q8_1, u16_at, u32_at};
use half::f16;

#[inline(always)]
fn fp16(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// Q4_0 weights · Q8_0 activations.
pub(crate) fn dot_q4_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    let mut sum = 0.0f32;
    for (x, y) in blocks::<{ q4_0::SIZE }>(w, nb)
        .iter()
        .zip(blocks::<{ q8_0::SIZE }>(a, nb))
    {
        let qs = field::<2, 16, 18>(x);
        let q8 = field::<2, 32, 34>(y);
        let mut isum = 0i32;
        for j in 0..16 {
            let v0 = (qs[j] & 0xF) as i32 - 8;
            let v1 = (qs[j] >> 4) as i32 - 8;
            isum += v0 * q8[j] as i8 as i32 + v1 * q8[j + 16] as i8 as i32;
        }
        sum += isum as f32 * (fp16(u16_at::<0, 18>(x)) * fp16(u16_at::<0, 34>(y)));
    }
    sum
}

/// Q4_1 weights · Q8_1 activations.
pub(crate) fn dot_q4_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    let mut sum = 0.0f32;
    for (x, y) in blocks::<{ q4_1::SIZE }>(w, nb)
        .iter()
        .zip(blocks::<{ q8_1::SIZE }>(a, nb))
    {
        let qs = field::<4, 16, 20>(x);
        let q8 = field::<4, 32, 36>(y);
        let mut isum = 0i32;
        for j in 0..16 {
            let v0 = (qs[j] & 0xF) as i32;
            let v1 = (qs[j] >> 4) as i32;
            isum += v0 * q8[j] as i8 as i32 + v1 * q8[j + 16] as i8 as i32;
        }
        let (dx, mx) = (fp16(u16_at::<0, 20>(x)), fp16(u16_at::<2, 20>(x)));
        let (dy, sy) = (fp16(u16_at::<0, 36>(y)), fp16(u16_at::<2, 36>(y)));
        sum += isum as f32 * (dx * dy) + mx * sy;
    }
    sum
}

/// Q5_0 weights · Q8_0 activations.
pub(crate) fn dot_q5_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    let mut sum = 0.0f32;
    for (x, y) in blocks::<{ q5_0::SIZE }>(w, nb)
        .iter()
        .zip(blocks::<{ q8_0::SIZE }>(a, nb))
    {
        let qh = u32_at::<2, 22>(x);
        let qs = field::<6, 16, 22>(x);
        let q8 = field::<2, 32, 34>(y);
        let mut isum = 0i32;
        for j in 0..16 {
            let h0 = ((qh >> j) & 1) << 4;
            let h1 = ((qh >> (j + 16)) & 1) << 4;
            let v0 = ((qs[j] & 0xF) as u32 | h0) as i32 - 16;
            let v1 = ((qs[j] >> 4) as u32 | h1) as i32 - 16;
            isum += v0 * q8[j] as i8 as i32 + v1 * q8[j + 16] as i8 as i32;
        }
        sum += isum as f32 * (fp16(u16_at::<0, 22>(x)) * fp16(u16_at::<0, 34>(y)));
    }
    sum
}

/// Q5_1 weights · Q8_1 activations.
pub(crate) fn dot_q5_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    let mut sum = 0.0f32;
    for (x, y) in blocks::<{ q5_1::SIZE }>(w, nb)
        .iter()
        .zip(blocks::<{ q8_1::SIZE }>(a, nb))
    {
        let qh = u32_at::<4, 24>(x);
        let qs = field::<8, 16, 24>(x);
        let q8 = field::<4, 32, 36>(y);
        let mut isum = 0i32;
        for j in 0..16 {
            let h0 = ((qh >> j) & 1) << 4;
            let h1 = ((qh >> (j + 16)) & 1) << 4;
            let v0 = ((qs[j] & 0xF) as u32 | h0) as i32;
            let v1 = ((qs[j] >> 4) as u32 | h1) as i32;
            isum += v0 * q8[j] as i8 as i32 + v1 * q8[j + 16] as i8 as i32;
        }
        let (dx, mx) = (fp16(u16_at::<0, 24>(x)), fp16(u16_at::<2, 24>(x)));
        let (dy, sy) = (fp16(u16_at::<0, 36>(y)), fp16(u16_at::<2, 36>(y)));
        sum += isum as f32 * (dx * dy) + mx * sy;
    }
    sum
}

/// Q8_0 weights · Q8_0 activations.
pub(crate) fn dot_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    let mut sum = 0.0f32;
    for (x, y) in blocks::<{ q8_0::SIZE }>(w, nb)
        .iter()
        .zip(blocks::<{ q8_0::SIZE }>(a, nb))
    {
        let qx = field::<2, 32, 34>(x);
        let qy = field::<2, 32, 34>(y);
        let isum: i32 = qx
            .iter()
            .zip(qy)
            .map(|(&p, &q)| p as i8 as i32 * q as i8 as i32)
            .sum();
        sum += isum as f32 * (fp16(u16_at::<0, 34>(x)) * fp16(u16_at::<0, 34>(y)));
    }
    sum
}
