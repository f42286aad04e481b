//! AVX2 + FMA + F16C kernels, modelled on ggml's `arch/x86/quants.c`.
//!
//! Every function here carries `#[target_feature(enable = "avx2,fma,f16c")]`; they are only
//! reachable through a table built by [`install`] after [`crate::Isa::Avx2`] was detected.

mod float;
pub(crate) mod kquants;
pub(crate) mod legacy;
pub(crate) mod packed;
mod quantize;
pub(crate) mod tile;

use crate::table::Table;
use core::arch::x86_64::*;
use hanlin_gguf::GgmlType;

/// Replaces the scalar entries of `t` with AVX2 kernels.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C: the installed pointers are called without further
/// checks.
pub(crate) unsafe fn install(t: &mut Table) {
    use GgmlType as T;
    t.set_kernels(T::F32, float::dot_f32, None);
    t.set_kernels(T::F16, float::dot_f16, None);
    t.set_kernels(T::BF16, float::dot_bf16, None);
    t.set_kernels(T::Q4_0, legacy::dot_q4_0, Some(tile::dot4_q4_0));
    t.set_kernels(T::Q4_1, legacy::dot_q4_1, None);
    t.set_kernels(T::Q5_0, legacy::dot_q5_0, Some(tile::dot4_q5_0));
    t.set_kernels(T::Q5_1, legacy::dot_q5_1, None);
    t.set_kernels(T::Q8_0, legacy::dot_q8_0, Some(tile::dot4_q8_0));
    t.set_kernels(T::Q2_K, kquants::dot_q2_k, None);
    t.set_kernels(T::Q3_K, kquants::dot_q3_k, None);
    t.set_kernels(T::Q4_K, kquants::dot_q4_k, Some(tile::dot4_q4_k));
    t.set_kernels(T::Q5_K, kquants::dot_q5_k, None);
    t.set_kernels(T::Q6_K, kquants::dot_q6_k, Some(tile::dot4_q6_k));
    t.set_quantize(T::Q8_0, quantize::quantize_q8_0);
    t.set_quantize(T::Q8_1, quantize::quantize_q8_1);
    t.set_quantize(T::Q8_K, quantize::quantize_q8_k);
    t.set_quantize(T::F16, quantize::quantize_f16);
    t.set_quantize(T::BF16, quantize::quantize_bf16);
}

/// Unaligned 32-byte load.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn ld256(b: &[u8; 32]) -> __m256i {
    // SAFETY: `b` is 32 readable bytes and `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

/// Unaligned 16-byte load.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn ld128(b: &[u8; 16]) -> __m128i {
    // SAFETY: `b` is 16 readable bytes and `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

/// Unaligned 32-byte store.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn st256(b: &mut [u8; 32], v: __m256i) {
    // SAFETY: `b` is 32 writable bytes and `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_si256(b.as_mut_ptr().cast(), v) }
}

/// Unaligned 16-byte store.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn st128(b: &mut [u8; 16], v: __m128i) {
    // SAFETY: `b` is 16 writable bytes and `storeu` has no alignment requirement.
    unsafe { _mm_storeu_si128(b.as_mut_ptr().cast(), v) }
}

/// Eight f32 from 32 little-endian bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn ld_ps(b: &[u8; 32]) -> __m256 {
    _mm256_castsi256_ps(ld256(b))
}

/// One f16 (as bits) to f32 with F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn fp16(bits: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// One f32 to f16 bits, round to nearest even (like `half::f16::from_f32`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn to_fp16(x: f32) -> u16 {
    _mm_extract_epi16::<0>(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(x))) as u16
}

/// Sum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn hsum_ps(x: __m256) -> f32 {
    let r = _mm_add_ps(_mm256_extractf128_ps::<1>(x), _mm256_castps256_ps128(x));
    hsum_ps128(r)
}

/// Sum of the 4 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn hsum_ps128(r: __m128) -> f32 {
    let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    let r = _mm_add_ss(r, _mm_movehdup_ps(r));
    _mm_cvtss_f32(r)
}

/// Sum of the 8 i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn hsum_epi32(x: __m256i) -> i32 {
    let r = _mm_add_epi32(_mm256_extracti128_si256::<1>(x), _mm256_castsi256_si128(x));
    let r = _mm_add_epi32(r, _mm_unpackhi_epi64(r, r));
    let r = _mm_add_epi32(r, _mm_shuffle_epi32::<0b01>(r));
    _mm_cvtsi128_si32(r)
}

/// 32 nibbles → 32 bytes: low nibbles of `b` in bytes 0..16, high nibbles in 16..32.
///
/// Broadcasting the 16 bytes from memory and blending the shifted copy into the high half
/// avoids `vinserti128`, a shuffle-port µop in loops already bound on that port.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn bytes_from_nibbles_32(b: &[u8; 16]) -> __m256i {
    // SAFETY: `b` is 16 readable bytes; the broadcast load has no alignment requirement.
    let both = unsafe { _mm256_broadcastsi128_si256(_mm_loadu_si128(b.as_ptr().cast())) };
    let mixed = _mm256_blend_epi32::<0xF0>(both, _mm256_srli_epi16::<4>(both));
    _mm256_and_si256(mixed, _mm256_set1_epi8(0x0F))
}

/// 32 bits → 32 bytes, 0xFF where the bit is set.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn bytes_from_bits_32(bits: u32) -> __m256i {
    let shuf = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), shuf);
    let bit_mask = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
    _mm256_cmpeq_epi8(_mm256_or_si256(bytes, bit_mask), _mm256_set1_epi64x(-1))
}

/// Pairwise i32 sums of unsigned × signed byte products.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn mul_sum_us8_pairs(ax: __m256i, sy: __m256i) -> __m256i {
    let dot = _mm256_maddubs_epi16(ax, sy);
    _mm256_madd_epi16(dot, _mm256_set1_epi16(1))
}

/// Pairwise i32 sums of signed × signed byte products (sign moved onto `y`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn mul_sum_i8_pairs(x: __m256i, y: __m256i) -> __m256i {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    mul_sum_us8_pairs(ax, sy)
}
