//! `ucp-kms prune`: keep only the write provider of each resource entry, once the operator
//! confirms that every object has been rewritten with it.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::Args;
use kms_model::LintOptions;
use kms_mount::drift::{self, Installation, Installed};
use kms_mount::install::{InstallOutcome, PREVIOUS_SUFFIX};
use serde::Serialize;

use super::host::{TargetArgs, chain, load_settings, print_notes};
use crate::Outcome;
use crate::cli::{GlobalArgs, OutputFormat};
use crate::output::print_json;

/// What must happen before a prune, in the words the refusal uses.
const REENCRYPT_FIRST: &str = "refusing to prune without --confirm-reencrypted: dropping a \
    provider makes every object it wrote unreadable. First rewrite every object of the \
    encrypted resources with the current write provider, for example \
    `kubectl get secrets -A -o json | kubectl replace -f -` (once per resource in \
    kms_resources), then run ucp-kms prune again with --confirm-reencrypted";

/// Arguments of `ucp-kms prune`.
#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
    /// UCP configuration file (TOML, as `GET /api/ucp/config-toml` exports it); `-` for stdin.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,

    #[command(flatten)]
    target: TargetArgs,

    /// Confirm that every object of the encrypted resources has been rewritten with the
    /// current write provider, so the providers after it are no longer needed for reads.
    #[arg(long)]
    confirm_reencrypted: bool,
}

/// What `prune` did, as `--output json` prints it.
#[derive(Debug, Default, Serialize)]
struct Report {
    /// Whether a pruned file was installed.
    pruned: bool,
    /// Host path of the owned file.
    path: String,
    /// `sha256:<hex>` of the file installed before this run.
    installed_hash: Option<String>,
    /// `sha256:<hex>` of the file installed now.
    pruned_hash: Option<String>,
    /// Unified diff from the former file to the pruned one.
    diff: String,
    /// Why nothing was pruned.
    problems: Vec<String>,
}

pub(crate) fn run(args: &PruneArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let version = global.kubernetes_version;
    let file = args.target.owned_file()?;
    let mut report = Report { path: file.host_path().display().to_string(), ..Report::default() };
    if !args.confirm_reencrypted {
        report.problems.push(REENCRYPT_FIRST.to_owned());
        return finish(&report, global.output);
    }
    let Some(settings) = load_settings(&args.config, version, global.output)? else {
        return Ok(Outcome::No);
    };

    let installation = Installation::read(&file, version)?;
    let installed = &installation.installed;
    report.installed_hash = installed.bytes().map(kms_render::config_hash);
    let Installed::Parsed { bytes, config } = installed else {
        report.problems.push(match installed {
            Installed::Nothing => {
                format!("nothing is installed at {}: nothing to prune", report.path)
            }
            _ => format!(
                "refusing to prune: {}",
                drift::desired(&settings, version, installed).err().map_or_else(
                    || "the installed file cannot be decoded".to_owned(),
                    |err| err.to_string()
                )
            ),
        });
        return finish(&report, global.output);
    };

    // Pruning a file that is not the desired one would keep a writer that never wrote, or
    // build on a hand edit.
    match drift::desired(&settings, version, installation.start()) {
        Ok(Some(desired)) if desired.yaml == *bytes => {}
        Ok(_) => {
            report.problems.push(format!(
                "refusing to prune: {} differs from the desired file; run ucp-kms apply, \
                 re-encrypt every object, then prune",
                report.path
            ));
            return finish(&report, global.output);
        }
        Err(err) => {
            report.problems.push(format!("refusing to prune: {}", chain(err)));
            return finish(&report, global.output);
        }
    }

    let pruned = kms_render::prune(config);
    let rejected = kms_model::validate(&pruned, &LintOptions { version, ..LintOptions::default() });
    if !rejected.is_empty() {
        let errors: Vec<_> = rejected.iter().map(ToString::to_string).collect();
        report.problems.push(format!(
            "refusing to prune: kube-apiserver {version} would reject the pruned file: {}",
            errors.join("; ")
        ));
        return finish(&report, global.output);
    }
    let yaml = kms_render::to_yaml(&pruned);
    report.diff = drift::unified_diff(bytes, &yaml, "installed", "pruned");
    report.pruned_hash = Some(kms_render::config_hash(&yaml));
    report.pruned = file.install(&yaml)? != InstallOutcome::Unchanged;
    finish(&report, global.output)
}

fn finish(report: &Report, output: OutputFormat) -> anyhow::Result<Outcome> {
    let outcome = if report.problems.is_empty() { Outcome::Yes } else { Outcome::No };
    if output == OutputFormat::Json {
        print_json(report)?;
        return Ok(outcome);
    }
    if !report.problems.is_empty() {
        print_notes(&[], &report.problems)?;
        return Ok(outcome);
    }

    let mut stdout = io::stdout().lock();
    let hash = report.pruned_hash.as_deref().unwrap_or_default();
    if report.pruned {
        stdout.write_all(report.diff.as_bytes())?;
        writeln!(stdout, "pruned {} ({hash})", report.path)?;
        writeln!(stdout, "the previous version is kept as {}{PREVIOUS_SUFFIX}", report.path)?;
    } else {
        writeln!(
            stdout,
            "nothing to prune: every resource entry of {} has one provider",
            report.path
        )?;
    }
    stdout.flush()?;
    Ok(outcome)
}
