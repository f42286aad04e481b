//! Packed (row-interleaved) Q4_0 matrices: llama.cpp's per-block float order, bit for bit, on
//! every ISA, every batch size and thread count, and for row counts that leave a partial group.

mod common;

use common::{floats, kernel_sets, quantized_weights, random_weights, rng, row};
use half::f16;
use hanlin_kernels::{packs, GgmlType, Kernels, PackedMatrix, ThreadPool};

/// The per-block order written out from the file layout: `acc = fma(f32(Σ (q − 8)·y),
/// d_w · d_y, acc)` per block, as llama.cpp's `q4_0_8x8` kernels compute each row.
fn oracle(w: &[u8], act: &[u8], cols: usize) -> f32 {
    let mut acc = 0f32;
    for (x, y) in w.chunks_exact(18).zip(act.chunks_exact(34)).take(cols / 32) {
        let mut sum = 0i32;
        for j in 0..16 {
            sum += ((x[2 + j] & 15) as i32 - 8) * y[2 + j] as i8 as i32;
            sum += ((x[2 + j] >> 4) as i32 - 8) * y[18 + j] as i8 as i32;
        }
        let d =
            f16::from_le_bytes([x[0], x[1]]).to_f32() * f16::from_le_bytes([y[0], y[1]]).to_f32();
        acc = (sum as f32).mul_add(d, acc);
    }
    acc
}

fn q8_rows(r: &mut rand::rngs::StdRng, n: usize, cols: usize) -> Vec<u8> {
    let mut act = Vec::new();
    for _ in 0..n {
        act.extend(common::activation(GgmlType::Q4_0, &floats(r, cols)));
    }
    act
}

/// Every ISA at each thread count computes `want` bit for bit from the packed matrix.
fn assert_every_isa_matches(
    p: &PackedMatrix,
    act: &[u8],
    n: usize,
    want: &[f32],
    threads: &[usize],
    what: &str,
) {
    for k in kernel_sets() {
        for &threads in threads {
            let pool = ThreadPool::new(threads);
            let mut out = vec![f32::NAN; want.len()];
            k.matmul_packed(&pool, p, act, n, &mut out)
                .expect("packed matmul");
            for (i, (g, w)) in out.iter().zip(want).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "{what} {:?} threads={threads} out[{i}]: {g} vs {w}",
                    k.isa()
                );
            }
        }
    }
}

#[test]
fn packs_exactly_what_llamacpp_repacks() {
    assert!(packs(GgmlType::Q4_0, 8));
    assert!(packs(GgmlType::Q4_0, 2048));
    assert!(packs(GgmlType::Q4_K, 8));
    assert!(!packs(GgmlType::Q4_K, 12));
    assert!(!packs(GgmlType::Q6_K, 64));
    assert!(!packs(GgmlType::Q4_0, 12));
    assert!(!packs(GgmlType::Q4_0, 0));
    let w = vec![0u8; row(GgmlType::Q4_0, 64) * 12];
    assert!(PackedMatrix::pack(GgmlType::Q4_0, &w, 12, 64)
        .unwrap()
        .is_none());
}

#[test]
fn rejects_wrong_lengths() {
    let w = vec![0u8; row(GgmlType::Q4_0, 64) * 8];
    assert!(PackedMatrix::pack(GgmlType::Q4_0, &w[1..], 8, 64).is_err());
    assert!(PackedMatrix::pack(GgmlType::Q4_0, &w, 8, 48).is_err());
    let p = PackedMatrix::pack(GgmlType::Q4_0, &w, 8, 64)
        .unwrap()
        .unwrap();
    let k = Kernels::generic();
    let pool = ThreadPool::new(1);
    let act = vec![0u8; row(GgmlType::Q8_0, 64)];
    let mut out = vec![0f32; 8];
    assert!(k.matmul_packed(&pool, &p, &act[1..], 1, &mut out).is_err());
    assert!(k.matmul_packed(&pool, &p, &act, 1, &mut out[1..]).is_err());
}

#[test]
fn every_isa_batch_and_thread_count_matches_the_per_block_order() {
    let mut r = rng(41);
    for (rows, cols) in [
        (8, 32),
        (16, 64),
        (24, 96),
        (40, 2048),
        (64, 160),
        (136, 4096 + 32),
    ] {
        for random in [false, true] {
            let w: Vec<u8> = (0..rows)
                .flat_map(|_| {
                    if random {
                        random_weights(&mut r, GgmlType::Q4_0, cols)
                    } else {
                        quantized_weights(&mut r, GgmlType::Q4_0, cols)
                    }
                })
                .collect();
            let p = PackedMatrix::pack(GgmlType::Q4_0, &w, rows, cols)
                .unwrap()
                .expect("rows are a multiple of 8");
            let rb = row(GgmlType::Q4_0, cols);
            let ab = row(GgmlType::Q8_0, cols);
            for n in [1, 3, 4, 5, 9] {
                let act = q8_rows(&mut r, n, cols);
                let want: Vec<f32> = (0..n)
                    .flat_map(|t| {
                        let a = &act[t * ab..(t + 1) * ab];
                        (0..rows).map(move |i| (i, a))
                    })
                    .map(|(i, a)| oracle(&w[i * rb..(i + 1) * rb], a, cols))
                    .collect();
                assert_every_isa_matches(
                    &p,
                    &act,
                    n,
                    &want,
                    &[1, 2, 3],
                    &format!("{rows}x{cols} n={n}"),
                );
            }
        }
    }
}

