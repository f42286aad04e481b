//! Grouped f16 attention kernels: every score must equal the F16 `vec_dot` of its key and
//! query bit for bit, every value sum ggml's `ggml_vec_dot_f16` over the keys (written out
//! here independently), and the softmax the portable kernel's, on every ISA, for every group
//! size, odd key counts, padded strides, unaligned first keys and head sizes with and without
//! the SIMD fast path.

mod common;

use common::*;
use half::f16;
use hanlin_kernels::{GgmlType, ATTN_GROUP};
use rand::Rng;

fn f16_bytes(x: &[f32]) -> Vec<u8> {
    x.iter()
        .flat_map(|&v| f16::from_f32(v).to_le_bytes())
        .collect()
}

#[test]
fn scores_match_vec_dot() {
    for k in kernel_sets() {
        for dim in [8, 24, 64, 256, 264] {
            for n_keys in [0, 1, 5, 33] {
                for g in 1..=ATTN_GROUP {
                    let mut r = rng((dim * 1000 + n_keys * 10 + g) as u64);
                    // Rows padded past `dim` (several heads per cache row), like the KV cache.
                    let stride = 2 * dim + 2 * 16;
                    let keys = f16_bytes(&floats(&mut r, n_keys * stride / 2));
                    let q16 = f16_bytes(&floats(&mut r, g * dim));
                    let mut got = vec![f32::NAN; g * n_keys];
                    k.attn_scores_f16(&keys, stride, n_keys, dim, &q16, &mut got)
                        .expect("scores");
                    for (qi, q) in q16.chunks(2 * dim).enumerate() {
                        for j in 0..n_keys {
                            let key = &keys[j * stride..j * stride + 2 * dim];
                            let want = k.vec_dot(GgmlType::F16, dim, key, q).expect("dot");
                            let v = got[qi * n_keys + j];
                            assert_eq!(
                                v.to_bits(),
                                want.to_bits(),
                                "{} dim={dim} keys={n_keys} g={g} q={qi} j={j}: {v} vs {want}",
                                k.isa()
                            );
                        }
                    }
                }
            }
        }
    }
}

/// ggml's AVX-512 `ggml_vec_dot_f16` of `x` and `y` (lengths a multiple of 64): element `i`
/// into lane `i % 16` of accumulator `(i / 16) % 4`, reduced `(0 + 2) + (1 + 3)`, then the
/// halves added and summed `(0 + 2) + (1 + 3)` of their 4-lane sums, as GCC expands
/// `_mm512_reduce_add_ps`.
fn ggml_dot(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [[0f32; 16]; 4];
    for (i, (a, b)) in x.iter().zip(y).enumerate() {
        let c = &mut acc[(i / 16) % 4][i % 16];
        *c = a.mul_add(*b, *c);
    }
    let v: Vec<f32> = (0..16)
        .map(|l| (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]))
        .collect();
    let h: Vec<f32> = (0..8).map(|l| v[8 + l] + v[l]).collect();
    let t: Vec<f32> = (0..4).map(|l| h[4 + l] + h[l]).collect();
    (t[0] + t[2]) + (t[1] + t[3])
}

