//! `hanlin models`: list, show and remove models in the local store.

use hanlin_modelstore::{ago, catalog, format_params, format_size, ModelInfo, NoProgress, Store};

/// Arguments of `hanlin models`.
#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// What to do (default: list).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `hanlin models` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List stored models.
    #[command(alias = "ls")]
    List,
    /// Show one model's manifest and file summary.
    Show {
        /// Model name, NAME[:TAG].
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove a model (its file goes too unless another name uses it).
    #[command(alias = "remove")]
    Rm {
        /// Model name, NAME[:TAG].
        name: String,
    },
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let store = Store::open_default()?;
    match args.command.unwrap_or(Command::List) {
        Command::List => list(&store),
        Command::Show { name, json } => {
            let info = store.show(&name)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                print_info(&info);
            }
            Ok(())
        }
        Command::Rm { name } => {
            let r = store.remove(&name, &NoProgress)?;
            let blob = if r.blob_deleted {
                format!("freed {}", format_size(r.manifest.size))
            } else {
                "file kept: another name uses it".to_string()
            };
            println!("removed {} ({blob})", r.manifest.name);
            Ok(())
        }
    }
}

fn list(store: &Store) -> anyhow::Result<()> {
    let models = store.list()?;
    let mut rows = vec![["NAME", "ARCH", "PARAMS", "QUANT", "SIZE", "MODIFIED"].map(String::from)];
    for m in &models {
        rows.push([
            m.name.clone(),
            m.architecture.clone().unwrap_or_else(|| "-".into()),
            format_params(m.parameter_count),
            m.file_type.clone().unwrap_or_else(|| "-".into()),
            format_size(m.size),
            ago(&m.created),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    if models.is_empty() {
        let names: Vec<&str> = catalog().iter().map(|e| e.name).collect();
        eprintln!(
            "no models yet; try `hanlin pull {}`",
            names.first().copied().unwrap_or("SOURCE")
        );
    }
    Ok(())
}

fn print_info(info: &ModelInfo) {
    let m = &info.manifest;
    let g = &info.gguf;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let num = |v: Option<u64>| v.map_or_else(|| "-".into(), |n| n.to_string());
    let rows: Vec<(&str, String)> = vec![
        ("name", m.name.clone()),
        ("general.name", opt(&m.general_name)),
        ("architecture", opt(&m.architecture)),
        (
            "parameters",
            format!(
                "{} ({})",
                format_params(m.parameter_count),
                m.parameter_count
            ),
        ),
        ("file type", opt(&m.file_type)),
        (
            "size",
            format!("{} ({} bytes)", format_size(m.size), m.size),
        ),
        ("sha256", m.sha256.clone()),
        ("source", m.source.clone()),
        ("created", format!("{} ({})", m.created, ago(&m.created))),
        ("path", info.path.display().to_string()),
        ("gguf version", g.version.to_string()),
        ("context length", num(g.context_length)),
        ("embedding length", num(g.embedding_length)),
        ("layers", num(g.block_count)),
        (
            "heads (kv)",
            format!("{} ({})", num(g.head_count), num(g.head_count_kv)),
        ),
        (
            "tokenizer",
            format!(
                "{} ({} tokens)",
                opt(&g.tokenizer),
                g.vocab_size.map_or("-".into(), |n| n.to_string())
            ),
        ),
        (
            "chat template",
            if g.has_chat_template {
                "yes".into()
            } else {
                "no".into()
            },
        ),
        (
            "tensors",
            format!("{} ({})", g.tensor_count, tensor_types(info)),
        ),
    ];
    for (k, v) in rows {
        println!("{k:<17} {v}");
    }
}

fn tensor_types(info: &ModelInfo) -> String {
    let parts: Vec<String> = info
        .gguf
        .tensor_types
        .iter()
        .map(|(t, n)| format!("{t}: {n}"))
        .collect();
    parts.join(", ")
}
