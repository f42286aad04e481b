//! Reference dot products, ported from ggml's `ggml_vec_dot_*_generic` (and the scalar
//! `ggml_vec_dot_f32/f16/bf16` paths), keeping their accumulation order: integer sums per
//! block, float scale products in C's operand order, and for Q3_K..Q6_K the eight `sums[l]`
//! lanes that are only added together at the very end.

use half::f16;
use hanlin_gguf::GgmlType;

use crate::blocks::{
    Block, BlockQ2_K, BlockQ3_K, BlockQ4_0, BlockQ4_1, BlockQ4_K, BlockQ5_0, BlockQ5_1, BlockQ5_K,
    BlockQ6_K, BlockQ8_0, BlockQ8_1, BlockQ8_K,
};
use crate::error::{check_bytes, QuantError};
use crate::float::{bf16_to_f32, read_u16};
use crate::quant_k::{get_scale_min_k4, unpack_q3_k_scales};
use crate::{row_size, QK_K};

/// The activation format ggml pairs with weights of type `ty` (`type_traits_cpu[ty].vec_dot_type`):
/// Q4_0/Q5_0/Q8_0/IQ4_NL/MXFP4 → Q8_0, Q4_1/Q5_1/Q8_1 → Q8_1, K- and IQ-quants → Q8_K, floats →
/// themselves. Types ggml gives no pairing (integers, F64, Q8_K) report F32, as ggml's table does.
pub fn vec_dot_type(ty: GgmlType) -> GgmlType {
    use GgmlType as T;
    match ty {
        T::F16 => T::F16,
        T::BF16 => T::BF16,
        T::Q4_0 | T::Q5_0 | T::Q8_0 | T::IQ4_NL | T::MXFP4 => T::Q8_0,
        T::Q4_1 | T::Q5_1 | T::Q8_1 => T::Q8_1,
        T::Q2_K
        | T::Q3_K
        | T::Q4_K
        | T::Q5_K
        | T::Q6_K
        | T::IQ2_XXS
        | T::IQ2_XS
        | T::IQ3_XXS
        | T::IQ1_S
        | T::IQ3_S
        | T::IQ2_S
        | T::IQ4_XS
        | T::IQ1_M
        | T::TQ1_0
        | T::TQ2_0 => T::Q8_K,
        _ => T::F32,
    }
}

