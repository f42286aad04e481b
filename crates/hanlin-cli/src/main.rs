//! The `hanlin` command line: one binary for every job.

mod cmd;

use clap::{Parser, Subcommand};

/// hanlin (翰林): a private large-model platform.
#[derive(Parser, Debug)]
#[command(name = "hanlin", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Chat with a model (default: gemma3:270m, pulled on first use).
    Run(cmd::chat::Args),
    /// Interactive multi-turn chat using the model's chat template.
    Chat(cmd::chat::Args),
    /// Generate a continuation of a prompt, streamed (or as JSON with --json).
    Generate(cmd::generate::Args),
    /// Print a GGUF file's metadata and tensor table.
    Inspect(cmd::inspect::Args),
    /// Convert a Hugging Face checkpoint (BERT embedding models) to GGUF.
    Convert(cmd::convert::Args),
    /// Tokenize text with a model's tokenizer.
    Tokenize(cmd::tokenize::Args),
    /// Download or import a model into the local store.
    Pull(cmd::pull::Args),
    /// List, show or remove models in the local store.
    Models(cmd::models::Args),
    /// Serve models over OpenAI- and Ollama-compatible HTTP APIs.
    Serve(cmd::serve::Args),
    /// Measure prompt and generation speed (tokens/s, GB/s, roofline).
    Bench(cmd::bench::Args),
    /// Gateway tenants: list, create, show, set, group.
    Tenants(cmd::admin::TenantsArgs),
    /// Gateway API keys: list, create (shown once), revoke.
    Keys(cmd::admin::KeysArgs),
    /// Gateway prices per model (per 1K tokens).
    Prices(cmd::admin::PricesArgs),
    /// Credit a tenant's balance.
    Topup(cmd::admin::TopupArgs),
    /// Single-use redemption codes: create, redeem.
    Codes(cmd::admin::CodesArgs),
    /// Usage totals per day, model and tenant; statements (JSON, CSV).
    Usage(cmd::admin::UsageArgs),
    /// Upstream OpenAI-compatible channels: list, add, rm.
    Channels(cmd::admin::ChannelsArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HANLIN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        None => cmd::chat::run(cmd::chat::Args::default()),
        Some(Command::Run(a)) | Some(Command::Chat(a)) => cmd::chat::run(a),
        Some(Command::Generate(a)) => cmd::generate::run(a),
        Some(Command::Inspect(a)) => cmd::inspect::run(a),
        Some(Command::Tokenize(a)) => cmd::tokenize::run(a),
        Some(Command::Pull(a)) => cmd::pull::run(a),
        Some(Command::Models(a)) => cmd::models::run(a),
        Some(Command::Serve(a)) => cmd::serve::run(a),
        Some(Command::Convert(a)) => cmd::convert::run(a),
        Some(Command::Bench(a)) => cmd::bench::run(a),
        Some(Command::Tenants(a)) => cmd::admin::tenants(a),
        Some(Command::Keys(a)) => cmd::admin::keys(a),
        Some(Command::Prices(a)) => cmd::admin::prices(a),
        Some(Command::Topup(a)) => cmd::admin::topup(a),
        Some(Command::Codes(a)) => cmd::admin::codes(a),
        Some(Command::Usage(a)) => cmd::admin::usage(a),
        Some(Command::Channels(a)) => cmd::admin::channels(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
