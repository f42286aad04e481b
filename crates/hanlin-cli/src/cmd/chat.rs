//! `hanlin chat` / `hanlin run`: interactive multi-turn chat with the model's chat template.
//!
//! The KV cache survives between turns, so each reply only processes the new messages.
//! `/reset` starts over, `/system TEXT` sets the system prompt, Ctrl-C stops a reply
//! (and quits when no reply is running). With `--json-schema` the chat runs on the engine path
//! instead (see `constrained.rs`), since a session has no grammar mask.

use std::io::{BufRead, Write};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use hanlin_engine::{GenerateParams, Session};
use hanlin_tokenizer::template::RenderRequest;
use serde_json::json;

use super::constrained::{self, ConstraintArgs};
use super::generate::{parse_kv_type, SamplingArgs};
use super::loaded::LoadedModel;

/// Arguments of `hanlin chat` (and `hanlin run`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model: a GGUF path or a store name.
    #[arg(long, short, default_value = "gemma3:270m")]
    pub model: String,
    /// System prompt.
    #[arg(long)]
    pub system: Option<String>,
    /// Most tokens per reply.
    #[arg(short = 'n', long = "max-tokens", default_value_t = 512)]
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
    /// Constrain every reply to JSON valid against this JSON Schema: a file, or inline JSON
    /// when the argument starts with `{`.
    #[arg(long, value_name = "FILE|JSON")]
    pub json_schema: Option<String>,
    /// Sampling.
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            model: "gemma3:270m".into(),
            system: None,
            max_tokens: 512,
            threads: None,
            ctx: 4096,
            kv_type: hanlin_models::KvType::F16,
            json_schema: None,
            sampling: SamplingArgs::default(),
        }
    }
}

/// A reply is being generated (Ctrl-C stops it rather than quitting).
pub(super) static GENERATING: AtomicBool = AtomicBool::new(false);
/// Ctrl-C was pressed during a reply.
pub(super) static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Ctrl-C stops a running reply, or quits when none is running.
pub(super) fn install_ctrlc() -> anyhow::Result<()> {
    ctrlc::set_handler(|| {
        if GENERATING.load(Ordering::SeqCst) {
            INTERRUPTED.store(true, Ordering::SeqCst);
        } else {
            eprintln!();
            std::process::exit(130);
        }
    })
    .context("installing the Ctrl-C handler")
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(schema) = &args.json_schema {
        let flags = ConstraintArgs {
            json_schema: Some(schema.clone()),
            ..ConstraintArgs::default()
        };
        if let Some(c) = flags.constraint()? {
            return constrained::chat(&args, c);
        }
    }
    let loaded = LoadedModel::load(&args.model, args.threads)?;
    let template = loaded.chat_template()?;
    install_ctrlc()?;

    let mut session =
        Session::with_kv_type(&loaded.model, &loaded.tokenizer, args.ctx, args.kv_type)?;
    let mut system = args.system.clone();
    let mut messages: Vec<serde_json::Value> = Vec::new();
    let stop_tokens: Vec<u32> = loaded
        .tokenizer
        .token_id("<start_of_turn>")
        .into_iter()
        .collect();
    eprintln!(
        "hanlin chat — {} ({}). /reset, /system TEXT, /exit; Ctrl-C stops a reply.",
        args.model,
        loaded.model.config.arch.name()
    );
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    loop {
        print!(">>> ");
        stdout.flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            println!();
            return Ok(());
        }
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        match line.trim() {
            "/exit" | "/quit" | "/bye" => return Ok(()),
            "/reset" => {
                messages.clear();
                session.reset();
                println!("(conversation cleared)");
                continue;
            }
            cmd if cmd.starts_with("/system") => {
                system = Some(cmd.trim_start_matches("/system").trim().to_string())
                    .filter(|s| !s.is_empty());
                messages.clear();
                session.reset();
                println!(
                    "(system prompt {}; conversation cleared)",
                    if system.is_some() { "set" } else { "removed" }
                );
                continue;
            }
            _ => {}
        }
        messages.push(json!({"role": "user", "content": line}));
        let mut all = Vec::with_capacity(messages.len() + 1);
        if let Some(s) = &system {
            all.push(json!({"role": "system", "content": s}));
        }
        all.extend(messages.iter().cloned());
        let mut req = RenderRequest::new(all);
        req.add_generation_prompt = true;
        let prompt_text = template.render(&req)?;
        let bos_text = template.special_tokens().bos_token.clone();
        let add_bos = bos_text.is_empty() || !prompt_text.starts_with(&bos_text);
        let prompt = loaded.tokenizer.encode(&prompt_text, add_bos, true)?;
        if prompt.len() + 1 >= session.n_ctx() {
            println!(
                "(the conversation no longer fits in {} tokens; /reset to start over)",
                session.n_ctx()
            );
            messages.pop();
            continue;
        }
        let params = GenerateParams {
            max_tokens: args.max_tokens.min(session.n_ctx() - prompt.len() - 1),
            sampling: args.sampling.params(),
            stop_tokens: stop_tokens.clone(),
            ..GenerateParams::default()
        };
        INTERRUPTED.store(false, Ordering::SeqCst);
        GENERATING.store(true, Ordering::SeqCst);
        let result = session.generate(&prompt, &params, |t| {
            print!("{t}");
            let _ = std::io::stdout().flush();
            if INTERRUPTED.load(Ordering::SeqCst) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        GENERATING.store(false, Ordering::SeqCst);
        let out = result?;
        println!();
        if INTERRUPTED.load(Ordering::SeqCst) {
            eprintln!("(stopped)");
        }
        messages.push(json!({"role": "assistant", "content": out.text.trim()}));
    }
}
