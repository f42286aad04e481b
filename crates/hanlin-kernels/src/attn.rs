//! Attention over an f16 KV cache for a group of queries of one head (prefill: consecutive
//! positions of one sequence), each key and value row read once for the whole group, in the
//! float order of llama.cpp's CPU attention (flash attention off, f16 cache):
//!
//! - scores: each is `vec_dot(F16, key, f16(query))`, ggml's AVX-512 `ggml_vec_dot_f16`;
//! - softmax: ggml's `ggml_vec_soft_max_f32` — its AVX-512 `ggml_v_expf` approximation of
//!   `exp(x − max)`, summed per 16 keys (aligned to key 0 of the cache) and across chunks in
//!   f64, then scaled by `1 / sum` in f32 ([`Kernels::attn_softmax`]);
//! - values: for each output dimension, `vec_dot(F16, values of the keys, f16(probs))` over
//!   the keys — four 16-lane accumulators indexed by the key's position modulo 64
//!   ([`Kernels::attn_values_f16`]).
//!
//! That is what llama.cpp computes for a single-token batch; for batches of two or more tokens
//! it runs llamafile's tinyBLAS instead, which keeps one 16-lane accumulator per dot product.
//! The two differ in rounding; we always take the single-token order, so every row's result is
//! independent of what else is in the batch (see `docs/correctness.md`).

use crate::error::KernelError;
use crate::isa::Isa;
use crate::kernels::{expect_len, Kernels};
use half::f16;
use hanlin_gguf::GgmlType;

/// Most queries one [`Kernels::attn_scores_f16`] / [`Kernels::attn_values_f16`] call takes.
pub const ATTN_GROUP: usize = 4;

/// Checks that `rows` rows of `dim` f16 values, `stride` bytes apart, fit in `data`.
fn check_rows(
    what: &'static str,
    data: &[u8],
    stride: usize,
    rows: usize,
    dim: usize,
) -> Result<(), KernelError> {
    if rows == 0 {
        return Ok(());
    }
    let row = dim.checked_mul(2).ok_or(KernelError::Overflow { what })?;
    if stride < row {
        return Err(KernelError::Length {
            what,
            expected: row,
            got: stride,
        });
    }
    let need = (rows - 1)
        .checked_mul(stride)
        .and_then(|v| v.checked_add(row))
        .ok_or(KernelError::Overflow { what })?;
    if data.len() < need {
        return Err(KernelError::Length {
            what,
            expected: need,
            got: data.len(),
        });
    }
    Ok(())
}

/// Number of queries in a buffer of `len` elements of `dim`, checked to be 1..=ATTN_GROUP.
fn groups(what: &'static str, len: usize, dim: usize) -> Result<usize, KernelError> {
    let ng = len.checked_div(dim).unwrap_or(0);
    if ng == 0 || ng > ATTN_GROUP || ng * dim != len {
        return Err(KernelError::Length {
            what,
            expected: ATTN_GROUP * dim,
            got: len,
        });
    }
    Ok(ng)
}

/// Keys per softmax chunk (ggml's AVX-512 width).
const CHUNK: usize = 16;

/// Residue classes of the value accumulators: four 16-lane registers of `ggml_vec_dot_f16`.
const RESIDUES: usize = 64;

impl Kernels {
    /// Scores of `g` (1..=[`ATTN_GROUP`]) queries against `n_keys` f16 key rows:
    /// `scores[q * n_keys + j] = vec_dot(F16, dim, key_j, query_q)` bit for bit, where key `j`
    /// is the `dim` f16 values at byte `j * stride` of `keys` and `q16` holds the queries as
    /// f16 bytes back to back.
    pub fn attn_scores_f16(
        &self,
        keys: &[u8],
        stride: usize,
        n_keys: usize,
        dim: usize,
        q16: &[u8],
        scores: &mut [f32],
    ) -> Result<(), KernelError> {
        let ng = groups("queries (f16 bytes)", q16.len(), 2 * dim)?;
        expect_len("scores", ng * n_keys, scores.len())?;
        check_rows("keys", keys, stride, n_keys, dim)?;
        if n_keys == 0 {
            return Ok(());
        }
        #[cfg(target_arch = "x86_64")]
        if dim.is_multiple_of(64) && dim <= crate::arch::x86_64::attn::MAX_DIM {
            use crate::arch::x86_64::attn;
            match self.isa() {
                // SAFETY: the ISA was verified when these kernels were built; lengths above.
                Isa::Avx512Vnni => unsafe {
                    attn::avx512::scores(keys, stride, n_keys, dim, q16, scores)
                },
                // SAFETY: as above (every non-generic ISA includes AVX2 + FMA + F16C).
                Isa::Avx2 | Isa::AvxVnni => unsafe {
                    attn::avx2::scores(keys, stride, n_keys, dim, q16, scores)
                },
                Isa::Generic => self.scores_by_dot(keys, stride, n_keys, dim, q16, scores)?,
            }
            return Ok(());
        }
        self.scores_by_dot(keys, stride, n_keys, dim, q16, scores)
    }

