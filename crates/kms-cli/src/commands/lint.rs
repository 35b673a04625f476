//! `ucp-kms lint`.

use clap::Args;

use crate::Outcome;
use crate::cli::GlobalArgs;

/// Arguments of `ucp-kms lint`.
#[derive(Debug, Args)]
pub(crate) struct LintArgs {}

pub(crate) fn run(_args: &LintArgs, _global: &GlobalArgs) -> anyhow::Result<Outcome> {
    // FIXME: placeholder until this command is built; it refuses to run rather than pretend.
    anyhow::bail!("`ucp-kms lint` is not available in this build")
}
