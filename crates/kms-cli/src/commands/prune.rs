//! `ucp-kms prune`.

use clap::Args;

use crate::Outcome;
use crate::cli::GlobalArgs;

/// Arguments of `ucp-kms prune`.
#[derive(Debug, Args)]
pub(crate) struct PruneArgs {}

pub(crate) fn run(_args: &PruneArgs, _global: &GlobalArgs) -> anyhow::Result<Outcome> {
    // FIXME: placeholder until this command is built; it refuses to run rather than pretend.
    anyhow::bail!("`ucp-kms prune` is not available in this build")
}
