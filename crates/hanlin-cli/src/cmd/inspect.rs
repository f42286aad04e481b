//! `hanlin inspect`.

/// Arguments of `hanlin inspect`.
#[derive(clap::Args, Debug, Default)]
pub struct Args {}

/// Runs the subcommand.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`hanlin inspect` is not implemented yet")
}
