//! `ucp-kms plan`: the API server container's mounts and flags for a UCP configuration.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use kms_mount::drift::{self, Installed};
use kms_mount::plan::{PlanOptions, plan};

use super::host::{
    MountModeArg, TargetArgs, chain, load_settings, print_warnings, write_plan_text,
};
use crate::Outcome;
use crate::cli::{GlobalArgs, OutputFormat};
use crate::output::print_json;

/// Arguments of `ucp-kms plan`.
#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// UCP configuration file (TOML, as `GET /api/ucp/config-toml` exports it); `-` for stdin.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,

    /// How to print the plan; `--output json` is the same as `--format json`.
    #[arg(long, value_enum)]
    format: Option<PlanFormat>,

    /// Mount the socket's directory (default) or the socket file itself.
    #[arg(long, value_enum)]
    mount_mode: Option<MountModeArg>,

    #[command(flatten)]
    target: TargetArgs,
}

/// The forms a plan is printed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PlanFormat {
    /// Mounts and flags, for people.
    Text,
    /// `{"mounts": [...], "apiserver_flags": [...], "warnings": [...]}`.
    Json,
    /// One `--mount type=bind,...` argument of `docker run` per line.
    Docker,
    /// The `volumes` and `volumeMounts` of a static pod, with `hostPath` volumes.
    Kubernetes,
}

pub(crate) fn run(args: &PlanArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let version = global.kubernetes_version;
    let Some(settings) = load_settings(&args.config, version, global.output)? else {
        return Ok(Outcome::No);
    };
    let mut options = PlanOptions {
        mount_mode: args.mount_mode.map(Into::into),
        encryption_config: args.target.encryption_config.clone(),
        ..PlanOptions::default()
    };

    // The file that will be installed decides which plugins must stay reachable: kms
    // providers kept for reads need their sockets as much as the one that writes.
    let installed = Installed::read(&args.target.owned_file()?, version)?;
    match drift::desired(&settings, version, &installed) {
        Ok(Some(desired)) => options = options.with_installed(&desired.config),
        Ok(None) => {}
        Err(err) => {
            writeln!(io::stderr(), "error: {}", chain(err))?;
            return Ok(Outcome::No);
        }
    }
    let plan = match plan(&settings, version, &options) {
        Ok(plan) => plan,
        Err(err) => {
            writeln!(io::stderr(), "error: {err}")?;
            return Ok(Outcome::No);
        }
    };

    let format = match (args.format, global.output) {
        (Some(format), _) => format,
        (None, OutputFormat::Json) => PlanFormat::Json,
        (None, OutputFormat::Text) => PlanFormat::Text,
    };
    if format != PlanFormat::Json {
        print_warnings(&plan.warnings)?;
    }
    let mut stdout = io::stdout().lock();
    match format {
        PlanFormat::Json => print_json(&plan)?,
        PlanFormat::Text => write_plan_text(&mut stdout, &plan)?,
        PlanFormat::Docker => stdout.write_all(plan.to_docker_args().as_bytes())?,
        PlanFormat::Kubernetes => stdout.write_all(plan.to_kubernetes_yaml().as_bytes())?,
    }
    stdout.flush()?;
    Ok(Outcome::Yes)
}
