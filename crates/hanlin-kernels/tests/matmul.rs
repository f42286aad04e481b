//! Mat-vec / mat-mul over the thread pool: odd shapes, several thread counts, every ISA.
//!
//! Each output must equal the 1×1 kernel's dot bit for bit (so results never depend on batch
//! size or thread count) and the oracle within tolerance.

mod common;

use common::*;
use hanlin_kernels::{GgmlType, Kernels, ThreadPool, WeightMatrix};

fn check(k: &Kernels, pool: &ThreadPool, ty: GgmlType, rows: usize, cols: usize, n_tok: usize) {
    let mut r = rng((rows * 31 + cols * 7 + n_tok) as u64);
    let w = random_weights(&mut r, ty, rows * cols);
    let a_f32 = floats(&mut r, n_tok * cols);
    let a = activation(ty, &a_f32);
    let m = WeightMatrix::new(ty, &w, rows, cols).expect("matrix");
    let mut out = vec![f32::NAN; rows * n_tok];
    if n_tok == 1 {
        k.matvec(pool, &m, &a, &mut out).expect("matvec");
    } else {
        k.matmul(pool, &m, &a, n_tok, &mut out).expect("matmul");
    }
    let (wr, ar) = (row(ty, cols), a.len() / n_tok);
    for t in 0..n_tok {
        for i in 0..rows {
            let (wi, at) = (&w[i * wr..(i + 1) * wr], &a[t * ar..(t + 1) * ar]);
            let single = k.vec_dot(ty, cols, wi, at).expect("dot");
            let got = out[t * rows + i];
            let what = format!(
                "{} {ty} {rows}x{cols} tokens={n_tok} threads={} t={t} row={i}",
                k.isa(),
                pool.threads()
            );
            assert_eq!(
                got.to_bits(),
                single.to_bits(),
                "{what}: matmul {got} vs dot {single}"
            );
            let want = hanlin_quant::vec_dot(ty, cols, wi, at).expect("oracle");
            let mag = magnitude(ty, wi, &a_f32[t * cols..(t + 1) * cols]);
            assert_close(got, want, mag, &what);
        }
    }
}

#[test]
fn shapes_threads_tokens() {
    let pools: Vec<ThreadPool> = [1, 2, 3].into_iter().map(ThreadPool::new).collect();
    for k in kernel_sets() {
        for ty in WEIGHT_TYPES {
            // 13 legacy blocks = three groups of four plus a tail block.
            let cols = match ty.block_size() {
                256 => 1024,
                32 => 416,
                _ => 267,
            };
            for pool in &pools {
                // Small shapes run on the calling thread, (301, 1) and (97, 5) fan out; 8, 11
                // and 13 tokens take the 1×8 tiles (where an ISA has them), then 1×4, then 1×1.
                for (rows, n_tok) in [
                    (1, 1),
                    (7, 1),
                    (301, 1),
                    (33, 2),
                    (19, 4),
                    (97, 5),
                    (3, 8),
                    (9, 11),
                    (5, 13),
                ] {
                    check(&k, pool, ty, rows, cols, n_tok);
                }
            }
        }
    }
}

#[test]
fn long_rows() {
    let pool = ThreadPool::new(2);
    for k in kernel_sets() {
        for ty in [
            GgmlType::Q4_K,
            GgmlType::Q6_K,
            GgmlType::Q8_0,
            GgmlType::Q4_0,
            GgmlType::Q5_0,
        ] {
            let cols = if ty.block_size() == 256 {
                4096 + 256
            } else {
                4096 + 32
            };
            check(&k, &pool, ty, 13, cols, 6);
            // An even number of blocks (no padding pair in the 512-bit GEMM), whole 4 × 4
            // tiles, Gemma-3-270M's width.
            check(
                &k,
                &pool,
                ty,
                16,
                if ty.block_size() == 256 { 1024 } else { 640 },
                8,
            );
        }
    }
}

#[test]
fn bad_shapes_are_errors() {
    let k = Kernels::detected();
    let pool = ThreadPool::new(2);
    let w = vec![0u8; 34 * 3];
    assert!(WeightMatrix::new(GgmlType::Q8_0, &w, 3, 33).is_err());
    assert!(WeightMatrix::new(GgmlType::Q8_0, &w, 2, 32).is_err());
    let m = WeightMatrix::new(GgmlType::Q8_0, &w, 3, 32).expect("matrix");
    let a = vec![0u8; 34];
    let mut out = vec![0f32; 3];
    assert!(k.matvec(&pool, &m, &a, &mut out).is_ok());
    assert!(k.matvec(&pool, &m, &a[..33], &mut out).is_err());
    assert!(k.matvec(&pool, &m, &a, &mut out[..2]).is_err());
    assert!(k.matmul(&pool, &m, &a, 2, &mut out).is_err());
    let iq = vec![0u8; 66];
    let m = WeightMatrix::new(GgmlType::IQ2_XXS, &iq, 1, 256).expect("matrix");
    assert!(k.matvec(&pool, &m, &a, &mut out[..1]).is_err());
}