/// Dot product of `n` weights of type `ty` with an activation row already in
/// [`vec_dot_type`]`(ty)` format. Supported weight types: F32, F16, BF16, Q4_0, Q4_1, Q5_0,
/// Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K. Errors name the type on length mismatches.
pub fn vec_dot(ty: GgmlType, n: usize, w: &[u8], act: &[u8]) -> Result<f32, QuantError> {
    use GgmlType as T;
    let supported = crate::WEIGHT_TYPES.contains(&ty);
    if !supported {
        return Err(QuantError::Unsupported { ty, op: "vec_dot" });
    }
    let aty = vec_dot_type(ty);
    check_bytes(ty, "weights", row_size(ty, n)?, w.len())?;
    check_bytes(aty, "activations", row_size(aty, n)?, act.len())?;
    Ok(match ty {
        T::F32 => dot_floats(w, act, 4, |b, i| {
            f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
        }),
        T::F16 => dot_floats(w, act, 2, |b, i| {
            f16::from_bits(read_u16(b, 2 * i)).to_f32()
        }),
        T::BF16 => dot_floats(w, act, 2, |b, i| bf16_to_f32(read_u16(b, 2 * i))),
        T::Q4_0 => pairs::<BlockQ4_0, BlockQ8_0>(w, act).fold(0f32, |s, (x, y)| {
            let mut sumi = 0i32;
            for j in 0..16 {
                sumi += (i32::from(x.qs[j] & 0x0f) - 8) * i32::from(y.qs[j]);
                sumi += (i32::from(x.qs[j] >> 4) - 8) * i32::from(y.qs[j + 16]);
            }
            s + sumi as f32 * x.d.to_f32() * y.d.to_f32()
        }),
        T::Q4_1 => pairs::<BlockQ4_1, BlockQ8_1>(w, act).fold(0f32, |s, (x, y)| {
            let mut sumi = 0i32;
            for j in 0..16 {
                sumi += i32::from(x.qs[j] & 0x0f) * i32::from(y.qs[j]);
                sumi += i32::from(x.qs[j] >> 4) * i32::from(y.qs[j + 16]);
            }
            // C: `sumf += a + b`, so the two terms are added before joining the sum.
            s + ((x.d.to_f32() * y.d.to_f32()) * sumi as f32 + x.m.to_f32() * y.s.to_f32())
        }),
        T::Q5_0 => pairs::<BlockQ5_0, BlockQ8_0>(w, act).fold(0f32, |s, (x, y)| {
            let qh = u32::from_le_bytes(x.qh);
            let mut sumi = 0i32;
            for j in 0..16 {
                let xh0 = ((qh >> j) << 4) & 0x10;
                let xh1 = (qh >> (j + 12)) & 0x10;
                let x0 = (u32::from(x.qs[j] & 0x0f) | xh0) as i32 - 16;
                let x1 = (u32::from(x.qs[j] >> 4) | xh1) as i32 - 16;
                sumi += x0 * i32::from(y.qs[j]) + x1 * i32::from(y.qs[j + 16]);
            }
            s + (x.d.to_f32() * y.d.to_f32()) * sumi as f32
        }),
        T::Q5_1 => pairs::<BlockQ5_1, BlockQ8_1>(w, act).fold(0f32, |s, (x, y)| {
            let qh = u32::from_le_bytes(x.qh);
            let mut sumi = 0i32;
            for j in 0..16 {
                let xh0 = ((qh >> j) << 4) & 0x10;
                let xh1 = (qh >> (j + 12)) & 0x10;
                let x0 = (u32::from(x.qs[j] & 0x0f) | xh0) as i32;
                let x1 = (u32::from(x.qs[j] >> 4) | xh1) as i32;
                sumi += x0 * i32::from(y.qs[j]) + x1 * i32::from(y.qs[j + 16]);
            }
            // C: `sumf += a + b`, so the two terms are added before joining the sum.
            s + ((x.d.to_f32() * y.d.to_f32()) * sumi as f32 + x.m.to_f32() * y.s.to_f32())
        }),
        T::Q8_0 => pairs::<BlockQ8_0, BlockQ8_0>(w, act).fold(0f32, |s, (x, y)| {
            let sumi: i32 =
                x.qs.iter()
                    .zip(&y.qs)
                    .map(|(&a, &b)| i32::from(a) * i32::from(b))
                    .sum();
            s + sumi as f32 * (x.d.to_f32() * y.d.to_f32())
        }),
        T::Q2_K => dot_q2_k(w, act),
        T::Q3_K => lanes_dot::<BlockQ3_K>(w, act, q3_k_lanes),
        T::Q4_K => lanes_dot::<BlockQ4_K>(w, act, q4_k_lanes),
        T::Q5_K => lanes_dot::<BlockQ5_K>(w, act, q5_k_lanes),
        T::Q6_K => lanes_dot::<BlockQ6_K>(w, act, q6_k_lanes),
        _ => return Err(QuantError::Unsupported { ty, op: "vec_dot" }),
    })
}

/// Blocks of the weights paired with blocks of the activations (lengths already checked).
fn pairs<'a, X: Block, Y: Block>(w: &'a [u8], a: &'a [u8]) -> impl Iterator<Item = (X, Y)> + 'a {
    w.chunks_exact(X::SIZE)
        .map(X::read)
        .zip(a.chunks_exact(Y::SIZE).map(Y::read))
}

/// ggml's scalar float dot: each product rounded to `f32`, accumulated in `f64`.
fn dot_floats(w: &[u8], a: &[u8], width: usize, get: impl Fn(&[u8], usize) -> f32) -> f32 {
    let mut sum = 0f64;
    for i in 0..w.len() / width {
        sum += f64::from(get(w, i) * get(a, i));
    }
    sum as f32
}

