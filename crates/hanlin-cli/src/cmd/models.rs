//! `hanlin models`.

/// Arguments of `hanlin models`.
#[derive(clap::Args, Debug, Default)]
pub struct Args {}

/// Runs the subcommand.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`hanlin models` is not implemented yet")
}
