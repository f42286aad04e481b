//! `hanlin bench`: prompt-processing and generation speed, and how close generation runs to
//! the machine's memory bandwidth.
//!
//! Each rep empties the KV cache, times one prefill of a fixed N-token prompt (one `forward`
//! with [`Logits::Last`], chunked by `--batch`), then times G greedy single-token steps. The
//! bandwidth roofline comes from a STREAM-style triad run in-process on the same thread count.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use hanlin_engine::sampler::argmax;
use hanlin_gguf::GgufFile;
use hanlin_models::{KvCache, Logits, Model, Scratch};

use super::loaded::LoadedModel;
use super::resolve::resolve_model;

/// Text the benchmark prompt is cut from (repeated as often as needed).
const PROMPT_TEXT: &str = "The old lighthouse keeper climbed the spiral stairs every evening, \
counting the steps as his father had taught him. From the lamp room he could see the fishing \
boats returning to the harbour, the gulls circling above the nets, and the long grey line of \
the coast fading into the mist. He wrote the weather in a small notebook: wind from the west, \
a light swell, rain expected before midnight. ";

/// Total size of the three triad arrays.
const TRIAD_BYTES: usize = 256 << 20;
/// Timed triad passes (the median is reported).
const TRIAD_RUNS: usize = 5;
/// Tokens generated during the warm-up rep.
const WARMUP_GEN: usize = 4;

/// Arguments of `hanlin bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model: a GGUF path or a store name.
    #[arg(long, short, default_value = "gemma3:270m")]
    pub model: String,
    /// Prompt length in tokens (BOS included).
    #[arg(long, default_value_t = 512)]
    pub prompt_tokens: usize,
    /// Tokens generated one at a time after the prompt.
    #[arg(long, default_value_t = 128)]
    pub gen_tokens: usize,
    /// Worker threads (default: all cores).
    #[arg(long, short)]
    pub threads: Option<usize>,
    /// Timed repetitions (after one warm-up).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Context size in tokens (default: prompt + generated tokens).
    #[arg(long)]
    pub ctx: Option<usize>,
    /// Prefill chunk size in tokens (llama.cpp's n_batch).
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
    /// Skip the memory-bandwidth (triad) measurement.
    #[arg(long)]
    pub no_bandwidth: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Median, minimum and maximum of a set of measurements.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    /// The spread of `xs`; all zeros when `xs` is empty.
    fn of(xs: &[f64]) -> Spread {
        let mut v: Vec<f64> = xs.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            return Spread {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Spread {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }
}

/// Bytes and parameters of the weight matrices one generated token reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct WeightTraffic {
    bytes: u64,
    params: u64,
}

/// Sums every matrix the forward pass multiplies by: all 2-D weights except embeddings, plus
/// the LM head (the token embedding when the output matrix is tied to it). Norms and biases
/// are 1-D and left out; so is the one embedding row looked up per token.
fn weight_traffic(f: &GgufFile) -> WeightTraffic {
    let tied = f.tensor("output.weight").is_none();
    let mut w = WeightTraffic::default();
    for t in f.tensors() {
        let (rows, cols) = t.rows_cols();
        let is_matrix = rows > 1 && cols > 1;
        let is_embd = t.name.contains("embd") || t.name.starts_with("token_types");
        let counts = if t.name == "token_embd.weight" {
            tied
        } else {
            !is_embd
        };
        if is_matrix && counts {
            w.bytes += t.n_bytes;
            w.params += t.n_elements();
        }
    }
    w
}

/// `n` tokens: BOS (when the vocabulary has one) then `text`'s tokens, repeated and cut.
fn build_prompt(text_tokens: &[u32], bos: Option<u32>, n: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(n);
    out.extend(bos.into_iter().take(n));
    while out.len() < n && !text_tokens.is_empty() {
        let take = (n - out.len()).min(text_tokens.len());
        out.extend_from_slice(&text_tokens[..take]);
    }
    out
}

/// Tokens per second; 0 when no time was measured.
fn rate(tokens: usize, secs: f64) -> f64 {
    if secs > 0.0 {
        tokens as f64 / secs
    } else {
        0.0
    }
}

