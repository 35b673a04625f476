//! `ucp-kms apply`.

use clap::Args;

use crate::Outcome;
use crate::cli::GlobalArgs;

/// Arguments of `ucp-kms apply`.
#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {}

pub(crate) fn run(_args: &ApplyArgs, _global: &GlobalArgs) -> anyhow::Result<Outcome> {
    // FIXME: placeholder until this command is built; it refuses to run rather than pretend.
    anyhow::bail!("`ucp-kms apply` is not available in this build")
}
