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
            k45_pair_scale, k45_row, k45_step, pair_dot, q4_k_values, q5_k_values, q6_group,
            q6_lane_scale, q6_step, q8k_pair,
        };
        use super::legacy::{q4_0_signed, q5_0_signed};
        use core::arch::x86_64::*;
        use $crate::arch::x86_64::avx2::kquants::{
            chunk32, q6_k_offset, q6_k_values, q8k_d, q8k_qs,
        };
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
            let mut acc = [_mm256_setzero_ps(); T];
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
                        acc[t] = _mm256_fmadd_ps(dk, _mm256_cvtepi32_ps(p), acc[t]);
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
                    acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc[t]);
                }
            }
            acc.map(|a| hsum_ps(a))
        }

        /// Q5_K tile: `vals(x, j)` decodes 64 values (sub-blocks `2j`, `2j + 1`) of
        /// super-block `x`; scales and float steps follow the 1×1 kernel.
        #[inline]
        #[target_feature(enable = $feat)]
        fn tile_q5_k<const T: usize>(n: usize, w: &[u8], a: [&[u8]; T]) -> [f32; T] {
            const S: usize = q5_k::SIZE;
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
                    let q = q5_k_values(x, j);
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

        /// Exact totals of the 8 i32 lanes of each of four vectors, as the 4 lanes of one.
        #[inline]
        #[target_feature(enable = $feat)]
        fn totals4(v: [__m256i; 4]) -> __m128i {
            let c = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
            _mm_add_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256::<1>(c))
        }

        /// Q4_K tile. Per token the float steps are the 1×1 kernel's (`q4k_step`): `fma` of the
        /// super-block's exact totals with `d_x · d_y` and `dmin_x · d_y`; here they run four
        /// tokens to a register.
        #[inline]
        #[target_feature(enable = $feat)]
        fn tile_q4_k<const T: usize>(n: usize, w: &[u8], a: [&[u8]; T]) -> [f32; T] {
            const { assert!(T % 4 == 0) };
            let nb = n / 256;
            let xs = blocks::<{ q4_k::SIZE }>(w, nb);
            let ys = a.map(|s| blocks::<{ q8_k::SIZE }>(s, nb));
            let mut acc = [[_mm_setzero_ps(); 2]; T];
            for (i, x) in xs.iter().enumerate() {
                let y: [&[u8; q8_k::SIZE]; T] = std::array::from_fn(|t| &ys[t][i]);
                let [scales, mins] = k45_row(field::<4, 12, 144>(x));
                let mut sumi = [_mm256_setzero_si256(); T];
                for j in 0..4 {
                    let q = q4_k_values(x, j);
                    let sc = k45_pair_scale(scales, j);
                    for t in 0..T {
                        sumi[t] = pair_dot(sumi[t], sc, q, q8k_pair(y[t], j));
                    }
                }
                let (d, dmin) = (fp16(u16_at::<0, 144>(x)), fp16(u16_at::<2, 144>(x)));
                for g in 0..T / 4 {
                    let k = 4 * g;
                    let m: [__m256i; 4] = std::array::from_fn(|u| {
                        _mm256_madd_epi16(mins, ld256(field::<260, 32, 292>(y[k + u])))
                    });
                    let s = totals4([sumi[k], sumi[k + 1], sumi[k + 2], sumi[k + 3]]);
                    let dy = _mm_setr_ps(
                        q8k_d(y[k]),
                        q8k_d(y[k + 1]),
                        q8k_d(y[k + 2]),
                        q8k_d(y[k + 3]),
                    );
                    let [ad, am] = &mut acc[g];
                    *ad = _mm_fmadd_ps(_mm_cvtepi32_ps(s), _mm_mul_ps(_mm_set1_ps(d), dy), *ad);
                    *am = _mm_fmadd_ps(
                        _mm_cvtepi32_ps(totals4(m)),
                        _mm_mul_ps(_mm_set1_ps(dmin), dy),
                        *am,
                    );
                }
            }
            let mut out = [0f32; T];
            for (g, o) in out.as_chunks_mut::<4>().0.iter_mut().enumerate() {
                // SAFETY: `o` is 4 writable f32.
                unsafe { _mm_storeu_ps(o.as_mut_ptr(), _mm_sub_ps(acc[g][0], acc[g][1])) };
            }
            out
        }

        /// Q6_K tile; integer lanes and float steps follow the 1×1 kernel.
        #[inline]
        #[target_feature(enable = $feat)]
        fn tile_q6_k<const T: usize>(n: usize, w: &[u8], a: [&[u8]; T]) -> [f32; T] {
            let nb = n / 256;
            let xs = blocks::<{ q6_k::SIZE }>(w, nb);
            let ys = a.map(|s| blocks::<{ q8_k::SIZE }>(s, nb));
            let mut acc = [_mm256_setzero_ps(); T];
            for (i, x) in xs.iter().enumerate() {
                let y: [&[u8; q8_k::SIZE]; T] = std::array::from_fn(|t| &ys[t][i]);
                let dx = fp16(u16_at::<208, 210>(x));
                let scales = ld128(field::<192, 16, 210>(x));
                let mut sumi = y.map(|yt| q6_k_offset(scales, yt));
                for c in 0..2 {
                    let q6 = q6_k_values(x, c);
                    for (k, q) in q6.iter().enumerate() {
                        let g = 4 * c + k;
                        let sc = q6_lane_scale(scales, g);
                        for t in 0..T {
                            let yv = ld256(chunk32(q8k_qs(y[t]), g));
                            sumi[t] = q6_group(sumi[t], sc, *q, yv);
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
            tile_q4_k::<4>(n, w, a)
        }

        /// Q4_K weights · eight Q8_K activation rows.
        #[target_feature(enable = $feat)]
        pub(crate) fn dot8_q4_k(n: usize, w: &[u8], a: [&[u8]; 8]) -> [f32; 8] {
            tile_q4_k::<8>(n, w, a)
        }

        /// Q5_K weights · four Q8_K activation rows.
        #[target_feature(enable = $feat)]
        pub(crate) fn dot4_q5_k(n: usize, w: &[u8], a: [&[u8]; 4]) -> [f32; 4] {
            tile_q5_k::<4>(n, w, a)
        }

        /// Q5_K weights · eight Q8_K activation rows.
        #[target_feature(enable = $feat)]
        pub(crate) fn dot8_q5_k(n: usize, w: &[u8], a: [&[u8]; 8]) -> [f32; 8] {
            tile_q5_k::<8>(n, w, a)
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
