//! Row quantization entry points: weights (`quantize_row`) and activations
//! (`quantize_activation`).

use half::f16;
use hanlin_gguf::GgmlType;

use crate::error::{check_bytes, QuantError};
use crate::float::f32_to_bf16;
use crate::quant_k::{
    quantize_q2_k, quantize_q3_k, quantize_q4_k, quantize_q5_k, quantize_q6_k, quantize_row_q8_k,
};
use crate::quant_legacy::{
    quantize_blocks, quantize_q4_0, quantize_q4_1, quantize_q5_0, quantize_q5_1, quantize_q8_0,
    quantize_row_q8_1,
};
use crate::row_size;

/// Quantizes one row of `f32` to `ty` like `ggml_quantize_chunk` with no importance matrix
/// (that is, ggml's `quantize_row_*_ref`). `dst` must be exactly the row's byte size.
///
/// Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
/// Q8_K; anything else is [`QuantError::Unsupported`].
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    use GgmlType as T;
    let supported = crate::WEIGHT_TYPES.contains(&ty) || ty == T::Q8_1 || ty == T::Q8_K;
    if !supported {
        return Err(QuantError::Unsupported { ty, op: "quantize" });
    }
    check_bytes(ty, "destination", row_size(ty, src.len())?, dst.len())?;
    match ty {
        T::F32 => {
            for (o, v) in dst.chunks_exact_mut(4).zip(src) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        T::F16 => {
            for (o, v) in dst.chunks_exact_mut(2).zip(src) {
                o.copy_from_slice(&f16::from_f32(*v).to_bits().to_le_bytes());
            }
        }
        T::BF16 => {
            for (o, v) in dst.chunks_exact_mut(2).zip(src) {
                o.copy_from_slice(&f32_to_bf16(*v).to_le_bytes());
            }
        }
        T::Q4_0 => quantize_blocks(src, dst, quantize_q4_0),
        T::Q4_1 => quantize_blocks(src, dst, quantize_q4_1),
        T::Q5_0 => quantize_blocks(src, dst, quantize_q5_0),
        T::Q5_1 => quantize_blocks(src, dst, quantize_q5_1),
        T::Q8_0 => quantize_blocks(src, dst, quantize_q8_0),
        T::Q8_1 => quantize_row_q8_1(src, dst),
        T::Q2_K => quantize_blocks(src, dst, quantize_q2_k),
        T::Q3_K => quantize_blocks(src, dst, quantize_q3_k),
        T::Q4_K => quantize_blocks(src, dst, quantize_q4_k),
        T::Q5_K => quantize_blocks(src, dst, quantize_q5_k),
        T::Q6_K => quantize_blocks(src, dst, quantize_q6_k),
        T::Q8_K => quantize_row_q8_k(src, dst),
        _ => return Err(QuantError::Unsupported { ty, op: "quantize" }),
    }
    Ok(())
}

/// Like [`quantize_activation`] but returns an error instead of panicking.
pub fn try_quantize_activation(
    ty_vec_dot: GgmlType,
    src: &[f32],
    dst: &mut [u8],
) -> Result<(), QuantError> {
    use GgmlType as T;
    match ty_vec_dot {
        T::Q8_0 | T::Q8_1 => {
            let want = row_size(ty_vec_dot, src.len())?;
            check_bytes(ty_vec_dot, "destination", want, dst.len())?;
            if ty_vec_dot == T::Q8_0 {
                crate::quant_legacy::quantize_row_q8_0_x86(src, dst);
            } else {
                crate::quant_legacy::quantize_row_q8_1_x86(src, dst);
            }
            Ok(())
        }
        T::F32 | T::F16 | T::BF16 | T::Q8_K => quantize_row(ty_vec_dot, src, dst),
        ty => Err(QuantError::Unsupported {
            ty,
            op: "activation quantization",
        }),
    }
}

/// Converts an activation row into `ty_vec_dot` (what [`crate::vec_dot_type`] returned for the
/// weights): F32 copy, F16 / BF16 round-to-nearest-even, Q8_K via ggml's reference quantizer,
/// Q8_0 / Q8_1 the way ggml's x86 SIMD quantizers round (see [`crate::quantize_row_q8_0_x86`]).
///
/// # Panics
/// If `ty_vec_dot` is not one of those six types, or `dst` is not exactly the row's byte size
/// (caller bugs; use [`try_quantize_activation`] to get an error instead).
pub fn quantize_activation(ty_vec_dot: GgmlType, src: &[f32], dst: &mut [u8]) {
    if let Err(e) = try_quantize_activation(ty_vec_dot, src, dst) {
        panic!("quantize_activation: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_type() {
        let e = quantize_row(GgmlType::IQ4_XS, &[0.0; 256], &mut [0u8; 136]).unwrap_err();
        assert!(e.to_string().contains("IQ4_XS"), "{e}");
        let e = quantize_row(GgmlType::Q6_K, &[0.0; 256], &mut [0u8; 200]).unwrap_err();
        assert!(
            e.to_string().contains("Q6_K") && e.to_string().contains("210"),
            "{e}"
        );
        let e = try_quantize_activation(GgmlType::Q4_0, &[0.0; 32], &mut [0u8; 18]).unwrap_err();
        assert!(e.to_string().contains("Q4_0"), "{e}");
    }

    #[test]
    fn zero_rows_quantize_to_zero_blocks() {
        for ty in [
            GgmlType::Q4_K,
            GgmlType::Q5_K,
            GgmlType::Q6_K,
            GgmlType::Q2_K,
        ] {
            let mut out = vec![0xaau8; ty.type_size()];
            quantize_row(ty, &[0.0; 256], &mut out).unwrap();
            let mut back = [1f32; 256];
            crate::dequantize_row(ty, &out, &mut back).unwrap();
            assert!(back.iter().all(|&v| v == 0.0), "{ty}");
        }
    }
}
