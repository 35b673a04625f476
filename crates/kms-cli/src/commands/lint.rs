//! `ucp-kms lint`: would kube-apiserver of the target version load this EncryptionConfiguration?

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use kms_model::{LintError, LintOptions, lint};
use serde::Serialize;

use crate::Outcome;
use crate::cli::{GlobalArgs, OutputFormat};
use crate::input::{display_name, read_document};
use crate::output::print_json;

/// Arguments of `ucp-kms lint`.
#[derive(Debug, Args)]
pub(crate) struct LintArgs {
    /// EncryptionConfiguration file (YAML or JSON); `-` for stdin.
    #[arg(value_name = "FILE")]
    file: PathBuf,

    /// kube-apiserver's --feature-gates, such as `KMSv1=true` (KMSv1; KMSv2 from 1.25 to 1.31).
    #[arg(long, value_name = "NAME=BOOL,...", action = clap::ArgAction::Append)]
    feature_gates: Vec<String>,

    /// kube-apiserver runs with --encryption-provider-config-automatic-reload=true (1.26 or
    /// later), which makes KMS v1 provider names unique too.
    #[arg(long)]
    automatic_reload: bool,
}

/// `--output json`.
#[derive(Debug, Serialize)]
struct Report<'a> {
    /// kube-apiserver would load the file.
    accepted: bool,
    /// Why it would not: `{"field", "message"}` with kube-apiserver's field paths.
    errors: &'a [LintError],
}

pub(crate) fn run(args: &LintArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let options = options(args, global)?;
    let bytes = read_document(&args.file)?;
    let errors = lint(&bytes, &options);
    tracing::debug!(
        file = %args.file.display(),
        kubernetes.version = %options.version,
        errors = errors.len(),
        "linted encryption configuration"
    );

    let accepted = errors.is_empty();
    match global.output {
        OutputFormat::Json => print_json(&Report { accepted, errors: &errors })?,
        OutputFormat::Text => {
            let name = display_name(&args.file);
            let mut stdout = io::stdout().lock();
            for error in &errors {
                writeln!(stdout, "{name}: {error}")?;
            }
            let judge = judge(args, &options);
            if accepted {
                writeln!(stdout, "{name}: accepted by {judge}")?;
            } else {
                let n = errors.len();
                let plural = if n == 1 { "" } else { "s" };
                writeln!(stdout, "{name}: rejected by {judge}: {n} error{plural}")?;
            }
        }
    }
    Ok(if accepted { Outcome::Yes } else { Outcome::No })
}

/// The flags as kube-apiserver of the target version would take them.
fn options(args: &LintArgs, global: &GlobalArgs) -> anyhow::Result<LintOptions> {
    let version = global.kubernetes_version;
    if args.automatic_reload && !version.has_automatic_reload() {
        bail!(
            "--automatic-reload needs Kubernetes 1.26 or later: kube-apiserver {version} has no \
             --encryption-provider-config-automatic-reload"
        );
    }
    let mut options = LintOptions {
        automatic_reload: args.automatic_reload,
        ..LintOptions::for_version(version)
    };
    for spec in &args.feature_gates {
        options = options
            .with_feature_gates(spec)
            .with_context(|| format!("invalid --feature-gates {spec:?}"))?;
    }
    Ok(options)
}

/// `kube-apiserver 1.36 (--feature-gates=KMSv1=true)`.
fn judge(args: &LintArgs, options: &LintOptions) -> String {
    let mut flags: Vec<String> =
        args.feature_gates.iter().map(|spec| format!("--feature-gates={spec}")).collect();
    if args.automatic_reload {
        flags.push("--encryption-provider-config-automatic-reload=true".to_owned());
    }
    if flags.is_empty() {
        format!("kube-apiserver {}", options.version)
    } else {
        format!("kube-apiserver {} ({})", options.version, flags.join(" "))
    }
}
