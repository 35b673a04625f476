//! `ucp-kms validate`: every problem of the KMS settings in a UCP configuration file.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::Args;
use kms_model::{Diagnostic, KmsSettings, KubeVersion, load_settings_bytes};
use serde::Serialize;

use crate::Outcome;
use crate::cli::{GlobalArgs, OutputFormat};
use crate::input::{display_name, read_document};
use crate::output::print_json;

/// Arguments of `ucp-kms validate`.
#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// UCP configuration file (TOML, as `GET /api/ucp/config-toml` exports it); `-` for stdin.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

/// `--output json`.
#[derive(Debug, Serialize)]
struct Report<'a> {
    /// No errors (warnings allowed).
    valid: bool,
    /// Problems that stop rendering: `{"field", "message", "line", "column"}`.
    errors: &'a [Diagnostic],
    /// Problems that do not.
    warnings: &'a [Diagnostic],
}

pub(crate) fn run(args: &ValidateArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let bytes = read_document(&args.config)?;
    let version = global.kubernetes_version;
    let (settings, errors, warnings) = match load_settings_bytes(&bytes, version) {
        Ok(valid) => (Some(valid.settings), Vec::new(), valid.warnings),
        Err(invalid) => (None, invalid.errors, invalid.warnings),
    };
    tracing::debug!(
        config = %args.config.display(),
        kubernetes.version = %version,
        errors = errors.len(),
        warnings = warnings.len(),
        "validated ucp configuration"
    );

    let valid = errors.is_empty();
    match global.output {
        OutputFormat::Json => print_json(&Report { valid, errors: &errors, warnings: &warnings })?,
        OutputFormat::Text => {
            let name = display_name(&args.config);
            print_text(&name, &errors, &warnings, settings.as_ref(), version)?;
        }
    }
    Ok(if valid { Outcome::Yes } else { Outcome::No })
}

/// Compiler-style lines (`file:line:column: field: message`), then a summary line.
fn print_text(
    name: &str,
    errors: &[Diagnostic],
    warnings: &[Diagnostic],
    settings: Option<&KmsSettings>,
    version: KubeVersion,
) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    for error in errors {
        writeln!(stdout, "{}", located(name, error))?;
    }
    for warning in warnings {
        writeln!(stdout, "warning: {}", located(name, warning))?;
    }

    let counts = counts(errors.len(), warnings.len());
    match settings {
        None => writeln!(stdout, "{name}: invalid for Kubernetes {version}: {counts}")?,
        Some(settings) => {
            let what = summary(settings, version);
            writeln!(stdout, "{name}: valid for Kubernetes {version}: {what}{counts}")?;
        }
    }
    Ok(())
}

/// `file:41:3: field: message`, or `file: field: message` without a position.
fn located(name: &str, diagnostic: &Diagnostic) -> String {
    if diagnostic.line.is_some() {
        format!("{name}:{diagnostic}")
    } else {
        format!("{name}: {diagnostic}")
    }
}

fn counts(errors: usize, warnings: usize) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match (errors, warnings) {
        (0, 0) => String::new(),
        (0, w) => format!(", {}", plural(w, "warning")),
        (e, 0) => plural(e, "error"),
        (e, w) => format!("{}, {}", plural(e, "error"), plural(w, "warning")),
    }
}

/// What the settings mean for the target, in one phrase.
fn summary(settings: &KmsSettings, version: KubeVersion) -> String {
    if !settings.enabled {
        return "KMS disabled".to_owned();
    }
    let endpoint = settings.endpoint.as_ref().map(|e| e.to_url()).unwrap_or_default();
    format!(
        "KMS {} provider \"{}\" at {endpoint}",
        settings.effective_api_version(version),
        settings.name
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn counts_read_naturally() {
        assert_eq!(counts(0, 0), "");
        assert_eq!(counts(0, 1), ", 1 warning");
        assert_eq!(counts(2, 0), "2 errors");
        assert_eq!(counts(1, 2), "1 error, 2 warnings");
    }

    #[test]
    fn places_diagnostics_after_the_file_name() {
        let at = Diagnostic::error("cluster_config.kms_name", "bad").at(3, 14);
        assert_eq!(located("u.toml", &at), "u.toml:3:14: cluster_config.kms_name: bad");
        let nowhere = Diagnostic::error("", "bad");
        assert_eq!(located("u.toml", &nowhere), "u.toml: bad");
    }

    #[test]
    fn paths_are_shown_as_given() {
        assert_eq!(display_name(Path::new("-")), "<stdin>");
        assert_eq!(display_name(Path::new("conf/u.toml")), "conf/u.toml");
    }
}
