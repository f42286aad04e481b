//! Element-wise and row operations of the forward pass.
//!
//! Where ggml's CPU backend picks an order or a precision (double accumulation in RMSNorm,
//! the f16 GELU table, iterative RoPE angles), we pick the same, so that greedy decoding
//! matches llama.cpp token for token rather than merely "closely".

use half::f16;
use std::sync::OnceLock;

use crate::config::RopeLayout;

/// `out = x / rms(x) * w`, with ggml's double-precision sum of squares.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = (v * scale) * g;
    }
}

/// In-place RMSNorm of `x` with weight `w`.
pub fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for (v, &g) in x.iter_mut().zip(w) {
        *v = (*v * scale) * g;
    }
}

/// How one layer scales RoPE angles: ggml's `rope_yarn` parameters (plain and linear scaling
/// are YaRN with `ext_factor` 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeScale {
    /// Angles are multiplied by this (1 / scaling factor).
    pub freq_scale: f32,
    /// YaRN's extrapolation mix (1 with YaRN, else 0).
    pub ext_factor: f32,
    /// Magnitude applied to cos/sin (`attn_factor`).
    pub mscale: f32,
    /// Pair indices where YaRN's ramp starts and ends.
    pub corr_dims: [f32; 2],
}

impl RopeScale {
    /// Plain RoPE.
    pub const NONE: RopeScale = RopeScale::linear(1.0);

    /// Positions divided by `1 / freq_scale`.
    pub const fn linear(freq_scale: f32) -> Self {
        RopeScale {
            freq_scale,
            ext_factor: 0.0,
            mscale: 1.0,
            corr_dims: [0.0, 0.0],
        }
    }

    /// YaRN for `n_rot` rotated dims, base `base`, trained on `orig_ctx` positions, as ggml's
    /// `ggml_rope_yarn_corr_dims` bounds the ramp.
    pub fn yarn(
        n_rot: usize,
        base: f32,
        freq_scale: f32,
        orig_ctx: usize,
        beta_fast: f32,
        beta_slow: f32,
        mscale: f32,
    ) -> Self {
        let corr_dim = |n_rot_turns: f32| {
            n_rot as f32 * (orig_ctx as f32 / (n_rot_turns * 2.0 * std::f32::consts::PI)).ln()
                / (2.0 * base.ln())
        };
        let start = corr_dim(beta_fast).floor();
        let end = corr_dim(beta_slow).ceil();
        RopeScale {
            freq_scale,
            ext_factor: 1.0,
            mscale,
            corr_dims: [start.max(0.0), end.min(n_rot as f32 - 1.0)],
        }
    }
}

/// Precomputed cos/sin for one position and one RoPE base, `n_rot/2` pairs.
///
/// `freq_factors` (Llama 3.x `rope_freqs.weight`, one per pair) divide each pair's angle.
pub fn rope_cache(
    pos: usize,
    n_rot: usize,
    base: f32,
    freq_scale: f32,
    freq_factors: Option<&[f32]>,
    cache: &mut [f32],
) {
    rope_cache_scaled(
        pos,
        n_rot,
        base,
        &RopeScale::linear(freq_scale),
        freq_factors,
        cache,
    );
}

/// [`rope_cache`] with YaRN: each pair's angle mixes the interpolated and the extrapolated
/// angle along a ramp, and cos/sin carry the magnitude correction, in ggml's order of
/// operations (`rope_yarn` in ggml-cpu `ops.cpp`, including the multiply-adds GCC fuses).
pub fn rope_cache_scaled(
    pos: usize,
    n_rot: usize,
    base: f32,
    scale: &RopeScale,
    freq_factors: Option<&[f32]>,
    cache: &mut [f32],
) {
    let theta_scale = base.powf(-2.0 / n_rot as f32);
    let mut theta = pos as f32;
    let [low, high] = scale.corr_dims;
    for i in 0..n_rot / 2 {
        let ff = freq_factors.and_then(|f| f.get(i)).copied().unwrap_or(1.0);
        let extrap = theta / ff;
        let interp = scale.freq_scale * extrap;
        let (t, mscale) = if scale.ext_factor != 0.0 {
            let y = (i as f32 - low) / (high - low).max(0.001);
            let ramp_mix = (1.0 - y.clamp(0.0, 1.0)) * scale.ext_factor;
            // Fused as GCC compiles ggml's `rope_yarn` (`-mfma` contracts `a*b + c*d`).
            (
                interp.mul_add(1.0 - ramp_mix, extrap * ramp_mix),
                scale.mscale * 0.1f32.mul_add((1.0 / scale.freq_scale).ln(), 1.0),
            )
        } else {
            (interp, scale.mscale)
        };
        cache[2 * i] = t.cos() * mscale;
        cache[2 * i + 1] = t.sin() * mscale;
        theta *= theta_scale;
    }
}

