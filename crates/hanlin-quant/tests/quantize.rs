//! Quantizers against ggml's `quantize_row_*_ref` (and fp16 / bf16 row conversions) on rows of
//! awkward data: tiny and huge magnitudes, outliers, one-signed, constant and all-zero blocks.

mod common;

use hanlin_quant::{
    quantize_activation, quantize_row, quantize_row_q8_0, quantize_row_q8_1, quantize_row_q8_k,
    try_quantize_activation, GgmlType,
};

const WEIGHT_TYPES: [GgmlType; 14] = [
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q8_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::Q8_K,
];

fn fixture(ty: GgmlType) -> (Vec<f32>, Vec<u8>) {
    let cases = common::load(&format!("quantize_{}.bin", common::stem(ty)));
    (common::f32s(&cases[0][0]), cases[0][1].clone())
}

/// Names the first differing block so a failure points at the distribution that broke.
fn assert_same_bytes(ty: GgmlType, got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "{ty}");
    if let Some(pos) = got.iter().zip(want).position(|(a, b)| a != b) {
        let block = pos / ty.type_size();
        panic!(
            "{ty}: first difference at byte {pos} (block {block}): got {:02x?}, ggml {:02x?}",
            &got[block * ty.type_size()..(block + 1) * ty.type_size()],
            &want[block * ty.type_size()..(block + 1) * ty.type_size()],
        );
    }
}

#[test]
fn quantize_row_matches_ggml_ref_byte_for_byte() {
    for ty in WEIGHT_TYPES {
        let (x, want) = fixture(ty);
        let mut got = vec![0u8; want.len()];
        quantize_row(ty, &x, &mut got).unwrap();
        assert_same_bytes(ty, &got, &want);
    }
}

#[test]
fn activation_quantizers_match_ggml_ref() {
    type Quantizer = fn(&[f32], &mut [u8]);
    let direct: [(GgmlType, Quantizer); 3] = [
        (GgmlType::Q8_0, quantize_row_q8_0),
        (GgmlType::Q8_1, quantize_row_q8_1),
        (GgmlType::Q8_K, quantize_row_q8_k),
    ];
    for (ty, f) in direct {
        let (x, want) = fixture(ty);
        let mut got = vec![0u8; want.len()];
        f(&x, &mut got);
        assert_same_bytes(ty, &got, &want);
        let mut got = vec![0u8; want.len()];
        quantize_activation(ty, &x, &mut got);
        assert_same_bytes(ty, &got, &want);
    }
    for ty in [GgmlType::F16, GgmlType::BF16] {
        let (x, want) = fixture(ty);
        let mut got = vec![0u8; want.len()];
        try_quantize_activation(ty, &x, &mut got).unwrap();
        assert_same_bytes(ty, &got, &want);
    }
}

#[test]
fn f32_activations_are_copied() {
    let x = [1.5f32, -0.0, 3.0e-40, f32::MAX];
    let mut got = [0u8; 16];
    quantize_activation(GgmlType::F32, &x, &mut got);
    let back: Vec<u32> = common::f32s(&got).iter().map(|v| v.to_bits()).collect();
    assert_eq!(back, x.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
}
