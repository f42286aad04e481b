//! `hanlin tokenize`: token ids for a text, with llama.cpp's special-token semantics.

use anyhow::Context;
use hanlin_gguf::GgufFile;
use hanlin_tokenizer::Tokenizer;

use super::resolve::resolve_model;

/// Arguments of `hanlin tokenize`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model: a GGUF path or a store name.
    #[arg(long, short, default_value = "gemma3:270m")]
    pub model: String,
    /// Add nothing: no BOS/EOS (the vocab test vectors' semantics).
    #[arg(long)]
    pub no_special: bool,
    /// Turn special-token text such as `<start_of_turn>` into its token.
    #[arg(long)]
    pub parse_special: bool,
    /// Print `{"tokens":[…]}` (the default) or, without it, one `id<TAB>piece` per line.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub json: bool,
    /// The text to tokenize.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub text: Vec<String>,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let path = resolve_model(&args.model)?;
    let file = GgufFile::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let tokenizer = Tokenizer::from_gguf(&file).context("loading the tokenizer")?;
    let text = args.text.join(" ");
    let ids = tokenizer.encode(&text, !args.no_special, args.parse_special)?;
    if args.json {
        println!("{}", serde_json::json!({ "tokens": ids }));
    } else {
        for id in ids {
            let piece = tokenizer.token_to_piece(id, true);
            println!("{id}\t{:?}", String::from_utf8_lossy(&piece));
        }
    }
    Ok(())
}
