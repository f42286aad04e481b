//! Shared helpers: random rows in every format, the kernel sets under test, tolerances.
#![allow(dead_code)]

use hanlin_kernels::{GgmlType, Isa, Kernels};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Weight types with dot kernels, Gemma-3 Q4_K_M's first.
pub const WEIGHT_TYPES: [GgmlType; 13] = [
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::Q5_0,
    GgmlType::F32,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q5_K,
    GgmlType::F16,
    GgmlType::BF16,
];

/// Relative tolerance on `sum |w_i * a_i|`: integer parts are exact, only the float
/// accumulation order (8/16 lanes vs the oracle's order, f32 vs f64 for floats) differs.
pub const REL_TOL: f32 = 1e-5;

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Every ISA this CPU can run; tells when one is skipped so a green run on an AVX2-less
/// machine is visibly partial.
pub fn kernel_sets() -> Vec<Kernels> {
    Isa::ALL
        .into_iter()
        .filter_map(|isa| match Kernels::new(isa) {
            Ok(k) => Some(k),
            Err(e) => {
                eprintln!("skipping {isa}: {e}");
                None
            }
        })
        .collect()
}

/// Row lengths to test: whole blocks with odd counts and a long tail, plus ragged lengths for
/// the scalar-per-element types.
pub fn sizes(ty: GgmlType) -> Vec<usize> {
    match ty.block_size() {
        256 => vec![256, 512, 768, 4096 + 256],
        32 => vec![32, 96, 160, 4096 + 32],
        _ => vec![1, 7, 8, 31, 33, 96, 255, 4096 + 35],
    }
}

/// Random floats with a per-32 magnitude so blocks get different scales; never all zero.
pub fn floats(r: &mut StdRng, n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    let mut scale = 1.0f32;
    for i in 0..n {
        if i % 32 == 0 {
            scale = 10f32.powf(r.gen_range(-2.0..1.0));
        }
        v.push(r.gen_range(-1.0f32..1.0) * scale);
    }
    v
}

/// Weights quantized from random floats with the oracle's quantizer (realistic blocks).
pub fn quantized_weights(r: &mut StdRng, ty: GgmlType, n: usize) -> Vec<u8> {
    let src = floats(r, n);
    let mut dst = vec![0u8; row(ty, n)];
    hanlin_quant::quantize_row(ty, &src, &mut dst).expect("oracle quantize");
    dst
}

/// Random bytes with every f16 / f32 field replaced by a modest finite value, so all bit
/// patterns of quants, high bits and packed scales get exercised.
pub fn random_weights(r: &mut StdRng, ty: GgmlType, n: usize) -> Vec<u8> {
    let mut b = vec![0u8; row(ty, n)];
    r.fill(&mut b[..]);
    let f16_at: &[usize] = match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q6_K => &[208],
        GgmlType::F16 => {
            for c in b.chunks_exact_mut(2) {
                c.copy_from_slice(&half::f16::from_f32(r.gen_range(-2.0..2.0)).to_le_bytes());
            }
            return b;
        }
        GgmlType::BF16 => {
            for c in b.chunks_exact_mut(2) {
                c.copy_from_slice(&half::bf16::from_f32(r.gen_range(-2.0..2.0)).to_le_bytes());
            }
            return b;
        }
        GgmlType::F32 => {
            for c in b.chunks_exact_mut(4) {
                c.copy_from_slice(&r.gen_range(-2.0f32..2.0).to_le_bytes());
            }
            return b;
        }
        other => panic!("no layout for {other}"),
    };
    for blk in b.chunks_exact_mut(ty.type_size()) {
        for &o in f16_at {
            let v = half::f16::from_f32(r.gen_range(-0.05..0.05));
            blk[o..o + 2].copy_from_slice(&v.to_le_bytes());
        }
    }
    b
}

/// Bytes of `n` elements of `ty`.
pub fn row(ty: GgmlType, n: usize) -> usize {
    hanlin_kernels::row_bytes(ty, n).expect("whole blocks")
}

/// The oracle's activation row for weights of type `w`.
pub fn activation(w: GgmlType, src: &[f32]) -> Vec<u8> {
    let aty = hanlin_quant::vec_dot_type(w);
    let mut dst = vec![0u8; row(aty, src.len())];
    hanlin_quant::quantize_activation(aty, src, &mut dst);
    dst
}

/// `sum |w_i * a_i|` from the dequantized weights and the unquantized activations.
pub fn magnitude(ty: GgmlType, w: &[u8], act_f32: &[f32]) -> f32 {
    let mut wf = vec![0f32; act_f32.len()];
    hanlin_quant::dequantize_row(ty, w, &mut wf).expect("oracle dequantize");
    wf.iter().zip(act_f32).map(|(a, b)| (a * b).abs()).sum()
}

/// Asserts `got` is within tolerance of `want`.
pub fn assert_close(got: f32, want: f32, mag: f32, what: &str) {
    let tol = REL_TOL * mag + 1e-30;
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, oracle {want}, |diff| {} > tol {tol}",
        (got - want).abs()
    );
}
