//! Scalar dots for the K-quants (256-element super-blocks) against Q8_K activations.
//!
//! Integer sums per super-block are exact. Q4_K and Q6_K apply the scales in the float order
//! of the kernels llama.cpp runs on x86 (see each function); Q2_K, Q3_K and Q5_K scale once
//! per super-block, which differs from ggml's 8-lane accumulation only in rounding.

use super::legacy::{fma_lanes, hsum8};
use crate::layout::{
    blocks, f32_at, field, q2_k, q3_k, q4_k, q5_k, q6_k, q8_k, u16_at, unpack_k4_scales,
    unpack_q3_k_scales,
};
use half::f16;

#[inline(always)]
fn fp16(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// The 16 `bsums` of a Q8_K block.
#[inline(always)]
fn bsums(y: &[u8; q8_k::SIZE]) -> [i32; 16] {
    let raw = field::<260, 32, 292>(y);
    std::array::from_fn(|j| i16::from_le_bytes([raw[2 * j], raw[2 * j + 1]]) as i32)
}

/// Sum of `q[l] * q8[l]` for 32 unsigned weights and signed activations.
#[inline(always)]
fn dot32(q: &[u8; 32], q8: &[u8]) -> i32 {
    q.iter()
        .zip(q8)
        .map(|(&a, &b)| a as i32 * b as i8 as i32)
        .sum()
}

/// Q2_K weights · Q8_K activations.
pub(crate) fn dot_q2_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    let mut sum = 0.0f32;
    for (x, y) in blocks::<{ q2_k::SIZE }>(w, nb)
        .iter()
        .zip(blocks::<{ q8_k::SIZE }>(a, nb))
    {
        let sc = field::<0, 16, 84>(x);
        let qs = field::<16, 64, 84>(x);
        let q8 = field::<4, 256, 292>(y);
        let bs = bsums(y);
        let summs: i32 = (0..16).map(|j| bs[j] * (sc[j] >> 4) as i32).sum();
        let mut isum = 0i32;
        for k in 0..2 {
            for s in 0..4 {
                for h in 0..2 {
                    let is = 8 * k + 2 * s + h;
                    let base = 128 * k + 32 * s + 16 * h;
                    let part: i32 = (0..16)
                        .map(|l| {
                            let q = (qs[32 * k + 16 * h + l] >> (2 * s)) & 3;
                            q as i32 * q8[base + l] as i8 as i32
                        })
                        .sum();
                    isum += (sc[is] & 0xF) as i32 * part;
                }
            }
        }
        let yd = f32_at::<0, 292>(y);
        let dall = yd * fp16(u16_at::<80, 84>(x));
        let dmin = yd * fp16(u16_at::<82, 84>(x));
        sum += dall * isum as f32 - dmin * summs as f32;
    }
    sum
}

/// Q3_K weights · Q8_K activations.
pub(crate) fn dot_q3_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    let mut sum = 0.0f32;
    for (x, y) in blocks::<{ q3_k::SIZE }>(w, nb)
        .iter()
        .zip(blocks::<{ q8_k::SIZE }>(a, nb))
    {
        let hm = field::<0, 32, 110>(x);
        let qs = field::<32, 64, 110>(x);
        let scales = unpack_q3_k_scales(field::<96, 12, 110>(x));
        let q8 = field::<4, 256, 292>(y);
        let mut isum = 0i32;
        for c in 0..2 {
            for s in 0..4 {
                let bit = 1u8 << (4 * c + s);
                for h in 0..2 {
                    let base = 128 * c + 32 * s + 16 * h;
                    let part: i32 = (0..16)
                        .map(|l| {
                            let li = 16 * h + l;
                            let q = ((qs[32 * c + li] >> (2 * s)) & 3) as i32;
                            let q = if hm[li] & bit != 0 { q } else { q - 4 };
                            q * q8[base + l] as i8 as i32
                        })
                        .sum();
                    isum += scales[base / 16] as i32 * part;
                }
            }
        }
        sum += fp16(u16_at::<108, 110>(x)) * f32_at::<0, 292>(y) * isum as f32;
    }
    sum
}