/// One rep: empty the cache, prefill `prompt`, then generate `gen` tokens greedily.
/// Returns (prefill seconds, generation seconds).
fn one_rep(
    model: &Model,
    kv: &mut KvCache,
    s: &mut Scratch,
    prompt: &[u32],
    gen: usize,
) -> anyhow::Result<(f64, f64)> {
    kv.truncate(0);
    let t0 = Instant::now();
    let mut next = argmax(model.forward(prompt, kv, s, Logits::Last)?);
    let prefill = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    for _ in 0..gen {
        next = argmax(model.forward(&[next], kv, s, Logits::Last)?);
    }
    Ok((prefill, t1.elapsed().as_secs_f64()))
}

/// Runs `f` on `threads` threads, each over its own equal slice of `a`, `b` and `c`.
fn split3<F>(threads: usize, a: &mut [f32], b: &mut [f32], c: &mut [f32], f: F)
where
    F: Fn(&mut [f32], &mut [f32], &mut [f32]) + Sync,
{
    let chunk = a.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        for ((a, b), c) in a
            .chunks_mut(chunk)
            .zip(b.chunks_mut(chunk))
            .zip(c.chunks_mut(chunk))
        {
            let f = &f;
            scope.spawn(move || f(a, b, c));
        }
    });
}

/// STREAM-style triad (`a = b + s·c`) bandwidth in GB/s on `threads` threads: the median of
/// a few passes over three arrays of [`TRIAD_BYTES`] in total, counting 3 × 4 bytes per
/// element as STREAM does (the write-allocate read of `a` is not counted).
fn triad_bandwidth(threads: usize) -> f64 {
    let n = TRIAD_BYTES / (3 * size_of::<f32>());
    let (mut a, mut b, mut c) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    // First touch from the threads that will use each page.
    split3(threads, &mut a, &mut b, &mut c, |a, b, c| {
        a.fill(0.0);
        b.fill(1.0);
        c.fill(2.0);
    });
    let triad = |a: &mut [f32], b: &mut [f32], c: &mut [f32]| {
        for ((x, y), z) in a.iter_mut().zip(b.iter()).zip(c.iter()) {
            *x = y + 3.0 * z;
        }
    };
    split3(threads, &mut a, &mut b, &mut c, triad);
    let mut runs = Vec::with_capacity(TRIAD_RUNS);
    for _ in 0..TRIAD_RUNS {
        let t = Instant::now();
        split3(threads, &mut a, &mut b, &mut c, triad);
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(&a);
        if secs > 0.0 {
            runs.push((3 * n * size_of::<f32>()) as f64 / secs / 1e9);
        }
    }
    Spread::of(&runs).median
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.prompt_tokens >= 1,
        "--prompt-tokens must be at least 1"
    );
    anyhow::ensure!(args.gen_tokens >= 1, "--gen-tokens must be at least 1");
    anyhow::ensure!(args.reps >= 1, "--reps must be at least 1");
    anyhow::ensure!(args.batch >= 1, "--batch must be at least 1");
    anyhow::ensure!(args.threads != Some(0), "--threads must be at least 1");
    let path = resolve_model(&args.model)?;
    let path_str = path
        .to_str()
        .with_context(|| format!("model path {} is not UTF-8", path.display()))?;
    let t_load = Instant::now();
    let loaded = LoadedModel::load(path_str, args.threads)?;
    let load_ms = t_load.elapsed().as_secs_f64() * 1e3;
    let model = &loaded.model;

    let need = args.prompt_tokens + args.gen_tokens;
    let n_ctx = args.ctx.unwrap_or(need);
    anyhow::ensure!(
        n_ctx >= need,
        "--ctx {n_ctx} is smaller than prompt + generated tokens ({need})"
    );
    let mut kv = model.kv_cache(n_ctx);
    anyhow::ensure!(
        kv.n_ctx() >= need,
        "prompt + generated tokens ({need}) exceed the model's context of {} tokens",
        model.config.context_length
    );
    let mut scratch = model.scratch(args.batch.min(args.prompt_tokens));

    let text = loaded
        .tokenizer
        .encode(PROMPT_TEXT, false, false)
        .context("tokenizing the benchmark text")?;
    anyhow::ensure!(!text.is_empty(), "the tokenizer produced no tokens");
    let prompt = build_prompt(&text, loaded.tokenizer.bos_id(), args.prompt_tokens);

    one_rep(
        model,
        &mut kv,
        &mut scratch,
        &prompt,
        WARMUP_GEN.min(args.gen_tokens),
    )
    .context("warm-up")?;
    let (mut pp, mut tg) = (Vec::new(), Vec::new());
    for rep in 0..args.reps {
        let (p, g) = one_rep(model, &mut kv, &mut scratch, &prompt, args.gen_tokens)
            .with_context(|| format!("rep {}", rep + 1))?;
        pp.push(rate(prompt.len(), p));
        tg.push(rate(args.gen_tokens, g));
    }
    let threads = model.threads();
    // Read before the triad, whose 256 MiB of arrays are not the model's.
    let peak_rss = peak_rss_bytes();
    let bandwidth = (!args.no_bandwidth).then(|| triad_bandwidth(threads));

    let report = Report {
        model: &args.model,
        path: &path,
        file_size: model.gguf().file_len(),
        arch: model.config.arch.name(),
        isa: hanlin_kernels::Kernels::detected().isa().name(),
        threads,
        args: &args,
        pp: Spread::of(&pp),
        tg: Spread::of(&tg),
        pp_runs: pp,
        tg_runs: tg,
        traffic: weight_traffic(model.gguf()),
        bandwidth,
        prompt: &prompt,
        load_ms,
        kv_bytes: kv.bytes() as u64,
        peak_rss,
    };
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

