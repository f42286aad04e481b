//! Grouped f16 attention kernels: every score must equal the F16 `vec_dot` of its key and
//! query bit for bit, and every value sum the scalar `out += p * v` loop, on every ISA, for
//! every group size, odd key counts, padded strides and head sizes with and without the SIMD
//! fast path.

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

#[test]
fn values_match_scalar_loop() {
    for k in kernel_sets() {
        for dim in [16, 24, 64, 256] {
            for n_keys in [0, 1, 7, 40] {
                for g in 1..=ATTN_GROUP {
                    let mut r = rng((dim * 1000 + n_keys * 10 + g) as u64 + 7);
                    let stride = 2 * dim + 2 * 8;
                    let vals = f16_bytes(&floats(&mut r, n_keys * stride / 2));
                    // Rounded like softmax output stored to f16, with exact zeros sprinkled in.
                    let probs: Vec<f32> = (0..g * n_keys)
                        .map(|_| {
                            if r.gen_bool(0.2) {
                                0.0
                            } else {
                                f16::from_f32(r.gen_range(0.0..1.0f32)).to_f32()
                            }
                        })
                        .collect();
                    let mut got = vec![0.0f32; g * dim];
                    k.attn_values_f16(&vals, stride, n_keys, dim, &probs, &mut got)
                        .expect("values");
                    for qi in 0..g {
                        let mut want = vec![0.0f32; dim];
                        for j in 0..n_keys {
                            let p = probs[qi * n_keys + j];
                            if p == 0.0 {
                                continue;
                            }
                            for (d, w) in want.iter_mut().enumerate() {
                                let o = j * stride + 2 * d;
                                *w += p * f16::from_le_bytes([vals[o], vals[o + 1]]).to_f32();
                            }
                        }
                        for d in 0..dim {
                            let v = got[qi * dim + d];
                            assert_eq!(
                                v.to_bits(),
                                want[d].to_bits(),
                                "{} dim={dim} keys={n_keys} g={g} q={qi} d={d}",
                                k.isa()
                            );
                        }
                    }
                }
            }
        }
    }
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
    assert!(k
        .attn_values_f16(&keys, 16, 4, 8, &[0.0; 3], &mut [0.0; 8])
        .is_err());
}
