//! `hanlin tokenize`.

/// Arguments of `hanlin tokenize`.
#[derive(clap::Args, Debug, Default)]
pub struct Args {}

/// Runs the subcommand.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`hanlin tokenize` is not implemented yet")
}
