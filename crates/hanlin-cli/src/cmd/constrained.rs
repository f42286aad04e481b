//! `hanlin generate --format json | --json-schema | --grammar | --regex`: output that must
//! follow a grammar. A single-sequence `Session` has no grammar mask, so constrained runs go
//! through the same `LocalBackend` the server uses (one slot), with the same `Constraint` the
//! server builds from `response_format`: a schema the server would refuse is refused here too,
//! naming the keyword.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use hanlin_api::{
    BackendError, Constraint, GenerationEvent, GenerationRequest, InferenceBackend,
    OutputConstraint, PromptInput, SamplingOptions,
};
use hanlin_engine::{LocalBackend, LocalOptions};

use super::generate::{Args, SamplingArgs};
use super::resolve::resolve_model;

/// `--format`'s one value.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Any JSON object.
    Json,
}

/// Output constraints of `hanlin generate` (at most one).
#[derive(clap::Args, Debug, Clone, Default)]
#[group(id = "constraint", multiple = false)]
pub struct ConstraintArgs {
    /// Constrain the output to any JSON object.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Constrain the output to JSON valid against this JSON Schema: a file, or inline JSON
    /// when the argument starts with `{`.
    #[arg(long, value_name = "FILE|JSON")]
    pub json_schema: Option<String>,
    /// Constrain the output to a grammar in llguidance's Lark syntax (a file).
    #[arg(long, value_name = "FILE")]
    pub grammar: Option<PathBuf>,
    /// Constrain the whole output to match this regular expression (Rust `regex` syntax).
    #[arg(long, value_name = "RE")]
    pub regex: Option<String>,
}

impl ConstraintArgs {
    /// The constraint these flags ask for; `None` without any. Schemas are checked for
    /// keywords constrained decoding cannot enforce, as the server does.
    pub fn constraint(&self) -> anyhow::Result<Option<Constraint>> {
        let c = |kind, param: &str| {
            Some(Constraint {
                kind,
                param: param.to_string(),
            })
        };
        if self.format == Some(Format::Json) {
            return Ok(c(OutputConstraint::JsonObject, "--format"));
        }
        if let Some(arg) = &self.json_schema {
            let schema = json_schema(arg)?;
            hanlin_api::structured::check_schema(&schema, "--json-schema")
                .map_err(|e| anyhow::anyhow!("{} (at {})", e.message, param_of(&e.param)))?;
            return Ok(c(OutputConstraint::JsonSchema(schema), "--json-schema"));
        }
        if let Some(path) = &self.grammar {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the grammar {}", path.display()))?;
            return Ok(c(OutputConstraint::Lark(text), "--grammar"));
        }
        if let Some(re) = &self.regex {
            return Ok(c(OutputConstraint::Regex(re.clone()), "--regex"));
        }
        Ok(None)
    }
}

fn param_of(p: &Option<String>) -> &str {
    p.as_deref().unwrap_or("--json-schema")
}

