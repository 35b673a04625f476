//! The command line of `ucp-kms`, as clap definitions.

use clap::{Args, Parser, Subcommand, ValueEnum};
use kms_model::KubeVersion;

use crate::commands::{
    apply, dev_plugin, lint, plan, probe, prune, render, rollback, status, validate,
};

/// Validate, render, install and check the Kubernetes KMS encryption configuration of a UCP
/// cluster.
#[derive(Debug, Parser)]
#[command(name = "ucp-kms", version = crate::commands::VERSION, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Kubernetes version of the API servers (1.14 to 1.36); it decides which rules apply.
    #[arg(long, global = true, value_name = "X.Y", default_value_t = KubeVersion::DEFAULT)]
    pub(crate) kubernetes_version: KubeVersion,

    /// Result format on stdout.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub(crate) output: OutputFormat,

    /// More detail on stderr (-v: debug, -vv: trace); UCP_KMS_LOG or RUST_LOG take precedence.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// Lines for people.
    Text,
    /// One JSON document for programs.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Report every problem of the KMS settings in a UCP configuration file.
    Validate(validate::ValidateArgs),
    /// Print the EncryptionConfiguration YAML for a UCP configuration.
    Render(render::RenderArgs),
    /// Check an EncryptionConfiguration file as kube-apiserver would when loading it.
    Lint(lint::LintArgs),
    /// Print the API server's mounts and flags for a UCP configuration.
    Plan(plan::PlanArgs),
    /// Preflight, then install the EncryptionConfiguration with a safe transition.
    Apply(apply::ApplyArgs),
    /// Compare the installed file with the desired one and check the plugin socket.
    Status(status::StatusArgs),
    /// Drop read-only providers once every object has been re-encrypted.
    Prune(prune::PruneArgs),
    /// Restore the previously installed EncryptionConfiguration.
    Rollback(rollback::RollbackArgs),
    /// Ask a KMS plugin for its health over its gRPC API.
    Probe(probe::ProbeArgs),
    /// Run a local KMS plugin for tests and demos; never for production.
    DevPlugin(dev_plugin::DevPluginArgs),
}
