//! `ucp-kms status`: is the installed file the desired one, does the plugin socket listen, and
//! is the plugin healthy?

use std::io::{self, Write};
use std::path::PathBuf;

use clap::Args;
use kms_mount::drift::{self, DriftError, Installed};
use kms_mount::preflight::{PreflightOptions, SocketCheck, check_kept_sockets, preflight};
use serde::Serialize;

use super::host::{PluginHealth, TargetArgs, block_on, chain, load_settings};
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

/// The state of the host, as `--output json` prints it.
#[derive(Debug, Serialize)]
struct Report {
    kms_enabled: bool,
    /// `sha256:<hex>` of the file the settings call for; null when none is needed or it
    /// cannot be rendered.
    desired_hash: Option<String>,
    /// `sha256:<hex>` of the installed file; null when nothing is installed.
    installed_hash: Option<String>,
    /// Whether the installed file differs from the desired one.
    drift: bool,
    /// Unified diff from the installed file to the desired one; empty without drift.
    diff: String,
    /// The plugin socket; null when KMS is off.
    socket: Option<SocketCheck>,
    /// The plugin's health; null when KMS is off or the socket does not listen.
    plugin: Option<PluginHealth>,
    /// Everything that makes the answer "no".
    problems: Vec<String>,
    /// What the operator should know but does not make the answer "no".
    warnings: Vec<String>,
}

pub(crate) fn run(args: &StatusArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let version = global.kubernetes_version;
    let Some(settings) = load_settings(&args.config, version, global.output)? else {
        return Ok(Outcome::No);
    };
    let file = args.target.owned_file()?;
    let installed = Installed::read(&file, version)?;
    let mut problems = Vec::new();

    // An unparseable file is measured against the render without a transition: it is drift
    // either way, and `apply --force` would install exactly that.
    let desired = match drift::desired(&settings, version, &installed) {
        Ok(desired) => Ok(desired),
        Err(err @ DriftError::Unparseable { .. }) => {
            problems.push(err.to_string());
            kms_render::render(&settings, version, None).map_err(chain)
        }
        Err(err) => Err(chain(err)),
    };
    let desired = desired.unwrap_or_else(|problem| {
        problems.push(problem);
        None
    });
    let measured = drift::compare(
        installed.bytes(),
        desired.as_ref().map(|rendered| rendered.yaml.as_slice()),
    );
    if measured.is_drifted() {
        let path = file.host_path().display();
        problems.push(match (&measured.installed_hash, &measured.desired_hash) {
            (None, _) => format!("nothing is installed at {path}: run ucp-kms apply"),
            (Some(_), None) => format!("{path} is installed but no file can be rendered"),
            (Some(_), Some(_)) => {
                format!("{path} differs from the desired file (drift): run ucp-kms apply")
            }
        });
    }

    let options = PreflightOptions {
        root: args.target.root.clone(),
        encryption_config: args.target.encryption_config.clone(),
        probe: true,
    };
    let checked = block_on(preflight(&settings, version, &options))?;
    problems.extend(checked.problems.iter().cloned());
    if let Some(desired) = &desired {
        problems.extend(check_kept_sockets(&args.target.root, &settings, &desired.config));
    }

    let report = Report {
        kms_enabled: settings.enabled,
        desired_hash: measured.desired_hash.clone(),
        installed_hash: measured.installed_hash.clone(),
        drift: measured.is_drifted(),
        diff: measured.diff,
        socket: checked.socket,
        plugin: checked.plugin.as_ref().map(PluginHealth::from),
        problems,
        warnings: checked.warnings,
    };
    let outcome = if report.problems.is_empty() { Outcome::Yes } else { Outcome::No };
    match global.output {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Text => print_text(&report)?,
    }
    Ok(outcome)
}

fn print_text(report: &Report) -> io::Result<()> {
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

    let mut stderr = io::stderr().lock();
    for warning in &report.warnings {
        writeln!(stderr, "warning: {warning}")?;
    }
    Ok(())
}
