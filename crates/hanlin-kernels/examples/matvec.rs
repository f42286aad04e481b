//! Repeats one mat-vec for profiling (`perf stat`, `valgrind --tool=callgrind`).
//!
//! `cargo run --release -p hanlin-kernels --example matvec -- Q4_K avx2 2048 2048 1000 1 [tokens]`
//! (type, isa, rows, cols, iterations, threads, tokens per call).

use hanlin_kernels::{
    activation_type, row_bytes, GgmlType, Isa, Kernels, ThreadPool, WeightMatrix,
};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| args.get(i).cloned().unwrap_or_else(|| d.to_owned());
    let ty = hanlin_gguf_type(&arg(0, "Q4_K")).ok_or("unknown type")?;
    let isa: Isa = arg(1, "avx2").parse()?;
    let rows: usize = arg(2, "2048").parse()?;
    let cols: usize = arg(3, "2048").parse()?;
    let iters: usize = arg(4, "1000").parse()?;
    let threads: usize = arg(5, "1").parse()?;
    let n_tok: usize = arg(6, "1").parse()?;
    let k = Kernels::new(isa)?;
    let wb = row_bytes(ty, cols).ok_or("cols not whole blocks")? * rows;
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let mut w: Vec<u8> = (0..wb)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    // Keep every float field finite and normal (denormals trigger slow microcode paths that
    // real weights never hit): fix the exponent byte of plain floats, and clear the top
    // exponent bit of every byte that could hold a block's f16 scale.
    match ty {
        GgmlType::F32 => w.chunks_exact_mut(4).for_each(|c| c[3] = 0x3f),
        GgmlType::F16 => w.chunks_exact_mut(2).for_each(|c| c[1] = 0x3c),
        GgmlType::BF16 => w.chunks_exact_mut(2).for_each(|c| c[1] = 0x3f),
        _ => w.iter_mut().for_each(|b| *b &= 0xBF),
    }
    let src: Vec<f32> = (0..cols * n_tok)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
        .collect();
    let aty = activation_type(ty).ok_or("no kernel")?;
    let mut a = vec![0u8; row_bytes(aty, src.len()).ok_or("bad activation size")?];
    k.quantize_row(aty, &src, &mut a)?;
    let m = WeightMatrix::new(ty, &w, rows, cols)?;
    let pool = ThreadPool::new(threads);
    let mut out = vec![0f32; rows * n_tok];
    k.matmul(&pool, &m, &a, n_tok, &mut out)?;
    let t0 = Instant::now();
    for _ in 0..iters {
        k.matmul(&pool, &m, &a, n_tok, &mut out)?;
    }
    let dt = t0.elapsed().as_secs_f64() / iters as f64;
    println!(
        "{ty} {isa} {rows}x{cols} tokens={n_tok} threads={threads}: {:.1} us/call, {:.2} GB/s of weights",
        dt * 1e6,
        wb as f64 / dt / 1e9
    );
    Ok(())
}

fn hanlin_gguf_type(name: &str) -> Option<GgmlType> {
    (0..40)
        .filter_map(GgmlType::from_id)
        .find(|t| t.name().eq_ignore_ascii_case(name))
}
