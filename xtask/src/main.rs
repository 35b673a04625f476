//! `cargo xtask`: the project's automation, one subcommand per file.
//!
//! `cargo xtask ci` is what CI runs and what a developer runs before pushing; `dist` builds the
//! release tarball; `release` checks and prepares a version; `tidy` checks the house rules that
//! rustfmt and clippy do not.

mod archive;
mod bench;
mod ci;
mod dist;
mod release;
mod tidy;

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

/// Project automation for ucp-kms.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Xtask {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Measure the release binaries against their floors (cat, nginx, fsync); writes
    /// target/bench/report.json and fails when a target is missed.
    Bench(bench::BenchArgs),
    /// Format check, clippy, tests and docs: everything CI checks.
    Ci,
    /// Build the release tarball and SHA256SUMS under target/dist.
    Dist,
    /// Check and prepare a release; a dry run unless --execute.
    Release(release::ReleaseArgs),
    /// Check the house rules on every file: module docs, markers, whitespace.
    Tidy,
}

fn main() -> ExitCode {
    let task = Xtask::parse();
    let result = match task.command {
        Task::Bench(args) => bench::run(&args),
        Task::Ci => ci::run(),
        Task::Dist => dist::run().map(|_| ()),
        Task::Release(args) => release::run(&args),
        Task::Tidy => tidy::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask lives one directory below it.
fn project_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// A cargo command run from the workspace root, with the cargo that started this xtask.
fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(args).current_dir(project_root());
    command
}

/// A git command run from the workspace root.
fn git<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new("git");
    command.args(args).current_dir(project_root());
    command
}

/// Runs a command with inherited stdio, and fails unless it exits successfully.
fn run(command: &mut Command) -> anyhow::Result<()> {
    eprintln!("$ {}", display(command));
    let status =
        command.status().with_context(|| format!("could not start {}", display(command)))?;
    if !status.success() {
        bail!("{} failed with {status}", display(command));
    }
    Ok(())
}

/// Runs a command and returns its trimmed stdout; fails unless it exits successfully.
fn read(command: &mut Command) -> anyhow::Result<String> {
    let output =
        command.output().with_context(|| format!("could not start {}", display(command)))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!("{} failed with {}: {}", display(command), output.status, stderr.trim());
    }
    let stdout = String::from_utf8(output.stdout)
        .with_context(|| format!("{} printed something that is not UTF-8", display(command)))?;
    Ok(stdout.trim().to_owned())
}

/// The command line as a shell would show it, for logs and errors; `$CARGO` shows as `cargo`.
fn display(command: &Command) -> String {
    let program = Path::new(command.get_program());
    let mut line =
        program.file_name().unwrap_or(program.as_os_str()).to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}
