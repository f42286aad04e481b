//! The post-LayerNorm BERT encoder forward, over several sequences packed into one batch.
//!
//! Sequences are laid end to end (no padding): matrix products run on all their tokens at
//! once, and attention only looks inside each sequence, which is the attention mask a padded
//! batch would need. The kernels compute every output as one dot product whatever the batch,
//! so a sentence gets the same vector alone or in a batch.

use std::sync::{Mutex, OnceLock, PoisonError};

use hanlin_kernels::ThreadPool;

use super::config::BertConfig;
use super::error::Result;
use super::weights::{BertWeights, Linear, Norm};
use crate::linear::{self, ActBuf};
use crate::ops;

/// `erf(z)` to f64 precision: `2/√π · e^{-z²} · Σ (2z²)ⁿ z / (2n+1)!!`, a series of positive
/// terms (no cancellation); beyond |z| = 6 erf is ±1 to within 2e-17.
pub fn erf(z: f64) -> f64 {
    if z.is_nan() {
        return z;
    }
    let a = z.abs();
    if a >= 6.0 {
        return z.signum();
    }
    let two_z2 = 2.0 * a * a;
    let (mut term, mut sum) = (a, a);
    let mut n = 0.0;
    while term > sum * 1e-17 {
        term *= two_z2 / (2.0 * n + 3.0);
        sum += term;
        n += 1.0;
    }
    let v = std::f64::consts::FRAC_2_SQRT_PI * (-a * a).exp() * sum;
    v.min(1.0).copysign(z)
}

/// Step of the erf table used by [`gelu_erf`].
const ERF_STEP: f64 = 1.0 / 64.0;
/// The table covers `[0, ERF_MAX]`; erf is 1 beyond, to f64 precision.
const ERF_MAX: f64 = 6.0;

/// `(erf(z), erf'(z))` at `z = i · ERF_STEP`, from the exact series, built once.
fn erf_table() -> &'static [(f64, f64)] {
    static TABLE: OnceLock<Vec<(f64, f64)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let n = (ERF_MAX / ERF_STEP) as usize;
        (0..=n)
            .map(|i| {
                let z = i as f64 * ERF_STEP;
                (erf(z), std::f64::consts::FRAC_2_SQRT_PI * (-z * z).exp())
            })
            .collect()
    })
}

/// erf by cubic Hermite interpolation of [`erf_table`]: within 1e-9 of [`erf`] (the error
/// bound is step⁴/384 · max|erf⁗| ≈ 7e-10), far below f32 resolution, at a fraction of the
/// series' cost, which on MiniLM was a fifth of the whole forward.
fn erf_fast(z: f64) -> f64 {
    let a = z.abs();
    if a.is_nan() || a >= ERF_MAX {
        return if a.is_nan() { z } else { z.signum() };
    }
    let table = erf_table();
    let x = a / ERF_STEP;
    let i = (x as usize).min(table.len() - 2);
    let t = x - i as f64;
    let ((y0, m0), (y1, m1)) = (table[i], table[i + 1]);
    let (t2, t3) = (t * t, t * t * t);
    let v = (2.0 * t3 - 3.0 * t2 + 1.0) * y0
        + (t3 - 2.0 * t2 + t) * ERF_STEP * m0
        + (3.0 * t2 - 2.0 * t3) * y1
        + (t3 - t2) * ERF_STEP * m1;
    v.copysign(z)
}

