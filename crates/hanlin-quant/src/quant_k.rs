//! K-quant reference quantizers (`quantize_row_q{2..6}_K_ref`, `quantize_row_q8_K_ref`) and the
//! helpers they share, ported statement by statement from `ggml-quants.c`.
//!
//! The search loops pick scales by comparing float error sums, so the operand order of every
//! product and sum is kept as in C: a reordering would change which candidate wins on near-ties.

use half::f16;

use crate::blocks::{Block, BlockQ2_K, BlockQ3_K, BlockQ4_K, BlockQ5_K, BlockQ6_K, BlockQ8_K};
use crate::{K_SCALE_SIZE, QK_K};

/// ggml's `GROUP_MAX_EPS`: groups whose largest magnitude is below this quantize to zero.
const GROUP_MAX_EPS: f32 = 1e-15;

/// Rounds to the nearest integer, ties to even, with ggml's float trick (exact for
/// `|x| <= 4194303`; outside that range the result is the same garbage ggml produces).
pub fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12_582_912.0;
    (val.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// Unpacks the 6-bit scale and min of group `j` (0..8) from Q4_K / Q5_K packed `scales`.
pub fn get_scale_min_k4(j: usize, q: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Unpacks Q3_K's sixteen 6-bit scales (0..63, bias 32 not yet removed).
pub(crate) fn unpack_q3_k_scales(s: &[u8; 12]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 { s[j] & 0xf } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = (low | (high << 4)) as i8;
    }
    out
}

/// `make_qx_quants` with the weighting options the reference quantizers use: symmetric
/// quantization to `-nmax..nmax-1` (stored with `+nmax`), scale refined by weighted least
/// squares over 18 candidate inverse scales.
fn make_qx_quants(x: &[f32], nmax: i32, l_out: &mut [i8], rmse_type: i32) -> f32 {
    let n = x.len();
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let mut iscale = -nmaxf / max;
    if rmse_type == 0 {
        for (o, &v) in l_out.iter_mut().zip(x) {
            let l = nearest_int(iscale * v);
            *o = (nmax + l.clamp(-nmax, nmax - 1)) as i8;
        }
        return 1.0 / iscale;
    }
    let weight = |v: f32| match rmse_type {
        1 => v * v,
        2 => 1.0,
        3 => v.abs(),
        _ => v.abs().sqrt(),
    };
    let (mut sumlx, mut suml2) = (0f32, 0f32);
    for (o, &v) in l_out.iter_mut().zip(x) {
        let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        *o = (l + nmax) as i8;
        let w = weight(v);
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmaxf + 0.1 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for &v in x {
            let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
            let w = weight(v);
            sumlx += w * v * l as f32;
            suml2 += w * l as f32 * l as f32;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (o, &v) in l_out.iter_mut().zip(x) {
                let l = nearest_int(iscale * v);
                *o = (nmax + l.clamp(-nmax, nmax - 1)) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// `make_q3_quants(n, nmax, x, L, do_rmse = true)`: symmetric quantization refined by
/// coordinate descent on each quant, weights `x²`.
fn make_q3_quants(x: &[f32], nmax: i32, l_out: &mut [i8]) -> f32 {
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out[..x.len()].fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0f32, 0f32);
    for (o, &v) in l_out.iter_mut().zip(x) {
        let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        *o = l as i8;
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for (o, &v) in l_out.iter_mut().zip(x) {
            let w = v * v;
            let li = f32::from(*o);
            let mut slx = sumlx - w * v * li;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li * li;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != i32::from(*o) {
                    let nl = new_l as f32;
                    slx += w * v * nl;
                    sl2 += w * nl * nl;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *o = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for o in l_out[..x.len()].iter_mut() {
        *o += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// Options of `make_qkx2_quants`'s scale search.
struct Qkx2 {
    nmax: i32,
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
}

/// `make_qkx2_quants`: asymmetric quantization `x ≈ scale * L - the_min` to `0..=nmax`,
/// searching `nstep + 1` inverse scales and solving weighted least squares for each.
/// Returns `(scale, the_min)`.
fn make_qkx2_quants(x: &[f32], weights: &[f32], l_out: &mut [u8], o: &Qkx2) -> (f32, f32) {
    let n = x.len();
    let mut laux = [0u8; 32];
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out[..n].fill(0);
        return (0.0, -min);
    }
    let nmaxf = o.nmax as f32;
    let mut iscale = nmaxf / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min));
        l_out[i] = l.clamp(0, o.nmax) as u8;
        let diff = scale * f32::from(l_out[i]) + min - x[i];
        let diff = if o.use_mad { diff.abs() } else { diff * diff };
        best_error += weights[i] * diff;
    }
    if o.nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=o.nstep {
        iscale = (o.rmin + o.rdelta * is as f32 + nmaxf) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, o.nmax);
            laux[i] = l as u8;
            let (w, lf) = (weights[i], l as f32);
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0f32;
            for i in 0..n {
                let diff = this_scale * f32::from(laux[i]) + this_min - x[i];
                let diff = if o.use_mad { diff.abs() } else { diff * diff };
                cur_error += weights[i] * diff;
            }
            if cur_error < best_error {
                l_out[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// `quantize_row_q2_K_ref` for one super-block.
pub(crate) fn quantize_q2_k(x: &[f32]) -> BlockQ2_K {
    let mut l = [0u8; QK_K];
    let mut weights = [0f32; 16];
    let mut mins = [0f32; QK_K / 16];
    let mut scales = [0f32; QK_K / 16];
    let q4scale = 15f32;
    let opts = Qkx2 {
        nmax: 3,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    let (mut max_scale, mut max_min) = (0f32, 0f32);
    for j in 0..QK_K / 16 {
        let xs = &x[16 * j..16 * j + 16];
        for (w, v) in weights.iter_mut().zip(xs) {
            *w = v.abs();
        }
        (scales[j], mins[j]) = make_qkx2_quants(xs, &weights, &mut l[16 * j..], &opts);
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let mut y = BlockQ2_K {
        scales: [0; 16],
        qs: [0; 64],
        d: f16::ZERO,
        dmin: f16::ZERO,
    };
    if max_scale > 0.0 {
        let iscale = q4scale / max_scale;
        for (o, &s) in y.scales.iter_mut().zip(&scales) {
            *o = nearest_int(iscale * s) as u8;
        }
        y.d = f16::from_f32(max_scale / q4scale);
    }
    if max_min > 0.0 {
        let iscale = q4scale / max_min;
        for (o, &m) in y.scales.iter_mut().zip(&mins) {
            *o |= (nearest_int(iscale * m) << 4) as u8;
        }
        y.dmin = f16::from_f32(max_min / q4scale);
    }
    for j in 0..QK_K / 16 {
        let d = y.d.to_f32() * f32::from(y.scales[j] & 0xf);
        if d == 0.0 {
            continue;
        }
        let dm = y.dmin.to_f32() * f32::from(y.scales[j] >> 4);
        for ii in 0..16 {
            let q = nearest_int((x[16 * j + ii] + dm) / d);
            l[16 * j + ii] = q.clamp(0, 3) as u8;
        }
    }
    pack_2bit(&l, &mut y.qs);
    y
}

/// Packs 2-bit values: per 128 elements, byte `l` holds elements `l, l+32, l+64, l+96`.
fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8; QK_K / 4]) {
    for j in (0..QK_K).step_by(128) {
        for i in 0..32 {
            qs[j / 4 + i] =
                l[j + i] | (l[j + i + 32] << 2) | (l[j + i + 64] << 4) | (l[j + i + 96] << 6);
        }
    }
}

/// `quantize_row_q3_K_ref` for one super-block.
pub(crate) fn quantize_q3_k(x: &[f32]) -> BlockQ3_K {
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; QK_K / 16];
    let (mut max_scale, mut amax) = (0f32, 0f32);
    for j in 0..QK_K / 16 {
        scales[j] = make_q3_quants(&x[16 * j..16 * j + 16], 4, &mut l[16 * j..]);
        let scale = scales[j].abs();
        if scale > amax {
            amax = scale;
            max_scale = scales[j];
        }
    }
    let mut y = BlockQ3_K {
        hmask: [0; 32],
        qs: [0; 64],
        scales: [0; 12],
        d: f16::ZERO,
    };
    if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for (j, &s) in scales.iter().enumerate() {
            // C stores nearest_int's result in an int8_t before clamping.
            let q = i32::from(nearest_int(iscale * s) as i8);
            let q = (q.clamp(-32, 31) + 32) as u8;
            if j < 8 {
                y.scales[j] = q & 0xf;
            } else {
                y.scales[j - 8] |= (q & 0xf) << 4;
            }
            y.scales[j % 4 + 8] |= (q >> 4) << (2 * (j / 4));
        }
        y.d = f16::from_f32(1.0 / iscale);
    }
    let sc = unpack_q3_k_scales(&y.scales);
    for j in 0..QK_K / 16 {
        let d = y.d.to_f32() * f32::from(sc[j] - 32);
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let q = nearest_int(x[16 * j + ii] / d).clamp(-4, 3);
            l[16 * j + ii] = (q + 4) as i8;
        }
    }
    // High bit of element j goes to bit j/32 of hmask[j % 32].
    let mut lu = [0u8; QK_K];
    for (j, (o, &v)) in lu.iter_mut().zip(&l).enumerate() {
        let mut v = v as u8;
        if v > 3 {
            y.hmask[j % 32] |= 1 << (j / 32);
            v -= 4;
        }
        *o = v;
    }
    pack_2bit(&lu, &mut y.qs);
    y
}

/// Packs per-group 6-bit scales and mins the way `get_scale_min_k4` unpacks them.
fn pack_scale_min_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; K_SCALE_SIZE] {
    let mut s = [0u8; K_SCALE_SIZE];
    for j in 0..8 {
        let (ls, lm) = (ls[j].min(63), lm[j].min(63));
        if j < 4 {
            s[j] = ls;
            s[j + 4] = lm;
        } else {
            s[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
            s[j - 4] |= (ls >> 4) << 6;
            s[j] |= (lm >> 4) << 6;
        }
    }
    s
}

/// The shared first half of Q4_K / Q5_K: per-group scale and min search, then the packed
/// scales and the two super-block scales. Leaves the search's quants in `l`.
fn k4_scales(x: &[f32], opts: &Qkx2, l: &mut [u8; QK_K]) -> ([u8; K_SCALE_SIZE], f16, f16) {
    let mut weights = [0f32; 32];
    let mut mins = [0f32; QK_K / 32];
    let mut scales = [0f32; QK_K / 32];
    let (mut max_scale, mut max_min) = (0f32, 0f32);
    for j in 0..QK_K / 32 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        (scales[j], mins[j]) = make_qkx2_quants(xs, &weights, &mut l[32 * j..], opts);
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    for j in 0..QK_K / 32 {
        ls[j] = nearest_int(inv_scale * scales[j]) as u8;
        lm[j] = nearest_int(inv_min * mins[j]) as u8;
    }
    let packed = pack_scale_min_k4(&ls, &lm);
    (
        packed,
        f16::from_f32(max_scale / 63.0),
        f16::from_f32(max_min / 63.0),
    )
}

/// Final rounding of Q4_K / Q5_K quants against the stored (f16, 6-bit) scales and mins.
fn k4_requantize(x: &[f32], s: &[u8; K_SCALE_SIZE], d: f16, dmin: f16, nmax: i32, l: &mut [u8]) {
    for j in 0..QK_K / 32 {
        let (sc, m) = get_scale_min_k4(j, s);
        let d = d.to_f32() * f32::from(sc);
        if d == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * f32::from(m);
        for ii in 0..32 {
            let q = nearest_int((x[32 * j + ii] + dm) / d);
            l[32 * j + ii] = q.clamp(0, nmax) as u8;
        }
    }
}

/// `quantize_row_q4_K_ref` for one super-block.
pub(crate) fn quantize_q4_k(x: &[f32]) -> BlockQ4_K {
    let mut l = [0u8; QK_K];
    let opts = Qkx2 {
        nmax: 15,
        rmin: -1.0,
        rdelta: 0.1,
        nstep: 20,
        use_mad: false,
    };
    let (scales, d, dmin) = k4_scales(x, &opts, &mut l);
    k4_requantize(x, &scales, d, dmin, 15, &mut l);
    let mut qs = [0u8; QK_K / 2];
    for (j, q) in qs.chunks_exact_mut(32).enumerate() {
        for (i, o) in q.iter_mut().enumerate() {
            *o = l[64 * j + i] | (l[64 * j + i + 32] << 4);
        }
    }
    BlockQ4_K {
        d,
        dmin,
        scales,
        qs,
    }
}

/// `quantize_row_q5_K_ref` for one super-block.
pub(crate) fn quantize_q5_k(x: &[f32]) -> BlockQ5_K {
    let mut l = [0u8; QK_K];
    let opts = Qkx2 {
        nmax: 31,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    };
    let (scales, d, dmin) = k4_scales(x, &opts, &mut l);
    k4_requantize(x, &scales, d, dmin, 31, &mut l);
    let mut qh = [0u8; QK_K / 8];
    let mut qs = [0u8; QK_K / 2];
    for (n, ql) in qs.chunks_exact_mut(32).enumerate() {
        let (m1, m2) = (1u8 << (2 * n), 2u8 << (2 * n));
        for j in 0..32 {
            let mut l1 = l[64 * n + j];
            if l1 > 15 {
                l1 -= 16;
                qh[j] |= m1;
            }
            let mut l2 = l[64 * n + j + 32];
            if l2 > 15 {
                l2 -= 16;
                qh[j] |= m2;
            }
            ql[j] = l1 | (l2 << 4);
        }
    }
    BlockQ5_K {
        d,
        dmin,
        scales,
        qh,
        qs,
    }
}

/// `quantize_row_q6_K_ref` for one super-block.
pub(crate) fn quantize_q6_k(x: &[f32]) -> BlockQ6_K {
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; QK_K / 16];
    let (mut max_scale, mut max_abs_scale) = (0f32, 0f32);
    for ib in 0..QK_K / 16 {
        let scale = make_qx_quants(&x[16 * ib..16 * ib + 16], 32, &mut l[16 * ib..], 1);
        scales[ib] = scale;
        if scale.abs() > max_abs_scale {
            max_abs_scale = scale.abs();
            max_scale = scale;
        }
    }
    let mut y = BlockQ6_K {
        ql: [0; 128],
        qh: [0; 64],
        scales: [0; 16],
        d: f16::ZERO,
    };
    if max_abs_scale < GROUP_MAX_EPS {
        return y;
    }
    let iscale = -128.0 / max_scale;
    y.d = f16::from_f32(1.0 / iscale);
    for (o, &s) in y.scales.iter_mut().zip(&scales) {
        *o = nearest_int(iscale * s).min(127) as i8;
    }
    for j in 0..QK_K / 16 {
        let d = y.d.to_f32() * f32::from(y.scales[j]);
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let q = nearest_int(x[16 * j + ii] / d).clamp(-32, 31);
            l[16 * j + ii] = (q + 32) as i8;
        }
    }
    for (h, j) in (0..QK_K).step_by(128).enumerate() {
        let ql = &mut y.ql[64 * h..64 * h + 64];
        let qh = &mut y.qh[32 * h..32 * h + 32];
        for i in 0..32 {
            let q = |k: usize| l[j + i + k] as u8;
            ql[i] = (q(0) & 0xf) | ((q(64) & 0xf) << 4);
            ql[i + 32] = (q(32) & 0xf) | ((q(96) & 0xf) << 4);
            qh[i] = (q(0) >> 4) | ((q(32) >> 4) << 2) | ((q(64) >> 4) << 4) | ((q(96) >> 4) << 6);
        }
    }
    y
}

/// `quantize_row_q8_K_ref` for one super-block. Note ggml's scale is `-127/max` (not
/// `-128/max`) since IQ2_XXS needed the symmetric range, and `d` stays a full `f32`.
fn quantize_q8_k_block(x: &[f32]) -> BlockQ8_K {
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    let mut y = BlockQ8_K {
        d: 0.0,
        qs: [0; QK_K],
        bsums: [0; QK_K / 16],
    };
    if amax == 0.0 {
        return y;
    }
    let iscale = -127.0 / max;
    for (o, &v) in y.qs.iter_mut().zip(x) {
        *o = nearest_int(iscale * v).min(127) as i8;
    }
    for (s, q) in y.bsums.iter_mut().zip(y.qs.chunks_exact(16)) {
        *s = q.iter().map(|&v| i16::from(v)).sum();
    }
    y.d = 1.0 / iscale;
    y
}

/// Quantizes activations to Q8_K exactly like ggml's `quantize_row_q8_K_ref`.
///
/// # Panics
/// If `src.len()` is not a multiple of [`QK_K`] or `dst` is not exactly
/// `src.len() / 256 * 292` bytes (a caller bug, not bad data).
pub fn quantize_row_q8_k(src: &[f32], dst: &mut [u8]) {
    assert!(
        src.len().is_multiple_of(QK_K),
        "Q8_K: {} floats is not a multiple of {QK_K}",
        src.len()
    );
    let expected = src.len() / QK_K * BlockQ8_K::SIZE;
    assert_eq!(dst.len(), expected, "Q8_K: destination bytes");
    for (x, out) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(BlockQ8_K::SIZE))
    {
        quantize_q8_k_block(x).write(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        let cases = [
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (3.49, 3),
            (-7.7, -8),
        ];
        for (x, want) in cases {
            assert_eq!(nearest_int(x), want, "{x}");
        }
    }

    #[test]
    fn scale_min_packing_round_trips() {
        let ls = [0, 63, 17, 32, 5, 63, 48, 1];
        let lm = [63, 0, 40, 9, 62, 33, 16, 31];
        let packed = pack_scale_min_k4(&ls, &lm);
        for j in 0..8 {
            assert_eq!(get_scale_min_k4(j, &packed), (ls[j], lm[j]), "group {j}");
        }
    }
}
