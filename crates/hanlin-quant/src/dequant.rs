//! Dequantization, one method per block type, ported from ggml's `dequantize_row_*`.
//!
//! Float expressions keep ggml's operand order (`(d * sc) * q`, `d * q - m` …) so results are
//! bit-identical to the C code when it is compiled without FMA contraction.

use half::f16;
use hanlin_gguf::GgmlType;

use crate::blocks::{
    Block, BlockQ2_K, BlockQ3_K, BlockQ4_0, BlockQ4_1, BlockQ4_K, BlockQ5_0, BlockQ5_1, BlockQ5_K,
    BlockQ6_K, BlockQ8_0, BlockQ8_K,
};
use crate::error::{check_bytes, QuantError};
use crate::float::{bf16_to_f32, read_f32s, read_u16};
use crate::quant_k::{get_scale_min_k4, unpack_q3_k_scales};
use crate::row_size;

/// Converts one row of `ty` to `f32`; `dst.len()` is the element count and `src` must hold
/// exactly that many elements' bytes. Errors name the type on a length mismatch or when the
/// type has no dequantizer here.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    use GgmlType as T;
    if !(crate::WEIGHT_TYPES.contains(&ty) || ty == T::Q8_K) {
        return Err(QuantError::Unsupported {
            ty,
            op: "dequantize",
        });
    }
    check_bytes(ty, "source", row_size(ty, dst.len())?, src.len())?;
    match ty {
        T::F32 => read_f32s(src, dst),
        T::F16 => {
            for (i, y) in dst.iter_mut().enumerate() {
                *y = f16::from_bits(read_u16(src, 2 * i)).to_f32();
            }
        }
        T::BF16 => {
            for (i, y) in dst.iter_mut().enumerate() {
                *y = bf16_to_f32(read_u16(src, 2 * i));
            }
        }
        T::Q4_0 => each::<BlockQ4_0>(src, dst, BlockQ4_0::dequantize),
        T::Q4_1 => each::<BlockQ4_1>(src, dst, BlockQ4_1::dequantize),
        T::Q5_0 => each::<BlockQ5_0>(src, dst, BlockQ5_0::dequantize),
        T::Q5_1 => each::<BlockQ5_1>(src, dst, BlockQ5_1::dequantize),
        T::Q8_0 => each::<BlockQ8_0>(src, dst, BlockQ8_0::dequantize),
        T::Q2_K => each::<BlockQ2_K>(src, dst, BlockQ2_K::dequantize),
        T::Q3_K => each::<BlockQ3_K>(src, dst, BlockQ3_K::dequantize),
        T::Q4_K => each::<BlockQ4_K>(src, dst, BlockQ4_K::dequantize),
        T::Q5_K => each::<BlockQ5_K>(src, dst, BlockQ5_K::dequantize),
        T::Q6_K => each::<BlockQ6_K>(src, dst, BlockQ6_K::dequantize),
        T::Q8_K => each::<BlockQ8_K>(src, dst, BlockQ8_K::dequantize),
        _ => {
            return Err(QuantError::Unsupported {
                ty,
                op: "dequantize",
            })
        }
    }
    Ok(())
}

/// Runs a per-block dequantizer over a row whose lengths were already checked.
fn each<B: Block>(src: &[u8], dst: &mut [f32], f: fn(&B, &mut [f32])) {
    for (chunk, out) in src.chunks_exact(B::SIZE).zip(dst.chunks_exact_mut(B::QK)) {
        f(&B::read(chunk), out);
    }
}

/// The 5th bits of Q5_0 / Q5_1 as ggml reads them: a little-endian `u32`.
fn qh_u32(qh: [u8; 4]) -> u32 {
    u32::from_le_bytes(qh)
}

