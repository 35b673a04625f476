//! `ucp-kms status`: is the installed file the desired one, does the plugin socket listen, and
//! is the plugin healthy?

use std::io::{self, Write};
use std::path::PathBuf;

use clap::Args;
use kms_mount::drift::Installation;
use kms_mount::preflight::{PreflightOptions, preflight};
use kms_mount::status::{Status, StatusOptions};

use super::host::{TargetArgs, block_on, load_settings, print_warnings};
use crate::Outcome;
use crate::cli::{GlobalArgs, OutputFormat};
use crate::output::print_json;

/// Arguments of `ucp-kms status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// UCP configuration file (TOML, as `GET /api/ucp/config-toml` exports it); `-` for stdin.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,

    #[command(flatten)]
    target: TargetArgs,
}

pub(crate) fn run(args: &StatusArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let version = global.kubernetes_version;
    let Some(settings) = load_settings(&args.config, version, global.output)? else {
        return Ok(Outcome::No);
    };
    let file = args.target.owned_file()?;
    let installation = Installation::read(&file, version)?;
    let options = PreflightOptions {
        root: args.target.root.clone(),
        encryption_config: args.target.encryption_config.clone(),
        probe: true,
    };
    let checked = block_on(preflight(&settings, version, &options))?;
    let options = StatusOptions {
        root: args.target.root.clone(),
        encryption_config: file.host_path().to_path_buf(),
        repair: Some("run ucp-kms apply".to_owned()),
    };
    let report = Status::assemble(&settings, version, &installation, &checked, &options);

    let outcome = if report.is_ok() { Outcome::Yes } else { Outcome::No };
    match global.output {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Text => print_text(&report)?,
    }
    Ok(outcome)
}

fn print_text(report: &Status) -> io::Result<()> {
    let mut out = io::stdout().lock();
    let none = "none";
    writeln!(out, "kms:        {}", if report.kms_enabled { "enabled" } else { "disabled" })?;
    writeln!(out, "installed:  {}", report.installed_hash.as_deref().unwrap_or(none))?;
    writeln!(out, "desired:    {}", report.desired_hash.as_deref().unwrap_or(none))?;
    writeln!(out, "drift:      {}", if report.drift { "yes" } else { "no" })?;
    if let Some(socket) = &report.socket {
        writeln!(out, "socket:     {} ({})", socket.path, socket.state)?;
    }
    if let Some(plugin) = &report.plugin {
        writeln!(out, "plugin:     {}", plugin.to_line())?;
    }
    for problem in &report.problems {
        writeln!(out, "problem:    {problem}")?;
    }
    out.write_all(report.diff.as_bytes())?;
    out.flush()?;
    drop(out);

    print_warnings(&report.warnings)?;
    Ok(())
}
