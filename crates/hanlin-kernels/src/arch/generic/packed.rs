//! Scalar kernels for packed Q4_0, Q8_0 and Q4_K matrices (`crate::packed`): the per-block order, one row at a
//! time; the oracle the SIMD version must match bit for bit.

use crate::layout::q8_0;
use crate::packed::{
    PackedArgs, GROUP, Q4K_D, Q4K_DMIN, Q4K_MINS, Q4K_SCALES, Q4_0_UNIT, Q4_K_UNIT, Q5_0_UNIT,
    Q8_0_UNIT,
};
use half::f16;

#[inline(always)]
fn fp16(lo: u8, hi: u8) -> f32 {
    f16::from_bits(u16::from_le_bytes([lo, hi])).to_f32()
}

/// Groups `g0..g1` of a packed Q4_0 matrix for every token.
///
/// # Safety
/// `a` must satisfy [`PackedArgs`]'s contract and no other thread may write these groups' rows.
pub(crate) unsafe fn q4_0x16(a: &PackedArgs<'_>, g0: usize, g1: usize) {
    let nb = a.cols / 32;
    let act_row = nb * q8_0::SIZE;
    for g in g0..g1 {
        let gw = &a.w[g * a.group_bytes..(g + 1) * a.group_bytes];
        for r in 0..GROUP.min(a.rows - g * GROUP) {
            for t in 0..a.n_tokens {
                let y = &a.act[t * act_row..(t + 1) * act_row];
                let mut acc = 0f32;
                for b in 0..nb {
                    let unit = &gw[(b / 2) * Q4_0_UNIT..][..Q4_0_UNIT];
                    let qs = &unit[(b % 2) * 256..][..256];
                    let yb = &y[b * q8_0::SIZE..][..q8_0::SIZE];
                    let mut sum = a.offs[t * nb + b];
                    for k in 0..4 {
                        for i in 0..4 {
                            let q = qs[64 * k + 4 * r + i];
                            sum += (q & 15) as i32 * yb[2 + 4 * k + i] as i8 as i32;
                            sum += (q >> 4) as i32 * yb[2 + 16 + 4 * k + i] as i8 as i32;
                        }
                    }
                    let s = 512 + (b % 2) * 32 + 2 * r;
                    let d = fp16(unit[s], unit[s + 1]) * fp16(yb[0], yb[1]);
                    acc = (sum as f32).mul_add(d, acc);
                }
                // SAFETY: t < n_tokens and the row < rows keep the index inside `out`; the
                // caller owns this group's rows.
                unsafe { *a.out.add(t * a.rows + g * GROUP + r) = acc };
            }
        }
    }
}

/// Groups `g0..g1` of a packed Q4_K matrix for every token.
///
/// # Safety
/// `a` must satisfy [`PackedArgs`]'s contract and no other thread may write these groups' rows.
pub(crate) unsafe fn q4_kx16(a: &PackedArgs<'_>, g0: usize, g1: usize) {
    let nsb = a.cols / 256;
    let act_row = nsb * crate::layout::q8_k::SIZE;
    for g in g0..g1 {
        let gw = &a.w[g * a.group_bytes..(g + 1) * a.group_bytes];
        for r in 0..GROUP.min(a.rows - g * GROUP) {
            for t in 0..a.n_tokens {
                let y = &a.act[t * act_row..(t + 1) * act_row];
                let (mut acc, mut acc_min) = (0f32, 0f32);
                for b in 0..nsb {
                    let unit = &gw[b * Q4_K_UNIT..][..Q4_K_UNIT];
                    let yb = &y[b * 292..][..292];
                    let mut isum = 0i32;
                    for s in 0..8 {
                        let (j, shift) = (s / 2, 4 * (s % 2));
                        let mut p = 0i32;
                        for k in 0..8 {
                            for i in 0..4 {
                                let q = (unit[(8 * j + k) * 64 + 4 * r + i] >> shift) & 15;
                                let yq = yb[4 + 64 * j + 32 * (s % 2) + 4 * k + i] as i8;
                                p += q as i32 * yq as i32;
                            }
                        }
                        isum += unit[Q4K_SCALES + 16 * s + r] as i32 * p;
                    }
                    let mut msum = 0i32;
                    for i in 0..4 {
                        let pair = a.offs[(t * nsb + b) * 4 + i] as u32;
                        let lo = pair as u16 as i16 as i32;
                        let hi = (pair >> 16) as u16 as i16 as i32;
                        msum += unit[Q4K_MINS + 32 * i + 2 * r] as i32 * lo;
                        msum += unit[Q4K_MINS + 32 * i + 2 * r + 1] as i32 * hi;
                    }
                    let yd = f32::from_le_bytes([yb[0], yb[1], yb[2], yb[3]]);
                    let d = fp16(unit[Q4K_D + 2 * r], unit[Q4K_D + 2 * r + 1]) * yd;
                    let dmin = fp16(unit[Q4K_DMIN + 2 * r], unit[Q4K_DMIN + 2 * r + 1]) * yd;
                    acc = (isum as f32).mul_add(d, acc);
                    acc_min = (msum as f32).mul_add(dmin, acc_min);
                }
                // SAFETY: t < n_tokens and the row < rows keep the index inside `out`; the
                // caller owns this group's rows.
                unsafe { *a.out.add(t * a.rows + g * GROUP + r) = acc - acc_min };
            }
        }
    }
}

