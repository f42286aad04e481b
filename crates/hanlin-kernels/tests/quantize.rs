//! Activation quantizers of every ISA are byte-identical to hanlin-quant's references.

mod common;

use common::*;
use hanlin_kernels::GgmlType;

const ACT_TYPES: [GgmlType; 6] = [
    GgmlType::Q8_0,
    GgmlType::Q8_1,
    GgmlType::Q8_K,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::F32,
];

fn oracle(ty: GgmlType, src: &[f32]) -> Vec<u8> {
    let mut dst = vec![0u8; row(ty, src.len())];
    hanlin_quant::quantize_activation(ty, src, &mut dst);
    dst
}

fn check(ty: GgmlType, src: &[f32], what: &str) {
    let want = oracle(ty, src);
    for k in kernel_sets() {
        let mut got = vec![0xAAu8; want.len()];
        k.quantize_row(ty, src, &mut got).expect("quantize");
        if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
            panic!(
                "{} {ty} {what} n={}: first differing byte {i} (block {}): got {:#04x}, want {:#04x}",
                k.isa(),
                src.len(),
                i / ty.type_size(),
                got[i],
                want[i]
            );
        }
    }
}

#[test]
fn random_rows() {
    let mut r = rng(21);
    for ty in ACT_TYPES {
        let lens: &[usize] = match ty.block_size() {
            256 => &[256, 768, 4096 + 256],
            32 => &[32, 96, 4096 + 32],
            _ => &[1, 7, 15, 17, 33, 4096 + 35],
        };
        for &n in lens {
            check(ty, &floats(&mut r, n), "random");
        }
    }
}

/// Values whose scaled quants land exactly on .5: Q8_0/Q8_1 (ggml's x86 flavour) and Q8_K
/// (`nearest_int`) both round half to even; every ISA must match bit for bit.
#[test]
fn rounding_ties() {
    let mut v: Vec<f32> = Vec::new();
    for b in 0..8 {
        // amax 127 → d = 1, id = 1: every value keeps its .5 fraction.
        let mut blk: Vec<f32> = (0..32).map(|i| (i as f32 - 16.0) + 0.5).collect();
        blk[b] = if b % 2 == 0 { 127.0 } else { -127.0 };
        v.extend(blk);
    }
    check(GgmlType::Q8_0, &v, "ties");
    check(GgmlType::Q8_1, &v, "ties");
    // Q8_K: max -127 gives iscale 1 exactly; halves tie.
    let mut k: Vec<f32> = (0..512).map(|i| ((i % 200) as f32 - 100.0) + 0.5).collect();
    k[3] = -127.0;
    k[256 + 9] = -127.0;
    check(GgmlType::Q8_K, &k, "ties");
}

/// Zero blocks between non-zero ones, and both signs of the largest magnitude (the first one
/// decides Q8_K's sign).
#[test]
fn zero_blocks_and_sign_of_max() {
    let mut r = rng(22);
    let mut v = floats(&mut r, 1024);
    v[256..512].fill(0.0);
    v[40] = 5.0;
    v[90] = -5.0;
    v[512 + 7] = -3.0;
    v[512 + 200] = 3.0;
    for ty in [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K] {
        check(ty, &v, "zeros and max sign");
    }
    let zeros = vec![0.0f32; 256];
    check(GgmlType::Q8_K, &zeros, "all zero");
    check(GgmlType::Q8_0, &zeros, "all zero");
}

/// F16/BF16 edge values: ties, subnormals, overflow, infinities, NaN.
#[test]
fn float_edges() {
    let mut v = vec![
        0.0,
        -0.0,
        1.0,
        -1.5,
        65504.0,
        65520.0,
        1e6,
        -1e6,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1e-8,
        -6e-8,
        f32::MIN_POSITIVE,
        1.0 + f32::EPSILON,
        f32::from_bits(0x3f80_8000),
        f32::from_bits(0x3f81_8000),
        f32::from_bits(0x7f80_0001),
        f32::from_bits(0xffc0_1234),
    ];
    let mut r = rng(23);
    v.extend(floats(&mut r, 29));
    check(GgmlType::BF16, &v, "edges");
    check(GgmlType::F32, &v, "edges");
    // F16C and the half crate agree on everything but NaN payloads, which never reach here.
    let finite: Vec<f32> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    check(GgmlType::F16, &finite, "edges");
}

#[test]
fn wrong_lengths_are_errors() {
    for k in kernel_sets() {
        let src = [1.0f32; 40];
        let mut dst = [0u8; 64];
        assert!(k.quantize_row(GgmlType::Q8_0, &src, &mut dst).is_err());
        assert!(k
            .quantize_row(GgmlType::Q8_0, &src[..32], &mut dst[..33])
            .is_err());
        assert!(k
            .quantize_row(GgmlType::Q4_K, &src[..32], &mut dst)
            .is_err());
        let mut ok = [0u8; 34];
        assert!(k.quantize_row(GgmlType::Q8_0, &src[..32], &mut ok).is_ok());
    }
}
