//! `hanlin pull`.

/// Arguments of `hanlin pull`.
#[derive(clap::Args, Debug, Default)]
pub struct Args {}

/// Runs the subcommand.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`hanlin pull` is not implemented yet")
}