#[test]
fn values_match_ggml_order() {
    for k in kernel_sets() {
        for dim in [16, 24, 64, 256] {
            for n_keys in [0, 1, 7, 40, 130] {
                for first_key in [0, 5, 63, 200] {
                    for g in 1..=ATTN_GROUP {
                        let seed = (dim * 100_000 + n_keys * 1000 + first_key * 10 + g) as u64;
                        let mut r = rng(seed);
                        // Rows scattered through a larger buffer, like a paged KV cache.
                        let stride = 2 * dim + 2 * 8;
                        let slots = n_keys + 5;
                        let vals = f16_bytes(&floats(&mut r, slots * stride / 2));
                        let offsets: Vec<usize> = (0..n_keys)
                            .map(|j| ((j * 7 + 3) % slots) * stride)
                            .collect();
                        // Rounded like softmax output stored to f16, with exact zeros.
                        let probs: Vec<f32> = (0..g * n_keys)
                            .map(|_| {
                                if r.gen_bool(0.2) {
                                    0.0
                                } else {
                                    f16::from_f32(r.gen_range(0.0..1.0f32)).to_f32()
                                }
                            })
                            .collect();
                        let mut got = vec![f32::NAN; g * dim];
                        k.attn_values_f16(&vals, &offsets, first_key, dim, &probs, &mut got)
                            .expect("values");
                        // The cache row ggml sees: keys 0..first_key + n_keys, padded to 64
                        // with zero probabilities.
                        let total = (first_key + n_keys).next_multiple_of(64);
                        for qi in 0..g {
                            for d in 0..dim {
                                let mut x = vec![0f32; total];
                                let mut y = vec![0f32; total];
                                for j in 0..n_keys {
                                    let o = offsets[j] + 2 * d;
                                    x[first_key + j] =
                                        f16::from_le_bytes([vals[o], vals[o + 1]]).to_f32();
                                    y[first_key + j] = probs[qi * n_keys + j];
                                }
                                let want = ggml_dot(&x, &y);
                                let v = got[qi * dim + d];
                                assert_eq!(
                                    v.to_bits(),
                                    want.to_bits(),
                                    "{} dim={dim} keys={n_keys} first={first_key} g={g} q={qi} \
                                     d={d}: {v} vs {want}",
                                    k.isa()
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn f16_dot_is_ggml_order() {
    let mut r = rng(99);
    for n in [64, 256, 320] {
        let x: Vec<f32> = floats(&mut r, n)
            .iter()
            .map(|&v| f16::from_f32(v).to_f32())
            .collect();
        let y: Vec<f32> = floats(&mut r, n)
            .iter()
            .map(|&v| f16::from_f32(v).to_f32())
            .collect();
        let want = ggml_dot(&x, &y);
        for k in kernel_sets() {
            let got = k
                .vec_dot(GgmlType::F16, n, &f16_bytes(&x), &f16_bytes(&y))
                .expect("dot");
            assert_eq!(got.to_bits(), want.to_bits(), "{} n={n}", k.isa());
        }
    }
}

#[test]
fn softmax_is_isa_independent_and_normalised() {
    let generic = hanlin_kernels::Kernels::generic();
    for len in [1, 3, 16, 17, 40, 100] {
        for first in [0, 1, 15, 16, 33] {
            let mut r = rng((len * 100 + first) as u64);
            let mut x: Vec<f32> = (0..len).map(|_| r.gen_range(-30.0..30.0f32)).collect();
            if len > 2 {
                x[1] = f32::NEG_INFINITY;
            }
            let mut want = x.clone();
            generic.attn_softmax(&mut want, first);
            let sum: f32 = want.iter().sum();
            assert!(
                (sum - 1.0).abs() < 1e-5,
                "len={len} first={first}: sum {sum}"
            );
            if len > 2 {
                assert_eq!(want[1], 0.0);
            }
            for k in kernel_sets() {
                let mut got = x.clone();
                k.attn_softmax(&mut got, first);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        w.to_bits(),
                        "{} len={len} first={first} i={i}",
                        k.isa()
                    );
                }
            }
        }
    }
}

#[test]
fn exp_ggml_is_close_to_exp() {
    let mut x = -200.0f32;
    while x <= 88.0 {
        let (got, want) = (hanlin_kernels::exp_ggml(x), x.exp());
        if want > f32::MIN_POSITIVE {
            assert!(
                ((got - want) / want).abs() < 2e-6,
                "exp_ggml({x}) = {got}, exp = {want}"
            );
        } else {
            assert!(got <= f32::MIN_POSITIVE * 2.0, "exp_ggml({x}) = {got}");
        }
        x += 0.173;
    }
    assert_eq!(hanlin_kernels::exp_ggml(0.0), 1.0);
    assert_eq!(hanlin_kernels::exp_ggml(f32::NEG_INFINITY), 0.0);
}

#[test]
fn bad_lengths_are_errors() {
    let k = hanlin_kernels::Kernels::detected();
    let keys = vec![0u8; 64];
    let mut s = vec![0.0; 4];
    // Five queries is more than a group.
    assert!(k
        .attn_scores_f16(&keys, 16, 1, 8, &[0; 80], &mut [0.0; 5])
        .is_err());
    // Keys shorter than n_keys rows.
    assert!(k
        .attn_scores_f16(&keys, 16, 5, 8, &[0; 16], &mut s)
        .is_err());
    // Stride shorter than a row.
    assert!(k
        .attn_scores_f16(&keys, 8, 2, 8, &[0; 16], &mut s[..2])
        .is_err());
    // Three probabilities for four keys.
    assert!(k
        .attn_values_f16(&keys, &[0, 16, 32, 48], 0, 8, &[0.0; 3], &mut [0.0; 8])
        .is_err());
    // A row past the end of the buffer.
    assert!(k
        .attn_values_f16(&keys, &[0, 56], 0, 8, &[0.0; 2], &mut [0.0; 8])
        .is_err());
}