    /// [`Kernels::attn_scores_f16`] one dot at a time.
    fn scores_by_dot(
        &self,
        keys: &[u8],
        stride: usize,
        n_keys: usize,
        dim: usize,
        q16: &[u8],
        scores: &mut [f32],
    ) -> Result<(), KernelError> {
        for (q, out) in q16.chunks(2 * dim).zip(scores.chunks_mut(n_keys.max(1))) {
            for (j, o) in out.iter_mut().enumerate().take(n_keys) {
                *o = self.vec_dot(
                    GgmlType::F16,
                    dim,
                    &keys[j * stride..j * stride + 2 * dim],
                    q,
                )?;
            }
        }
        Ok(())
    }

    /// Softmax in place over the (already scaled) scores of keys `first_key..first_key +
    /// x.len()`, bit for bit as ggml's `ggml_compute_forward_soft_max_f32` on this machine's
    /// llama.cpp: `max`, then [`exp_ggml`]`(x − max)`, summed per chunk of 16 keys aligned to
    /// key 0 (the cache row ggml sees, keys outside `x` being masked to 0) with ggml's
    /// `_mm512_reduce_add_ps` order, chunks added in f64, and every value multiplied by
    /// `f32(1 / sum)`. `-inf` entries become 0.
    pub fn attn_softmax(&self, x: &mut [f32], first_key: usize) {
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        #[cfg(target_arch = "x86_64")]
        if self.isa() != Isa::Generic {
            // SAFETY: every non-generic ISA includes AVX2 + FMA + F16C, verified when these
            // kernels were built.
            unsafe { crate::arch::x86_64::attn::avx2::exp_sub(x, max) };
            softmax_finish(x, first_key);
            return;
        }
        for v in x.iter_mut() {
            *v = exp_ggml(*v - max);
        }
        softmax_finish(x, first_key);
    }

    /// Probability-weighted sums of f16 value rows for `g` (1..=[`ATTN_GROUP`]) queries:
    /// `out[q * dim + d] = vec_dot(F16, n, (value_j[d])_j, (probs[q * n + j])_j)` in ggml's
    /// order, the keys being `first_key..first_key + n` (`n = offsets.len()`; key
    /// `first_key + j`'s `dim` f16 values are at byte `offsets[j]` of `values`) and the
    /// probabilities already f16 values. Key `k` feeds lane `k % 16` of accumulator
    /// `(k / 16) % 4`, in key order; the four are reduced `(0 + 2) + (1 + 3)`, then across lanes
    /// like `_mm512_reduce_add_ps`. Keys outside the row contribute `+0`, so this equals
    /// llama.cpp's product over its padded, masked cache row.
    pub fn attn_values_f16(
        &self,
        values: &[u8],
        offsets: &[usize],
        first_key: usize,
        dim: usize,
        probs: &[f32],
        out: &mut [f32],
    ) -> Result<(), KernelError> {
        let ng = groups("value output", out.len(), dim)?;
        let n = offsets.len();
        expect_len("probabilities", ng * n, probs.len())?;
        let row = dim
            .checked_mul(2)
            .ok_or(KernelError::Overflow { what: "value row" })?;
        for &o in offsets {
            let end = o
                .checked_add(row)
                .ok_or(KernelError::Overflow { what: "value row" })?;
            if end > values.len() {
                return Err(KernelError::Length {
                    what: "values",
                    expected: end,
                    got: values.len(),
                });
            }
        }
        if n == 0 {
            out.fill(0.0);
            return Ok(());
        }
        let rows = Rows {
            values,
            offsets,
            row,
        };
        #[cfg(target_arch = "x86_64")]
        if dim.is_multiple_of(16) {
            use crate::arch::x86_64::attn;
            match self.isa() {
                // SAFETY: the ISA was verified when these kernels were built; lengths above.
                Isa::Avx512Vnni => unsafe {
                    attn::avx512::values(&rows, first_key, dim, probs, out)
                },
                // SAFETY: as above (every non-generic ISA includes AVX2 + FMA + F16C).
                Isa::Avx2 | Isa::AvxVnni => unsafe {
                    attn::avx2::values(&rows, first_key, dim, probs, out)
                },
                Isa::Generic => values_scalar(&rows, first_key, dim, probs, out),
            }
            return Ok(());
        }
        values_scalar(&rows, first_key, dim, probs, out);
        Ok(())
    }
}

