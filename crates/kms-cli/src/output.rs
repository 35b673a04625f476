//! Writing results to stdout.

use std::io::{self, Write};

use serde::Serialize;

/// Prints `value` as pretty JSON and a newline.
pub(crate) fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    Ok(())
}
