//! Dispatch to one module per command.

pub(crate) mod apply;
pub(crate) mod dev_plugin;
mod host;
pub(crate) mod lint;
pub(crate) mod plan;
pub(crate) mod probe;
pub(crate) mod prune;
pub(crate) mod render;
pub(crate) mod rollback;
pub(crate) mod status;
pub(crate) mod validate;

use crate::Outcome;
use crate::cli::{Cli, Command};

/// The version line of `--version`: the crate version and, when known, the commit.
pub(crate) const VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (", env!("UCP_KMS_COMMIT"), ")");

/// Runs the chosen command.
pub(crate) fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let global = &cli.global;
    match cli.command {
        Command::Validate(args) => validate::run(&args, global),
        Command::Render(args) => render::run(&args, global),
        Command::Lint(args) => lint::run(&args, global),
        Command::Plan(args) => plan::run(&args, global),
        Command::Apply(args) => apply::run(&args, global),
        Command::Status(args) => status::run(&args, global),
        Command::Prune(args) => prune::run(&args, global),
        Command::Rollback(args) => rollback::run(&args, global),
        Command::Probe(args) => probe::run(&args, global),
        Command::DevPlugin(args) => dev_plugin::run(&args, global),
    }
}
