//! Mat-vec throughput per weight type and ISA, reported as weight bytes per second.
//!
//! `cargo bench -p hanlin-kernels -- matvec/Q4_K` narrows to one type; `HANLIN_BENCH_THREADS`
//! (default "1,2") picks the thread counts, `HANLIN_BENCH_DIM` (default 2048) the square size.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hanlin_kernels::{GgmlType, Isa, Kernels, PackedMatrix, ThreadPool, WeightMatrix};

const TYPES: [GgmlType; 13] = [
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::Q8_0,
    GgmlType::Q5_0,
    GgmlType::Q4_0,
    GgmlType::F32,
    GgmlType::Q4_1,
    GgmlType::Q5_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q5_K,
    GgmlType::F16,
    GgmlType::BF16,
];

/// Deterministic pseudo-random bytes (xorshift) with every f16 scale field made finite.
fn weights(ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let n = hanlin_kernels::row_bytes(ty, cols).unwrap_or(0) * rows;
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut v: Vec<u8> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    // Values 0x2000 / 0x3c00 patterns keep every f16/bf16/f32 field finite and moderate.
    match ty {
        GgmlType::F32 => v.chunks_exact_mut(4).for_each(|c| c[3] = 0x3f),
        GgmlType::F16 | GgmlType::BF16 => v.chunks_exact_mut(2).for_each(|c| c[1] = 0x3c),
        _ => v.iter_mut().for_each(|b| {
            if *b & 0x7c == 0x7c {
                *b &= !0x40;
            }
        }),
    }
    v
}

fn activations(k: &Kernels, ty: GgmlType, cols: usize, n_tok: usize) -> Vec<u8> {
    let src: Vec<f32> = (0..cols * n_tok)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
        .collect();
    let aty = hanlin_kernels::activation_type(ty).unwrap_or(GgmlType::F32);
    let mut a = vec![0u8; hanlin_kernels::row_bytes(aty, src.len()).unwrap_or(0)];
    k.quantize_row(aty, &src, &mut a).expect("quantize");
    a
}

fn threads() -> Vec<usize> {
    std::env::var("HANLIN_BENCH_THREADS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn dim() -> usize {
    std::env::var("HANLIN_BENCH_DIM")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2048)
}

fn bench_matvec(c: &mut Criterion) {
    let d = dim();
    for ty in TYPES {
        let w = weights(ty, d, d);
        let mut g = c.benchmark_group(format!("matvec/{ty}"));
        g.throughput(Throughput::Bytes(w.len() as u64));
        for isa in Isa::ALL {
            let Ok(k) = Kernels::new(isa) else { continue };
            let a = activations(&k, ty, d, 1);
            let m = WeightMatrix::new(ty, &w, d, d).expect("matrix");
            let mut out = vec![0f32; d];
            for t in threads() {
                let pool = ThreadPool::new(t);
                g.bench_with_input(BenchmarkId::new(isa.name(), format!("{t}t")), &t, |b, _| {
                    b.iter(|| {
                        k.matvec(&pool, &m, black_box(&a), &mut out)
                            .expect("matvec")
                    })
                });
            }
        }
        g.finish();
    }
}

fn bench_matmul(c: &mut Criterion) {
    let d = dim();
    let n_tok = 16;
    for ty in [
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q5_K,
        GgmlType::Q5_0,
    ] {
        let w = weights(ty, d, d);
        let mut g = c.benchmark_group(format!("matmul{n_tok}/{ty}"));
        g.throughput(Throughput::Bytes((w.len() * n_tok) as u64));
        for isa in Isa::ALL {
            let Ok(k) = Kernels::new(isa) else { continue };
            let a = activations(&k, ty, d, n_tok);
            let m = WeightMatrix::new(ty, &w, d, d).expect("matrix");
            let mut out = vec![0f32; d * n_tok];
            for t in threads() {
                let pool = ThreadPool::new(t);
                g.bench_with_input(BenchmarkId::new(isa.name(), format!("{t}t")), &t, |b, _| {
                    b.iter(|| {
                        k.matmul(&pool, &m, black_box(&a), n_tok, &mut out)
                            .expect("matmul")
                    })
                });
            }
        }
        g.finish();
    }
}

/// The repacked (16-row interleaved) Q4_0 / Q4_K matrices the models use for row counts that
/// are multiples of 8: mat-vec and a 16-token mat-mul, weight bytes per second.
fn bench_packed(c: &mut Criterion) {
    let d = dim();
    for ty in [GgmlType::Q4_0, GgmlType::Q4_K] {
        let w = weights(ty, d, d);
        let Ok(Some(p)) = PackedMatrix::pack(ty, &w, d, d) else {
            continue;
        };
        for n_tok in [1, 16] {
            let mut g = c.benchmark_group(format!("packed{n_tok}/{ty}"));
            g.throughput(Throughput::Bytes((w.len() * n_tok) as u64));
            for isa in Isa::ALL {
                let Ok(k) = Kernels::new(isa) else { continue };
                let a = activations(&k, ty, d, n_tok);
                let mut out = vec![0f32; d * n_tok];
                for t in threads() {
                    let pool = ThreadPool::new(t);
                    g.bench_with_input(
                        BenchmarkId::new(isa.name(), format!("{t}t")),
                        &t,
                        |b, _| {
                            b.iter(|| {
                                k.matmul_packed(&pool, &p, black_box(&a), n_tok, &mut out)
                                    .expect("packed matmul")
                            })
                        },
                    );
                }
            }
            g.finish();
        }
    }
}

/// Repacking at load: source bytes per second (includes faulting in the fresh anonymous
/// memory, as a model load does).
fn bench_pack(c: &mut Criterion) {
    let d = dim();
    let mut g = c.benchmark_group("pack");
    for ty in [GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K] {
        let w = weights(ty, d, d);
        g.throughput(Throughput::Bytes(w.len() as u64));
        g.bench_function(format!("{ty}"), |b| {
            b.iter(|| PackedMatrix::pack(ty, black_box(&w), d, d).expect("pack"))
        });
    }
    g.finish();
}

fn bench_quantize(c: &mut Criterion) {
    let d = dim();
    let src: Vec<f32> = (0..d)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
        .collect();
    for aty in [GgmlType::Q8_0, GgmlType::Q8_K] {
        let mut g = c.benchmark_group(format!("quantize/{aty}"));
        g.throughput(Throughput::Bytes((d * 4) as u64));
        for isa in Isa::ALL {
            let Ok(k) = Kernels::new(isa) else { continue };
            let mut dst = vec![0u8; hanlin_kernels::row_bytes(aty, d).unwrap_or(0)];
            g.bench_function(isa.name(), |b| {
                b.iter(|| {
                    k.quantize_row(aty, black_box(&src), &mut dst)
                        .expect("quantize")
                })
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1))
        .sample_size(20);
    targets = bench_matvec, bench_matmul, bench_packed, bench_pack, bench_quantize
}
criterion_main!(benches);
