//! What the host commands (`plan`, `apply`, `status`, `prune`, `rollback`) share: where the
//! owned file lives, loading the settings, and printing plans and plugin health.

use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use kms_model::{Diagnostic, KmsSettings, KubeVersion, load_settings_bytes};
use kms_mount::install::{DEFAULT_ENCRYPTION_CONFIG, OwnedFile};
use kms_mount::plan::{MountKind, MountMode, Plan};

use crate::cli::OutputFormat;
use crate::input::{display_name, read_document};
use crate::output::print_json;

/// Where the owned EncryptionConfiguration is, on the host or under a sandbox root.
#[derive(Debug, Args)]
pub(crate) struct TargetArgs {
    /// Directory that host paths are interpreted under; `/` on a real host.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub(crate) root: PathBuf,

    /// Host path of the EncryptionConfiguration ucp-kms owns (absolute; its directory is what
    /// the API server mounts).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_ENCRYPTION_CONFIG)]
    pub(crate) encryption_config: PathBuf,
}

impl TargetArgs {
    /// The owned file under the root, which must be an existing directory: a mistyped root
    /// would otherwise grow a tree of its own.
    pub(crate) fn owned_file(&self) -> anyhow::Result<OwnedFile> {
        if !self.root.is_dir() {
            anyhow::bail!("--root must be an existing directory, got \"{}\"", self.root.display());
        }
        Ok(OwnedFile::new(&self.root, &self.encryption_config)?)
    }
}

/// `--mount-mode`, as the command line spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum MountModeArg {
    /// Mount the socket file itself; a plugin that re-creates its socket is not seen until
    /// the API server restarts.
    File,
    /// Mount the socket's directory (the default, unless it is a shared system directory).
    Dir,
}

impl From<MountModeArg> for MountMode {
    fn from(mode: MountModeArg) -> Self {
        match mode {
            MountModeArg::File => Self::File,
            MountModeArg::Dir => Self::Dir,
        }
    }
}

/// Reads and validates the UCP configuration at `path`; `None` when the settings are invalid.
///
/// Problems go to stderr as `file:line:col: field: message`. With `--output json`, invalid
/// settings also give one JSON document on stdout, `{"valid": false, "errors", "warnings"}`
/// in the shape of `ucp-kms validate`, so a program never parses an empty answer.
pub(crate) fn load_settings(
    path: &Path,
    version: KubeVersion,
    output: OutputFormat,
) -> anyhow::Result<Option<KmsSettings>> {
    let name = display_name(path);
    let bytes = read_document(path)?;
    let (settings, errors, warnings) = match load_settings_bytes(&bytes, version) {
        Ok(validated) => (Some(validated.settings), Vec::new(), validated.warnings),
        Err(invalid) => (None, invalid.errors, invalid.warnings),
    };
    {
        let mut stderr = io::stderr().lock();
        for error in &errors {
            writeln!(stderr, "{}", located(&name, error))?;
        }
        for warning in &warnings {
            writeln!(stderr, "warning: {}", located(&name, warning))?;
        }
    }
    if settings.is_none() && output == OutputFormat::Json {
        print_json(&serde_json::json!({
            "valid": false,
            "errors": errors,
            "warnings": warnings,
        }))?;
    }
    Ok(settings)
}

fn located(file: &str, diagnostic: &Diagnostic) -> String {
    format!("{file}:{diagnostic}")
}

/// An error with its causes, `outer: inner: root`, as one line.
pub(crate) fn chain(err: impl std::error::Error + Send + Sync + 'static) -> String {
    format!("{:#}", anyhow::Error::from(err))
}

/// Runs one future to completion on a runtime of its own; the probe is the only async work.
pub(crate) fn block_on<F: Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}

/// Prints `warning: <message>` lines on stderr.
pub(crate) fn print_warnings(warnings: &[String]) -> io::Result<()> {
    print_notes(warnings, &[])
}

/// Prints `warning: <message>` lines, then `error: <message>` lines, on stderr.
pub(crate) fn print_notes(warnings: &[String], problems: &[String]) -> io::Result<()> {
    let mut stderr = io::stderr().lock();
    for warning in warnings {
        writeln!(stderr, "warning: {warning}")?;
    }
    for problem in problems {
        writeln!(stderr, "error: {problem}")?;
    }
    Ok(())
}

/// The plan for people: one line per mount, one per flag.
pub(crate) fn write_plan_text(out: &mut impl Write, plan: &Plan) -> io::Result<()> {
    if plan.is_empty() {
        return writeln!(out, "no mounts and no flags: KMS is off and nothing is installed");
    }
    writeln!(out, "mounts into the API server container:")?;
    for mount in &plan.mounts {
        let kind = match mount.kind {
            MountKind::Directory => "directory",
            MountKind::Socket => "socket",
        };
        let access = if mount.read_only { ", read-only" } else { "" };
        writeln!(
            out,
            "  {} -> {} ({kind}{access})",
            mount.source.display(),
            mount.target.display()
        )?;
    }
    writeln!(out, "kube-apiserver flags:")?;
    for flag in &plan.apiserver_flags {
        writeln!(out, "  {flag}")?;
    }
    Ok(())
}
