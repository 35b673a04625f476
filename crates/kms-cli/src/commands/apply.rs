//! `ucp-kms apply`: validate, start the transition from the installed file, preflight, install
//! atomically, then show what changed and the API server's mounts and flags.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::Args;
use kms_mount::drift::{self, DriftError, Installation, Installed};
use kms_mount::install::{InstallOutcome, OwnedFile, PREVIOUS_SUFFIX};
use kms_mount::plan::{Plan, PlanOptions, plan};
use kms_mount::preflight::{PreflightOptions, SocketCheck, check_kept_sockets, preflight};
use kms_mount::status::PluginHealth;
use kms_render::Rendered;
use serde::Serialize;

use super::host::{
    MountModeArg, TargetArgs, block_on, chain, load_settings, print_notes, write_plan_text,
};
use crate::Outcome;
use crate::cli::{GlobalArgs, OutputFormat};
use crate::output::print_json;

/// Arguments of `ucp-kms apply`.
#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    /// UCP configuration file (TOML, as `GET /api/ucp/config-toml` exports it); `-` for stdin.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,

    #[command(flatten)]
    target: TargetArgs,

    /// Show the diff and the plan, write nothing.
    #[arg(long)]
    dry_run: bool,

    /// Install even when the plugin is not listening or not healthy, or when the installed
    /// file cannot be decoded (it is kept as the previous version).
    #[arg(long)]
    force: bool,

    /// Mount the socket's directory (default) or the socket file itself.
    #[arg(long, value_enum)]
    mount_mode: Option<MountModeArg>,
}

/// What happened to the owned file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Applied {
    /// There was no file; it was installed.
    Created,
    /// The file was replaced; the former one is the previous version.
    Replaced,
    /// A hand edit or deletion was undone: the file ucp-kms installed is back, and the previous
    /// version is unchanged.
    Restored,
    /// The file already held the desired bytes.
    Unchanged,
    /// `--dry-run`: there is no file; it would be installed.
    WouldCreate,
    /// `--dry-run`: the file would be replaced.
    WouldReplace,
    /// Nothing was written, for the reasons in `problems`.
    #[default]
    Refused,
    /// KMS is off and nothing is installed: there is no file to write.
    NothingToDo,
}

/// What `apply` did, as `--output json` prints it.
#[derive(Debug, Default, Serialize)]
struct Report {
    kms_enabled: bool,
    /// Host path of the owned file.
    path: String,
    outcome: Applied,
    /// `sha256:<hex>` of the file installed before this run.
    installed_hash: Option<String>,
    /// `sha256:<hex>` of the file the settings call for.
    desired_hash: Option<String>,
    /// Unified diff from the installed file to the desired one.
    diff: String,
    socket: Option<SocketCheck>,
    plugin: Option<PluginHealth>,
    plan: Option<Plan>,
    /// Why nothing was written; empty otherwise.
    problems: Vec<String>,
    warnings: Vec<String>,
}

pub(crate) fn run(args: &ApplyArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let version = global.kubernetes_version;
    let Some(settings) = load_settings(&args.config, version, global.output)? else {
        return Ok(Outcome::No);
    };
    let file = args.target.owned_file()?;
    let mut report = Report {
        kms_enabled: settings.enabled,
        path: file.host_path().display().to_string(),
        ..Report::default()
    };

    // After a hand edit the transition starts from the file ucp-kms last installed, so the
    // edit is undone rather than built on.
    let installation = Installation::read(&file, version)?;
    let installed = &installation.installed;
    report.installed_hash = installed.bytes().map(kms_render::config_hash);
    report.warnings.extend(installation.warnings.iter().cloned());
    let start = installation.start();
    let Some(rendered) = desired(&settings, version, start, args.force, &file, &mut report) else {
        return finish(report, &file, global.output);
    };
    report.desired_hash = Some(rendered.hash.clone());
    report.diff = drift::compare(installed.bytes(), Some(&rendered.yaml)).diff;
    report.warnings.extend(rendered.warnings.iter().cloned());

    let options = PlanOptions {
        mount_mode: args.mount_mode.map(Into::into),
        encryption_config: args.target.encryption_config.clone(),
        ..PlanOptions::default()
    }
    .with_installed(&rendered.config);
    match plan(&settings, version, &options) {
        Ok(plan) => {
            report.warnings.extend(plan.warnings.iter().cloned());
            report.plan = Some(plan);
        }
        Err(err) => report.problems.push(err.to_string()),
    }

    let preflight_options = PreflightOptions {
        root: args.target.root.clone(),
        encryption_config: args.target.encryption_config.clone(),
        probe: true,
    };
    let checked = block_on(preflight(&settings, version, &preflight_options))?;
    report.socket = checked.socket.clone();
    report.plugin = checked.plugin.as_ref().map(PluginHealth::from);
    report.warnings.extend(checked.warnings.iter().cloned());
    let mut not_ready = checked.problems.clone();
    not_ready.extend(check_kept_sockets(&args.target.root, &settings, &rendered.config));
    if !not_ready.is_empty() {
        if args.force {
            for problem in &not_ready {
                report.warnings.push(format!("installing anyway (--force): {problem}"));
            }
        } else {
            report.problems.extend(not_ready);
            report.problems.push(
                "refusing to install: the KMS plugins must run and be healthy first; start them \
                 and apply again, or use --force"
                    .to_owned(),
            );
        }
    }

    report.outcome = if !report.problems.is_empty() {
        Applied::Refused
    } else if args.dry_run {
        match installed.bytes() {
            None => Applied::WouldCreate,
            Some(bytes) if bytes == rendered.yaml.as_slice() => Applied::Unchanged,
            Some(_) => Applied::WouldReplace,
        }
    } else {
        match file.install(&rendered.yaml)? {
            InstallOutcome::Created => Applied::Created,
            InstallOutcome::Replaced => Applied::Replaced,
            InstallOutcome::Restored => Applied::Restored,
            InstallOutcome::Unchanged => Applied::Unchanged,
        }
    };
    tracing::debug!(outcome = ?report.outcome, config.hash = %rendered.hash, "apply finished");
    finish(report, &file, global.output)
}