/// `ggml_vec_dot_q2_K_q8_K_generic`.
fn dot_q2_k(w: &[u8], act: &[u8]) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in pairs::<BlockQ2_K, BlockQ8_K>(w, act) {
        let mut summs = 0i32;
        for (&b, &sc) in y.bsums.iter().zip(&x.scales) {
            summs += i32::from(b) * i32::from(sc >> 4);
        }
        let dall = y.d * x.d.to_f32();
        let dmin = y.d * x.dmin.to_f32();
        let mut isum = 0i32;
        let mut is = 0;
        for (k, q2) in x.qs.chunks_exact(32).enumerate() {
            for (j, shift) in [0, 2, 4, 6].into_iter().enumerate() {
                let q8 = &y.qs[128 * k + 32 * j..128 * k + 32 * j + 32];
                for h in 0..2 {
                    let d = i32::from(x.scales[is] & 0xf);
                    is += 1;
                    let mut isuml = 0i32;
                    for l in 16 * h..16 * h + 16 {
                        isuml += i32::from(q8[l]) * i32::from((q2[l] >> shift) & 3);
                    }
                    isum += d * isuml;
                }
            }
        }
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// Per-block integer work of a K-quant dot: returns the eight `aux32` lanes and the
/// `sum(bsums * mins)` term (zero for types without mins).
type LanesFn<X> = fn(&X, &BlockQ8_K) -> ([i32; 8], i32);

/// The float side shared by the Q3_K..Q6_K generic dots: eight lane sums scaled per block,
/// the min correction subtracted from `sumf` per block, and the lanes added last.
fn lanes_dot<X: Block + KScales>(w: &[u8], act: &[u8], f: LanesFn<X>) -> f32 {
    let mut sums = [0f32; 8];
    let mut sumf = 0f32;
    for (x, y) in pairs::<X, BlockQ8_K>(w, act) {
        let (aux32, sumi) = f(&x, &y);
        let d = x.d() * y.d;
        for (s, &a) in sums.iter_mut().zip(&aux32) {
            *s += d * a as f32;
        }
        if let Some(dmin) = x.dmin() {
            sumf -= dmin * y.d * sumi as f32;
        }
    }
    for s in sums {
        sumf += s;
    }
    sumf
}

/// Super-block scales of the K-quant weight blocks, as `f32`.
trait KScales {
    fn d(&self) -> f32;
    fn dmin(&self) -> Option<f32>;
}

impl KScales for BlockQ3_K {
    fn d(&self) -> f32 {
        self.d.to_f32()
    }
    fn dmin(&self) -> Option<f32> {
        None
    }
}

impl KScales for BlockQ4_K {
    fn d(&self) -> f32 {
        self.d.to_f32()
    }
    fn dmin(&self) -> Option<f32> {
        Some(self.dmin.to_f32())
    }
}

impl KScales for BlockQ5_K {
    fn d(&self) -> f32 {
        self.d.to_f32()
    }
    fn dmin(&self) -> Option<f32> {
        Some(self.dmin.to_f32())
    }
}

impl KScales for BlockQ6_K {
    fn d(&self) -> f32 {
        self.d.to_f32()
    }
    fn dmin(&self) -> Option<f32> {
        None
    }
}

/// Accumulates `scale(group) * q8 * a` into eight lanes, groups of `group` elements
/// (`aux32[l] += scale * aux16[l]` in ggml, with `aux16` holding `q8 * a` for 8 elements).
fn accumulate_lanes(
    q8: &[i8; QK_K],
    a: &[i8; QK_K],
    group: usize,
    scale: impl Fn(usize) -> i32,
) -> [i32; 8] {
    let mut aux32 = [0i32; 8];
    for (c, (q, v)) in q8.chunks_exact(8).zip(a.chunks_exact(8)).enumerate() {
        let sc = scale(c * 8 / group);
        for l in 0..8 {
            // ggml stores the product in an int16_t; |q8 * a| <= 128 * 32 always fits.
            let p = i32::from(i16::from(q[l]) * i16::from(v[l]));
            aux32[l] += sc * p;
        }
    }
    aux32
}

/// Q3_K: signed 3-bit values and the sixteen 6-bit scales (bias 32).
fn q3_k_lanes(x: &BlockQ3_K, y: &BlockQ8_K) -> ([i32; 8], i32) {
    let mut a = [0i8; QK_K];
    let mut m: u8 = 1;
    for (j, q3) in x.qs.chunks_exact(32).enumerate() {
        for (k, shift) in [0, 2, 4, 6].into_iter().enumerate() {
            let out = &mut a[128 * j + 32 * k..128 * j + 32 * k + 32];
            for l in 0..32 {
                out[l] = ((q3[l] >> shift) & 3) as i8 - if x.hmask[l] & m != 0 { 0 } else { 4 };
            }
            m = m.wrapping_shl(1);
        }
    }
    let scales = unpack_q3_k_scales(&x.scales);
    let lanes = accumulate_lanes(&y.qs, &a, 16, |g| i32::from(scales[g]) - 32);
    (lanes, 0)
}

/// The Q4_K / Q5_K `sum(bsums[j] * mins[j / 2])` term and the 6-bit group scales.
fn k4_scales_mins(scales: &[u8; 12], bsums: &[i16; 16]) -> ([i32; 8], i32) {
    let mut sc = [0i32; 8];
    let mut mins = [0i32; 8];
    for j in 0..8 {
        let (s, m) = get_scale_min_k4(j, scales);
        sc[j] = i32::from(s);
        mins[j] = i32::from(m);
    }
    let sumi = bsums
        .iter()
        .enumerate()
        .map(|(j, &b)| i32::from(b) * mins[j / 2])
        .sum();
    (sc, sumi)
}

/// Q4_K: unsigned 4-bit values, 32-element groups.
fn q4_k_lanes(x: &BlockQ4_K, y: &BlockQ8_K) -> ([i32; 8], i32) {
    let mut a = [0i8; QK_K];
    for (j, q4) in x.qs.chunks_exact(32).enumerate() {
        for l in 0..32 {
            a[64 * j + l] = (q4[l] & 0xf) as i8;
            a[64 * j + 32 + l] = (q4[l] >> 4) as i8;
        }
    }
    let (sc, sumi) = k4_scales_mins(&x.scales, &y.bsums);
    (accumulate_lanes(&y.qs, &a, 32, |g| sc[g]), sumi)
}

/// Q5_K: unsigned 5-bit values, 32-element groups.
fn q5_k_lanes(x: &BlockQ5_K, y: &BlockQ8_K) -> ([i32; 8], i32) {
    let mut a = [0i8; QK_K];
    for (j, q4) in x.qs.chunks_exact(32).enumerate() {
        let (m1, m2) = (1u8 << (2 * j), 2u8 << (2 * j));
        for l in 0..32 {
            a[64 * j + l] = (q4[l] & 0xf) as i8 + if x.qh[l] & m1 != 0 { 16 } else { 0 };
            a[64 * j + 32 + l] = (q4[l] >> 4) as i8 + if x.qh[l] & m2 != 0 { 16 } else { 0 };
        }
    }
    let (sc, sumi) = k4_scales_mins(&x.scales, &y.bsums);
    (accumulate_lanes(&y.qs, &a, 32, |g| sc[g]), sumi)
}

/// Q6_K: signed 6-bit values, 16-element groups with signed 8-bit scales.
fn q6_k_lanes(x: &BlockQ6_K, y: &BlockQ8_K) -> ([i32; 8], i32) {
    let mut a = [0i8; QK_K];
    for h in 0..2 {
        let ql = &x.ql[64 * h..64 * h + 64];
        let qh = &x.qh[32 * h..32 * h + 32];
        let a = &mut a[128 * h..128 * h + 128];
        for l in 0..32 {
            a[l] = ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) as i8 - 32;
            a[l + 32] = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            a[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            a[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
        }
    }
    (
        accumulate_lanes(&y.qs, &a, 16, |g| i32::from(x.scales[g])),
        0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairing_follows_ggml() {
        use GgmlType as T;
        let cases = [
            (T::Q4_0, T::Q8_0),
            (T::Q5_0, T::Q8_0),
            (T::Q8_0, T::Q8_0),
            (T::Q4_1, T::Q8_1),
            (T::Q5_1, T::Q8_1),
            (T::Q2_K, T::Q8_K),
            (T::Q6_K, T::Q8_K),
            (T::F16, T::F16),
            (T::BF16, T::BF16),
            (T::F32, T::F32),
        ];
        for (w, a) in cases {
            assert_eq!(vec_dot_type(w), a, "{w}");
        }
    }

    #[test]
    fn length_errors_name_the_buffer_and_type() {
        let e = vec_dot(GgmlType::Q4_K, 256, &[0u8; 144], &[0u8; 291]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("Q8_K") && msg.contains("activations"), "{msg}");
        let e = vec_dot(GgmlType::Q8_K, 256, &[0u8; 292], &[0u8; 292]).unwrap_err();
        assert_eq!(
            e,
            QuantError::Unsupported {
                ty: GgmlType::Q8_K,
                op: "vec_dot"
            }
        );
    }
}
