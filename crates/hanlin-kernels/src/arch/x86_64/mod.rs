//! x86_64 kernels, reached only through tables built after runtime feature detection.

pub(crate) mod attn;
pub(crate) mod avx2;
pub(crate) mod avx512vnni;
pub(crate) mod avxvnni;
pub(crate) mod gemm512;
pub(crate) mod packed512;
mod vnni;
