//! [`crate::Isa::Avx512Vnni`]: the 256-bit VNNI kernels of [`super::vnni`] in EVEX encoding,
//! for CPUs with AVX-512 F/BW/VL and AVX512_VNNI (Ice Lake, Sapphire Rapids, Zen 4 and later).
//!
//! Why not 512-bit registers: on these cores a 512-bit integer multiply (`vpdpbusd`,
//! `vpdpwssd`, `vpmaddubsw`) issues only on port 0, while the 256-bit forms issue on ports 0
//! and 1, so the multiplier throughput in bytes per cycle is the same. The kernels here are
//! bound by exactly those multiplies; a 512-bit Q4_K (1×1 and 1×4) measured no faster than
//! this 256-bit code (35.2 vs 34.1 GB/s batched, 21.0 vs 22.1 GB/s mat-vec). What AVX-512
//! does buy: 32 vector registers for the tiles, and AVX512BW masked moves, which expand Q5's
//! fifth bits to bytes in one instruction.

use core::arch::x86_64::{__m256i, _mm256_maskz_mov_epi8};

/// Byte `i` of `v` where bit `i` of `bits` is set, else 0: one masked move.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn bit_bytes(bits: u32, v: __m256i) -> __m256i {
    _mm256_maskz_mov_epi8(bits, v)
}

super::vnni::vnni_isa!(
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    _mm256_dpbusd_epi32,
    "vpdpwssd {0}, {1}, {2}",
    tile8: true
);