/// Everything measured, ready to print.
struct Report<'a> {
    model: &'a str,
    path: &'a Path,
    file_size: u64,
    arch: &'a str,
    isa: &'a str,
    threads: usize,
    args: &'a Args,
    pp: Spread,
    tg: Spread,
    pp_runs: Vec<f64>,
    tg_runs: Vec<f64>,
    traffic: WeightTraffic,
    bandwidth: Option<f64>,
    prompt: &'a [u32],
    load_ms: f64,
    kv_bytes: u64,
    peak_rss: Option<u64>,
}

/// The process's peak resident set (`VmHWM`), where /proc exposes it.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl Report<'_> {
    /// Achieved weight-read bandwidth during generation, GB/s (median rate).
    fn gen_gb_per_s(&self) -> f64 {
        self.traffic.bytes as f64 * self.tg.median / 1e9
    }

    /// Matrix GFLOP/s at `tok_per_s` (2 flops per weight per token; attention not counted).
    fn gflops(&self, tok_per_s: f64) -> f64 {
        2.0 * self.traffic.params as f64 * tok_per_s / 1e9
    }

    /// Achieved ÷ measured bandwidth.
    fn roofline(&self) -> Option<f64> {
        self.bandwidth
            .filter(|b| *b > 0.0)
            .map(|b| self.gen_gb_per_s() / b)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "model": self.model,
            "model_path": self.path.display().to_string(),
            "file_size_bytes": self.file_size,
            "arch": self.arch,
            "isa": self.isa,
            "threads": self.threads,
            "reps": self.args.reps,
            "batch": self.args.batch,
            "prompt_tokens": self.prompt.len(),
            "gen_tokens": self.args.gen_tokens,
            "prompt_tokens_per_s": self.pp.median,
            "prompt_tokens_per_s_min": self.pp.min,
            "prompt_tokens_per_s_max": self.pp.max,
            "prompt_tokens_per_s_runs": self.pp_runs,
            "gen_tokens_per_s": self.tg.median,
            "gen_tokens_per_s_min": self.tg.min,
            "gen_tokens_per_s_max": self.tg.max,
            "gen_tokens_per_s_runs": self.tg_runs,
            "weight_bytes_per_token": self.traffic.bytes,
            "weight_params_per_token": self.traffic.params,
            "gen_gb_per_s": self.gen_gb_per_s(),
            "gen_gflop_per_s": self.gflops(self.tg.median),
            "prompt_gflop_per_s": self.gflops(self.pp.median),
            "bandwidth_gb_per_s": self.bandwidth,
            "roofline_fraction": self.roofline(),
            "prompt_token_ids": self.prompt,
            "load_ms": self.load_ms,
            "kv_cache_bytes": self.kv_bytes,
            "peak_rss_bytes": self.peak_rss,
        })
    }

    fn table(&self) -> String {
        let mib = self.file_size as f64 / (1u64 << 20) as f64;
        let (n, g) = (self.prompt.len(), self.args.gen_tokens);
        let row = |name: String, s: &Spread| {
            format!(
                "{name:<8} {:>10.1} {:>10.1} {:>10.1}  tok/s\n",
                s.median, s.min, s.max
            )
        };
        let mut out = format!(
            "model    {} ({}, {mib:.1} MiB, {})\n\
             setup    isa {}, {} threads, {} reps, batch {}\n\
             {:<8} {:>10} {:>10} {:>10}\n",
            self.model,
            self.path.display(),
            self.arch,
            self.isa,
            self.threads,
            self.args.reps,
            self.args.batch,
            "",
            "median",
            "min",
            "max",
        );
        out += &row(format!("pp{n}"), &self.pp);
        out += &row(format!("tg{g}"), &self.tg);
        out += &format!(
            "weights  {:.1} MB read per generated token → {:.2} GB/s, {:.2} GFLOP/s \
             (prefill {:.2} GFLOP/s)\n",
            self.traffic.bytes as f64 / 1e6,
            self.gen_gb_per_s(),
            self.gflops(self.tg.median),
            self.gflops(self.pp.median),
        );
        let mb = |b: u64| b as f64 / 1e6;
        out += &format!(
            "load     {:.0} ms (mmap, checks, tokenizer); KV cache {:.1} MB",
            self.load_ms,
            mb(self.kv_bytes)
        );
        if let Some(rss) = self.peak_rss {
            // The goal: weights stay mapped, so RSS stays near file + KV cache.
            let budget = (self.file_size + self.kv_bytes) as f64 * 1.1;
            out += &format!(
                "; peak RSS {:.1} MB ({:.0}% of file + KV + 10%)",
                mb(rss),
                100.0 * rss as f64 / budget
            );
        }
        out += "\n";
        if let (Some(b), Some(r)) = (self.bandwidth, self.roofline()) {
            out += &format!(
                "memory   triad {b:.2} GB/s on {} threads → generation at {:.0}% of roofline\n",
                self.threads,
                r * 100.0
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn spread_odd_even_empty() {
        let s = Spread::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
        assert_eq!(Spread::of(&[]).median, 0.0);
    }

    #[test]
    fn prompt_has_exact_length_and_starts_with_bos() {
        let p = build_prompt(&[5, 6, 7], Some(1), 8);
        assert_eq!(p, vec![1, 5, 6, 7, 5, 6, 7, 5]);
        assert_eq!(build_prompt(&[5, 6, 7], None, 4), vec![5, 6, 7, 5]);
        assert_eq!(build_prompt(&[5], Some(1), 1), vec![1]);
        assert!(build_prompt(&[], None, 3).is_empty());
    }

    #[test]
    fn rate_guards_zero_time() {
        assert_eq!(rate(10, 0.0), 0.0);
        assert_eq!(rate(10, 2.0), 5.0);
    }

    fn gguf(names: &[(&str, &[u64])]) -> GgufFile {
        let mut w = hanlin_gguf::GgufWriter::new();
        for (name, dims) in names {
            let n: u64 = dims.iter().product();
            w.add_tensor(
                name,
                dims,
                hanlin_gguf::GgmlType::F32,
                vec![0; n as usize * 4],
            )
            .unwrap();
        }
        GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap()
    }

    #[test]
    fn traffic_counts_matrices_and_the_lm_head_once() {
        let layer: [(&str, &[u64]); 3] = [
            ("blk.0.attn_norm.weight", &[4]),
            ("blk.0.attn_q.weight", &[4, 4]),
            ("blk.0.ffn_down.weight", &[8, 4]),
        ];
        let tied = gguf(&[&layer[..], &[("token_embd.weight", &[4, 10])]].concat());
        let t = weight_traffic(&tied);
        assert_eq!(t.params, 16 + 32 + 40);
        assert_eq!(t.bytes, 4 * t.params);
        let untied = gguf(
            &[
                &layer[..],
                &[("token_embd.weight", &[4, 10]), ("output.weight", &[4, 10])],
            ]
            .concat(),
        );
        assert_eq!(weight_traffic(&untied).params, 16 + 32 + 40);
    }

    #[test]
    fn triad_split_covers_every_element() {
        let (mut a, mut b, mut c) = (vec![0f32; 10], vec![1f32; 10], vec![2f32; 10]);
        split3(3, &mut a, &mut b, &mut c, |a, b, c| {
            for ((x, y), z) in a.iter_mut().zip(b.iter()).zip(c.iter()) {
                *x = y + 3.0 * z;
            }
        });
        assert!(a.iter().all(|&x| x == 7.0));
    }
}