/// llama.cpp's Q4_K order per row, from the file layout: per super-block the exact totals
/// `Σ scale · q · y` and `Σ min · bsum`, each fused with `d · d_y` / `dmin · d_y`.
fn oracle_q4_k(w: &[u8], act: &[u8], cols: usize) -> f32 {
    let (mut acc, mut acc_min) = (0f32, 0f32);
    for (x, y) in w
        .chunks_exact(144)
        .zip(act.chunks_exact(292))
        .take(cols / 256)
    {
        let s = &x[4..16];
        let (sc, mn): (Vec<i32>, Vec<i32>) = (0..8)
            .map(|j| {
                if j < 4 {
                    ((s[j] & 63) as i32, (s[j + 4] & 63) as i32)
                } else {
                    (
                        ((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4)) as i32,
                        ((s[j + 4] >> 4) | ((s[j] >> 6) << 4)) as i32,
                    )
                }
            })
            .unzip();
        let (mut isum, mut msum) = (0i32, 0i32);
        for sb in 0..8 {
            let (j, shift) = (sb / 2, 4 * (sb % 2));
            let mut p = 0i32;
            let mut ysum = 0i32;
            for l in 0..32 {
                let q = ((x[16 + 32 * j + l] >> shift) & 15) as i32;
                let yq = y[4 + 32 * sb + l] as i8 as i32;
                p += q * yq;
                ysum += yq;
            }
            isum += sc[sb] * p;
            msum += mn[sb] * ysum;
        }
        let yd = f32::from_le_bytes([y[0], y[1], y[2], y[3]]);
        let d = f16::from_le_bytes([x[0], x[1]]).to_f32() * yd;
        let dmin = f16::from_le_bytes([x[2], x[3]]).to_f32() * yd;
        acc = (isum as f32).mul_add(d, acc);
        acc_min = (msum as f32).mul_add(dmin, acc_min);
    }
    acc - acc_min
}

#[test]
fn q4_k_every_isa_batch_and_thread_count_matches_the_repacked_order() {
    let mut r = rng(43);
    for (rows, cols) in [(8, 256), (24, 512), (40, 2048), (64, 256 * 3)] {
        for random in [false, true] {
            let w: Vec<u8> = (0..rows)
                .flat_map(|_| {
                    if random {
                        random_weights(&mut r, GgmlType::Q4_K, cols)
                    } else {
                        quantized_weights(&mut r, GgmlType::Q4_K, cols)
                    }
                })
                .collect();
            let p = PackedMatrix::pack(GgmlType::Q4_K, &w, rows, cols)
                .unwrap()
                .expect("rows are a multiple of 8");
            let rb = row(GgmlType::Q4_K, cols);
            let ab = row(GgmlType::Q8_K, cols);
            for n in [1, 2, 3, 4, 5, 9] {
                let mut act = Vec::new();
                for _ in 0..n {
                    act.extend(common::activation(GgmlType::Q4_K, &floats(&mut r, cols)));
                }
                let want: Vec<f32> = (0..n)
                    .flat_map(|t| (0..rows).map(move |i| (t, i)))
                    .map(|(t, i)| {
                        oracle_q4_k(&w[i * rb..(i + 1) * rb], &act[t * ab..(t + 1) * ab], cols)
                    })
                    .collect();
                // The row kernels already compute this order for Q4_K.
                let k0 = Kernels::generic();
                for (i, w_) in want.iter().enumerate().take(rows) {
                    let got = k0
                        .vec_dot(GgmlType::Q4_K, cols, &w[i * rb..(i + 1) * rb], &act[..ab])
                        .unwrap();
                    assert_eq!(got.to_bits(), w_.to_bits(), "row kernel, row {i}");
                }
                assert_every_isa_matches(
                    &p,
                    &act,
                    n,
                    &want,
                    &[1, 2],
                    &format!("{rows}x{cols} n={n}"),
                );
            }
        }
    }
}

#[test]
fn q8_0_and_q5_0_packed_keep_the_row_kernels_vec_dot_order() {
    let mut r = rng(47);
    assert!(packs(GgmlType::Q8_0, 16) && packs(GgmlType::Q8_0, 24) && !packs(GgmlType::Q8_0, 8));
    assert!(packs(GgmlType::Q5_0, 16) && !packs(GgmlType::Q5_0, 8));
    for ty in [GgmlType::Q8_0, GgmlType::Q5_0] {
        for (rows, cols) in [(16, 32), (24, 64), (40, 640), (72, 4096 + 32)] {
            for random in [false, true] {
                let w: Vec<u8> = (0..rows)
                    .flat_map(|_| {
                        if random {
                            random_weights(&mut r, ty, cols)
                        } else {
                            quantized_weights(&mut r, ty, cols)
                        }
                    })
                    .collect();
                let p = PackedMatrix::pack(ty, &w, rows, cols)
                    .unwrap()
                    .expect("16 rows or more");
                let rb = row(ty, cols);
                let ab = row(GgmlType::Q8_0, cols);
                let oracle = Kernels::generic();
                for n in [1, 2, 3, 5] {
                    let act = q8_rows(&mut r, n, cols);
                    let want: Vec<f32> = (0..n)
                        .flat_map(|t| (0..rows).map(move |i| (t, i)))
                        .map(|(t, i)| {
                            oracle
                                .vec_dot(
                                    ty,
                                    cols,
                                    &w[i * rb..(i + 1) * rb],
                                    &act[t * ab..(t + 1) * ab],
                                )
                                .unwrap()
                        })
                        .collect();
                    assert_every_isa_matches(
                        &p,
                        &act,
                        n,
                        &want,
                        &[1, 2],
                        &format!("{ty} {rows}x{cols} n={n}"),
                    );
                }
            }
        }
    }
}
