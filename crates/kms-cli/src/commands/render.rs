//! `ucp-kms render`.

use clap::Args;

use crate::Outcome;
use crate::cli::GlobalArgs;

/// Arguments of `ucp-kms render`.
#[derive(Debug, Args)]
pub(crate) struct RenderArgs {}

pub(crate) fn run(_args: &RenderArgs, _global: &GlobalArgs) -> anyhow::Result<Outcome> {
    // FIXME: placeholder until this command is built; it refuses to run rather than pretend.
    anyhow::bail!("`ucp-kms render` is not available in this build")
}
