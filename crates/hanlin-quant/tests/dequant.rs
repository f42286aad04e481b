//! Dequantization of random blocks (random quant bytes, finite random scales) against ggml's
//! `dequantize_row_*` / fp16 / bf16 row conversions.

mod common;

use hanlin_quant::{dequantize_row, GgmlType};

const TYPES: [GgmlType; 14] = [
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
    GgmlType::Q8_K,
];

#[test]
fn dequantize_matches_ggml_bit_for_bit() {
    for ty in TYPES {
        let cases = common::load(&format!("dequant_{}.bin", common::stem(ty)));
        assert!(!cases.is_empty(), "{ty}");
        for (i, case) in cases.iter().enumerate() {
            let (raw, want) = (&case[0], common::f32s(&case[1]));
            let mut got = vec![f32::NAN; want.len()];
            dequantize_row(ty, raw, &mut got).unwrap();
            for (j, (g, w)) in got.iter().zip(&want).enumerate() {
                // ggml-base is built without FMA, so the same operand order gives the same bits.
                assert!(
                    g.to_bits() == w.to_bits() || (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                    "{ty} case {i} element {j}: got {g}, ggml {w}"
                );
                assert_eq!(g, w, "{ty} case {i} element {j} not bit-identical");
            }
        }
    }
}

#[test]
fn dequantize_reads_unaligned_input() {
    // Same bytes one position further into a buffer: a misaligned mmap must not matter.
    let case = &common::load("dequant_q6_k.bin")[0];
    let mut shifted = vec![0u8; case[0].len() + 1];
    shifted[1..].copy_from_slice(&case[0]);
    let want = common::f32s(&case[1]);
    let mut got = vec![0f32; want.len()];
    dequantize_row(GgmlType::Q6_K, &shifted[1..], &mut got).unwrap();
    assert_eq!(got, want);
}
