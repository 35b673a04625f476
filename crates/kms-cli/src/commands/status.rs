//! `ucp-kms status`.

use clap::Args;

use crate::Outcome;
use crate::cli::GlobalArgs;

/// Arguments of `ucp-kms status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {}

pub(crate) fn run(_args: &StatusArgs, _global: &GlobalArgs) -> anyhow::Result<Outcome> {
    // FIXME: placeholder until this command is built; it refuses to run rather than pretend.
    anyhow::bail!("`ucp-kms status` is not available in this build")
}
