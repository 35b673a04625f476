//! Reading input files with a size bound, so a huge or endless file cannot exhaust memory.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use kms_model::MAX_DOCUMENT_BYTES;

/// Reads at most [`MAX_DOCUMENT_BYTES`] of `path` (`-` for stdin), refusing anything larger.
pub(crate) fn read_document(path: &Path) -> anyhow::Result<Vec<u8>> {
    let limit = MAX_DOCUMENT_BYTES as u64;
    let mut bytes = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin().lock().take(limit + 1).read_to_end(&mut bytes)
    } else {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        file.take(limit + 1).read_to_end(&mut bytes)
    };
    read.with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > limit {
        bail!(
            "{} is larger than {MAX_DOCUMENT_BYTES} bytes, the most ucp-kms reads",
            path.display()
        );
    }
    Ok(bytes)
}

/// How a file is named in results: as given on the command line, `<stdin>` for `-`.
pub(crate) fn display_name(path: &Path) -> String {
    if path == Path::new("-") { "<stdin>".to_owned() } else { path.display().to_string() }
}
