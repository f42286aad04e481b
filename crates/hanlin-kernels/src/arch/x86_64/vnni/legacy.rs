//! VNNI dots for the 32-element formats: one block per 256-bit register, as in AVX2, with
//! `vpdpbusd` replacing `maddubs` + `madd` (and, for offset formats, the sign transfer).

/// Expands to `dot_q4_0`, `dot_q4_1`, `dot_q5_0`, `dot_q5_1` and `dot_q8_0` for features `$feat`;
/// needs `dpbusd` and `bit_bytes` in the parent module.
macro_rules! vnni_legacy {
    ($feat:literal) => {
        use super::{bit_bytes, dpbusd};
        use core::arch::x86_64::*;
        use $crate::arch::x86_64::avx2::legacy::{d4, spill4};
        use $crate::arch::x86_64::avx2::{fp16, hsum_ps, ld256};
        use $crate::layout::{blocks, field, q4_0, q4_1, q5_0, q5_1, q8_0, q8_1, u16_at, u32_at};

        /// Dot of `S`-byte weight blocks (f16 `d` at byte 0) with Q8_0 activations; `int` gives
        /// a block's exact i32 lanes from the weight block and the 32 activation quants. One
        /// 8-lane accumulator takes `fma(d_x · d_y, lanes)` per block (ggml's order, which
        /// the 1×4 tiles reproduce).
        #[inline]
        #[target_feature(enable = $feat)]
        fn q8_0_blocks<const S: usize>(
            n: usize,
            w: &[u8],
            a: &[u8],
            int: impl Fn(&[u8; S], __m256i) -> __m256i,
        ) -> f32 {
            let nb = n / 32;
            let xs = blocks::<S>(w, nb);
            let ys = blocks::<{ q8_0::SIZE }>(a, nb);
            let mut acc = _mm256_setzero_ps();
            let (xg, xr) = xs.as_chunks::<4>();
            let (yg, yr) = ys.as_chunks::<4>();
            for (x4, y4) in xg.iter().zip(yg) {
                let d = spill4(_mm_mul_ps(d4(x4), d4(y4)));
                for k in 0..4 {
                    let p = int(&x4[k], ld256(field::<2, 32, 34>(&y4[k])));
                    let dk = _mm256_broadcast_ss(&d[k]);
                    acc = _mm256_fmadd_ps(dk, _mm256_cvtepi32_ps(p), acc);
                }
            }
            for (x, y) in xr.iter().zip(yr) {
                let d = fp16(u16_at::<0, S>(x)) * fp16(u16_at::<0, 34>(y));
                let p = int(x, ld256(field::<2, 32, 34>(y)));
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc);
            }
            hsum_ps(acc)
        }

        /// Dot of `S`-byte weight blocks with unsigned values (f16 `d` @0, `m` @2) with Q8_1
        /// activations (f16 `d` @0, `s` @2): one 8-lane accumulator of `fma(d_x · d_y,
        /// lanes)` plus the scalar `Σ m_x · s_y` (fused, as GCC compiles ggml's loop).
        #[inline]
        #[target_feature(enable = $feat)]
        fn q8_1_blocks<const S: usize>(
            n: usize,
            w: &[u8],
            a: &[u8],
            vals: impl Fn(&[u8; S]) -> __m256i,
        ) -> f32 {
            let nb = n / 32;
            let xs = blocks::<S>(w, nb);
            let ys = blocks::<{ q8_1::SIZE }>(a, nb);
            let zero = _mm256_setzero_si256();
            let mut acc = _mm256_setzero_ps();
            let mut summs = 0f32;
            for (x, y) in xs.iter().zip(ys) {
                summs = fp16(u16_at::<2, S>(x)).mul_add(fp16(u16_at::<2, 36>(y)), summs);
                let d = fp16(u16_at::<0, S>(x)) * fp16(u16_at::<0, 36>(y));
                let p = dpbusd(zero, vals(x), ld256(field::<4, 32, 36>(y)));
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc);
            }
            hsum_ps(acc) + summs
        }

        /// `n · y − o · Σy` per lane: unsigned values `n` with offset `o` (in every byte of
        /// `off`) against signed activations, without the sign transfer.
        #[inline]
        #[target_feature(enable = $feat)]
        fn offset_dot(n: __m256i, off: __m256i, y: __m256i) -> __m256i {
            let zero = _mm256_setzero_si256();
            _mm256_sub_epi32(dpbusd(zero, n, y), dpbusd(zero, off, y))
        }

        /// 32 nibbles → 32 bytes: low nibbles of `b` in bytes 0..16, high nibbles in 16..32.
        ///
        /// One variable 64-bit shift of the broadcast replaces AVX2's shift + blend (every VNNI
        /// CPU runs `vpsrlvq` as one µop), and gives LLVM no half-undefined register to fill
        /// with a false dependency.
        #[inline]
        #[target_feature(enable = $feat)]
        pub(crate) fn nibbles(b: &[u8; 16]) -> __m256i {
            // SAFETY: `b` is 16 readable bytes; the broadcast load has no alignment requirement.
            let both = unsafe { _mm256_broadcastsi128_si256(_mm_loadu_si128(b.as_ptr().cast())) };
            let shifted = _mm256_srlv_epi64(both, _mm256_set_epi64x(4, 4, 0, 0));
            _mm256_and_si256(shifted, _mm256_set1_epi8(0x0F))
        }

        /// Signed Q4_0 values (nibble minus 8) of one block.
        #[inline]
        #[target_feature(enable = $feat)]
        pub(crate) fn q4_0_signed(x: &[u8; q4_0::SIZE]) -> __m256i {
            _mm256_sub_epi8(nibbles(field::<2, 16, 18>(x)), _mm256_set1_epi8(8))
        }

        /// Q5 values `nibble | fifth bit << 4` (0..32) of a block's 16 `qs` bytes and `qh` bits.
        #[inline]
        #[target_feature(enable = $feat)]
        pub(crate) fn q5_unsigned(qs: &[u8; 16], qh: u32) -> __m256i {
            let hi = bit_bytes(qh, _mm256_set1_epi8(0x10));
            _mm256_or_si256(nibbles(qs), hi)
        }

        /// Signed Q5_0 values (`nibble | fifth bit << 4`, minus 16) of one block.
        #[inline]
        #[target_feature(enable = $feat)]
        pub(crate) fn q5_0_signed(x: &[u8; q5_0::SIZE]) -> __m256i {
            // 0xF0 where the fifth bit is clear turns nibble n into the i8 value n - 16.
            let hi = bit_bytes(!u32_at::<2, 22>(x), _mm256_set1_epi8(0xF0u8 as i8));
            _mm256_or_si256(nibbles(field::<6, 16, 22>(x)), hi)
        }

        /// Q4_0 weights · Q8_0 activations.
        #[target_feature(enable = $feat)]
        pub(crate) fn dot_q4_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
            let off = _mm256_set1_epi8(8);
            q8_0_blocks::<{ q4_0::SIZE }>(n, w, a, |x, y| {
                offset_dot(nibbles(field::<2, 16, 18>(x)), off, y)
            })
        }

        /// Q4_1 weights · Q8_1 activations.
        #[target_feature(enable = $feat)]
        pub(crate) fn dot_q4_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
            q8_1_blocks::<{ q4_1::SIZE }>(n, w, a, |x| nibbles(field::<4, 16, 20>(x)))
        }

        /// Q5_0 weights · Q8_0 activations.
        #[target_feature(enable = $feat)]
        pub(crate) fn dot_q5_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
            let off = _mm256_set1_epi8(16);
            q8_0_blocks::<{ q5_0::SIZE }>(n, w, a, |x, y| {
                offset_dot(
                    q5_unsigned(field::<6, 16, 22>(x), u32_at::<2, 22>(x)),
                    off,
                    y,
                )
            })
        }

        /// Q5_1 weights · Q8_1 activations.
        #[target_feature(enable = $feat)]
        pub(crate) fn dot_q5_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
            q8_1_blocks::<{ q5_1::SIZE }>(n, w, a, |x| {
                q5_unsigned(field::<8, 16, 24>(x), u32_at::<4, 24>(x))
            })
        }

        /// Q8_0 weights · Q8_0 activations (sign moved onto the activations).
        #[target_feature(enable = $feat)]
        pub(crate) fn dot_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
            let zero = _mm256_setzero_si256();
            q8_0_blocks::<{ q8_0::SIZE }>(n, w, a, |x, y| {
                let qx = ld256(field::<2, 32, 34>(x));
                dpbusd(zero, _mm256_sign_epi8(qx, qx), _mm256_sign_epi8(y, qx))
            })
        }
    };
}
pub(crate) use vnni_legacy;
