//! Attention over an f16 KV cache for a group of up to [`crate::ATTN_GROUP`] queries of one
//! head: each key and value row is loaded and widened once and used by every query of the
//! group, instead of once per query.
//!
//! Bit-identical to the portable definitions in `crate::attn` (ggml's order): a score is
//! `dot_f16` of the key row and the f16 query (four 16-lane accumulators over 16-value chunks,
//! chunk `c` into accumulator `c % 4`, reduced `(0 + 2) + (1 + 3)` and then across lanes), and
//! a value sum keeps, per output dimension, one accumulator per key residue modulo 64, folded
//! and reduced the same way. Registers hold 16-lane accumulators as one zmm (AVX-512) or two
//! ymm halves (AVX2); only the lane bookkeeping differs, not the arithmetic.

use crate::arch::x86_64::avx2::{hsum_ps, ld128};
use core::arch::x86_64::*;
use core::mem::MaybeUninit;

/// Longest head these kernels take (the queries are widened into a stack buffer).
pub(crate) const MAX_DIM: usize = 512;

/// Key residues of the value accumulators (four registers of 16 lanes).
const RES: usize = 64;

/// Eight f16 (16 bytes) widened to f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn ld_f16(b: &[u8; 16]) -> __m256 {
    _mm256_cvtph_ps(ld128(b))
}

/// ggml's `_mm512_reduce_add_ps` (GCC) of 16 lanes held as two halves.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn reduce16(lo: __m256, hi: __m256) -> f32 {
    hsum_ps(_mm256_add_ps(hi, lo))
}

