//! AVX2 activation quantizers, byte-identical to the scalar ones (and to hanlin-quant).
//!
//! Q8_0 / Q8_1 are ggml's x86 quantizers (`127 / amax`, round half to even); Q8_K keeps the
//! reference's sign-of-max scale and `nearest_int` so activations never depend on the ISA.

use super::{hsum_epi32, ld_ps, st128, st256, to_fp16};
use crate::arch::generic;
use crate::layout::{blocks_mut, field_mut, q8_0, q8_1, q8_k};
use core::arch::x86_64::*;

/// Lane-wise max of |v| over a block, reduced to one f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn abs_max(v: &[__m256]) -> f32 {
    let abs = _mm256_set1_ps(f32::from_bits(0x7fff_ffff));
    let mut m = _mm256_setzero_ps();
    for x in v {
        m = _mm256_max_ps(m, _mm256_and_ps(*x, abs));
    }
    let m = _mm_max_ps(_mm256_extractf128_ps::<1>(m), _mm256_castps256_ps128(m));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_movehdup_ps(m));
    _mm_cvtss_f32(m)
}

/// Four vectors of 8 i32 (values in i8 range) packed to 32 bytes in element order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn pack_i32_to_i8(i: [__m256i; 4]) -> __m256i {
    let ab = _mm256_packs_epi32(i[0], i[1]);
    let cd = _mm256_packs_epi32(i[2], i[3]);
    let p = _mm256_packs_epi16(ab, cd);
    // packs interleave 128-bit lanes; restore element order.
    _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// One 32-float chunk as four vectors.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load32(x: &[f32; 32]) -> [__m256; 4] {
    let (c, _) = x.as_chunks::<8>();
    std::array::from_fn(|k| {
        let bytes: &[u8; 32] = bytemuck_f32x8(&c[k]);
        ld_ps(bytes)
    })
}

/// Views 8 floats as their 32 bytes.
#[inline(always)]
fn bytemuck_f32x8(x: &[f32; 8]) -> &[u8; 32] {
    // SAFETY: [f32; 8] and [u8; 32] have the same size, u8 has alignment 1 and every byte of
    // an f32 is initialised; x86_64 is little-endian, matching the on-disk layout.
    unsafe { &*x.as_ptr().cast::<[u8; 32]>() }
}

/// Q8_0 (or the Q8_1 quants): returns `d` and the rounded i32 lanes of one 32-float block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q8_block(x: &[f32; 32]) -> (f32, [__m256i; 4]) {
    let v = load32(x);
    let amax = abs_max(&v);
    let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
    // cvtps_epi32 rounds half to even under the default MXCSR mode, like `round_ties_even`.
    let q = v.map(|v| {
        let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(v, id),
        );
        _mm256_cvtps_epi32(r)
    });
    (amax / 127.0, q)
}

/// f32 → Q8_0.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q8_0(src: &[f32], dst: &mut [u8]) {
    let nb = src.len() / 32;
    let (xs, _) = src.as_chunks::<32>();
    for (x, y) in xs.iter().zip(blocks_mut::<{ q8_0::SIZE }>(dst, nb)) {
        let (d, q) = q8_block(x);
        y[..2].copy_from_slice(&to_fp16(d).to_le_bytes());
        st256(field_mut::<2, 32, 34>(y), pack_i32_to_i8(q));
    }
}

/// f32 → Q8_1.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q8_1(src: &[f32], dst: &mut [u8]) {
    let nb = src.len() / 32;
    let (xs, _) = src.as_chunks::<32>();
    for (x, y) in xs.iter().zip(blocks_mut::<{ q8_1::SIZE }>(dst, nb)) {
        let (d, q) = q8_block(x);
        let sum = hsum_epi32(_mm256_add_epi32(
            _mm256_add_epi32(q[0], q[1]),
            _mm256_add_epi32(q[2], q[3]),
        ));
        y[..2].copy_from_slice(&to_fp16(d).to_le_bytes());
        y[2..4].copy_from_slice(&to_fp16(d * sum as f32).to_le_bytes());
        st256(field_mut::<4, 32, 36>(y), pack_i32_to_i8(q));
    }
}

