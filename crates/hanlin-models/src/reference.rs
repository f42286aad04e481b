//! The naive f32 reference forward, llama2.c style: every weight dequantized to f32 up front,
//! f32 everywhere (no activation quantization, no f16 cache), one token at a time, obvious
//! loops. Slow on purpose; it is the oracle the fast path is tested against.

use hanlin_gguf::GgufFile;

use crate::arch::Slot;
use crate::config::{Activation, ModelConfig};
use crate::error::Result;
use crate::linear::to_f32;
use crate::ops;
use crate::weights::{Weight, Weights};

/// A dense f32 matrix `[rows][cols]`.
#[derive(Debug, Clone)]
struct Mat {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Mat {
    fn load(bytes: &[u8], w: &Weight) -> Result<Self> {
        Ok(Mat {
            rows: w.rows,
            cols: w.cols,
            data: to_f32(bytes, w)?,
        })
    }

    /// out = W · x
    fn matvec(&self, x: &[f32], out: &mut [f32]) {
        for (r, o) in out.iter_mut().enumerate().take(self.rows) {
            let row = &self.data[r * self.cols..(r + 1) * self.cols];
            *o = row.iter().zip(x).map(|(a, b)| a * b).sum();
        }
    }
}

#[derive(Debug)]
struct RefLayer {
    attn_norm: Vec<f32>,         // [n_embd]
    wq: Mat,                     // [n_head*hd_k, n_embd]
    wk: Mat,                     // [n_kv*hd_k, n_embd]
    wv: Mat,                     // [n_kv*hd_v, n_embd]
    wo: Mat,                     // [n_embd, n_head*hd_v]
    bq: Option<Vec<f32>>,        // [n_head*hd_k]
    bk: Option<Vec<f32>>,        // [n_kv*hd_k]
    bv: Option<Vec<f32>>,        // [n_kv*hd_v]
    q_norm: Option<Vec<f32>>,    // [hd_k]
    k_norm: Option<Vec<f32>>,    // [hd_k]
    post_attn: Option<Vec<f32>>, // [n_embd]
    ffn_norm: Vec<f32>,          // [n_embd]
    gate: Mat,                   // [n_ff, n_embd]
    up: Mat,                     // [n_ff, n_embd]
    down: Mat,                   // [n_embd, n_ff]
    post_ffn: Option<Vec<f32>>,  // [n_embd]
}

/// The reference model with its own f32 KV cache (one sequence).
#[derive(Debug)]
pub struct ReferenceModel {
    /// Hyperparameters.
    pub config: ModelConfig,
    embd: Mat,          // [n_vocab, n_embd]
    out_norm: Vec<f32>, // [n_embd]
    output: Mat,        // [n_vocab, n_embd]
    layers: Vec<RefLayer>,
    rope_freqs: Option<Vec<f32>>, // [n_rot/2]
    k_cache: Vec<Vec<f32>>,       // [layer][pos*kv_dim_k]
    v_cache: Vec<Vec<f32>>,       // [layer][pos*kv_dim_v]
    pos: usize,
}

impl ReferenceModel {
    /// Dequantizes every weight of `file` to f32.
    pub fn load(file: &GgufFile) -> Result<Self> {
        let config = ModelConfig::from_gguf(file)?;
        let w = Weights::load(file, &config)?;
        let b = file.as_bytes();
        let opt = |w: Option<&Weight>| w.map(|w| to_f32(b, w)).transpose();
        let mut layers = Vec::new();
        for l in &w.layers {
            layers.push(RefLayer {
                attn_norm: to_f32(b, l.req(Slot::AttnNorm))?,
                wq: Mat::load(b, l.req(Slot::Wq))?,
                wk: Mat::load(b, l.req(Slot::Wk))?,
                wv: Mat::load(b, l.req(Slot::Wv))?,
                wo: Mat::load(b, l.req(Slot::Wo))?,
                bq: opt(l.get(Slot::Bq))?,
                bk: opt(l.get(Slot::Bk))?,
                bv: opt(l.get(Slot::Bv))?,
                q_norm: opt(l.get(Slot::QNorm))?,
                k_norm: opt(l.get(Slot::KNorm))?,
                post_attn: opt(l.get(Slot::AttnPostNorm))?,
                ffn_norm: to_f32(b, l.req(Slot::FfnNorm))?,
                gate: Mat::load(b, l.req(Slot::FfnGate))?,
                up: Mat::load(b, l.req(Slot::FfnUp))?,
                down: Mat::load(b, l.req(Slot::FfnDown))?,
                post_ffn: opt(l.get(Slot::FfnPostNorm))?,
            });
        }
        Ok(ReferenceModel {
            embd: Mat::load(b, &w.token_embd)?,
            out_norm: to_f32(b, &w.output_norm)?,
            output: Mat::load(b, &w.output)?,
            rope_freqs: opt(w.rope_freqs.as_ref())?,
            k_cache: vec![Vec::new(); config.n_layer],
            v_cache: vec![Vec::new(); config.n_layer],
            layers,
            config,
            pos: 0,
        })
    }