/// Rotates one head in place using a cache from [`rope_cache`].
///
/// The products are fused as GCC compiles ggml's `rotate_pairs` (`-O3 -mfma`, which contracts
/// `a*b ± c*d` into one multiply and one FMA): both layouts compute the first output as
/// `fma(x0, cos, -(x1·sin))`; the second is `fma(x0, sin, x1·cos)` for NeoX pairs and
/// `fma(x1, cos, x0·sin)` for adjacent pairs (vectorised there with `vfmaddsub`).
pub fn rope_apply(head: &mut [f32], n_rot: usize, layout: RopeLayout, cache: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports FMA (checked just above).
        unsafe { rope_apply_fma(head, n_rot, layout, cache) };
        return;
    }
    rope_apply_body(head, n_rot, layout, cache);
}

/// [`rope_apply`] compiled with FMA, so `mul_add` is one instruction instead of a libm call
/// (same result: a fused multiply-add rounds once either way).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
fn rope_apply_fma(head: &mut [f32], n_rot: usize, layout: RopeLayout, cache: &[f32]) {
    rope_apply_body(head, n_rot, layout, cache);
}

#[inline(always)]
fn rope_apply_body(head: &mut [f32], n_rot: usize, layout: RopeLayout, cache: &[f32]) {
    match layout {
        RopeLayout::Normal => {
            for i in 0..n_rot / 2 {
                let (c, s) = (cache[2 * i], cache[2 * i + 1]);
                let (x0, x1) = (head[2 * i], head[2 * i + 1]);
                head[2 * i] = x0.mul_add(c, -(x1 * s));
                head[2 * i + 1] = x1.mul_add(c, x0 * s);
            }
        }
        RopeLayout::Neox => {
            let half = n_rot / 2;
            for i in 0..half {
                let (c, s) = (cache[2 * i], cache[2 * i + 1]);
                let (x0, x1) = (head[i], head[i + half]);
                head[i] = x0.mul_add(c, -(x1 * s));
                head[i + half] = x0.mul_add(s, x1 * c);
            }
        }
    }
}

/// Softmax in place over `x` (already scaled and masked), ggml-style double sum.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for v in x.iter_mut() {
        let e = if *v == f32::NEG_INFINITY {
            0.0
        } else {
            (*v - max).exp()
        };
        *v = e;
        sum += f64::from(e);
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// GELU, tanh approximation, in f32, with `1 + a·x·x` fused as GCC compiles ggml's
/// `ggml_gelu_f32` (the f16 table built from it then matches llama.cpp's entry for entry).
pub fn gelu_f32(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const COEF_A: f32 = 0.044715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (COEF_A * x).mul_add(x, 1.0)).tanh())
}

fn gelu_table() -> &'static [u16] {
    static TABLE: OnceLock<Vec<u16>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| f16::from_f32(gelu_f32(f16::from_bits(bits).to_f32())).to_bits())
            .collect()
    })
}

/// `out = gelu(gate) * up`, with ggml's f16 lookup for |gate| < 10.
pub fn geglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    let table = gelu_table();
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = if g <= -10.0 {
            0.0
        } else if g >= 10.0 {
            g * u
        } else {
            f16::from_bits(table[f16::from_f32(g).to_bits() as usize]).to_f32() * u
        };
    }
}

/// `gate = gelu(gate) * up`, in place.
pub fn geglu_inplace(gate: &mut [f32], up: &[f32]) {
    let table = gelu_table();
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        *g = if x <= -10.0 {
            0.0
        } else if x >= 10.0 {
            x * u
        } else {
            f16::from_bits(table[f16::from_f32(x).to_bits() as usize]).to_f32() * u
        };
    }
}

/// `gate = silu(gate) * up`, in place.
pub fn swiglu_inplace(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// `out = silu(gate) * up`.
pub fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g / (1.0 + (-g).exp()) * u;
    }
}

/// Rounds through f16 (what storing into an f16 KV cache does).
#[inline]
pub fn round_f16(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_ignores_masked() {
        let mut x = vec![1.0, 2.0, f32::NEG_INFINITY, 0.5];
        softmax(&mut x);
        assert_eq!(x[2], 0.0);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[1] > x[0] && x[0] > x[3]);
    }

    #[test]
    fn rope_rotation_preserves_norm() {
        let mut cache = vec![0.0; 8];
        rope_cache(7, 8, 10000.0, 1.0, None, &mut cache);
        for layout in [RopeLayout::Normal, RopeLayout::Neox] {
            let mut h: Vec<f32> = (0..8).map(|i| i as f32 * 0.3 - 1.0).collect();
            let n0: f32 = h.iter().map(|v| v * v).sum();
            rope_apply(&mut h, 8, layout, &cache);
            let n1: f32 = h.iter().map(|v| v * v).sum();
            assert!((n0 - n1).abs() < 1e-4);
        }
    }

    #[test]
    fn gelu_known_values() {
        // Reference: torch.nn.functional.gelu(x, approximate="tanh").
        assert!((gelu_f32(1.0) - 0.841_192).abs() < 1e-5);
        assert!((gelu_f32(-1.0) + 0.158_808).abs() < 1e-5);
        let mut out = [0.0; 3];
        geglu(&[1.0, -20.0, 20.0], &[2.0, 2.0, 2.0], &mut out);
        assert!((out[0] - 1.682_38).abs() < 2e-3);
        assert_eq!(out[1], 0.0);
        assert_eq!(out[2], 40.0);
    }
}
