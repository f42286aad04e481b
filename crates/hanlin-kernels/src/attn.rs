//! Attention over an f16 KV cache for a group of queries of one head (prefill: consecutive
//! positions of one sequence), each key and value row read once for the whole group.

use crate::error::KernelError;
use crate::isa::Isa;
use crate::kernels::{expect_len, Kernels};
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
        if dim.is_multiple_of(8) && dim <= crate::arch::x86_64::attn::MAX_DIM {
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

    /// Probability-weighted sums of f16 value rows for `g` (1..=[`ATTN_GROUP`]) queries:
    /// `out[q * dim + d] += probs[q * n_keys + j] * value_j[d]` for `j` in order, each step a
    /// multiply then an add (not fused), value `j` being `dim` f16 values at byte
    /// `j * stride` of `values`. Zero probabilities are multiplied like any other, which for
    /// finite values adds nothing (a running sum that starts at +0 never becomes −0).
    pub fn attn_values_f16(
        &self,
        values: &[u8],
        stride: usize,
        n_keys: usize,
        dim: usize,
        probs: &[f32],
        out: &mut [f32],
    ) -> Result<(), KernelError> {
        let ng = groups("value output", out.len(), dim)?;
        expect_len("probabilities", ng * n_keys, probs.len())?;
        check_rows("values", values, stride, n_keys, dim)?;
        if n_keys == 0 {
            return Ok(());
        }
        #[cfg(target_arch = "x86_64")]
        if dim.is_multiple_of(16) {
            use crate::arch::x86_64::attn;
            match self.isa() {
                // SAFETY: the ISA was verified when these kernels were built; lengths above.
                Isa::Avx512Vnni => unsafe {
                    attn::avx512::values(values, stride, n_keys, dim, probs, out)
                },
                // SAFETY: as above (every non-generic ISA includes AVX2 + FMA + F16C).
                Isa::Avx2 | Isa::AvxVnni => unsafe {
                    attn::avx2::values(values, stride, n_keys, dim, probs, out)
                },
                Isa::Generic => values_scalar(values, stride, n_keys, dim, probs, out),
            }
            return Ok(());
        }
        values_scalar(values, stride, n_keys, dim, probs, out);
        Ok(())
    }
}

/// Portable [`Kernels::attn_values_f16`].
fn values_scalar(
    values: &[u8],
    stride: usize,
    n_keys: usize,
    dim: usize,
    probs: &[f32],
    out: &mut [f32],
) {
    for (p, o) in probs.chunks(n_keys.max(1)).zip(out.chunks_mut(dim)) {
        for (j, &pj) in p.iter().enumerate().take(n_keys) {
            let row = values[j * stride..j * stride + 2 * dim].as_chunks::<2>().0;
            for (o, v) in o.iter_mut().zip(row) {
                *o += pj * f32::from(half::f16::from_le_bytes(*v));
            }
        }
    }
}
