//! Scalar dots for the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), in the exact float
//! order of ggml's x86 kernels (`ggml_vec_dot_*` in `arch/x86/quants.c`, which llamafile's
//! tinyBLAS reproduces for batches): each block gives 8 exact i32 lanes (lane `k` = the
//! products of elements `4k..4k + 4`), lane `k` of one 8-wide accumulator takes
//! `fma(d_x · d_y, lane, acc)`, and [`hsum8`] reduces it at the end. (llama.cpp repacks Q4_0
//! matrices whose row count is a multiple of 8 and sums those per block instead; not
//! reproduced, see `docs/correctness.md`.)

use crate::layout::{blocks, field, q4_0, q4_1, q5_0, q5_1, q8_0, q8_1, u16_at, u32_at};
use half::f16;

#[inline(always)]
fn fp16(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// ggml's `hsum_float_8`: `(a[0..4] + a[4..8])`, then lanes `(0 + 2) + (1 + 3)`.
#[inline(always)]
pub(crate) fn hsum8(a: [f32; 8]) -> f32 {
    let t: [f32; 4] = std::array::from_fn(|k| a[k + 4] + a[k]);
    (t[0] + t[2]) + (t[1] + t[3])
}

/// `acc[k] = fma(d, lane[k], acc[k])` for the 8 lanes.
#[inline(always)]
pub(crate) fn fma_lanes(acc: &mut [f32; 8], d: f32, lanes: [i32; 8]) {
    for (a, l) in acc.iter_mut().zip(lanes) {
        *a = (l as f32).mul_add(d, *a);
    }
}

/// The 8 lanes of `Σ w_i · y_i` over one block of 32 values.
#[inline(always)]
fn lanes(w: [i32; 32], y: &[u8; 32]) -> [i32; 8] {
    std::array::from_fn(|k| (4 * k..4 * k + 4).map(|i| w[i] * y[i] as i8 as i32).sum())
}

/// Shared loop of the Q8_0-activation formats: `vals` decodes a weight block (`S` bytes, f16
/// `d` at byte 0) into its 32 signed values.
#[inline(always)]
fn q8_0_blocks<const S: usize>(
    n: usize,
    w: &[u8],
    a: &[u8],
    vals: impl Fn(&[u8; S]) -> [i32; 32],
) -> f32 {
    let nb = n / 32;
    let mut acc = [0f32; 8];
    for (x, y) in blocks::<S>(w, nb)
        .iter()
        .zip(blocks::<{ q8_0::SIZE }>(a, nb))
    {
        let d = fp16(u16_at::<0, S>(x)) * fp16(u16_at::<0, 34>(y));
        fma_lanes(&mut acc, d, lanes(vals(x), field::<2, 32, 34>(y)));
    }
    hsum8(acc)
}

/// Shared loop of the Q8_1-activation formats (f16 `d` @0, `m` @2): `fma(d_x · d_y, lanes)`
/// per block plus the scalar `Σ m_x · s_y`, fused as GCC compiles ggml's loop.
#[inline(always)]
fn q8_1_blocks<const S: usize>(
    n: usize,
    w: &[u8],
    a: &[u8],
    vals: impl Fn(&[u8; S]) -> [i32; 32],
) -> f32 {
    let nb = n / 32;
    let mut acc = [0f32; 8];
    let mut summs = 0f32;
    for (x, y) in blocks::<S>(w, nb)
        .iter()
        .zip(blocks::<{ q8_1::SIZE }>(a, nb))
    {
        summs = fp16(u16_at::<2, S>(x)).mul_add(fp16(u16_at::<2, 36>(y)), summs);
        let d = fp16(u16_at::<0, S>(x)) * fp16(u16_at::<0, 36>(y));
        fma_lanes(&mut acc, d, lanes(vals(x), field::<4, 32, 36>(y)));
    }
    hsum8(acc) + summs
}

/// Element `j` of a 4-bit block: low nibbles first, then high nibbles.
#[inline(always)]
fn nibble(qs: &[u8; 16], j: usize) -> i32 {
    if j < 16 {
        (qs[j] & 0xF) as i32
    } else {
        (qs[j - 16] >> 4) as i32
    }
}

/// Q4_0 weights · Q8_0 activations.
pub(crate) fn dot_q4_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    q8_0_blocks::<{ q4_0::SIZE }>(n, w, a, |x| {
        std::array::from_fn(|j| nibble(field::<2, 16, 18>(x), j) - 8)
    })
}

/// Q4_1 weights · Q8_1 activations.
pub(crate) fn dot_q4_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    q8_1_blocks::<{ q4_1::SIZE }>(n, w, a, |x| {
        std::array::from_fn(|j| nibble(field::<4, 16, 20>(x), j))
    })
}

/// Q5_0 weights · Q8_0 activations.
pub(crate) fn dot_q5_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    q8_0_blocks::<{ q5_0::SIZE }>(n, w, a, |x| {
        let qh = u32_at::<2, 22>(x);
        std::array::from_fn(|j| {
            (nibble(field::<6, 16, 22>(x), j) | (((qh >> j) & 1) << 4) as i32) - 16
        })
    })
}

/// Q5_1 weights · Q8_1 activations.
pub(crate) fn dot_q5_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    q8_1_blocks::<{ q5_1::SIZE }>(n, w, a, |x| {
        let qh = u32_at::<4, 24>(x);
        std::array::from_fn(|j| nibble(field::<8, 16, 24>(x), j) | (((qh >> j) & 1) << 4) as i32)
    })
}

/// Q8_0 weights · Q8_0 activations.
pub(crate) fn dot_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    q8_0_blocks::<{ q8_0::SIZE }>(n, w, a, |x| {
        let q = field::<2, 32, 34>(x);
        std::array::from_fn(|j| q[j] as i8 as i32)
    })
}
