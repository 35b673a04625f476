//! `ucp-kms rollback`: put the previous EncryptionConfiguration back; the current one becomes
//! the previous version, so a second rollback undoes the first.

use std::io::{self, Write};

use clap::Args;
use kms_mount::drift;
use kms_mount::install::{InstallError, PREVIOUS_SUFFIX};
use serde::Serialize;

use super::host::{TargetArgs, print_notes};
use crate::Outcome;
use crate::cli::{GlobalArgs, OutputFormat};
use crate::output::print_json;

/// Arguments of `ucp-kms rollback`.
#[derive(Debug, Args)]
pub(crate) struct RollbackArgs {
    #[command(flatten)]
    target: TargetArgs,

    /// Roll back even when the previous version lacks a provider that writes now (whose data
    /// would become unreadable) or cannot be decoded.
    #[arg(long)]
    force: bool,
}

/// What `rollback` did, as `--output json` prints it.
#[derive(Debug, Default, Serialize)]
struct Report {
    /// Whether the previous version was restored.
    rolled_back: bool,
    /// Host path of the owned file.
    path: String,
    /// `sha256:<hex>` of the file installed now.
    installed_hash: Option<String>,
    /// Unified diff from the replaced file to the restored one.
    diff: String,
    /// Why nothing was restored.
    problems: Vec<String>,
    warnings: Vec<String>,
}

pub(crate) fn run(args: &RollbackArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let version = global.kubernetes_version;
    let file = args.target.owned_file()?;
    let path = file.host_path().display().to_string();
    let mut report = Report { path: path.clone(), ..Report::default() };

    let current = file.read()?;
    let Some(previous) = file.read_previous()? else {
        report.problems.push(format!(
            "no previous version to roll back to: {path}{PREVIOUS_SUFFIX} does not exist"
        ));
        return finish(&report, global.output);
    };

    // Data written by the current write provider needs it for reads; the previous version may
    // predate it.
    let decoded = (
        current.as_deref().map(|bytes| kms_model::decode(bytes, version)),
        kms_model::decode(&previous, version),
    );
    if let (Some(Ok(current)), Ok(restored)) = &decoded {
        let dropped = drift::dropped_write_providers(current, restored);
        if !dropped.is_empty() {
            let message = format!(
                "the previous version lacks the provider(s) writing now: {}; whatever they \
                 wrote since would become unreadable",
                dropped.join(", ")
            );
            if args.force {
                report.warnings.push(format!("rolling back anyway (--force): {message}"));
            } else {
                report.problems.push(format!(
                    "refusing to roll back: {message}; use --force if nothing was written with them"
                ));
                return finish(&report, global.output);
            }
        }
    }
    if let Err(errors) = &decoded.1 {
        let errors: Vec<_> = errors.iter().map(ToString::to_string).collect();
        let message = format!(
            "kube-apiserver {version} cannot decode the previous version {path}{PREVIOUS_SUFFIX} \
             ({})",
            errors.join("; ")
        );
        if !args.force {
            report.problems.push(format!(
                "refusing to roll back: {message}; use --force to restore it anyway"
            ));
            return finish(&report, global.output);
        }
        report.warnings.push(format!("rolling back anyway (--force): {message}"));
    }

    let restored = match file.rollback() {
        Ok(restored) => restored,
        Err(InstallError::NoPrevious(_)) => {
            report.problems.push(format!(
                "no previous version to roll back to: {path}{PREVIOUS_SUFFIX} does not exist"
            ));
            return finish(&report, global.output);
        }
        Err(err) => return Err(err.into()),
    };
    report.rolled_back = true;
    report.installed_hash = Some(kms_render::config_hash(&restored));
    report.diff = drift::unified_diff(
        current.as_deref().unwrap_or_default(),
        &restored,
        "replaced",
        "restored",
    );
    report.warnings.push(
        "ucp-kms status reports drift and ucp-kms apply re-installs the desired file until the \
         settings match the restored one"
            .to_owned(),
    );
    finish(&report, global.output)
}

fn finish(report: &Report, output: OutputFormat) -> anyhow::Result<Outcome> {
    let outcome = if report.problems.is_empty() { Outcome::Yes } else { Outcome::No };
    if output == OutputFormat::Json {
        print_json(report)?;
        return Ok(outcome);
    }
    print_notes(&report.warnings, &report.problems)?;
    if report.rolled_back {
        let mut stdout = io::stdout().lock();
        stdout.write_all(report.diff.as_bytes())?;
        let hash = report.installed_hash.as_deref().unwrap_or_default();
        writeln!(
            stdout,
            "restored {} ({hash}) from {}{PREVIOUS_SUFFIX}",
            report.path, report.path
        )?;
        writeln!(stdout, "the replaced version is now {}{PREVIOUS_SUFFIX}", report.path)?;
        stdout.flush()?;
    }
    Ok(outcome)
}
