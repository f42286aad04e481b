//! Attention over an f16 KV cache for a group of up to [`crate::ATTN_GROUP`] queries of one
//! head: each key and value row is loaded and widened once and used by every query of the
//! group, instead of once per query.
//!
//! Bit-identical to the per-query path: a score is exactly `avx2::float::dot_f16` of the key
//! row and the f16 query (four accumulators over 8-element chunks, same reduction, plus the
//! empty scalar tail), and a value sum is `out += p * v` per element, multiply then add, keys
//! in order.

use crate::arch::x86_64::avx2::{hsum_ps, ld128};
use core::arch::x86_64::*;
use core::mem::MaybeUninit;

/// Longest head these kernels take (the queries are widened into a stack buffer).
pub(crate) const MAX_DIM: usize = 512;

/// Expands to `scores` and `values` for features `$feat`; `$sg` is how many queries one pass of
/// the score loop keeps in registers (four accumulators each).
macro_rules! attn_isa {
    ($feat:literal, $sg:literal) => {
        use super::*;

        /// Eight f16 (16 bytes) widened to f32.
        #[inline]
        #[target_feature(enable = $feat)]
        fn ld_f16(b: &[u8; 16]) -> __m256 {
            _mm256_cvtph_ps(ld128(b))
        }

        /// `N` queries (f32, already f16 values, `dim` apart in `q`) against every key.
        #[inline]
        #[target_feature(enable = $feat)]
        fn scores_n<const N: usize>(
            keys: &[u8],
            stride: usize,
            n_keys: usize,
            dim: usize,
            q: [&[f32]; N],
            out: [&mut [f32]; N],
        ) {
            let nc = dim / 8;
            let out = out.map(|o| &mut o[..n_keys]);
            for j in 0..n_keys {
                let (kc, _) = keys[j * stride..j * stride + dim * 2].as_chunks::<16>();
                let mut acc = [[_mm256_setzero_ps(); 4]; N];
                for (c, k) in kc.iter().enumerate() {
                    let kv = ld_f16(k);
                    for g in 0..N {
                        let qs = &q[g][c * 8..c * 8 + 8];
                        // SAFETY: `qs` is 8 readable f32; loadu has no alignment requirement.
                        let qv = unsafe { _mm256_loadu_ps(qs.as_ptr()) };
                        acc[g][c % 4] = _mm256_fmadd_ps(kv, qv, acc[g][c % 4]);
                    }
                }
                debug_assert_eq!(kc.len(), nc);
                for g in 0..N {
                    let [a0, a1, a2, a3] = acc[g];
                    let s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
                    // `+ 0.0` is the empty scalar tail of `dot_f16` (it turns -0 into +0).
                    out[g][j] = hsum_ps(s) + 0.0;
                }
            }
        }

        /// `scores[g * n_keys + j] = dot_f16(key j, query g)`; see [`crate::Kernels::attn_scores_f16`].
        #[target_feature(enable = $feat)]
        pub(crate) fn scores(
            keys: &[u8],
            stride: usize,
            n_keys: usize,
            dim: usize,
            q16: &[u8],
            scores: &mut [f32],
        ) {
            let ng = q16.len() / (2 * dim);
            // Uninitialised: zeroing 8 KiB per call cost more than a decode step's scores.
            let mut buf = [const { MaybeUninit::<f32>::uninit() }; crate::ATTN_GROUP * MAX_DIM];
            let len = ng * dim;
            // `dim` is a multiple of 8, so the queries are whole 8-value chunks.
            for (d, s) in buf[..len]
                .as_chunks_mut::<8>()
                .0
                .iter_mut()
                .zip(q16.as_chunks::<16>().0)
            {
                // SAFETY: `d` is 8 writable f32 slots; storeu has no alignment requirement.
                unsafe { _mm256_storeu_ps(d.as_mut_ptr().cast(), ld_f16(s)) };
            }
            // SAFETY: the loop above wrote all `len` (= ng * dim <= buf.len()) leading slots,
            // since `q16` holds exactly ng * dim f16 values.
            let qf: &[f32] = unsafe { core::slice::from_raw_parts(buf.as_ptr().cast(), len) };
            let mut rest = &mut scores[..ng * n_keys];
            let mut g = 0;
            while g < ng {
                let take = (ng - g).min($sg);
                let (head, tail) = rest.split_at_mut(take * n_keys);
                rest = tail;
                let qg = |i: usize| &qf[(g + i) * dim..(g + i + 1) * dim];
                let mut it = head.chunks_mut(n_keys);
                let mut next = || it.next().unwrap_or_default();
                match take {
                    1 => scores_n::<1>(keys, stride, n_keys, dim, [qg(0)], [next()]),
                    2 => scores_n::<2>(keys, stride, n_keys, dim, [qg(0), qg(1)], [next(), next()]),
                    3 => {
                        let o = [next(), next(), next()];
                        scores_n::<3>(keys, stride, n_keys, dim, [qg(0), qg(1), qg(2)], o)
                    }
                    _ => {
                        let o = [next(), next(), next(), next()];
                        let q = [qg(0), qg(1), qg(2), qg(3)];
                        scores_n::<4>(keys, stride, n_keys, dim, q, o)
                    }
                }
                g += take;
            }
        }

        /// `N` probability rows against every value row, 16 output elements at a time.
        #[inline]
        #[target_feature(enable = $feat)]
        fn values_n<const N: usize>(
            values: &[u8],
            stride: usize,
            n_keys: usize,
            dim: usize,
            p: [&[f32]; N],
            out: [&mut [f32]; N],
        ) {
            let p = p.map(|r| &r[..n_keys]);
            let out = out.map(|o| &mut o[..dim]);
            for d0 in (0..dim).step_by(16) {
                let mut acc = [[_mm256_setzero_ps(); 2]; N];
                for g in 0..N {
                    let o = &out[g][d0..d0 + 16];
                    // SAFETY: `o` is 16 readable f32; loadu has no alignment requirement.
                    acc[g] = unsafe {
                        [
                            _mm256_loadu_ps(o.as_ptr()),
                            _mm256_loadu_ps(o.as_ptr().add(8)),
                        ]
                    };
                }
                for j in 0..n_keys {
                    let o = j * stride + d0 * 2;
                    let (v, _) = values[o..o + 32].as_chunks::<16>();
                    let (v0, v1) = (ld_f16(&v[0]), ld_f16(&v[1]));
                    for g in 0..N {
                        let pj = _mm256_set1_ps(p[g][j]);
                        acc[g][0] = _mm256_add_ps(acc[g][0], _mm256_mul_ps(pj, v0));
                        acc[g][1] = _mm256_add_ps(acc[g][1], _mm256_mul_ps(pj, v1));
                    }
                }
                for g in 0..N {
                    let o = &mut out[g][d0..d0 + 16];
                    // SAFETY: `o` is 16 writable f32; storeu has no alignment requirement.
                    unsafe {
                        _mm256_storeu_ps(o.as_mut_ptr(), acc[g][0]);
                        _mm256_storeu_ps(o.as_mut_ptr().add(8), acc[g][1]);
                    }
                }
            }
        }

        /// `out[g] += Σ_j probs[g][j] · value j`; see [`crate::Kernels::attn_values_f16`].
        #[target_feature(enable = $feat)]
        pub(crate) fn values(
            values: &[u8],
            stride: usize,
            n_keys: usize,
            dim: usize,
            probs: &[f32],
            out: &mut [f32],
        ) {
            let ng = out.len() / dim;
            let mut pr = probs.chunks(n_keys.max(1));
            let mut p = || pr.next().unwrap_or_default();
            let mut it = out.chunks_mut(dim);
            let mut o = || it.next().unwrap_or_default();
            match ng {
                1 => values_n::<1>(values, stride, n_keys, dim, [p()], [o()]),
                2 => values_n::<2>(values, stride, n_keys, dim, [p(), p()], [o(), o()]),
                3 => values_n::<3>(
                    values,
                    stride,
                    n_keys,
                    dim,
                    [p(), p(), p()],
                    [o(), o(), o()],
                ),
                _ => {
                    let (pp, oo) = ([p(), p(), p(), p()], [o(), o(), o(), o()]);
                    values_n::<4>(values, stride, n_keys, dim, pp, oo)
                }
            }
        }
    };
}

/// AVX2 + FMA + F16C (16 vector registers: two queries per score pass).
pub(crate) mod avx2 {
    attn_isa!("avx2,fma,f16c", 2);
}

/// The same with AVX-512 VL's 32 vector registers: four queries per score pass.
pub(crate) mod avx512 {
    attn_isa!("avx2,fma,f16c,avx512f,avx512vl", 4);
}
