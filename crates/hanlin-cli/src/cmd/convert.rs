//! `hanlin convert`: turn a Hugging Face checkpoint into a GGUF file hanlin (and llama.cpp)
//! can load. BERT-family embedding models for now.

use std::path::PathBuf;

use anyhow::Context;
use hanlin_models::bert::{write_gguf_with, GgufWeightType};

/// Arguments of `hanlin convert`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory with config.json, model.safetensors and tokenizer.json.
    pub hf_dir: PathBuf,
    /// Output GGUF path.
    pub out: PathBuf,
    /// Store matrices as f16 instead of f32.
    #[arg(long)]
    pub f16: bool,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let ty = if args.f16 {
        GgufWeightType::F16
    } else {
        GgufWeightType::F32
    };
    write_gguf_with(&args.hf_dir, &args.out, ty)
        .with_context(|| format!("converting {}", args.hf_dir.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
