//! VNNI dots for Q4_K, Q5_K and Q6_K against Q8_K.
//!
//! Per pair of 32-value groups: two `vpdpbusd` give 4-product sums per i32 lane (each fits in
//! i16 for these formats: at most 4 · 63 · 128), `packssdw` packs the pair into one register
//! exactly, and one `vpdpwssd` multiplies by the sub-block scales and accumulates: three
//! multiplies per 64 values where AVX2 needs four (`maddubs` and `madd`, twice) and two adds.

/// Pattern `j` (0..4) picks, from Q4_K / Q5_K scales as i16 in both 128-bit halves, scale `2j`
/// for words 0..4 and `2j + 1` for words 4..8 of each half: the layout of
/// `packs(lanes of sub-block 2j, lanes of sub-block 2j + 1)`.
pub(crate) static K45_PAIR_SHUF: [[u8; 32]; 4] = {
    let mut t = [[0u8; 32]; 4];
    let mut j = 0;
    while j < 4 {
        let mut b = 0;
        while b < 32 {
            let src = 2 * j + (b % 16) / 8;
            t[j][b] = (2 * src + b % 2) as u8;
            b += 1;
        }
        j += 1;
    }
    t
};

/// Pattern `g` (0..8) puts Q6_K's i8 scale `2g` in bytes 0..4 and `2g + 1` in bytes 4..8: the
/// scales of i32 lanes 0..4 and 4..8 of 32-element group `g` (the rest is ignored).
pub(crate) static Q6_LANE_SHUF: [[u8; 16]; 8] = {
    let mut t = [[0u8; 16]; 8];
    let mut g = 0;
    while g < 8 {
        let mut i = 0;
        while i < 16 {
            t[g][i] = (2 * g + (i / 4) % 2) as u8;
            i += 1;
        }
        g += 1;
    }
    t
};

