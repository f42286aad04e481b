//! `hanlin chat`.

/// Arguments of `hanlin chat`.
#[derive(clap::Args, Debug, Default)]
pub struct Args {}

/// Runs the subcommand.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`hanlin chat` is not implemented yet")
}