/// Expands to `scores` and `values` for features `$feat`, with 16-lane accumulators of type
/// `$acc`: `$zero` makes one, `$load(chunk)` widens 16 f16 values of a `[u8; 32]` chunk,
/// `$loadf(ptr)` reads 16 f32, `$storef(ptr, v)` writes 16 f32, `$fma(a, b, c)`, `$add(a, b)`,
/// `$set1(x)` and `$red(v)` (ggml's 16-lane reduction); `$sg` is how many queries one pass of
/// the score loop keeps in registers (four accumulators each).
macro_rules! attn_isa {
    (
        $feat:literal, $sg:literal, $acc:ty, $zero:expr, $load:ident, $loadf:ident,
        $storef:ident, $fma:ident, $add:ident, $set1:ident, $red:ident
    ) => {
        use super::*;

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
            let out = out.map(|o| &mut o[..n_keys]);
            for j in 0..n_keys {
                let (kc, _) = keys[j * stride..j * stride + dim * 2].as_chunks::<32>();
                let mut acc: [[$acc; 4]; N] = [[$zero; 4]; N];
                for (c, k) in kc.iter().enumerate() {
                    let kv = $load(k);
                    for g in 0..N {
                        let qs = &q[g][c * 16..c * 16 + 16];
                        // SAFETY: `qs` is 16 readable f32.
                        let qv = unsafe { $loadf(qs.as_ptr()) };
                        acc[g][c % 4] = $fma(kv, qv, acc[g][c % 4]);
                    }
                }
                for g in 0..N {
                    let [a0, a1, a2, a3] = acc[g];
                    out[g][j] = $red($add($add(a0, a2), $add(a1, a3)));
                }
            }
        }

        /// `scores[g * n_keys + j] = dot_f16(key j, query g)`, `dim` a multiple of 64; see
        /// [`crate::Kernels::attn_scores_f16`].
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
            // `dim` is a multiple of 64, so the queries are whole 8-value chunks.
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

        /// Residue `r`'s sums over output dimensions `d0..d0 + 16 · V` for `N` queries: keys
        /// `k ≡ r (mod 64)` (by cache position) in order, accumulators in registers.
        #[inline]
        #[target_feature(enable = $feat)]
        fn residue<const N: usize, const V: usize>(
            rows: &crate::attn::Rows<'_>,
            first_key: usize,
            d0: usize,
            p: [&[f32]; N],
            r: usize,
        ) -> [[$acc; V]; N] {
            let mut acc: [[$acc; V]; N] = [[$zero; V]; N];
            let mut k = (r + RES - first_key % RES) % RES;
            while k < rows.len() {
                let (vc, _) = rows.get(k)[2 * d0..2 * d0 + 32 * V].as_chunks::<32>();
                let mut vv = [$zero; V];
                for (x, c) in vv.iter_mut().zip(vc) {
                    *x = $load(c);
                }
                for g in 0..N {
                    let pk = $set1(p[g][k]);
                    for i in 0..V {
                        acc[g][i] = $fma(vv[i], pk, acc[g][i]);
                    }
                }
                k += RES;
            }
            acc
        }

        /// Output dimensions `d0..d0 + 16 · V` of `N` queries: ggml's four 16-lane
        /// accumulators per dimension are the 64 key residues; residues `l`, `l + 32`,
        /// `l + 16`, `l + 48` are summed `(l + (l+32)) + ((l+16) + (l+48))` as soon as they
        /// are done, then the 16 results are reduced like `_mm512_reduce_add_ps`, all
        /// element-wise over the dimensions.
        #[inline]
        #[target_feature(enable = $feat)]
        fn values_block<const N: usize, const V: usize>(
            rows: &crate::attn::Rows<'_>,
            first_key: usize,
            d0: usize,
            p: [&[f32]; N],
            out: &mut [&mut [f32]; N],
        ) {
            let mut y = [[[$zero; V]; 16]; N];
            for l in 0..16 {
                let ra = residue::<N, V>(rows, first_key, d0, p, l);
                let rb = residue::<N, V>(rows, first_key, d0, p, l + 32);
                let mut a = ra;
                for g in 0..N {
                    for i in 0..V {
                        a[g][i] = $add(ra[g][i], rb[g][i]);
                    }
                }
                let rc = residue::<N, V>(rows, first_key, d0, p, l + 16);
                let rd = residue::<N, V>(rows, first_key, d0, p, l + 48);
                for g in 0..N {
                    for i in 0..V {
                        y[g][l][i] = $add(a[g][i], $add(rc[g][i], rd[g][i]));
                    }
                }
            }
            for g in 0..N {
                for i in 0..V {
                    let y = &y[g];
                    // Reduce across l (the lanes of ggml's registers), element-wise in d.
                    let z: [$acc; 8] = std::array::from_fn(|m| $add(y[8 + m][i], y[m][i]));
                    let t: [$acc; 4] = std::array::from_fn(|m| $add(z[4 + m], z[m]));
                    let o = $add($add(t[0], t[2]), $add(t[1], t[3]));
                    let dst = &mut out[g][d0 + 16 * i..d0 + 16 * i + 16];
                    // SAFETY: `dst` is 16 writable f32.
                    unsafe { $storef(dst.as_mut_ptr(), o) };
                }
            }
        }

        /// `N` queries, all output dimensions (`dim` a multiple of 16).
        #[inline]
        #[target_feature(enable = $feat)]
        fn values_n<const N: usize>(
            rows: &crate::attn::Rows<'_>,
            first_key: usize,
            dim: usize,
            p: [&[f32]; N],
            mut out: [&mut [f32]; N],
        ) {
            let mut d0 = 0;
            while d0 + 32 <= dim {
                values_block::<N, 2>(rows, first_key, d0, p, &mut out);
                d0 += 32;
            }
            if d0 < dim {
                values_block::<N, 1>(rows, first_key, d0, p, &mut out);
            }
        }

        /// See [`crate::Kernels::attn_values_f16`]; `dim` a multiple of 16.
        #[target_feature(enable = $feat)]
        pub(crate) fn values(
            rows: &crate::attn::Rows<'_>,
            first_key: usize,
            dim: usize,
            probs: &[f32],
            out: &mut [f32],
        ) {
            let n = rows.len();
            let ng = out.len() / dim;
            let mut pr = probs.chunks(n.max(1));
            let mut p = || pr.next().unwrap_or_default();
            let mut it = out.chunks_mut(dim);
            let mut o = || it.next().unwrap_or_default();
            match ng {
                1 => values_n::<1>(rows, first_key, dim, [p()], [o()]),
                2 => values_n::<2>(rows, first_key, dim, [p(), p()], [o(), o()]),
                3 => values_n::<3>(rows, first_key, dim, [p(), p(), p()], [o(), o(), o()]),
                _ => {
                    let (pp, oo) = ([p(), p(), p(), p()], [o(), o(), o(), o()]);
                    values_n::<4>(rows, first_key, dim, pp, oo)
                }
            }
        }
    };
}

/// AVX2 + FMA + F16C: 16-lane accumulators as pairs of ymm, one query per score pass.
pub(crate) mod avx2 {
    /// Two 8-lane halves of one 16-lane accumulator.
    type A = [__m256; 2];

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn ld16(c: &[u8; 32]) -> A {
        let (h, _) = c.as_chunks::<16>();
        [ld_f16(&h[0]), ld_f16(&h[1])]
    }

