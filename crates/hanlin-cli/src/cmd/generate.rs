//! `hanlin generate`.

/// Arguments of `hanlin generate`.
#[derive(clap::Args, Debug, Default)]
pub struct Args {}

/// Runs the subcommand.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`hanlin generate` is not implemented yet")
}
