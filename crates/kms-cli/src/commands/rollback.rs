//! `ucp-kms rollback`.

use clap::Args;

use crate::Outcome;
use crate::cli::GlobalArgs;

/// Arguments of `ucp-kms rollback`.
#[derive(Debug, Args)]
pub(crate) struct RollbackArgs {}

pub(crate) fn run(_args: &RollbackArgs, _global: &GlobalArgs) -> anyhow::Result<Outcome> {
    // FIXME: placeholder until this command is built; it refuses to run rather than pretend.
    anyhow::bail!("`ucp-kms rollback` is not available in this build")
}