/// GELU in the erf form BERT uses: `x · Φ(x) = x/2 · (1 + erf(x/√2))`.
pub fn gelu_erf(x: f32) -> f32 {
    let x = f64::from(x);
    (0.5 * x * (1.0 + erf_fast(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
}

/// `Σ a[i]·b[i]` in eight interleaved partial sums, a shape the compiler vectorizes.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// In-place LayerNorm of one row: `(x - mean) / sqrt(var + eps) * w + b`, sums in f64.
pub(crate) fn layer_norm(x: &mut [f32], n: &Norm, eps: f32) {
    let len = x.len() as f64;
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / len;
    let var = x
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / len;
    let inv = 1.0 / (var + f64::from(eps)).sqrt();
    for ((v, &g), &b) in x.iter_mut().zip(&n.w).zip(&n.b) {
        *v = ((f64::from(*v) - mean) * inv) as f32 * g + b;
    }
}

/// Runs `f` on each `chunk`-sized piece of `data`, the pieces spread over the pool.
fn par_chunks(pool: &ThreadPool, data: &mut [f32], chunk: usize, f: impl Fn(&mut [f32]) + Sync) {
    // Each piece behind its own (uncontended) mutex: disjoint mutable access without unsafe.
    let pieces: Vec<Mutex<&mut [f32]>> = data.chunks_mut(chunk.max(1)).map(Mutex::new).collect();
    pool.for_each_index(pieces.len(), |i| {
        let mut piece = pieces[i].lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut piece);
    });
}

/// Buffers for one forward, sized for `t` tokens.
struct Buffers {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// Attention output, head-major `[n_head][t][head_dim]` so each (sequence, head) job
    /// writes one contiguous piece.
    ctx_heads: Vec<f32>,
    /// The same, token-major `[t][n_embd]`, as the output projection reads it.
    ctx: Vec<f32>,
    /// Projection outputs `[t][n_embd]`.
    proj: Vec<f32>,
    /// FFN hidden `[t][n_ff]`.
    ff: Vec<f32>,
    act: ActBuf,
}

/// The encoder over one group of sequences, packed end to end.
pub(crate) struct Encoder<'a> {
    pub cfg: &'a BertConfig,
    pub w: &'a BertWeights,
    pub bytes: &'a [u8],
    pub pool: &'a ThreadPool,
}

impl Encoder<'_> {
    fn linear(
        &self,
        l: &Linear,
        x: &[f32],
        n: usize,
        out: &mut [f32],
        act: &mut ActBuf,
    ) -> Result<()> {
        linear::matmul(self.bytes, &l.w, x, n, out, act, self.pool)?;
        for row in out[..n * l.w.rows].chunks_exact_mut(l.w.rows) {
            for (o, &b) in row.iter_mut().zip(&l.b) {
                *o += b;
            }
        }
        Ok(())
    }

    /// Final hidden states `[t][n_embd]` for the tokens of `seqs`, packed in order.
    /// Ids and lengths must already be checked against the vocabulary and position table.
    pub fn forward(&self, seqs: &[&[u32]]) -> Result<Vec<f32>> {
        let c = self.cfg;
        let d = c.n_embd;
        let t: usize = seqs.iter().map(|s| s.len()).sum();

        // Embeddings: (word + token type 0) + position, HF's order, then LayerNorm.
        let mut x = vec![0.0f32; t * d];
        let mut pos_row = vec![0.0f32; d];
        let mut row = 0;
        for s in seqs {
            for (p, &id) in s.iter().enumerate() {
                let xr = &mut x[row * d..(row + 1) * d];
                linear::get_row(self.bytes, &self.w.token_embd, id as usize, xr)?;
                linear::get_row(self.bytes, &self.w.position_embd, p, &mut pos_row)?;
                for ((v, &pe), &te) in xr.iter_mut().zip(&pos_row).zip(&self.w.token_type0) {
                    *v = (*v + te) + pe;
                }
                row += 1;
            }
        }
        par_chunks(self.pool, &mut x, d, |r| {
            layer_norm(r, &self.w.embd_norm, c.eps)
        });

        let mut b = Buffers {
            q: vec![0.0; t * d],
            k: vec![0.0; t * d],
            v: vec![0.0; t * d],
            ctx_heads: vec![0.0; t * d],
            ctx: vec![0.0; t * d],
            proj: vec![0.0; t * d],
            ff: vec![0.0; t * c.n_ff],
            act: ActBuf::default(),
        };
        for layer in &self.w.layers {
            self.linear(&layer.q, &x, t, &mut b.q, &mut b.act)?;
            self.linear(&layer.k, &x, t, &mut b.k, &mut b.act)?;
            self.linear(&layer.v, &x, t, &mut b.v, &mut b.act)?;
            self.attention(seqs, &mut b);
            self.linear(&layer.o, &b.ctx, t, &mut b.proj, &mut b.act)?;
            self.add_norm(&mut x, &b.proj, &layer.attn_norm);

            self.linear(&layer.up, &x, t, &mut b.ff, &mut b.act)?;
            par_chunks(self.pool, &mut b.ff, c.n_ff * 8, |r| {
                r.iter_mut().for_each(|v| *v = gelu_erf(*v))
            });
            self.linear(&layer.down, &b.ff, t, &mut b.proj, &mut b.act)?;
            self.add_norm(&mut x, &b.proj, &layer.out_norm);
        }
        Ok(x)
    }

    /// `x = LayerNorm(x + y)` row by row (post-LN residual).
    fn add_norm(&self, x: &mut [f32], y: &[f32], n: &Norm) {
        let d = self.cfg.n_embd;
        for (xv, &yv) in x.iter_mut().zip(y) {
            *xv += yv;
        }
        par_chunks(self.pool, x, d, |r| layer_norm(r, n, self.cfg.eps));
    }

    /// Scaled dot-product attention within each sequence, all heads, into `b.ctx`.
    fn attention(&self, seqs: &[&[u32]], b: &mut Buffers) {
        let c = self.cfg;
        let (d, hd) = (c.n_embd, c.head_dim());
        let t = b.q.len() / d;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut offsets = Vec::with_capacity(seqs.len());
        let mut off = 0;
        for s in seqs {
            offsets.push((off, s.len()));
            off += s.len();
        }
        // Jobs in head-major order, so job (h, s) owns ctx_heads[h][off_s..off_s+len_s].
        let mut jobs: Vec<(usize, usize, usize, Mutex<&mut [f32]>)> = Vec::new();
        let mut rest: &mut [f32] = &mut b.ctx_heads;
        for h in 0..c.n_head {
            for &(off, len) in &offsets {
                let (piece, tail) = std::mem::take(&mut rest).split_at_mut(len * hd);
                rest = tail;
                jobs.push((h, off, len, Mutex::new(piece)));
            }
        }
        let (q, k, v) = (&b.q, &b.k, &b.v);
        self.pool.for_each_index(jobs.len(), |j| {
            let (h, off, len, ref out) = jobs[j];
            let mut out = out.lock().unwrap_or_else(PoisonError::into_inner);
            let span = |i: usize| {
                let s = (off + i) * d + h * hd;
                s..s + hd
            };
            let mut scores = vec![0.0f32; len];
            for i in 0..len {
                let qi = &q[span(i)];
                for (jj, sc) in scores.iter_mut().enumerate() {
                    let kj = &k[span(jj)];
                    *sc = dot(qi, kj) * scale;
                }
                ops::softmax(&mut scores);
                let oi = &mut out[i * hd..(i + 1) * hd];
                oi.fill(0.0);
                for (jj, &p) in scores.iter().enumerate() {
                    for (o, &vv) in oi.iter_mut().zip(&v[span(jj)]) {
                        *o += p * vv;
                    }
                }
            }
        });
        drop(jobs);
        for h in 0..c.n_head {
            for tok in 0..t {
                let src = &b.ctx_heads[(h * t + tok) * hd..(h * t + tok + 1) * hd];
                b.ctx[tok * d + h * hd..tok * d + (h + 1) * hd].copy_from_slice(src);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_and_gelu_match_published_values() {
        // erf values from Abramowitz & Stegun table 7.1; Φ from standard normal tables.
        for (z, want) in [
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.0, 0.999_977_909_503_001_4),
        ] {
            assert!((erf(z) - want).abs() < 1e-15, "erf({z})");
            assert!((erf(-z) + want).abs() < 1e-15, "erf(-{z})");
        }
        assert_eq!(erf(0.0), 0.0);
        for i in -8000..=8000 {
            let z = f64::from(i) * 0.000_937_5;
            assert!((erf_fast(z) - erf(z)).abs() < 1e-9, "erf_fast({z})");
        }
        assert_eq!(erf(7.0), 1.0);
        for (x, phi) in [
            (1.0f32, 0.841_344_746_068_542_9),
            (-1.0, 0.158_655_253_931_457_05),
            (0.5, 0.691_462_461_274_013_1),
            (2.0, 0.977_249_868_051_820_8),
            (-3.0, 0.001_349_898_031_630_094_6),
        ] {
            let want = (f64::from(x) * phi) as f32;
            assert!((gelu_erf(x) - want).abs() <= 1e-7, "gelu({x})");
        }
    }
}