/// Q4_K weights · Q8_K activations, in the float order of ggml's repacked `q4_K_8x8` GEMV and
/// GEMM (what llama.cpp runs for Q4_K on AVX2 machines): per super-block the exact integer sums
/// `Σ scale · q · y` and `Σ min · bsum`, each fused into its own running sum with
/// `d_x · d_y` and `dmin_x · d_y`, subtracted at the end.
pub(crate) fn dot_q4_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    let (mut acc, mut acc_min) = (0f32, 0f32);
    for (x, y) in blocks::<{ q4_k::SIZE }>(w, nb)
        .iter()
        .zip(blocks::<{ q8_k::SIZE }>(a, nb))
    {
        let u = unpack_k4_scales(field::<4, 12, 144>(x));
        let sm: [u8; 16] = std::array::from_fn(|i| u[i / 4].to_le_bytes()[i % 4]);
        let qs = field::<16, 128, 144>(x);
        let q8 = field::<4, 256, 292>(y);
        let bs = bsums(y);
        let msum: i32 = (0..8)
            .map(|j| sm[8 + j] as i32 * (bs[2 * j] + bs[2 * j + 1]))
            .sum();
        let mut isum = 0i32;
        for j in 0..4 {
            let mut lo = [0u8; 32];
            let mut hi = [0u8; 32];
            for l in 0..32 {
                lo[l] = qs[32 * j + l] & 0xF;
                hi[l] = qs[32 * j + l] >> 4;
            }
            isum += sm[2 * j] as i32 * dot32(&lo, &q8[64 * j..64 * j + 32]);
            isum += sm[2 * j + 1] as i32 * dot32(&hi, &q8[64 * j + 32..64 * j + 64]);
        }
        let yd = f32_at::<0, 292>(y);
        acc = (isum as f32).mul_add(fp16(u16_at::<0, 144>(x)) * yd, acc);
        acc_min = (msum as f32).mul_add(fp16(u16_at::<2, 144>(x)) * yd, acc_min);
    }
    acc - acc_min
}

/// Q5_K weights · Q8_K activations.
pub(crate) fn dot_q5_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    let mut sum = 0.0f32;
    for (x, y) in blocks::<{ q5_k::SIZE }>(w, nb)
        .iter()
        .zip(blocks::<{ q8_k::SIZE }>(a, nb))
    {
        let u = unpack_k4_scales(field::<4, 12, 176>(x));
        let sm: [u8; 16] = std::array::from_fn(|i| u[i / 4].to_le_bytes()[i % 4]);
        let qh = field::<16, 32, 176>(x);
        let qs = field::<48, 128, 176>(x);
        let q8 = field::<4, 256, 292>(y);
        let bs = bsums(y);
        let msum: i32 = (0..8)
            .map(|j| sm[8 + j] as i32 * (bs[2 * j] + bs[2 * j + 1]))
            .sum();
        let mut isum = 0i32;
        for j in 0..4 {
            let mut lo = [0u8; 32];
            let mut hi = [0u8; 32];
            for l in 0..32 {
                lo[l] = (qs[32 * j + l] & 0xF) | (((qh[l] >> (2 * j)) & 1) << 4);
                hi[l] = (qs[32 * j + l] >> 4) | (((qh[l] >> (2 * j + 1)) & 1) << 4);
            }
            isum += sm[2 * j] as i32 * dot32(&lo, &q8[64 * j..64 * j + 32]);
            isum += sm[2 * j + 1] as i32 * dot32(&hi, &q8[64 * j + 32..64 * j + 64]);
        }
        let yd = f32_at::<0, 292>(y);
        let d = yd * fp16(u16_at::<0, 176>(x));
        let dmin = yd * fp16(u16_at::<2, 176>(x));
        sum += d * isum as f32 - dmin * msum as f32;
    }
    sum
}

/// Q6_K weights · Q8_K activations, in the order of ggml's AVX2 `ggml_vec_dot_q6_K_q8_K`: per
/// super-block 8 exact i32 lanes (lane `k` takes elements `4k..4k + 4` of every 32-element
/// group, scaled, minus `32 · (scale · bsum)` of 16-element sub-blocks `2k` and `2k + 1`),
/// fused lane-wise with `d_y · d_x` into one 8-wide accumulator.
pub(crate) fn dot_q6_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 256;
    let mut acc = [0f32; 8];
    for (x, y) in blocks::<{ q6_k::SIZE }>(w, nb)
        .iter()
        .zip(blocks::<{ q8_k::SIZE }>(a, nb))
    {
        let ql = field::<0, 128, 210>(x);
        let qh = field::<128, 64, 210>(x);
        let sc = field::<192, 16, 210>(x);
        let q8 = field::<4, 256, 292>(y);
        let bs = bsums(y);
        let mut lane: [i32; 8] = std::array::from_fn(|k| {
            -32 * (bs[2 * k] * sc[2 * k] as i8 as i32 + bs[2 * k + 1] * sc[2 * k + 1] as i8 as i32)
        });
        for c in 0..2 {
            let (ql, qh) = (&ql[64 * c..64 * c + 64], &qh[32 * c..32 * c + 32]);
            for l in 0..32 {
                let q = [
                    (ql[l] & 0xF) | ((qh[l] & 3) << 4),
                    (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4),
                    (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
                    (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4),
                ];
                for (g, &q) in q.iter().enumerate() {
                    let s = sc[8 * c + 2 * g + l / 16] as i8 as i32;
                    lane[l / 4] += s * q as i32 * q8[128 * c + 32 * g + l] as i8 as i32;
                }
            }
        }
        let d = f32_at::<0, 292>(y) * fp16(u16_at::<208, 210>(x));
        fma_lanes(&mut acc, d, lane);
    }
    hsum8(acc)
}
