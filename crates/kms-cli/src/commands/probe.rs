//! `ucp-kms probe`.

use clap::Args;

use crate::Outcome;
use crate::cli::GlobalArgs;

/// Arguments of `ucp-kms probe`.
#[derive(Debug, Args)]
pub(crate) struct ProbeArgs {}

pub(crate) fn run(_args: &ProbeArgs, _global: &GlobalArgs) -> anyhow::Result<Outcome> {
    // FIXME: placeholder until this command is built; it refuses to run rather than pretend.
    anyhow::bail!("`ucp-kms probe` is not available in this build")
}
