//! `ucp-kms`, the command-line front end of ucp-kms.
//!
//! Layer: the top. It parses arguments, reads and writes files and maps outcomes to exit
//! statuses; every decision about KMS belongs to the library crates below it. The clap
//! definition is public so that release tooling can generate completions and man pages.

mod cli;
mod commands;
mod input;
mod logging;
mod output;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

pub use cli::Cli;

/// Exit status when the answer is "yes": valid, accepted, in sync, healthy.
const EXIT_OK: u8 = 0;
/// Exit status when the answer is "no": invalid, rejected, drift, unhealthy.
const EXIT_NO: u8 = 1;
/// Exit status when the command could not run: usage, unreadable file, I/O.
const EXIT_ERROR: u8 = 2;

/// What a command concluded, when it could run at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Exit 0.
    Yes,
    /// Exit 1.
    No,
}

/// Runs `ucp-kms` with the process arguments and returns its exit status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help and version to stdout with status 0, usage errors with 2.
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { EXIT_ERROR } else { EXIT_OK });
        }
    };
    logging::init(cli.global.verbose);

    match commands::run(cli) {
        Ok(Outcome::Yes) => ExitCode::from(EXIT_OK),
        Ok(Outcome::No) => ExitCode::from(EXIT_NO),
        Err(err) if is_broken_pipe(&err) => ExitCode::from(EXIT_OK),
        Err(err) => {
            let _ = writeln!(io::stderr(), "error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// A reader that closed stdout early (`ucp-kms render | head -1`) is not a failure.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|io| io.kind() == io::ErrorKind::BrokenPipe)
}
