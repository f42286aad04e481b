//! Block layouts and scalar quantize/dequantize/dot reference code.
//!
//! This crate is the oracle for all quantized math in hanlin: plain, obvious scalar code that
//! reproduces ggml (`ggml-quants.c` `*_ref`, `ggml-cpu/quants.c` `*_generic`) bit for bit where
//! the C code's float operation order is reproducible. The SIMD kernels in `hanlin-kernels` are
//! tested against it; nothing here is meant to be fast.
//!
//! Byte layouts are read with explicit little-endian parsing ([`Block::read`]), never by
//! reinterpreting memory, so tensor data straight from an mmap needs no alignment.
//!
//! Entry points:
//! - [`dequantize_row`] — any supported type to `f32`.
//! - [`quantize_row`] — `f32` to a weight type, like `ggml_quantize_chunk` without an
//!   importance matrix.
//! - [`quantize_row_q8_0`], [`quantize_row_q8_1`], [`quantize_row_q8_k`],
//!   [`quantize_activation`] — activation formats for the dot products.
//! - [`vec_dot_type`], [`vec_dot`] — ggml's weight × activation pairing and dot products.

mod blocks;
mod dequant;
mod dot;
mod error;
mod float;
mod quant_k;
mod quant_legacy;
mod quantize;

pub use blocks::{
    blocks, Block, BlockQ2_K, BlockQ3_K, BlockQ4_0, BlockQ4_1, BlockQ4_K, BlockQ5_0, BlockQ5_1,
    BlockQ5_K, BlockQ6_K, BlockQ8_0, BlockQ8_1, BlockQ8_K,
};
pub use dequant::dequantize_row;
pub use dot::{vec_dot, vec_dot_type};
pub use error::QuantError;
pub use float::{bf16_to_f32, f32_to_bf16};
pub use hanlin_gguf::GgmlType;
pub use quant_k::{get_scale_min_k4, nearest_int, quantize_row_q8_k};
pub use quant_legacy::{
    quantize_row_q8_0, quantize_row_q8_0_x86, quantize_row_q8_1, quantize_row_q8_1_x86,
};
pub use quantize::{quantize_activation, quantize_row, try_quantize_activation};

/// Weight types with a reference dequantizer, quantizer and dot product here.
pub const WEIGHT_TYPES: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// Elements per Q4_0 block.
pub const QK4_0: usize = 32;
/// Elements per Q4_1 block.
pub const QK4_1: usize = 32;
/// Elements per Q5_0 block.
pub const QK5_0: usize = 32;
/// Elements per Q5_1 block.
pub const QK5_1: usize = 32;
/// Elements per Q8_0 block.
pub const QK8_0: usize = 32;
/// Elements per Q8_1 block.
pub const QK8_1: usize = 32;
/// Elements per K-quant super-block.
pub const QK_K: usize = 256;
/// Bytes of packed 6-bit scales and mins in Q4_K / Q5_K (and packed scales in Q3_K).
pub const K_SCALE_SIZE: usize = 12;

/// Bytes that `n` elements of `ty` occupy, or an error naming the type when `n` is not a whole
/// number of blocks.
pub fn row_size(ty: GgmlType, n: usize) -> Result<usize, QuantError> {
    let block = ty.block_size();
    if !n.is_multiple_of(block) {
        return Err(QuantError::NotBlockMultiple { ty, n, block });
    }
    (n / block)
        .checked_mul(ty.type_size())
        .ok_or(QuantError::NotBlockMultiple { ty, n, block })
}
