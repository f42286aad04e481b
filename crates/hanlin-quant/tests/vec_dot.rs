//! Dot products against ggml: the scalar `ggml_vec_dot_*_generic` code (compiled without FMA
//! by the fixture script) must agree bit for bit; the SIMD path of the machine that made the
//! fixtures sums in another order and is only held to `1e-4 * sum |w_i * a_i|`.

mod common;

use hanlin_quant::{row_size, vec_dot, vec_dot_type, GgmlType};

const TYPES: [GgmlType; 13] = [
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

#[test]
fn vec_dot_matches_ggml() {
    for ty in TYPES {
        let cases = common::load(&format!("vec_dot_{}.bin", common::stem(ty)));
        let sizes: Vec<usize> = cases
            .iter()
            .map(|c| u32::from_le_bytes(c[0][..4].try_into().unwrap()) as usize)
            .collect();
        let step = if ty.block_size() == 256 { 256 } else { 1 };
        assert!(sizes.iter().any(|&n| n > 4096 - step), "{ty}: {sizes:?}");
        for case in &cases {
            let n = u32::from_le_bytes(case[0][..4].try_into().unwrap()) as usize;
            let (w, act) = (&case[1], &case[2]);
            assert_eq!(act.len(), row_size(vec_dot_type(ty), n).unwrap());
            let r = common::f32s(&case[3]);
            let (generic, simd, magnitude) = (r[0], r[1], r[2]);
            let got = vec_dot(ty, n, w, act).unwrap();
            // Same operations in the same order as the generic C built without FMA: same bits.
            assert_eq!(
                got.to_bits(),
                generic.to_bits(),
                "{ty} n={n}: got {got}, ggml generic {generic} (sum |w*a| = {magnitude})"
            );
            assert!(
                (got - simd).abs() <= 1e-4 * magnitude,
                "{ty} n={n}: got {got}, ggml SIMD {simd} (sum |w*a| = {magnitude})"
            );
        }
    }
}

#[test]
fn vec_dot_rejects_wrong_lengths() {
    let w = vec![0u8; row_size(GgmlType::Q4_0, 64).unwrap()];
    let a = vec![0u8; row_size(GgmlType::Q8_0, 32).unwrap()];
    let err = vec_dot(GgmlType::Q4_0, 64, &w, &a).unwrap_err().to_string();
    assert!(err.contains("Q8_0") && err.contains("activations"), "{err}");
    assert!(vec_dot(GgmlType::Q4_0, 33, &w, &a).is_err());
}