/// A schema given inline (starting with `{`) or as a file.
fn json_schema(arg: &str) -> anyhow::Result<serde_json::Value> {
    if arg.trim_start().starts_with('{') {
        return serde_json::from_str(arg).context("--json-schema: the inline schema is not JSON");
    }
    let path = Path::new(arg);
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the JSON schema {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// A backend refusal as a CLI error naming the flag (or schema keyword) at fault.
fn backend_error(e: BackendError) -> anyhow::Error {
    match e {
        BackendError::InvalidRequest {
            param: Some(p),
            message,
        } => anyhow::anyhow!("{message} (at {p})"),
        other => other.into(),
    }
}

/// Resolves `model` and starts a one-slot local backend serving it under that name.
fn start_backend(
    model: &str,
    ctx: usize,
    threads: Option<usize>,
    kv_type: hanlin_models::KvType,
) -> anyhow::Result<(LocalBackend, PathBuf)> {
    let path = resolve_model(model)?;
    let backend = LocalBackend::start(
        vec![(model.to_string(), path.clone())],
        LocalOptions {
            n_ctx: ctx,
            threads,
            parallel: 1,
            queue_depth: 1,
            kv_type,
            ..LocalOptions::default()
        },
    )
    .with_context(|| format!("loading {model}"))?;
    Ok((backend, path))
}

/// The backend's sampling options for these flags, with the seed resolved.
fn sampling_options(s: &SamplingArgs) -> anyhow::Result<SamplingOptions> {
    if s.typical_p != 1.0 {
        bail!("--typical-p cannot be combined with a constraint (the server's sampler has no typical sampling)");
    }
    Ok(SamplingOptions {
        temperature: s.temperature,
        top_p: s.top_p,
        top_k: s.top_k,
        min_p: s.min_p,
        repetition_penalty: s.repeat_penalty,
        presence_penalty: s.presence_penalty,
        frequency_penalty: s.frequency_penalty,
        logit_bias: Vec::new(),
        seed: Some(s.params().seed),
    })
}

/// Starts `req`, shortening `max_tokens` to the room the context has left (as a session does)
/// when the prompt fits but prompt + `max_tokens` does not.
fn generate_fitting(
    backend: &LocalBackend,
    mut req: GenerationRequest,
) -> Result<hanlin_api::GenerationStream, BackendError> {
    let max = req.max_tokens;
    match backend.generate(req.clone()) {
        Err(BackendError::ContextLengthExceeded { n_ctx, needed }) => {
            let prompt = needed.saturating_sub(max.unwrap_or(1));
            // One cell short of full, as the session chat leaves it.
            if max.is_none() || prompt + 1 >= n_ctx {
                return Err(BackendError::ContextLengthExceeded { n_ctx, needed });
            }
            req.max_tokens = Some(n_ctx - prompt - 1);
            backend.generate(req)
        }
        other => other,
    }
}

/// Runs `generate` with `constraint` on a one-slot local backend.
pub fn run(args: &Args, constraint: Constraint) -> anyhow::Result<()> {
    let sampling = sampling_options(&args.sampling)?;
    let seed = sampling.seed;
    let (backend, path) = start_backend(&args.model, args.ctx, args.threads, args.kv_type)?;
    let id = args.model.clone();
    let input = if args.parse_special {
        // The backend tokenizes text without special tokens; honour the flag by tokenizing here.
        let file = hanlin_gguf::GgufFile::open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let tokenizer =
            hanlin_tokenizer::Tokenizer::from_gguf(&file).context("loading the tokenizer")?;
        PromptInput::Tokens(
            tokenizer
                .encode(&args.prompt, true, true)
                .context("tokenizing the prompt")?,
        )
    } else {
        PromptInput::Text(args.prompt.clone())
    };
    let prompt_ids = match &input {
        PromptInput::Tokens(t) => t.clone(),
        _ => backend.tokenize(&id, &args.prompt).map_err(backend_error)?,
    };
    let req = GenerationRequest {
        model: id,
        input,
        max_tokens: Some(args.max_tokens),
        sampling,
        stop: args.stop.clone(),
        logprobs: None,
        constraint: Some(constraint),
    };
    let t0 = Instant::now();
    let mut stream = generate_fitting(&backend, req).map_err(backend_error)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !args.json {
        let _ = write!(out, "{}", args.prompt);
        let _ = out.flush();
    }
    let mut text = String::new();
    // The backend reports no prefill time; the first token marks the end of the prompt.
    let mut t_first = None;
    let (finish, usage) = loop {
        // The engine thread sends; no async runtime is needed to wait for it.
        match stream.events.blocking_recv() {
            Some(Ok(GenerationEvent::Started { .. })) => {}
            Some(Ok(GenerationEvent::Delta { text: t, .. })) => {
                t_first.get_or_insert_with(Instant::now);
                if !args.json {
                    let _ = write!(out, "{t}");
                    let _ = out.flush();
                }
                text.push_str(&t);
            }
            Some(Ok(GenerationEvent::Finished {
                finish_reason,
                usage,
            })) => break (finish_reason, usage),
            Some(Err(e)) => return Err(backend_error(e)),
            None => bail!("the engine stopped before finishing"),
        }
    };
    let first = t_first.unwrap_or_else(Instant::now);
    let prompt_ms = first.duration_since(t0).as_secs_f64() * 1e3;
    let gen_ms = first.elapsed().as_secs_f64() * 1e3;
    // Tokens after the first one, over the time after it (the first is part of the prompt time).
    let rate = |n: usize, ms: f64| if ms > 0.0 { n as f64 * 1e3 / ms } else { 0.0 };
    let gen_rate = rate(usage.completion_tokens.saturating_sub(1), gen_ms);
    let finish = finish.as_str();
    if args.json {
        // Same shape as the unconstrained output, except that the backend reports generated
        // tokens as text: `completion_tokens` (a count) stands in for `tokens` (the ids).
        let v = serde_json::json!({
            "model": args.model,
            "prompt_tokens": prompt_ids,
            "completion_tokens": usage.completion_tokens,
            "text": text,
            "finish_reason": finish,
            "seed": seed,
            "timings": {
                "prompt_ms": prompt_ms,
                "gen_ms": gen_ms,
                "prompt_tokens_per_s": rate(usage.prompt_tokens, prompt_ms),
                "gen_tokens_per_s": gen_rate,
            }
        });
        let _ = writeln!(out, "{v}");
    } else {
        let _ = writeln!(out);
        eprintln!(
            "[{} prompt tokens at {:.1} tok/s, {} generated at {:.1} tok/s, finish: {finish}]",
            usage.prompt_tokens,
            rate(usage.prompt_tokens, prompt_ms),
            usage.completion_tokens,
            gen_rate,
        );
    }
    Ok(())
}

/// `hanlin chat --json-schema`: every reply constrained. Runs on the one-slot local backend
/// (which renders the chat template itself) instead of a session, so each turn sends the whole
/// conversation; commands and Ctrl-C behave as in the unconstrained chat.
pub fn chat(args: &super::chat::Args, constraint: Constraint) -> anyhow::Result<()> {
    use super::chat::{install_ctrlc, GENERATING, INTERRUPTED};
    use std::io::BufRead;
    use std::sync::atomic::Ordering;

    let sampling = sampling_options(&args.sampling)?;
    let (backend, _) = start_backend(&args.model, args.ctx, args.threads, args.kv_type)?;
    install_ctrlc()?;
    eprintln!(
        "hanlin chat — {} (replies constrained by --json-schema). /reset, /system TEXT, /exit; Ctrl-C stops a reply.",
        args.model
    );
    let mut system = args.system.clone();
    let mut messages: Vec<serde_json::Value> = Vec::new();
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    loop {
        write!(stdout, ">>> ")?;
        stdout.flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            writeln!(stdout)?;
            return Ok(());
        }
        let line = line.trim_end_matches(['\n', '\r']);
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" | "/bye" => return Ok(()),
            "/reset" => {
                messages.clear();
                writeln!(stdout, "(conversation cleared)")?;
                continue;
            }
            cmd if cmd.starts_with("/system") => {
                system = Some(cmd.trim_start_matches("/system").trim().to_string())
                    .filter(|s| !s.is_empty());
                messages.clear();
                writeln!(
                    stdout,
                    "(system prompt {}; conversation cleared)",
                    if system.is_some() { "set" } else { "removed" }
                )?;
                continue;
            }
            _ => {}
        }
        messages.push(serde_json::json!({"role": "user", "content": line}));
        let all: Vec<serde_json::Value> = system
            .iter()
            .map(|s| serde_json::json!({"role": "system", "content": s}))
            .chain(messages.iter().cloned())
            .collect();
        let mut turn = sampling.clone();
        // A fresh draw per turn, as the session chat does, unless --seed fixes it.
        if args.sampling.seed.is_none() {
            turn.seed = Some(args.sampling.params().seed);
        }
        let req = GenerationRequest {
            model: args.model.clone(),
            input: PromptInput::Chat {
                messages: all,
                tools: None,
            },
            max_tokens: Some(args.max_tokens),
            sampling: turn,
            stop: Vec::new(),
            logprobs: None,
            constraint: Some(constraint.clone()),
        };
        let mut stream = match generate_fitting(&backend, req) {
            Ok(s) => s,
            Err(BackendError::ContextLengthExceeded { n_ctx, .. }) => {
                writeln!(
                    stdout,
                    "(the conversation no longer fits in {n_ctx} tokens; /reset to start over)"
                )?;
                messages.pop();
                continue;
            }
            Err(e) => return Err(backend_error(e)),
        };
        INTERRUPTED.store(false, Ordering::SeqCst);
        GENERATING.store(true, Ordering::SeqCst);
        let mut reply = String::new();
        let result = loop {
            if INTERRUPTED.load(Ordering::SeqCst) {
                break Ok(());
            }
            match stream.events.blocking_recv() {
                Some(Ok(GenerationEvent::Delta { text, .. })) => {
                    write!(stdout, "{text}")?;
                    stdout.flush()?;
                    reply.push_str(&text);
                }
                Some(Ok(GenerationEvent::Started { .. })) => {}
                Some(Ok(GenerationEvent::Finished { .. })) | None => break Ok(()),
                Some(Err(e)) => break Err(backend_error(e)),
            }
        };
        GENERATING.store(false, Ordering::SeqCst);
        // Dropping the stream cancels a reply that Ctrl-C stopped.
        drop(stream);
        result?;
        writeln!(stdout)?;
        if INTERRUPTED.load(Ordering::SeqCst) {
            eprintln!("(stopped)");
        }
        messages.push(serde_json::json!({"role": "assistant", "content": reply.trim()}));
    }
}
