//! Every dot kernel of every ISA against hanlin-quant's scalar `vec_dot`.

mod common;

use common::*;
use hanlin_kernels::{activation_type, GgmlType};

#[test]
fn activation_types_match_oracle() {
    for ty in WEIGHT_TYPES {
        assert_eq!(
            activation_type(ty),
            Some(hanlin_quant::vec_dot_type(ty)),
            "{ty}"
        );
    }
    assert_eq!(activation_type(GgmlType::IQ2_XXS), None);
}

fn check_type(ty: GgmlType, seed: u64) {
    let mut r = rng(seed);
    for k in kernel_sets() {
        assert!(k.supports(ty), "{} lacks {ty}", k.isa());
        for n in sizes(ty) {
            for (mode, w) in [
                ("quantized", quantized_weights(&mut r, ty, n)),
                ("random bytes", random_weights(&mut r, ty, n)),
            ] {
                let a_f32 = floats(&mut r, n);
                let a = activation(ty, &a_f32);
                let want = hanlin_quant::vec_dot(ty, n, &w, &a).expect("oracle dot");
                let got = k.vec_dot(ty, n, &w, &a).expect("kernel dot");
                let what = format!("{} {ty} n={n} {mode}", k.isa());
                assert_close(got, want, magnitude(ty, &w, &a_f32), &what);
            }
        }
    }
}

#[test]
fn q8_0() {
    check_type(GgmlType::Q8_0, 1);
}

#[test]
fn q4_k() {
    check_type(GgmlType::Q4_K, 2);
}

#[test]
fn q6_k() {
    check_type(GgmlType::Q6_K, 3);
}

#[test]
fn q5_0() {
    check_type(GgmlType::Q5_0, 4);
}

#[test]
fn f32() {
    check_type(GgmlType::F32, 5);
}

#[test]
fn q4_0() {
    check_type(GgmlType::Q4_0, 6);
}

#[test]
fn q4_1() {
    check_type(GgmlType::Q4_1, 7);
}

#[test]
fn q5_1() {
    check_type(GgmlType::Q5_1, 8);
}

#[test]
fn q2_k() {
    check_type(GgmlType::Q2_K, 9);
}

#[test]
fn q3_k() {
    check_type(GgmlType::Q3_K, 10);
}

#[test]
fn q5_k() {
    check_type(GgmlType::Q5_K, 11);
}

#[test]
fn f16() {
    check_type(GgmlType::F16, 12);
}

#[test]
fn bf16() {
    check_type(GgmlType::BF16, 13);
}

#[test]
fn extreme_quants_do_not_saturate() {
    // All-max weights and activations: the largest maddubs pair sums each format can produce.
    let mut r = rng(14);
    for ty in WEIGHT_TYPES {
        let n = sizes(ty)[1];
        let mut w = random_weights(&mut r, ty, n);
        if ty.block_size() > 1 {
            for blk in w.chunks_exact_mut(ty.type_size()) {
                let keep = random_weights(&mut r, ty, ty.block_size());
                // Largest quants everywhere (-128 for Q8_0) except the f16 scale fields.
                let fill = if ty == GgmlType::Q8_0 { 0x80 } else { 0xFF };
                for (i, b) in blk.iter_mut().enumerate() {
                    *b = if is_scale_byte(ty, i) { keep[i] } else { fill };
                }
            }
        }
        let a_f32: Vec<f32> = (0..n)
            .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
            .collect();
        let a = activation(ty, &a_f32);
        let want = hanlin_quant::vec_dot(ty, n, &w, &a).expect("oracle");
        for k in kernel_sets() {
            let got = k.vec_dot(ty, n, &w, &a).expect("kernel");
            assert_close(
                got,
                want,
                magnitude(ty, &w, &a_f32),
                &format!("{} {ty}", k.isa()),
            );
        }
    }
}

/// Whether byte `i` of a block of `ty` belongs to an f16 scale field.
fn is_scale_byte(ty: GgmlType, i: usize) -> bool {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => i < 2,
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => i < 4,
        GgmlType::Q2_K => i >= 80,
        GgmlType::Q3_K => i >= 108,
        GgmlType::Q6_K => i >= 208,
        _ => false,
    }
}

/// Types whose kernels follow ggml's x86 float order exactly (see `docs/correctness.md`): every
/// ISA must give the scalar kernel's bits, not just its value.
const LLAMA_ORDER_TYPES: [GgmlType; 8] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::F16,
];

#[test]
fn llama_order_types_are_bit_identical_across_isas() {
    let mut r = rng(15);
    let generic = hanlin_kernels::Kernels::generic();
    for ty in LLAMA_ORDER_TYPES {
        for n in sizes(ty).into_iter().chain([
            64 * ty.block_size(),
            640usize.next_multiple_of(ty.block_size()),
        ]) {
            for w in [
                quantized_weights(&mut r, ty, n),
                random_weights(&mut r, ty, n),
            ] {
                let a = activation(ty, &floats(&mut r, n));
                let want = generic.vec_dot(ty, n, &w, &a).expect("scalar dot");
                for k in kernel_sets() {
                    let got = k.vec_dot(ty, n, &w, &a).expect("kernel dot");
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{} {ty} n={n}: {got} vs scalar {want}",
                        k.isa()
                    );
                }
            }
        }
    }
}