/// f32 → Q8_K.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q8_k(src: &[f32], dst: &mut [u8]) {
    let nb = src.len() / 256;
    let (xs, _) = src.as_chunks::<256>();
    for (x, y) in xs.iter().zip(blocks_mut::<{ q8_k::SIZE }>(dst, nb)) {
        let (c, _) = x.as_chunks::<32>();
        let v: [[__m256; 4]; 8] = std::array::from_fn(|k| load32(&c[k]));
        let amax = abs_max(v.as_flattened());
        if amax == 0.0 {
            y.fill(0);
            continue;
        }
        // The reference keeps the sign of the first element of largest magnitude.
        let target = _mm256_set1_ps(amax);
        let abs = _mm256_set1_ps(f32::from_bits(0x7fff_ffff));
        let mut max = amax;
        for (k, vk) in v.as_flattened().iter().enumerate() {
            let hit = _mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_and_ps(*vk, abs), target);
            let bits = _mm256_movemask_ps(hit);
            if bits != 0 {
                max = x[8 * k + bits.trailing_zeros() as usize];
                break;
            }
        }
        let iscale = -127.0 / max;
        let is = _mm256_set1_ps(iscale);
        let lim = _mm256_set1_epi32(127);
        let mut sums = [_mm256_setzero_si256(); 16];
        for (k, group) in v.iter().enumerate() {
            let q = group.map(|g| {
                let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    _mm256_mul_ps(is, g),
                );
                _mm256_min_epi32(_mm256_cvtps_epi32(r), lim)
            });
            sums[2 * k] = _mm256_add_epi32(q[0], q[1]);
            sums[2 * k + 1] = _mm256_add_epi32(q[2], q[3]);
            let out = field_mut::<4, 256, 292>(y);
            st256(&mut out.as_chunks_mut::<32>().0[k], pack_i32_to_i8(q));
        }
        // Horizontal sums of 16 vectors, four at a time, packed to the 16 i16 bsums.
        let quad = |s: &[__m256i]| {
            let h01 = _mm256_hadd_epi32(s[0], s[1]);
            let h23 = _mm256_hadd_epi32(s[2], s[3]);
            let h = _mm256_hadd_epi32(h01, h23);
            _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h))
        };
        let b: [__m128i; 4] = std::array::from_fn(|i| quad(&sums[4 * i..4 * i + 4]));
        let bs = field_mut::<260, 32, 292>(y);
        let (halves, _) = bs.as_chunks_mut::<16>();
        st128(&mut halves[0], _mm_packs_epi32(b[0], b[1]));
        st128(&mut halves[1], _mm_packs_epi32(b[2], b[3]));
        y[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

/// f32 → F16, eight at a time with F16C (round to nearest even).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_f16(src: &[f32], dst: &mut [u8]) {
    let main = src.len() - src.len() % 8;
    let (xs, _) = src[..main].as_chunks::<8>();
    let (ys, _) = dst[..main * 2].as_chunks_mut::<16>();
    for (x, y) in xs.iter().zip(ys) {
        let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(ld_ps(bytemuck_f32x8(x)));
        st128(y, h);
    }
    generic::quantize::quantize_f16(&src[main..], &mut dst[main * 2..]);
}

/// f32 → BF16, sixteen at a time: round to nearest even, NaN forced quiet.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_bf16(src: &[f32], dst: &mut [u8]) {
    let main = src.len() - src.len() % 16;
    let (xs, _) = src[..main].as_chunks::<16>();
    let (ys, _) = dst[..main * 2].as_chunks_mut::<32>();
    let conv = |b: __m256i| {
        let nan = _mm256_cmpgt_epi32(
            _mm256_and_si256(b, _mm256_set1_epi32(0x7fff_ffff)),
            _mm256_set1_epi32(0x7f80_0000),
        );
        let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(b), _mm256_set1_epi32(1));
        let bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb);
        let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(b, bias));
        let quiet = _mm256_or_si256(_mm256_srli_epi32::<16>(b), _mm256_set1_epi32(0x40));
        _mm256_blendv_epi8(rounded, quiet, nan)
    };
    for (x, y) in xs.iter().zip(ys) {
        let (h, _) = x.as_chunks::<8>();
        let lo = conv(_mm256_castps_si256(ld_ps(bytemuck_f32x8(&h[0]))));
        let hi = conv(_mm256_castps_si256(ld_ps(bytemuck_f32x8(&h[1]))));
        let p = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(lo, hi));
        st256(y, p);
    }
    generic::quantize::quantize_bf16(&src[main..], &mut dst[main * 2..]);
}
