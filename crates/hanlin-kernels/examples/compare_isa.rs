//! Mat-vec / mat-mul throughput of every available ISA side by side, robust to a busy machine:
//! ISAs are measured in interleaved rounds and each reports its fastest batch of calls.
//!
//! `cargo run --release -p hanlin-kernels --example compare_isa -- [types] [threads] [tokens]
//! [rounds]`, e.g. `-- Q4_K,Q6_K 1,2 1,16 30`. Prints GB/s of weights streamed per call
//! (tokens × weight bytes / time for batched calls). The matrix is 2048 × 2048;
//! `HANLIN_BENCH_ROWS=512` shrinks it to fit in L2 and expose compute speed.

use hanlin_kernels::{
    activation_type, row_bytes, GgmlType, Isa, Kernels, ThreadPool, WeightMatrix,
};
use std::time::Instant;

const DIM: usize = 2048;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| args.get(i).cloned().unwrap_or_else(|| d.to_owned());
    let list = |s: String| -> Vec<String> { s.split(',').map(str::to_owned).collect() };
    let types = list(arg(0, "Q8_0,Q4_0,Q5_0,Q4_1,Q5_1,Q4_K,Q5_K,Q6_K"));
    let threads: Vec<usize> = list(arg(1, "1,2"))
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let tokens: Vec<usize> = list(arg(2, "1,16"))
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let rounds: usize = arg(3, "20").parse()?;
    let rows: usize = std::env::var("HANLIN_BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DIM);
    let kernels: Vec<Kernels> = Isa::ALL
        .into_iter()
        .filter(|i| *i != Isa::Generic)
        .filter_map(|i| Kernels::new(i).ok())
        .collect();
    print!("{:<6} {:>3} {:>4}", "type", "thr", "tok");
    for k in &kernels {
        print!(" {:>10}", k.isa().name());
    }
    println!("   (GB/s of weights × tokens, best batch)");
    for name in &types {
        let ty = (0..40)
            .filter_map(GgmlType::from_id)
            .find(|t| t.name().eq_ignore_ascii_case(name))
            .ok_or("unknown type")?;
        let wb = row_bytes(ty, DIM).ok_or("cols")? * rows;
        let w = weights(ty, wb);
        let m = WeightMatrix::new(ty, &w, rows, DIM)?;
        for &t in &threads {
            let pool = ThreadPool::new(t);
            for &n_tok in &tokens {
                let src: Vec<f32> = (0..DIM * n_tok)
                    .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                    .collect();
                let aty = activation_type(ty).ok_or("no kernel")?;
                let mut a = vec![0u8; row_bytes(aty, src.len()).ok_or("act")?];
                Kernels::generic().quantize_row(aty, &src, &mut a)?;
                let mut out = vec![0f32; rows * n_tok];
                // Aim for ~2 ms per batch.
                let calls = (2e7 / (wb * n_tok) as f64).clamp(1.0, 200.0) as usize;
                let mut best = vec![f64::INFINITY; kernels.len()];
                for _ in 0..rounds {
                    for (k, b) in kernels.iter().zip(best.iter_mut()) {
                        k.matmul(&pool, &m, &a, n_tok, &mut out)?;
                        let t0 = Instant::now();
                        for _ in 0..calls {
                            k.matmul(&pool, &m, &a, n_tok, &mut out)?;
                        }
                        *b = b.min(t0.elapsed().as_secs_f64() / calls as f64);
                    }
                }
                print!("{:<6} {:>3} {:>4}", ty.name(), t, n_tok);
                for b in best {
                    print!(" {:>10.2}", (wb * n_tok) as f64 / b / 1e9);
                }
                println!();
            }
        }
    }
    Ok(())
}

/// Deterministic pseudo-random bytes with every float field finite and normal.
fn weights(ty: GgmlType, n: usize) -> Vec<u8> {
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let mut w: Vec<u8> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    match ty {
        GgmlType::F32 => w.chunks_exact_mut(4).for_each(|c| c[3] = 0x3f),
        GgmlType::F16 => w.chunks_exact_mut(2).for_each(|c| c[1] = 0x3c),
        GgmlType::BF16 => w.chunks_exact_mut(2).for_each(|c| c[1] = 0x3f),
        _ => w.iter_mut().for_each(|b| *b &= 0xBF),
    }
    w
}