/// Groups `g0..g1` of a packed Q8_0 matrix for every token: `vec_dot`'s 8 lanes and
/// `hsum_float_8`, as the row kernels.
///
/// # Safety
/// `a` must satisfy [`PackedArgs`]'s contract and no other thread may write these groups' rows.
pub(crate) unsafe fn q8_0x16(a: &PackedArgs<'_>, g0: usize, g1: usize) {
    let nb = a.cols / 32;
    let act_row = nb * q8_0::SIZE;
    for g in g0..g1 {
        let gw = &a.w[g * a.group_bytes..(g + 1) * a.group_bytes];
        for r in 0..GROUP.min(a.rows - g * GROUP) {
            for t in 0..a.n_tokens {
                let y = &a.act[t * act_row..(t + 1) * act_row];
                let mut acc = [0f32; 8];
                for b in 0..nb {
                    let unit = &gw[(b / 2) * Q8_0_UNIT..][..Q8_0_UNIT];
                    let qs = &unit[(b % 2) * 512..][..512];
                    let yb = &y[b * q8_0::SIZE..][..q8_0::SIZE];
                    let lanes: [i32; 8] = std::array::from_fn(|k| {
                        let mut l = a.offs[(t * nb + b) * 8 + k];
                        for i in 0..4 {
                            l += qs[64 * k + 4 * r + i] as i32 * yb[2 + 4 * k + i] as i8 as i32;
                        }
                        l
                    });
                    let s = 1024 + (b % 2) * 32 + 2 * r;
                    let d = fp16(unit[s], unit[s + 1]) * fp16(yb[0], yb[1]);
                    super::legacy::fma_lanes(&mut acc, d, lanes);
                }
                // SAFETY: t < n_tokens and the row < rows keep the index inside `out`; the
                // caller owns this group's rows.
                unsafe { *a.out.add(t * a.rows + g * GROUP + r) = super::legacy::hsum8(acc) };
            }
        }
    }
}

/// Groups `g0..g1` of a packed Q5_0 matrix for every token: `vec_dot`'s 8 lanes and
/// `hsum_float_8`, as the row kernels.
///
/// # Safety
/// `a` must satisfy [`PackedArgs`]'s contract and no other thread may write these groups' rows.
pub(crate) unsafe fn q5_0x16(a: &PackedArgs<'_>, g0: usize, g1: usize) {
    let nb = a.cols / 32;
    let act_row = nb * q8_0::SIZE;
    for g in g0..g1 {
        let gw = &a.w[g * a.group_bytes..(g + 1) * a.group_bytes];
        for r in 0..GROUP.min(a.rows - g * GROUP) {
            for t in 0..a.n_tokens {
                let y = &a.act[t * act_row..(t + 1) * act_row];
                let mut acc = [0f32; 8];
                for b in 0..nb {
                    let unit = &gw[(b / 2) * Q5_0_UNIT..][..Q5_0_UNIT];
                    let half = b % 2;
                    let qs = &unit[half * 256..][..256];
                    let masks = &unit[512 + half * 64..][..64];
                    let yb = &y[b * q8_0::SIZE..][..q8_0::SIZE];
                    let lanes: [i32; 8] = std::array::from_fn(|k| {
                        let mut mask = [0u8; 8];
                        mask.copy_from_slice(&masks[8 * k..8 * k + 8]);
                        let mask = u64::from_le_bytes(mask);
                        let mut l = a.offs[(t * nb + b) * 8 + k];
                        for i in 0..4 {
                            let byte = qs[64 * (k % 4) + 4 * r + i];
                            let nib = if k < 4 { byte & 15 } else { byte >> 4 };
                            let u = nib as i32 | (((mask >> (4 * r + i)) & 1) as i32) << 4;
                            l += u * yb[2 + 4 * k + i] as i8 as i32;
                        }
                        l
                    });
                    let s = 640 + half * 32 + 2 * r;
                    let d = fp16(unit[s], unit[s + 1]) * fp16(yb[0], yb[1]);
                    super::legacy::fma_lanes(&mut acc, d, lanes);
                }
                // SAFETY: t < n_tokens and the row < rows keep the index inside `out`; the
                // caller owns this group's rows.
                unsafe { *a.out.add(t * a.rows + g * GROUP + r) = super::legacy::hsum8(acc) };
            }
        }
    }
}
