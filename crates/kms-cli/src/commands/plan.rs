//! `ucp-kms plan`.

use clap::Args;

use crate::Outcome;
use crate::cli::GlobalArgs;

/// Arguments of `ucp-kms plan`.
#[derive(Debug, Args)]
pub(crate) struct PlanArgs {}

pub(crate) fn run(_args: &PlanArgs, _global: &GlobalArgs) -> anyhow::Result<Outcome> {
    // FIXME: placeholder until this command is built; it refuses to run rather than pretend.
    anyhow::bail!("`ucp-kms plan` is not available in this build")
}