/// Value rows at byte offsets of one buffer, checked to lie inside it.
pub(crate) struct Rows<'a> {
    values: &'a [u8],
    offsets: &'a [usize],
    row: usize,
}

impl Rows<'_> {
    /// Number of rows.
    pub(crate) fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Row `j`'s bytes.
    #[inline(always)]
    pub(crate) fn get(&self, j: usize) -> &[u8] {
        let o = self.offsets[j];
        &self.values[o..o + self.row]
    }
}

/// ggml's AVX-512 `ggml_v_expf` for one value, bit for bit: `2^n · p(b)` with
/// `n = round(x · log2 e)`, `b = x − n · ln 2` in two steps, a degree-5 polynomial, and
/// `vscalefps` (an exact power-of-two scaling, rounded once); `|n| > 192` gives 0 or ∞.
pub fn exp_ggml(x: f32) -> f32 {
    let r = f32::from_bits(0x4b40_0000); // 0x1.8p23
    let z = x.mul_add(f32::from_bits(0x3fb8_aa3b), r); // log2(e)
    let n = z - r;
    let b = (-n).mul_add(
        f32::from_bits(0x35bf_be8e),
        (-n).mul_add(f32::from_bits(0x3f31_7200), x),
    );
    let u = b * b;
    let j = f32::from_bits(0x3c07_2010)
        .mul_add(b, f32::from_bits(0x3d2b_9f17))
        .mul_add(
            u,
            f32::from_bits(0x3e2a_af33).mul_add(b, f32::from_bits(0x3eff_fedb)),
        )
        .mul_add(u, f32::from_bits(0x3f7f_fff6).mul_add(b, 1.0));
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    // j · 2^n is exact in f64; the conversion rounds once, as `vscalefps` does.
    (f64::from(j) * 2f64.powi(n as i32)) as f32
}

/// The chunked sum and the scaling of [`Kernels::attn_softmax`], after the exponentials.
fn softmax_finish(x: &mut [f32], first_key: usize) {
    let mut sum = 0f64;
    let mut k = 0;
    while k < x.len() {
        // Chunk of keys [c0, c0 + 16) in cache positions; `x[k..end]` is its part in `x`.
        let pos = first_key + k;
        let lane0 = pos % CHUNK;
        let end = (k + CHUNK - lane0).min(x.len());
        let mut v = [0f32; CHUNK];
        v[lane0..lane0 + end - k].copy_from_slice(&x[k..end]);
        sum += f64::from(crate::arch::generic::float::reduce16(&v));
        k = end;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// Portable [`Kernels::attn_values_f16`].
fn values_scalar(rows: &Rows<'_>, first_key: usize, dim: usize, probs: &[f32], out: &mut [f32]) {
    let n = rows.len();
    for (p, o) in probs.chunks(n.max(1)).zip(out.chunks_mut(dim)) {
        for (d, o) in o.iter_mut().enumerate() {
            let mut acc = [0f32; RESIDUES];
            for (j, &pj) in p.iter().enumerate().take(n) {
                let row = rows.get(j);
                let v = f16::from_le_bytes([row[2 * d], row[2 * d + 1]]).to_f32();
                let a = &mut acc[(first_key + j) % RESIDUES];
                *a = v.mul_add(pj, *a);
            }
            let y: [f32; CHUNK] =
                std::array::from_fn(|l| (acc[l] + acc[32 + l]) + (acc[16 + l] + acc[48 + l]));
            *o = crate::arch::generic::float::reduce16(&y);
        }
    }
}