/// The file to install, rendered with the transition from `installed`; `None` when
/// there is nothing to install or it cannot be rendered (the report says why).
fn desired(
    settings: &kms_model::KmsSettings,
    version: kms_model::KubeVersion,
    installed: &Installed,
    force: bool,
    file: &OwnedFile,
    report: &mut Report,
) -> Option<Rendered> {
    let rendered = match drift::desired(settings, version, installed) {
        Err(err @ DriftError::Unparseable { .. }) if force => {
            report.warnings.push(format!(
                "installing anyway (--force): {err}; the installed file is kept as \"{}{}\"",
                file.host_path().display(),
                PREVIOUS_SUFFIX
            ));
            kms_render::render(settings, version, None).map_err(chain)
        }
        Err(err @ DriftError::Unparseable { .. }) => Err(format!(
            "refusing to install: {err}; fix the file by hand or use --force (the file is then \
             kept as \"{}{}\")",
            file.host_path().display(),
            PREVIOUS_SUFFIX
        )),
        Err(err) => Err(chain(err)),
        Ok(rendered) => Ok(rendered),
    };
    match rendered {
        Ok(Some(rendered)) => Some(rendered),
        Ok(None) => {
            report.outcome = Applied::NothingToDo;
            None
        }
        Err(problem) => {
            report.outcome = Applied::Refused;
            report.problems.push(problem);
            None
        }
    }
}

/// Prints the report. Text: the diff, a verdict line and the plan on stdout; warnings and
/// problems on stderr.
fn finish(report: Report, file: &OwnedFile, output: OutputFormat) -> anyhow::Result<Outcome> {
    let outcome = if report.problems.is_empty() { Outcome::Yes } else { Outcome::No };
    if output == OutputFormat::Json {
        print_json(&report)?;
        return Ok(outcome);
    }

    print_notes(&report.warnings, &report.problems)?;

    let mut stdout = io::stdout().lock();
    stdout.write_all(report.diff.as_bytes())?;
    let path = file.host_path().display();
    let hash = report.desired_hash.as_deref().unwrap_or_default();
    match report.outcome {
        Applied::Created | Applied::Replaced => {
            writeln!(stdout, "installed {path} ({hash})")?;
            if report.outcome == Applied::Replaced {
                writeln!(stdout, "the previous version is kept as {path}{PREVIOUS_SUFFIX}")?;
            }
        }
        Applied::Restored => writeln!(
            stdout,
            "restored {path} ({hash}), the file ucp-kms installed; the hand edit is not kept"
        )?,
        Applied::Unchanged => writeln!(stdout, "{path} already holds the desired file ({hash})")?,
        Applied::WouldCreate | Applied::WouldReplace => {
            writeln!(stdout, "dry run: would install {path} ({hash}); nothing written")?;
        }
        Applied::NothingToDo => {
            writeln!(stdout, "KMS is off and nothing is installed: nothing to install")?;
        }
        Applied::Refused => writeln!(stdout, "nothing written")?,
    }
    if let Some(plan) = &report.plan {
        write_plan_text(&mut stdout, plan)?;
    }
    stdout.flush()?;
    Ok(outcome)
}