impl BlockQ4_0 {
    /// Writes this block's 32 values into `y[..32]`.
    pub fn dequantize(&self, y: &mut [f32]) {
        let d = self.d.to_f32();
        for (j, &q) in self.qs.iter().enumerate() {
            y[j] = ((q & 0x0f) as i32 - 8) as f32 * d;
            y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}

impl BlockQ4_1 {
    /// Writes this block's 32 values into `y[..32]`.
    pub fn dequantize(&self, y: &mut [f32]) {
        let (d, m) = (self.d.to_f32(), self.m.to_f32());
        for (j, &q) in self.qs.iter().enumerate() {
            y[j] = (q & 0x0f) as f32 * d + m;
            y[j + 16] = (q >> 4) as f32 * d + m;
        }
    }
}

impl BlockQ5_0 {
    /// Writes this block's 32 values into `y[..32]`.
    pub fn dequantize(&self, y: &mut [f32]) {
        let d = self.d.to_f32();
        let qh = qh_u32(self.qh);
        for (j, &q) in self.qs.iter().enumerate() {
            let xh0 = ((qh >> j) << 4) & 0x10;
            let xh1 = (qh >> (j + 12)) & 0x10;
            y[j] = ((u32::from(q & 0x0f) | xh0) as i32 - 16) as f32 * d;
            y[j + 16] = ((u32::from(q >> 4) | xh1) as i32 - 16) as f32 * d;
        }
    }
}

impl BlockQ5_1 {
    /// Writes this block's 32 values into `y[..32]`.
    pub fn dequantize(&self, y: &mut [f32]) {
        let (d, m) = (self.d.to_f32(), self.m.to_f32());
        let qh = qh_u32(self.qh);
        for (j, &q) in self.qs.iter().enumerate() {
            let xh0 = ((qh >> j) << 4) & 0x10;
            let xh1 = (qh >> (j + 12)) & 0x10;
            y[j] = (u32::from(q & 0x0f) | xh0) as f32 * d + m;
            y[j + 16] = (u32::from(q >> 4) | xh1) as f32 * d + m;
        }
    }
}

impl BlockQ8_0 {
    /// Writes this block's 32 values into `y[..32]`.
    pub fn dequantize(&self, y: &mut [f32]) {
        let d = self.d.to_f32();
        for (o, &q) in y.iter_mut().zip(&self.qs) {
            *o = f32::from(q) * d;
        }
    }
}

impl BlockQ2_K {
    /// Writes this block's 256 values into `y[..256]`.
    pub fn dequantize(&self, y: &mut [f32]) {
        let d = self.d.to_f32();
        let min = self.dmin.to_f32();
        let mut out = 0;
        let mut is = 0;
        for q in self.qs.chunks_exact(32) {
            for shift in [0, 2, 4, 6] {
                for half in q.chunks_exact(16) {
                    let sc = self.scales[is];
                    is += 1;
                    let dl = d * f32::from(sc & 0xf);
                    let ml = min * f32::from(sc >> 4);
                    for &b in half {
                        y[out] = dl * f32::from((b >> shift) & 3) - ml;
                        out += 1;
                    }
                }
            }
        }
    }
}

impl BlockQ3_K {
    /// Writes this block's 256 values into `y[..256]`.
    pub fn dequantize(&self, y: &mut [f32]) {
        let d_all = self.d.to_f32();
        let scales = unpack_q3_k_scales(&self.scales);
        let mut out = 0;
        let mut is = 0;
        let mut m: u8 = 1;
        for q in self.qs.chunks_exact(32) {
            for shift in [0, 2, 4, 6] {
                for h in 0..2 {
                    let dl = d_all * f32::from(scales[is] - 32);
                    is += 1;
                    let hm = &self.hmask[16 * h..16 * h + 16];
                    for (&qb, &hb) in q[16 * h..16 * h + 16].iter().zip(hm) {
                        let low = ((qb >> shift) & 3) as i8;
                        let high = if hb & m != 0 { 0 } else { 4 };
                        y[out] = dl * f32::from(low - high);
                        out += 1;
                    }
                }
                m = m.wrapping_shl(1);
            }
        }
    }
}

impl BlockQ4_K {
    /// Writes this block's 256 values into `y[..256]`.
    pub fn dequantize(&self, y: &mut [f32]) {
        let d = self.d.to_f32();
        let min = self.dmin.to_f32();
        for (j, q) in self.qs.chunks_exact(32).enumerate() {
            let (sc1, m1) = get_scale_min_k4(2 * j, &self.scales);
            let (sc2, m2) = get_scale_min_k4(2 * j + 1, &self.scales);
            let (d1, m1) = (d * f32::from(sc1), min * f32::from(m1));
            let (d2, m2) = (d * f32::from(sc2), min * f32::from(m2));
            let y = &mut y[64 * j..64 * j + 64];
            for (l, &b) in q.iter().enumerate() {
                y[l] = d1 * f32::from(b & 0xf) - m1;
                y[l + 32] = d2 * f32::from(b >> 4) - m2;
            }
        }
    }
}

impl BlockQ5_K {
    /// Writes this block's 256 values into `y[..256]`.
    pub fn dequantize(&self, y: &mut [f32]) {
        let d = self.d.to_f32();
        let min = self.dmin.to_f32();
        for (j, ql) in self.qs.chunks_exact(32).enumerate() {
            let (sc1, m1) = get_scale_min_k4(2 * j, &self.scales);
            let (sc2, m2) = get_scale_min_k4(2 * j + 1, &self.scales);
            let (d1, m1) = (d * f32::from(sc1), min * f32::from(m1));
            let (d2, m2) = (d * f32::from(sc2), min * f32::from(m2));
            let (u1, u2) = (1u8 << (2 * j), 2u8 << (2 * j));
            let y = &mut y[64 * j..64 * j + 64];
            for (l, &b) in ql.iter().enumerate() {
                let h1 = if self.qh[l] & u1 != 0 { 16 } else { 0 };
                let h2 = if self.qh[l] & u2 != 0 { 16 } else { 0 };
                y[l] = d1 * f32::from((b & 0xf) + h1) - m1;
                y[l + 32] = d2 * f32::from((b >> 4) + h2) - m2;
            }
        }
    }
}

impl BlockQ6_K {
    /// Writes this block's 256 values into `y[..256]`.
    pub fn dequantize(&self, y: &mut [f32]) {
        let d = self.d.to_f32();
        for n in 0..2 {
            let ql = &self.ql[64 * n..64 * n + 64];
            let qh = &self.qh[32 * n..32 * n + 32];
            let sc = &self.scales[8 * n..8 * n + 8];
            let y = &mut y[128 * n..128 * n + 128];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) as i8 - 32;
                let q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                y[l] = d * f32::from(sc[is]) * f32::from(q1);
                y[l + 32] = d * f32::from(sc[is + 2]) * f32::from(q2);
                y[l + 64] = d * f32::from(sc[is + 4]) * f32::from(q3);
                y[l + 96] = d * f32::from(sc[is + 6]) * f32::from(q4);
            }
        }
    }
}

impl BlockQ8_K {
    /// Writes this block's 256 values into `y[..256]`.
    pub fn dequantize(&self, y: &mut [f32]) {
        for (o, &q) in y.iter_mut().zip(&self.qs) {
            *o = self.d * f32::from(q);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_and_type_errors_name_the_type() {
        let mut out = [0f32; 32];
        let e = dequantize_row(GgmlType::Q4_0, &[0u8; 17], &mut out).unwrap_err();
        assert!(e.to_string().contains("Q4_0"), "{e}");
        let e = dequantize_row(GgmlType::Q4_K, &[0u8; 144], &mut out).unwrap_err();
        assert!(matches!(
            e,
            QuantError::NotBlockMultiple {
                ty: GgmlType::Q4_K,
                n: 32,
                ..
            }
        ));
        let e = dequantize_row(GgmlType::IQ2_XXS, &[], &mut []).unwrap_err();
        assert_eq!(
            e,
            QuantError::Unsupported {
                ty: GgmlType::IQ2_XXS,
                op: "dequantize"
            }
        );
        assert!(e.to_string().contains("IQ2_XXS"));
    }
}
