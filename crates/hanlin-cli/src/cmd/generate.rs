//! `hanlin generate`: a streamed (or JSON) continuation of a prompt.

use std::io::Write;
use std::ops::ControlFlow;

use anyhow::Context;
use hanlin_engine::{GenerateParams, SamplingParams, Session};

use super::constrained::{self, ConstraintArgs};
use super::loaded::LoadedModel;

/// Sampling flags shared by `generate` and `chat`.
#[derive(clap::Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Temperature; 0 means greedy.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    /// Keep the K most likely tokens (0 = off).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Nucleus sampling mass (1 = off).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Drop tokens below this fraction of the best one's probability (0 = off).
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Locally typical sampling mass (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub typical_p: f32,
    /// Repetition penalty (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Presence penalty.
    #[arg(long, default_value_t = 0.0)]
    pub presence_penalty: f32,
    /// Frequency penalty.
    #[arg(long, default_value_t = 0.0)]
    pub frequency_penalty: f32,
    /// Random seed (default: from the clock; printed with --json).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl Default for SamplingArgs {
    fn default() -> Self {
        let d = SamplingParams::default();
        SamplingArgs {
            temperature: d.temperature,
            top_k: d.top_k,
            top_p: d.top_p,
            min_p: d.min_p,
            typical_p: d.typical_p,
            repeat_penalty: d.repetition_penalty,
            presence_penalty: d.presence_penalty,
            frequency_penalty: d.frequency_penalty,
            seed: None,
        }
    }
}

impl SamplingArgs {
    /// The engine's parameters, with the seed resolved.
    pub fn params(&self) -> SamplingParams {
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
        SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            typical_p: self.typical_p,
            repetition_penalty: self.repeat_penalty,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            seed,
            ..SamplingParams::default()
        }
    }
}

/// Parses `--kv-type`.
pub fn parse_kv_type(s: &str) -> Result<hanlin_models::KvType, String> {
    hanlin_models::KvType::parse(s)
        .ok_or_else(|| format!("unknown KV cache type {s:?} (f16 or q8_0)"))
}

/// Arguments of `hanlin generate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model: a GGUF path or a store name.
    #[arg(long, short, default_value = "gemma3:270m")]
    pub model: String,
    /// The prompt to continue.
    #[arg(long, short)]
    pub prompt: String,
    /// Tokens to generate at most.
    #[arg(short = 'n', long = "max-tokens", default_value_t = 128)]
    pub max_tokens: usize,
    /// Worker threads (default: all cores).
    #[arg(long, short)]
    pub threads: Option<usize>,
    /// Context size in tokens.
    #[arg(long, default_value_t = 4096)]
    pub ctx: usize,
    /// KV cache type: f16 or q8_0 (half the memory).
    #[arg(long, default_value = "f16", value_parser = parse_kv_type)]
    pub kv_type: hanlin_models::KvType,
    /// Stop strings (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Turn special-token text in the prompt into special tokens.
    #[arg(long)]
    pub parse_special: bool,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    pub json: bool,
    /// Output constraint (structured output).
    #[command(flatten)]
    pub constraint: ConstraintArgs,
    /// Sampling.
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(c) = args.constraint.constraint()? {
        return constrained::run(&args, c);
    }
    let loaded = LoadedModel::load(&args.model, args.threads)?;
    let prompt = loaded
        .tokenizer
        .encode(&args.prompt, true, args.parse_special)
        .context("tokenizing the prompt")?;
    let params = GenerateParams {
        max_tokens: args.max_tokens,
        sampling: args.sampling.params(),
        stop: args.stop.clone(),
        ..GenerateParams::default()
    };
    let mut session =
        Session::with_kv_type(&loaded.model, &loaded.tokenizer, args.ctx, args.kv_type)?;
    let stdout = std::io::stdout();
    let out = if args.json {
        session.generate(&prompt, &params, |_| ControlFlow::Continue(()))?
    } else {
        let mut lock = stdout.lock();
        let _ = write!(lock, "{}", args.prompt);
        let _ = lock.flush();
        let out = session.generate(&prompt, &params, |t| {
            let _ = write!(lock, "{t}");
            let _ = lock.flush();
            ControlFlow::Continue(())
        })?;
        let _ = writeln!(lock);
        out
    };
    let t = &out.timings;
    if args.json {
        let v = serde_json::json!({
            "model": args.model,
            "prompt_tokens": prompt,
            "tokens": out.tokens,
            "text": out.text,
            "finish_reason": out.finish.as_str(),
            "seed": params.sampling.seed,
            "timings": {
                "prompt_ms": t.prompt_ms,
                "gen_ms": t.gen_ms,
                "prompt_tokens_per_s": t.prompt_tokens_per_s(),
                "gen_tokens_per_s": t.gen_tokens_per_s(),
            }
        });
        println!("{v}");
    } else {
        eprintln!(
            "[{} prompt tokens at {:.1} tok/s, {} generated at {:.1} tok/s, finish: {}]",
            t.prompt_tokens,
            t.prompt_tokens_per_s(),
            t.gen_tokens,
            t.gen_tokens_per_s(),
            out.finish.as_str()
        );
    }
    Ok(())
}
