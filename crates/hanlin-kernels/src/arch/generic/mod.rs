//! Portable scalar kernels: the baseline table on every target, and the only one off x86_64.

pub(crate) mod float;
mod kquants;
mod legacy;
pub(crate) mod packed;
pub(crate) mod quantize;

use crate::table::{DotEntry, Table};
use hanlin_gguf::GgmlType;

/// A table with a scalar kernel for every supported type.
pub(crate) fn table() -> Table {
    use GgmlType as T;
    let mut t = Table::empty();
    let dots: [(T, T, crate::table::DotFn); 13] = [
        (T::F32, T::F32, float::dot_f32),
        (T::F16, T::F16, float::dot_f16),
        (T::BF16, T::BF16, float::dot_bf16),
        (T::Q4_0, T::Q8_0, legacy::dot_q4_0),
        (T::Q4_1, T::Q8_1, legacy::dot_q4_1),
        (T::Q5_0, T::Q8_0, legacy::dot_q5_0),
        (T::Q5_1, T::Q8_1, legacy::dot_q5_1),
        (T::Q8_0, T::Q8_0, legacy::dot_q8_0),
        (T::Q2_K, T::Q8_K, kquants::dot_q2_k),
        (T::Q3_K, T::Q8_K, kquants::dot_q3_k),
        (T::Q4_K, T::Q8_K, kquants::dot_q4_k),
        (T::Q5_K, T::Q8_K, kquants::dot_q5_k),
        (T::Q6_K, T::Q8_K, kquants::dot_q6_k),
    ];
    for (ty, act, dot) in dots {
        t.set_dot(
            ty,
            DotEntry {
                act,
                dot,
                dot4: None,
                dot8: None,
                #[cfg(target_arch = "x86_64")]
                gemm: None,
            },
        );
    }
    let quants: [(T, crate::table::QuantizeFn); 6] = [
        (T::F32, quantize::quantize_f32),
        (T::F16, quantize::quantize_f16),
        (T::BF16, quantize::quantize_bf16),
        (T::Q8_0, quantize::quantize_q8_0),
        (T::Q8_1, quantize::quantize_q8_1),
        (T::Q8_K, quantize::quantize_q8_k),
    ];
    for (ty, q) in quants {
        t.set_quantize(ty, q);
    }
    t
}
