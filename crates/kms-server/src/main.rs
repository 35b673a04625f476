//! The `ucp-kms-server` binary: parses the command line and runs the server until a signal.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use kms_server::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match kms_server::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            ExitCode::from(2)
        }
    }
}
