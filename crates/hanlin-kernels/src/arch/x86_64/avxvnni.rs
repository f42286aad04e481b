//! [`crate::Isa::AvxVnni`]: the 256-bit VNNI kernels of [`super::vnni`] in VEX encoding, for
//! CPUs with AVX-VNNI but no AVX-512 (Alder Lake and later client cores).

use core::arch::x86_64::{__m256i, _mm256_and_si256};

use super::avx2::bytes_from_bits_32;

/// Byte `i` of `v` where bit `i` of `bits` is set, else 0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
fn bit_bytes(bits: u32, v: __m256i) -> __m256i {
    _mm256_and_si256(bytes_from_bits_32(bits), v)
}

super::vnni::vnni_isa!(
    "avx2,fma,f16c,avxvnni",
    _mm256_dpbusd_avx_epi32,
    "{{vex}} vpdpwssd {0}, {1}, {2}",
    tile8: false
);
