//! `ucp-kms render`: the EncryptionConfiguration YAML for a UCP configuration, as a transition
//! from the installed file when one is given.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use kms_model::{Diagnostic, LintError, Validated, load_settings_bytes};
use serde::Serialize;

use crate::Outcome;
use crate::cli::{GlobalArgs, OutputFormat};
use crate::input::{display_name, read_document};
use crate::output::print_json;

/// Arguments of `ucp-kms render`.
#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    /// UCP configuration file (TOML, as `GET /api/ucp/config-toml` exports it); `-` for stdin.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,

    /// The installed EncryptionConfiguration: every provider that may have written data stays
    /// in the result for reads.
    #[arg(long, value_name = "FILE")]
    previous: Option<PathBuf>,
}

/// `--output json`: the file, or why there is none.
#[derive(Debug, Default, Serialize)]
struct Report {
    /// Whether a file was rendered; false for "nothing to render" and for errors.
    rendered: bool,
    /// The file's bytes as text; empty when there is none.
    yaml: String,
    /// `sha256:<hex>` of `yaml`, when there is a file.
    hash: Option<String>,
    /// Why there is no file although the command succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    /// Problems that stop rendering, each with `field` and `message`.
    errors: Vec<Problem>,
    /// What the operator should know: settings warnings and transition warnings.
    warnings: Vec<Problem>,
}

/// One error or warning of the JSON report.
#[derive(Debug, Serialize)]
struct Problem {
    /// The file it is about: the configuration, the installed file, or empty for the result.
    file: String,
    /// The key path or field path; empty for the whole document.
    field: String,
    /// What is wrong.
    message: String,
    /// 1-based line, for problems of the UCP configuration.
    line: Option<usize>,
    /// 1-based column, for problems of the UCP configuration.
    column: Option<usize>,
}

impl Problem {
    fn located(file: &str, field: &str, message: &str) -> Self {
        Self {
            file: file.to_owned(),
            field: field.to_owned(),
            message: message.to_owned(),
            line: None,
            column: None,
        }
    }

    fn from_diagnostic(file: &str, diagnostic: &Diagnostic) -> Self {
        Self {
            line: diagnostic.line,
            column: diagnostic.column,
            ..Self::located(file, &diagnostic.field, &diagnostic.message)
        }
    }

    fn from_lint(file: &str, error: &LintError) -> Self {
        Self::located(file, &error.field, &error.message)
    }

    fn message(message: impl Into<String>) -> Self {
        Self { message: message.into(), ..Self::located("", "", "") }
    }

    /// `file:line:col: field: message`, as `ucp-kms validate` prints problems.
    fn to_line(&self) -> String {
        let mut line = String::new();
        if !self.file.is_empty() {
            line.push_str(&self.file);
            line.push(':');
            if let (Some(l), Some(c)) = (self.line, self.column) {
                line.push_str(&format!("{l}:{c}:"));
            }
            line.push(' ');
        }
        if !self.field.is_empty() {
            line.push_str(&self.field);
            line.push_str(": ");
        }
        line.push_str(&self.message);
        line
    }
}

pub(crate) fn run(args: &RenderArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    if args.config == Path::new("-") && args.previous.as_deref() == Some(Path::new("-")) {
        bail!("--config and --previous cannot both read stdin");
    }
    let version = global.kubernetes_version;
    let mut report = Report::default();

    let config_name = display_name(&args.config);
    let diagnostics = |list: &[Diagnostic]| -> Vec<Problem> {
        list.iter().map(|d| Problem::from_diagnostic(&config_name, d)).collect()
    };
    let settings = match load_settings_bytes(&read_document(&args.config)?, version) {
        Ok(Validated { settings, warnings }) => {
            report.warnings = diagnostics(&warnings);
            settings
        }
        Err(invalid) => {
            report.errors = diagnostics(&invalid.errors);
            report.warnings = diagnostics(&invalid.warnings);
            return finish(report, global.output);
        }
    };

    let mut previous = None;
    if let Some(path) = &args.previous {
        match kms_model::decode(&read_document(path)?, version) {
            Ok(config) => previous = Some(config),
            Err(errors) => {
                let name = display_name(path);
                report.errors = errors.iter().map(|e| Problem::from_lint(&name, e)).collect();
                return finish(report, global.output);
            }
        }
    }

    match kms_render::render(&settings, version, previous.as_ref()) {
        Ok(Some(rendered)) => {
            tracing::debug!(
                kubernetes.version = %version,
                config.hash = %rendered.hash,
                previous = previous.is_some(),
                "rendered encryption configuration"
            );
            report.rendered = true;
            report.yaml =
                String::from_utf8(rendered.yaml).context("the rendered file is not UTF-8 text")?;
            report.hash = Some(rendered.hash);
            report.warnings.extend(rendered.warnings.into_iter().map(Problem::message));
        }
        Ok(None) => {
            report.note = Some(
                "kms is disabled and no installed file was given: there is nothing to render"
                    .to_owned(),
            );
        }
        Err(err) => report.errors.push(Problem::message(err.to_string())),
    }
    finish(report, global.output)
}

/// Prints the report. Text: the YAML bytes alone on stdout, so that they can be piped into a
/// file, and the diagnostics on stderr. JSON: one document on stdout that holds everything.
fn finish(report: Report, output: OutputFormat) -> anyhow::Result<Outcome> {
    let outcome = if report.errors.is_empty() { Outcome::Yes } else { Outcome::No };
    if output == OutputFormat::Json {
        print_json(&report)?;
        return Ok(outcome);
    }

    {
        let mut stderr = io::stderr().lock();
        // Problems of an input file read like `ucp-kms validate` prints them; the others say
        // what they are.
        for error in &report.errors {
            let prefix = if error.file.is_empty() { "error: " } else { "" };
            writeln!(stderr, "{prefix}{}", error.to_line())?;
        }
        for warning in &report.warnings {
            writeln!(stderr, "warning: {}", warning.to_line())?;
        }
        if let Some(note) = &report.note {
            writeln!(stderr, "note: {note}")?;
        }
    }
    let mut stdout = io::stdout().lock();
    stdout.write_all(report.yaml.as_bytes())?;
    stdout.flush()?;
    Ok(outcome)
}
