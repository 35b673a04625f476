//! Durable file writes of the server: the store's revisions and the repair of the installed
//! file, done the way `kms-mount` installs it.

use std::fs::{self, DirBuilder, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Writes `bytes` to `path` atomically and durably with exactly `mode`: a temporary file in the
/// same directory, fsynced, renamed over `path`, then the directory fsynced. A crash at any
/// moment leaves the old file or the new one.
pub(crate) fn write(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_in_order(&[(path, bytes)], mode)
}

/// Writes several files of one directory as [`write`] does, in order, with one fsync of the
/// directory after the last rename instead of one per file.
///
/// Each file's content is fsynced before its rename, and every rename is durable when this
/// returns. A crash before that keeps a prefix of the renames on file systems that journal
/// metadata in order (ext4, XFS, btrfs): a later file never appears without the earlier ones.
/// Each fsync of a directory costs about half an fsync of a file on ext4, and a revision of the
/// store is two files, so this is a quarter of the store's disk waits.
pub(crate) fn write_in_order(files: &[(&Path, &[u8])], mode: u32) -> io::Result<()> {
    let mut dirs = Vec::new();
    for (path, bytes) in files {
        let dir = path.parent().unwrap_or(Path::new("/"));
        let mut file = tempfile::Builder::new()
            .prefix(".ucp-kms.")
            .suffix(".tmp")
            .permissions(Permissions::from_mode(mode))
            .tempfile_in(dir)?;
        // The umask may have taken bits away from the creation mode.
        file.as_file().set_permissions(Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.as_file().sync_all()?;
        file.persist(path).map_err(|persist| persist.error)?;
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    for dir in dirs {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Creates `path` and its missing parents with exactly `mode` on the last one.
pub(crate) fn create_dir(path: &Path, mode: u32) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(mode).create(path)?;
    fs::set_permissions(path, Permissions::from_mode(mode))
}