/// Expands to `dot_q4_k`, `dot_q5_k`, `dot_q6_k` and the helpers the tiles share, for
/// features `$feat`; needs `dpbusd` and `dpwssd` in the parent module.
macro_rules! vnni_kquants {
    ($feat:literal) => {
        use super::{dpbusd, dpwssd};
        use core::arch::x86_64::*;
        use $crate::arch::x86_64::avx2::kquants::{
            chunk32, k4_mins_and_scales, q4k_fold, q4k_result, q6_k_offset, q6_k_values, q8k_d,
            q8k_qs,
        };
        use $crate::arch::x86_64::avx2::{fp16, hsum_ps, ld128, ld256};
        use $crate::arch::x86_64::vnni::kquants::{K45_PAIR_SHUF, Q6_LANE_SHUF};
        use $crate::layout::{blocks, field, q4_k, q5_k, q6_k, q8_k, u16_at};

        /// `acc + Σ scale · q · y` over two 32-value groups: `q` unsigned (at most 63), `y` the
        /// matching activations, `sc` the scales in `packs` layout.
        #[inline]
        #[target_feature(enable = $feat)]
        pub(crate) fn pair_dot(
            acc: __m256i,
            sc: __m256i,
            q: [__m256i; 2],
            y: [__m256i; 2],
        ) -> __m256i {
            let zero = _mm256_setzero_si256();
            let p = _mm256_packs_epi32(dpbusd(zero, q[0], y[0]), dpbusd(zero, q[1], y[1]));
            dpwssd(acc, sc, p)
        }

        /// Activation groups `2j` and `2j + 1` of a Q8_K block.
        #[inline]
        #[target_feature(enable = $feat)]
        pub(crate) fn q8k_pair(y: &[u8; q8_k::SIZE], j: usize) -> [__m256i; 2] {
            let q8 = q8k_qs(y);
            [ld256(chunk32(q8, 2 * j)), ld256(chunk32(q8, 2 * j + 1))]
        }

        /// Per-row constants of a Q4_K / Q5_K super-block: the 8 sub-block scales as i16 in
        /// both 128-bit halves, and the 8 mins as i16 pairs `(min_s, min_s)` in i32 lane `s`.
        #[inline]
        #[target_feature(enable = $feat)]
        pub(crate) fn k45_row(packed: &[u8; 12]) -> [__m256i; 2] {
            let ms = k4_mins_and_scales(packed);
            let sc128 = _mm256_castsi256_si128(ms);
            let m32 = _mm256_cvtepu16_epi32(_mm256_extracti128_si256::<1>(ms));
            [
                _mm256_set_m128i(sc128, sc128),
                _mm256_or_si256(m32, _mm256_slli_epi32::<16>(m32)),
            ]
        }

        /// The Q8_K block scale in all 8 lanes (LLVM folds the load into `vbroadcastss`).
        #[inline]
        #[target_feature(enable = $feat)]
        pub(crate) fn q8k_dv(y: &[u8; q8_k::SIZE]) -> __m256 {
            _mm256_set1_ps(q8k_d(y))
        }

        /// One Q4_K / Q5_K super-block's float step: `acc + d_y · (d_x · sumi + m_x · mins)`,
        /// with `dx`, `mx` (= −dmin) broadcast per row and the mins term taken from the 16
        /// activation `bsums` and [`k45_row`]'s paired mins. The 1×1 kernels and the tiles
        /// share it, so they round alike.
        #[inline]
        #[target_feature(enable = $feat)]
        pub(crate) fn k45_step(
            acc: __m256,
            sumi: __m256i,
            dx: __m256,
            mins: __m256i,
            mx: __m256,
            y: &[u8; q8_k::SIZE],
        ) -> __m256 {
            let m = _mm256_madd_epi16(mins, ld256(field::<260, 32, 292>(y)));
            let s = _mm256_mul_ps(dx, _mm256_cvtepi32_ps(sumi));
            let s = _mm256_fmadd_ps(mx, _mm256_cvtepi32_ps(m), s);
            _mm256_fmadd_ps(q8k_dv(y), s, acc)
        }

        /// One Q4_K super-block's float step (see `avx2::kquants::q4k_fold`): the exact totals
        /// of `sumi` and of the mins term, fused into `acc` with `d_x · d_y` and
        /// `dmin_x · d_y`.
        #[inline]
        #[target_feature(enable = $feat)]
        pub(crate) fn q4k_step(
            acc: __m128,
            sumi: __m256i,
            mins: __m256i,
            d: f32,
            dmin: f32,
            y: &[u8; q8_k::SIZE],
        ) -> __m128 {
            let m = _mm256_madd_epi16(mins, ld256(field::<260, 32, 292>(y)));
            let m4 = _mm_add_epi32(_mm256_castsi256_si128(m), _mm256_extracti128_si256::<1>(m));
            let yd = q8k_d(y);
            q4k_fold(acc, sumi, m4, d * yd, dmin * yd)
        }

        /// One Q6_K super-block's float step, ggml's order: `fma(d_y · d_x, lanes, acc)`.
        #[inline]
        #[target_feature(enable = $feat)]
        pub(crate) fn q6_step(acc: __m256, sumi: __m256i, dx: f32, y: &[u8; q8_k::SIZE]) -> __m256 {
            let d = _mm256_set1_ps(q8k_d(y) * dx);
            _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc)
        }

        /// `sumi + scale · Σ q · y` per i32 lane over one 32-value Q6_K group: `vpdpbusd` gives
        /// the 4-product lane sums (at most 4 · 63 · 127, so each fits in the lane's low i16)
        /// and `vpdpwssd` by `(scale, 0)` word pairs scales them exactly, keeping ggml's lanes.
        #[inline]
        #[target_feature(enable = $feat)]
        pub(crate) fn q6_group(sumi: __m256i, sc: __m256i, q: __m256i, y: __m256i) -> __m256i {
            dpwssd(sumi, dpbusd(_mm256_setzero_si256(), q, y), sc)
        }

        /// Scales of Q6_K group `g` as `(scale, 0)` i16 pairs: `2g` for lanes 0..4, `2g + 1`
        /// for lanes 4..8.
        #[inline]
        #[target_feature(enable = $feat)]
        pub(crate) fn q6_lane_scale(scales: __m128i, g: usize) -> __m256i {
            let s = _mm_shuffle_epi8(scales, ld128(&Q6_LANE_SHUF[g]));
            _mm256_and_si256(_mm256_cvtepi8_epi32(s), _mm256_set1_epi32(0xFFFF))
        }

        /// Scales of sub-blocks `2j`, `2j + 1` in `packs` layout, from [`k45_prologue`]'s.
        #[inline]
        #[target_feature(enable = $feat)]
        pub(crate) fn k45_pair_scale(scales: __m256i, j: usize) -> __m256i {
            _mm256_shuffle_epi8(scales, ld256(&K45_PAIR_SHUF[j]))
        }

        /// The 64 Q4_K values (0..16) of chunk `j`: sub-block `2j`, then `2j + 1`.
        #[inline]
        #[target_feature(enable = $feat)]
        pub(crate) fn q4_k_values(x: &[u8; q4_k::SIZE], j: usize) -> [__m256i; 2] {
            let m4 = _mm256_set1_epi8(0xF);
            let q4bits = ld256(chunk32(field::<16, 128, 144>(x), j));
            [
                _mm256_and_si256(q4bits, m4),
                _mm256_and_si256(_mm256_srli_epi16::<4>(q4bits), m4),
            ]
        }

        /// The 64 Q5_K values (0..32) of chunk `j`: sub-block `2j`, then `2j + 1`.
        #[inline]
        #[target_feature(enable = $feat)]
        pub(crate) fn q5_k_values(x: &[u8; q5_k::SIZE], j: usize) -> [__m256i; 2] {
            let m4 = _mm256_set1_epi8(0xF);
            let m16 = _mm256_set1_epi8(16);
            let q5bits = ld256(chunk32(field::<48, 128, 176>(x), j));
            // Bits 2j and 2j + 1 of each high-bit byte, moved to bits 0 and 1.
            let count = _mm_cvtsi32_si128(2 * j as i32);
            let h = _mm256_srl_epi16(ld256(field::<16, 32, 176>(x)), count);
            [
                _mm256_or_si256(
                    _mm256_and_si256(q5bits, m4),
                    _mm256_and_si256(_mm256_slli_epi16::<4>(h), m16),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(q5bits), m4),
                    _mm256_and_si256(_mm256_slli_epi16::<3>(h), m16),
                ),
            ]
        }

        /// Shared 1×1 loop of Q4_K and Q5_K (`S`-byte blocks, f16 `d` @0, `dmin` @2, packed
        /// scales @4); `vals(x, j)` decodes chunk `j`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn dot_k45<const S: usize>(
            n: usize,
            w: &[u8],
            a: &[u8],
            vals: impl Fn(&[u8; S], usize) -> [__m256i; 2],
        ) -> f32 {
            let nb = n / 256;
            let mut acc = _mm256_setzero_ps();
            for (x, y) in blocks::<S>(w, nb)
                .iter()
                .zip(blocks::<{ q8_k::SIZE }>(a, nb))
            {
                let dx = _mm256_set1_ps(fp16(u16_at::<0, S>(x)));
                let mx = _mm256_set1_ps(-fp16(u16_at::<2, S>(x)));
                let [scales, mins] = k45_row(field::<4, 12, S>(x));
                let mut sum = [_mm256_setzero_si256(); 2];
                for j in 0..4 {
                    let sc = k45_pair_scale(scales, j);
                    sum[j & 1] = pair_dot(sum[j & 1], sc, vals(x, j), q8k_pair(y, j));
                }
                let sumi = _mm256_add_epi32(sum[0], sum[1]);
                acc = k45_step(acc, sumi, dx, mins, mx, y);
            }
            hsum_ps(acc)
        }

        /// Q4_K weights · Q8_K activations (llama.cpp's float order, see [`q4k_step`]).
        #[target_feature(enable = $feat)]
        pub(crate) fn dot_q4_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
            let nb = n / 256;
            let mut acc = _mm_setzero_ps();
            for (x, y) in blocks::<{ q4_k::SIZE }>(w, nb)
                .iter()
                .zip(blocks::<{ q8_k::SIZE }>(a, nb))
            {
                let [scales, mins] = k45_row(field::<4, 12, 144>(x));
                let mut sum = [_mm256_setzero_si256(); 2];
                for j in 0..4 {
                    let sc = k45_pair_scale(scales, j);
                    sum[j & 1] = pair_dot(sum[j & 1], sc, q4_k_values(x, j), q8k_pair(y, j));
                }
                let sumi = _mm256_add_epi32(sum[0], sum[1]);
                let (d, dmin) = (fp16(u16_at::<0, 144>(x)), fp16(u16_at::<2, 144>(x)));
                acc = q4k_step(acc, sumi, mins, d, dmin, y);
            }
            q4k_result(acc)
        }

        /// Q5_K weights · Q8_K activations.
        #[target_feature(enable = $feat)]
        pub(crate) fn dot_q5_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
            dot_k45::<{ q5_k::SIZE }>(n, w, a, |x, j| q5_k_values(x, j))
        }

        /// Q6_K weights · Q8_K activations in ggml's lanes and float order (offset 32 folded
        /// through `bsums`, as ggml does).
        #[target_feature(enable = $feat)]
        pub(crate) fn dot_q6_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
            let nb = n / 256;
            let mut acc = _mm256_setzero_ps();
            for (x, y) in blocks::<{ q6_k::SIZE }>(w, nb)
                .iter()
                .zip(blocks::<{ q8_k::SIZE }>(a, nb))
            {
                let scales = ld128(field::<192, 16, 210>(x));
                let q8 = q8k_qs(y);
                let mut sum = [q6_k_offset(scales, y), _mm256_setzero_si256()];
                for c in 0..2 {
                    let q6 = q6_k_values(x, c);
                    for (k, q) in q6.iter().enumerate() {
                        let g = 4 * c + k;
                        let sc = q6_lane_scale(scales, g);
                        sum[k & 1] = q6_group(sum[k & 1], sc, *q, ld256(chunk32(q8, g)));
                    }
                }
                let sumi = _mm256_add_epi32(sum[0], sum[1]);
                acc = q6_step(acc, sumi, fp16(u16_at::<208, 210>(x)), y);
            }
            hsum_ps(acc)
        }
    };
}
pub(crate) use vnni_kquants;
