//! Times prefill (and a few decode steps) of a GGUF model, for profiling without the CLI.
//!
//! `cargo run --release -p hanlin-models --example prefill -- MODEL.gguf [TOKENS] [THREADS] [REPS]`
//! prints the median prefill tok/s and a per-layer-type dump of weight types.

use std::time::Instant;

use hanlin_models::{Logits, Model};

/// Resident memory by kind and the peak, from `/proc/self/status` (Linux; empty elsewhere).
fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .filter(|l| {
            ["VmHWM", "RssAnon", "RssFile"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or("usage: prefill MODEL.gguf [TOKENS] [THREADS] [REPS]")?;
    let n: usize = args.get(2).map_or(Ok(512), |s| s.parse())?;
    let threads: usize = args.get(3).map_or(Ok(1), |s| s.parse())?;
    let reps: usize = args.get(4).map_or(Ok(3), |s| s.parse())?;
    let t_load = Instant::now();
    let mut model = Model::load(path)?;
    let load_ms = t_load.elapsed().as_secs_f64() * 1e3;
    println!("load {load_ms:.0} ms; after load: {}", memory());
    model.set_threads(threads);
    let vocab = model.config.n_vocab as u32;
    // Deterministic, non-repeating token ids away from the special ones.
    let tokens: Vec<u32> = (0..n as u32)
        .map(|i| vocab / 16 + (i * 7919) % (vocab / 2))
        .collect();
    let mut s = model.scratch(512);
    let mut kv = model.kv_cache(n + 48);
    model.forward(&tokens, &mut kv, &mut s, Logits::Last)?;
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    let mut check = 0u64;
    for _ in 0..reps {
        kv.truncate(0);
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let l = model.forward(&tokens, &mut kv, &mut s, Logits::Last)?;
        times.push(t0.elapsed().as_secs_f64());
        cpu.push(cpu_seconds() - c0);
        // FNV-1a over the logits' bits: equal hashes mean bit-identical logits.
        check = l.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
            (h ^ u64::from(v.to_bits())).wrapping_mul(0x100_0000_01b3)
        });
    }
    // Decode: 32 single-token steps after the prompt (greedy, like `hanlin bench`).
    let mut tg = Vec::new();
    for _ in 0..reps {
        kv.truncate(0);
        let mut next = argmax(model.forward(&tokens, &mut kv, &mut s, Logits::Last)?);
        let t0 = Instant::now();
        for _ in 0..32 {
            next = argmax(model.forward(&[next], &mut kv, &mut s, Logits::Last)?);
        }
        tg.push(32.0 / t0.elapsed().as_secs_f64());
    }
    tg.sort_by(f64::total_cmp);
    times.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    println!(
        "pp{n} threads={threads} median {:.1} tok/s (min {:.1} max {:.1}) logits hash {check:016x}",
        n as f64 / med,
        n as f64 / times[times.len() - 1],
        n as f64 / times[0]
    );
    println!("  tg32 median {:.1} tok/s", tg[tg.len() / 2]);
    // On a shared machine wall time depends on the neighbours; CPU time much less so.
    println!(
        "  per CPU-second: {:.1} tok/s (process CPU time, all threads)",
        n as f64 / cpu[cpu.len() / 2]
    );
    println!("  at exit: {}", memory());
    Ok(())
}

/// User + system CPU time of this process so far, from `/proc/self/stat` (10 ms ticks).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime), counted from the state field after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Index of the largest logit.
fn argmax(l: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in l.iter().enumerate() {
        if v > l[best] {
            best = i;
        }
    }
    best as u32
}
