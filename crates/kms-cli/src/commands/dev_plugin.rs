//! `ucp-kms dev-plugin`.

use clap::Args;

use crate::Outcome;
use crate::cli::GlobalArgs;

/// Arguments of `ucp-kms dev-plugin`.
#[derive(Debug, Args)]
pub(crate) struct DevPluginArgs {}

pub(crate) fn run(_args: &DevPluginArgs, _global: &GlobalArgs) -> anyhow::Result<Outcome> {
    // FIXME: placeholder until this command is built; it refuses to run rather than pretend.
    anyhow::bail!("`ucp-kms dev-plugin` is not available in this build")
}