    /// # Safety
    /// `p` must point to 16 readable f32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn loadf(p: *const f32) -> A {
        // SAFETY: forwarded caller contract.
        unsafe { [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))] }
    }

    /// # Safety
    /// `p` must point to 16 writable f32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn storef(p: *mut f32, v: A) {
        // SAFETY: forwarded caller contract.
        unsafe {
            _mm256_storeu_ps(p, v[0]);
            _mm256_storeu_ps(p.add(8), v[1]);
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn fma(a: A, b: A, c: A) -> A {
        [
            _mm256_fmadd_ps(a[0], b[0], c[0]),
            _mm256_fmadd_ps(a[1], b[1], c[1]),
        ]
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn add(a: A, b: A) -> A {
        [_mm256_add_ps(a[0], b[0]), _mm256_add_ps(a[1], b[1])]
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn set1(x: f32) -> A {
        [_mm256_set1_ps(x); 2]
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn red(v: A) -> f32 {
        reduce16(v[0], v[1])
    }

    attn_isa!(
        "avx2,fma,f16c",
        1,
        A,
        [_mm256_setzero_ps(); 2],
        ld16,
        loadf,
        storef,
        fma,
        add,
        set1,
        red
    );

    /// `x[i] = exp_ggml(x[i] − max)` (see [`crate::attn::exp_ggml`]), eight at a time: the
    /// same operations, with `vscalefps` done as two exact power-of-two multiplies (the first
    /// is exact, so the pair rounds once).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn exp_sub(x: &mut [f32], max: f32) {
        let mv = _mm256_set1_ps(max);
        let (xs, tail) = x.as_chunks_mut::<8>();
        for c in xs {
            // SAFETY: `c` is 8 readable and writable f32.
            unsafe {
                let v = _mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), mv);
                _mm256_storeu_ps(c.as_mut_ptr(), exp8(v));
            }
        }
        for v in tail {
            *v = crate::attn::exp_ggml(*v - max);
        }
    }

    /// Eight lanes of `crate::attn::exp_ggml`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn exp8(x: __m256) -> __m256 {
        let c = |b: u32| _mm256_set1_ps(f32::from_bits(b));
        let r = c(0x4b40_0000);
        let z = _mm256_fmadd_ps(x, c(0x3fb8_aa3b), r);
        let n = _mm256_sub_ps(z, r);
        let b = _mm256_fnmadd_ps(n, c(0x35bf_be8e), _mm256_fnmadd_ps(n, c(0x3f31_7200), x));
        let u = _mm256_mul_ps(b, b);
        let j = _mm256_fmadd_ps(
            _mm256_fmadd_ps(
                _mm256_fmadd_ps(c(0x3c07_2010), b, c(0x3d2b_9f17)),
                u,
                _mm256_fmadd_ps(c(0x3e2a_af33), b, c(0x3eff_fedb)),
            ),
            u,
            _mm256_fmadd_ps(c(0x3f7f_fff6), b, _mm256_set1_ps(1.0)),
        );
        // 2^n as 2^n1 · 2^n2 with n1 = clamp(n, −100, 100): j · 2^n1 is exact.
        let n1 = _mm256_min_ps(
            _mm256_max_ps(n, _mm256_set1_ps(-100.0)),
            _mm256_set1_ps(100.0),
        );
        let n2 = _mm256_sub_ps(n, n1);
        let pow2 = |e: __m256| {
            let i = _mm256_add_epi32(_mm256_cvtps_epi32(e), _mm256_set1_epi32(127));
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(i))
        };
        let res = _mm256_mul_ps(_mm256_mul_ps(j, pow2(n1)), pow2(n2));
        let abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n);
        let big = _mm256_cmp_ps::<_CMP_GT_OQ>(abs, _mm256_set1_ps(192.0));
        let neg = _mm256_cmp_ps::<_CMP_LE_OQ>(n, _mm256_setzero_ps());
        let alt = _mm256_andnot_ps(neg, _mm256_set1_ps(f32::INFINITY));
        _mm256_blendv_ps(res, alt, big)
    }
}

/// The same with AVX-512's 16-lane registers: four queries per score pass.
pub(crate) mod avx512 {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
    fn ld16(c: &[u8; 32]) -> __m512 {
        // SAFETY: `c` is 32 readable bytes; loadu has no alignment requirement.
        _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(c.as_ptr().cast()) })
    }

    /// # Safety
    /// `p` must point to 16 readable f32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
    unsafe fn loadf(p: *const f32) -> __m512 {
        // SAFETY: forwarded caller contract.
        unsafe { _mm512_loadu_ps(p) }
    }

    /// # Safety
    /// `p` must point to 16 writable f32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
    unsafe fn storef(p: *mut f32, v: __m512) {
        // SAFETY: forwarded caller contract.
        unsafe { _mm512_storeu_ps(p, v) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
    fn red(v: __m512) -> f32 {
        let lo = _mm512_castps512_ps256(v);
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
        reduce16(lo, hi)
    }

    attn_isa!(
        "avx2,fma,f16c,avx512f,avx512vl",
        4,
        __m512,
        _mm512_setzero_ps(),
        ld16,
        loadf,
        storef,
        _mm512_fmadd_ps,
        _mm512_add_ps,
        _mm512_set1_ps,
        red
    );
}
