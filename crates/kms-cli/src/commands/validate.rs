//! `ucp-kms validate`.

use clap::Args;

use crate::Outcome;
use crate::cli::GlobalArgs;

/// Arguments of `ucp-kms validate`.
#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {}

pub(crate) fn run(_args: &ValidateArgs, _global: &GlobalArgs) -> anyhow::Result<Outcome> {
    // FIXME: placeholder until this command is built; it refuses to run rather than pretend.
    anyhow::bail!("`ucp-kms validate` is not available in this build")
}
