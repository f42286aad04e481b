//! VNNI tiles: one weight row against `T` activation rows (4, or 8 for the K-quants), each
//! weight block decoded once. Each column is bit-identical to the matching 1×1 kernel: integer
//! parts are exact (whatever instructions produce them) and the float steps happen in the same
//! order.

/// Expands to `dot4_*` for Q4_0, Q5_0, Q8_0, Q4_K, Q5_K and Q6_K and `dot8_*` for the
/// K-quants, for features
/// `$feat`; needs `dpbusd` and the sibling `legacy` and `kquants` modules.
macro_rules! vnni_tiles {
    ($feat:literal) => {
        use super::dpbusd;
        use super::kquants::{
            k45_pair_scale, k45_row, k45_step, pair_dot, q4_k_values, q5_k_values, q6_pair_scale,
            q6_step, q8k_pair,
        };
        use super::legacy::{q4_0_signed, q5_0_signed};
        use core::arch::x86_64::*;
        use $crate::arch::x86_64::avx2::kquants::{q6_k_offset, q6_k_values};
        use $crate::arch::x86_64::avx2::legacy::{d4, spill4};
        use $crate::arch::x86_64::avx2::{fp16, hsum_ps, ld128, ld256};
        use $crate::layout::{blocks, field, q4_0, q4_k, q5_0, q5_k, q6_k, q8_0, q8_k, u16_at};

        /// Shared loop of the formats whose values are signed bytes (`vals` decodes a block);
        /// scales and accumulator order follow the 1×1 kernels' `q8_0_blocks`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn tile_signed<const S: usize, const T: usize>(
            n: usize,
            w: &[u8],
            a: [&[u8]; T],
            vals: impl Fn(&[u8; S]) -> __m256i,
        ) -> [f32; T] {
            let nb = n / 32;
            let xs = blocks::<S>(w, nb);
            let ys = a.map(|s| blocks::<{ q8_0::SIZE }>(s, nb));
            let zero = _mm256_setzero_si256();
            let mut acc = [[_mm256_setzero_ps(); 2]; T];
            let (xg, xr) = xs.as_chunks::<4>();
            let yg = ys.map(|y| y.as_chunks::<4>().0);
            for (g, x4) in xg.iter().enumerate() {
                let dx = d4(x4);
                let d: [[f32; 4]; T] =
                    std::array::from_fn(|t| spill4(_mm_mul_ps(dx, d4(&yg[t][g]))));
                for k in 0..4 {
                    let qx = vals(&x4[k]);
                    let ax = _mm256_sign_epi8(qx, qx);
                    for t in 0..T {
                        let sy = _mm256_sign_epi8(ld256(field::<2, 32, 34>(&yg[t][g][k])), qx);
                        let p = dpbusd(zero, ax, sy);
                        let dk = _mm256_broadcast_ss(&d[t][k]);
                        acc[t][k & 1] = _mm256_fmadd_ps(dk, _mm256_cvtepi32_ps(p), acc[t][k & 1]);
                    }
                }
            }
            let base = xg.len() * 4;
            for (k, x) in xr.iter().enumerate() {
                let qx = vals(x);
                let ax = _mm256_sign_epi8(qx, qx);
                let dx = fp16(u16_at::<0, S>(x));
                for t in 0..T {
                    let y = &ys[t][base + k];
                    let sy = _mm256_sign_epi8(ld256(field::<2, 32, 34>(y)), qx);
                    let p = dpbusd(zero, ax, sy);
                    let d = _mm256_set1_ps(dx * fp16(u16_at::<0, 34>(y)));
                    acc[t][k & 1] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc[t][k & 1]);
                }
            }
            acc.map(|[a0, a1]| hsum_ps(_mm256_add_ps(a0, a1)))
        }

        /// Q4_K / Q5_K tile: `vals(x, j)` decodes 64 values (sub-blocks `2j`, `2j + 1`) of
        /// super-block `x`; scales and float steps follow the 1×1 kernels.
        #[inline]
        #[target_feature(enable = $feat)]
        fn tile_k45<const S: usize, const T: usize>(
            n: usize,
            w: &[u8],
            a: [&[u8]; T],
            vals: impl Fn(&[u8; S], usize) -> [__m256i; 2],
        ) -> [f32; T] {
            let nb = n / 256;
            let xs = blocks::<S>(w, nb);
            let ys = a.map(|s| blocks::<{ q8_k::SIZE }>(s, nb));
            let mut acc = [_mm256_setzero_ps(); T];
            for (i, x) in xs.iter().enumerate() {
                let y: [&[u8; q8_k::SIZE]; T] = std::array::from_fn(|t| &ys[t][i]);
                let dx = _mm256_set1_ps(fp16(u16_at::<0, S>(x)));
                let mx = _mm256_set1_ps(-fp16(u16_at::<2, S>(x)));
                let [scales, mins] = k45_row(field::<4, 12, S>(x));
                let mut sumi = [_mm256_setzero_si256(); T];
                for j in 0..4 {
                    let q = vals(x, j);
                    let sc = k45_pair_scale(scales, j);
                    for t in 0..T {
                        sumi[t] = pair_dot(sumi[t], sc, q, q8k_pair(y[t], j));
                    }
                }
                for t in 0..T {
                    acc[t] = k45_step(acc[t], sumi[t], dx, mins, mx, y[t]);
                }
            }
            acc.map(|v| hsum_ps(v))
        }

        /// Q6_K tile; integer and float steps follow the 1×1 kernel.
        #[inline]
        #[target_feature(enable = $feat)]
        fn tile_q6_k<const T: usize>(n: usize, w: &[u8], a: [&[u8]; T]) -> [f32; T] {
            let nb = n / 256;
            let xs = blocks::<{ q6_k::SIZE }>(w, nb);
            let ys = a.map(|s| blocks::<{ q8_k::SIZE }>(s, nb));
            let mut acc = [_mm256_setzero_ps(); T];
            for (i, x) in xs.iter().enumerate() {
                let y: [&[u8; q8_k::SIZE]; T] = std::array::from_fn(|t| &ys[t][i]);
                let dx = _mm256_set1_ps(fp16(u16_at::<208, 210>(x)));
                let scales = ld128(field::<192, 16, 210>(x));
                let mut sumi = y.map(|yt| q6_k_offset(scales, yt));
                for c in 0..2 {
                    let q6 = q6_k_values(x, c);
                    for h in 0..2 {
                        let p = 2 * c + h;
                        let (q, sc) = ([q6[2 * h], q6[2 * h + 1]], q6_pair_scale(scales, p));
                        for t in 0..T {
                            sumi[t] = pair_dot(sumi[t], sc, q, q8k_pair(y[t], p));
                        }
                    }
                }
                for t in 0..T {
                    acc[t] = q6_step(acc[t], sumi[t], dx, y[t]);
                }
            }
            acc.map(|v| hsum_ps(v))
        }

        /// Q4_0 weights · four Q8_0 activation rows.
        #[target_feature(enable = $feat)]
        pub(crate) fn dot4_q4_0(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
            tile_signed::<{ q4_0::SIZE }, 4>(n, w, a, |x| q4_0_signed(x))
        }

        /// Q5_0 weights · four Q8_0 activation rows.
        #[target_feature(enable = $feat)]
        pub(crate) fn dot4_q5_0(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
            tile_signed::<{ q5_0::SIZE }, 4>(n, w, a, |x| q5_0_signed(x))
        }

        /// Q8_0 weights · four Q8_0 activation rows.
        #[target_feature(enable = $feat)]
        pub(crate) fn dot4_q8_0(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
            tile_signed::<{ q8_0::SIZE }, 4>(n, w, a, |x| ld256(field::<2, 32, 34>(x)))
        }

        /// Q4_K weights · four Q8_K activation rows.
        #[target_feature(enable = $feat)]
        pub(crate) fn dot4_q4_k(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
            tile_k45::<{ q4_k::SIZE }, 4>(n, w, a, |x, j| q4_k_values(x, j))
        }

        /// Q4_K weights · eight Q8_K activation rows.
        #[target_feature(enable = $feat)]
        pub(crate) fn dot8_q4_k(n: usize, w: &[u8], a: [&[u8]; 8]) -> [f32; 8] {
            tile_k45::<{ q4_k::SIZE }, 8>(n, w, a, |x, j| q4_k_values(x, j))
        }

        /// Q5_K weights · four Q8_K activation rows.
        #[target_feature(enable = $feat)]
        pub(crate) fn dot4_q5_k(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
            tile_k45::<{ q5_k::SIZE }, 4>(n, w, a, |x, j| q5_k_values(x, j))
        }

        /// Q5_K weights · eight Q8_K activation rows.
        #[target_feature(enable = $feat)]
        pub(crate) fn dot8_q5_k(n: usize, w: &[u8], a: [&[u8]; 8]) -> [f32; 8] {
            tile_k45::<{ q5_k::SIZE }, 8>(n, w, a, |x, j| q5_k_values(x, j))
        }

        /// Q6_K weights · four Q8_K activation rows.
        #[target_feature(enable = $feat)]
        pub(crate) fn dot4_q6_k(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
            tile_q6_k::<4>(n, w, a)
        }

        /// Q6_K weights · eight Q8_K activation rows.
        #[target_feature(enable = $feat)]
        pub(crate) fn dot8_q6_k(n: usize, w: &[u8], a: [&[u8]; 8]) -> [f32; 8] {
            tile_q6_k::<8>(n, w, a)
        }
    };
}
pub(crate) use vnni_tiles;