    /// Runs one token at the next position and returns its logits.
    pub fn step(&mut self, token: u32) -> Vec<f32> {
        let c = self.config.clone();
        let (d, hk, hv) = (c.n_embd, c.head_dim_k, c.head_dim_v);
        let pos = self.pos;
        let mut x = self.embd.data[token as usize * d..(token as usize + 1) * d].to_vec();
        if let Some(s) = c.embed_scale {
            x.iter_mut().for_each(|v| *v *= s);
        }
        let mut xn = vec![0.0; d];
        for (il, l) in self.layers.iter().enumerate() {
            ops::rms_norm(&x, &l.attn_norm, c.norm_eps, &mut xn);
            let mut q = vec![0.0; c.n_head * hk];
            let mut k = vec![0.0; c.n_head_kv * hk];
            let mut v = vec![0.0; c.n_head_kv * hv];
            l.wq.matvec(&xn, &mut q);
            l.wk.matvec(&xn, &mut k);
            l.wv.matvec(&xn, &mut v);
            for (t, bias) in [(&mut q, &l.bq), (&mut k, &l.bk), (&mut v, &l.bv)] {
                if let Some(bias) = bias {
                    t.iter_mut().zip(bias).for_each(|(a, b)| *a += b);
                }
            }
            let swa = c.swa_layers[il];
            let base = if swa { c.rope_base_swa } else { c.rope_base };
            let scale = c.rope_scale(base, swa);
            let mut cache = vec![0.0; c.n_rot];
            ops::rope_cache_scaled(
                pos,
                c.n_rot,
                base,
                &scale,
                self.rope_freqs.as_deref(),
                &mut cache,
            );
            for h in q.chunks_mut(hk) {
                if let Some(w) = &l.q_norm {
                    ops::rms_norm_inplace(h, w, c.norm_eps);
                }
                ops::rope_apply(h, c.n_rot, c.rope_layout, &cache);
            }
            for h in k.chunks_mut(hk) {
                if let Some(w) = &l.k_norm {
                    ops::rms_norm_inplace(h, w, c.norm_eps);
                }
                ops::rope_apply(h, c.n_rot, c.rope_layout, &cache);
            }
            self.k_cache[il].extend_from_slice(&k);
            self.v_cache[il].extend_from_slice(&v);
            let lo = match (swa, c.sliding_window) {
                (true, Some(w)) => (pos + 1).saturating_sub(w),
                _ => 0,
            };
            let mut att = vec![0.0; c.n_head * hv];
            let group = c.n_head / c.n_head_kv;
            for h in 0..c.n_head {
                let kvh = h / group;
                let qh = &q[h * hk..(h + 1) * hk];
                let mut scores: Vec<f32> = (lo..=pos)
                    .map(|p| {
                        let kr = &self.k_cache[il][p * c.n_head_kv * hk + kvh * hk..][..hk];
                        qh.iter().zip(kr).map(|(a, b)| a * b).sum::<f32>() * c.attn_scale
                    })
                    .collect();
                ops::softmax(&mut scores);
                let out = &mut att[h * hv..(h + 1) * hv];
                for (j, p) in (lo..=pos).enumerate() {
                    let vr = &self.v_cache[il][p * c.n_head_kv * hv + kvh * hv..][..hv];
                    out.iter_mut()
                        .zip(vr)
                        .for_each(|(o, vv)| *o += scores[j] * vv);
                }
            }
            let mut proj = vec![0.0; d];
            l.wo.matvec(&att, &mut proj);
            if let Some(w) = &l.post_attn {
                ops::rms_norm_inplace(&mut proj, w, c.norm_eps);
            }
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
            ops::rms_norm(&x, &l.ffn_norm, c.norm_eps, &mut xn);
            let mut g = vec![0.0; c.n_ff];
            let mut u = vec![0.0; c.n_ff];
            l.gate.matvec(&xn, &mut g);
            l.up.matvec(&xn, &mut u);
            let hidden: Vec<f32> = g
                .iter()
                .zip(&u)
                .map(|(&g, &u)| match c.activation {
                    Activation::Silu => g / (1.0 + (-g).exp()) * u,
                    Activation::Gelu => ops::gelu_f32(g) * u,
                })
                .collect();
            l.down.matvec(&hidden, &mut proj);
            if let Some(w) = &l.post_ffn {
                ops::rms_norm_inplace(&mut proj, w, c.norm_eps);
            }
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
        }
        ops::rms_norm_inplace(&mut x, &self.out_norm, c.norm_eps);
        let mut logits = vec![0.0; c.n_vocab];
        self.output.matvec(&x, &mut logits);
        if let Some(cap) = c.final_softcap {
            logits.iter_mut().for_each(|v| *v = (*v / cap).tanh() * cap);
        }
        self.pos += 1;
        logits
    }
}
