//! The EncryptionConfiguration file ucp-kms owns on the host, installed atomically.
//!
//! Every write goes to a temporary file in the same directory, is fsynced, renamed over the
//! target and followed by an fsync of the directory, so a crash at any moment leaves the old or
//! the new file, never a mix. The version it replaces is kept beside it for rollback. Files are
//! 0600 in a 0700 directory: a configuration may carry local keys of providers kept for reads.
//!
//! # The record
//!
//! Beside the file, `.<name>.ucp-kms` holds the exact bytes ucp-kms last installed there. When
//! the installed file differs from the record, someone edited (or deleted) it by hand, and the
//! transition to the next file starts from the record: a hand edit is undone, never built on,
//! so a provider kept for reads cannot be lost by deleting its lines. See
//! [`OwnedFile::read_on_disk`].
//!
//! An install writes the previous version, then the file, then the record, each atomically. A
//! crash between the file and the record leaves a new file beside a record that still holds
//! the bytes written as the previous version a moment before; [`OwnedFile::read_on_disk`]
//! recognises exactly that state (record equal to the previous version, file different) as a
//! completed install, so the file the API server may already run with is never mistaken for a
//! hand edit and undone. The other direction cannot happen: the record never names a file that
//! was not installed. The one state this reads wrongly is a hand edit made while the record
//! equals the previous version, which no operation of this module leaves behind except a
//! rollback or restore to the very bytes kept as the previous version; such an edit is then
//! taken as installed, which is how every file without a record is read anyway.

use std::fs::{self, DirBuilder, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use kms_model::MAX_DOCUMENT_BYTES;

/// Where the EncryptionConfiguration is installed unless `--encryption-config` says otherwise.
pub const DEFAULT_ENCRYPTION_CONFIG: &str = "/etc/ucp-kms/encryption-config.yaml";

/// What is appended to the file name for the version kept for rollback.
pub const PREVIOUS_SUFFIX: &str = ".previous";

/// What is appended to `.<file name>` for the record of the bytes ucp-kms last installed.
pub const RECORD_SUFFIX: &str = ".ucp-kms";

/// Mode of every file ucp-kms owns.
pub const FILE_MODE: u32 = 0o600;

/// Mode of a directory ucp-kms creates for its files.
pub const DIR_MODE: u32 = 0o700;

/// Temporary files are `.<name>.ucp-kms-<random>.tmp`: distinct enough to be removed safely
/// when a killed installer left one behind.
const TEMPORARY_MARK: &str = "ucp-kms-";
const TEMPORARY_SUFFIX: &str = ".tmp";

/// Why the owned file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The host path is not absolute.
    #[error("the EncryptionConfiguration path must be absolute, got \"{0}\"")]
    RelativePath(PathBuf),
    /// The path names no file inside its directory.
    #[error("the EncryptionConfiguration path must name a file, got \"{0}\"")]
    NoFileName(PathBuf),
    /// Reading failed.
    #[error("cannot read \"{path}\"")]
    Read {
        /// The path under the root.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file is larger than any EncryptionConfiguration ucp-kms reads.
    #[error("\"{path}\" is larger than {limit} bytes, the most ucp-kms reads")]
    TooLarge {
        /// The path under the root.
        path: PathBuf,
        /// The limit in bytes.
        limit: usize,
    },
    /// Creating the directory failed.
    #[error("cannot create the directory \"{path}\"")]
    CreateDir {
        /// The directory under the root.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing, syncing or renaming failed.
    #[error("cannot write \"{path}\"")]
    Write {
        /// The path under the root.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A rollback was asked for but no previous version is kept.
    #[error("no previous version to roll back to: \"{0}\" does not exist")]
    NoPrevious(PathBuf),
}

/// What an install did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallOutcome {
    /// The file already held these bytes; nothing was written.
    Unchanged,
    /// There was no file; it was created.
    Created,
    /// The file was replaced; its former bytes are kept as the previous version.
    Replaced,
    /// The file was put back to the given bytes, undoing an outside change (an edit or a
    /// deletion): by [`OwnedFile::restore`], or by [`OwnedFile::install`] of the bytes ucp-kms
    /// last installed. The previous version was left alone.
    Restored,
}

/// The installed EncryptionConfiguration, the previous version kept beside it, and the record
/// of what ucp-kms last installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedFile {
    host_path: PathBuf,
    path: PathBuf,
    previous: PathBuf,
    record: PathBuf,
}

/// The installed file and what ucp-kms last installed there, read together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OnDisk {
    /// The installed bytes; `None` when nothing is installed.
    pub installed: Option<Vec<u8>>,
    /// The bytes ucp-kms last installed; `None` without a record (nothing installed yet, or a
    /// file that UCP or an operator wrote before ucp-kms took over).
    pub recorded: Option<Vec<u8>>,
}

impl OnDisk {
    /// Whether the installed file differs from the one ucp-kms last installed: edited or
    /// deleted by hand.
    pub fn is_hand_edited(&self) -> bool {
        self.recorded.is_some() && self.recorded != self.installed
    }

    /// Where a transition starts: the recorded bytes after a hand edit, else the installed
    /// ones.
    pub fn trusted(&self) -> Option<&[u8]> {
        if self.is_hand_edited() { self.recorded.as_deref() } else { self.installed.as_deref() }
    }
}

/// `path` (absolute, as on the host) interpreted under `root`: `/etc/x` under `/tmp/r` is
/// `/tmp/r/etc/x`. `..` cannot climb above the root.
pub fn under_root(root: &Path, path: &Path) -> PathBuf {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::ParentDir => {
                relative.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    root.join(relative)
}

impl OwnedFile {
    /// The file at host path `host_path` (absolute), interpreted under `root`.
    ///
    /// # Errors
    ///
    /// [`InstallError::RelativePath`] when `host_path` is relative, [`InstallError::NoFileName`]
    /// when it names a directory such as `/`.
    pub fn new(root: &Path, host_path: &Path) -> Result<Self, InstallError> {
        if !host_path.is_absolute() {
            return Err(InstallError::RelativePath(host_path.to_path_buf()));
        }
        let path = under_root(root, host_path);
        let Some(name) = path.file_name().filter(|_| path != root) else {
            return Err(InstallError::NoFileName(host_path.to_path_buf()));
        };
        let mut previous_name = name.to_os_string();
        previous_name.push(PREVIOUS_SUFFIX);
        let previous = path.with_file_name(previous_name);
        let mut record_name = std::ffi::OsString::from(".");
        record_name.push(name);
        record_name.push(RECORD_SUFFIX);
        let record = path.with_file_name(record_name);
        Ok(Self { host_path: host_path.to_path_buf(), path, previous, record })
    }

    /// The path as the host (and the API server) sees it.
    pub fn host_path(&self) -> &Path {
        &self.host_path
    }

    /// The path under the root, where this process reads and writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path under the root of the previous version.
    pub fn previous_path(&self) -> &Path {
        &self.previous
    }

    /// The path under the root of the record of the bytes ucp-kms last installed.
    pub fn record_path(&self) -> &Path {
        &self.record
    }

    /// The directory under the root that holds the file, its previous version and its record.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }

    /// The installed bytes, or `None` when nothing is installed.
    ///
    /// # Errors
    ///
    /// [`InstallError::Read`] when the file exists but cannot be read (or is a directory),
    /// [`InstallError::TooLarge`] beyond [`MAX_DOCUMENT_BYTES`].
    pub fn read(&self) -> Result<Option<Vec<u8>>, InstallError> {
        read_bounded(&self.path)
    }

    /// The previous version's bytes, or `None` when none is kept.
    ///
    /// # Errors
    ///
    /// As [`OwnedFile::read`].
    pub fn read_previous(&self) -> Result<Option<Vec<u8>>, InstallError> {
        read_bounded(&self.previous)
    }

    /// The record's bytes as stored, or `None` when no record is kept.
    ///
    /// # Errors
    ///
    /// As [`OwnedFile::read`].
    pub fn read_record(&self) -> Result<Option<Vec<u8>>, InstallError> {
        read_bounded(&self.record)
    }

    /// The installed bytes and the bytes ucp-kms last installed, as the record says.
    ///
    /// A record equal to the previous version beside a different file is an install that
    /// stopped between writing the file and writing the record: the file is then reported as
    /// the recorded one, since the API server may already run with it.
    ///
    /// # Errors
    ///
    /// As [`OwnedFile::read`], for any of the three files.
    pub fn read_on_disk(&self) -> Result<OnDisk, InstallError> {
        let recorded = self.read_record()?;
        let installed = self.read()?;
        if recorded.is_none() || recorded == installed {
            return Ok(OnDisk { installed, recorded });
        }
        if installed.is_some() && self.read_previous()? == recorded {
            tracing::debug!(
                config.path = %self.path.display(),
                "the last install stopped before its record; taking the installed file as recorded"
            );
            return Ok(OnDisk { recorded: installed.clone(), installed });
        }
        Ok(OnDisk { installed, recorded })
    }

    /// Installs `bytes`, keeping the file it replaces as the previous version, and records them
    /// as the bytes ucp-kms last installed.
    ///
    /// What is kept as the previous version is what ucp-kms last installed: after a hand edit,
    /// the recorded bytes, not the edited file, and when `bytes` are the recorded ones (a
    /// repair) the previous version is left alone, as [`OwnedFile::restore`] does.
    ///
    /// When the file and the record already hold `bytes`, nothing is written: inodes and mtimes
    /// stay, only a loosened mode is set back to 0600. The previous version is written first,
    /// then the file, then the record, so a crash between two steps loses nothing (see the
    /// module documentation).
    ///
    /// # Errors
    ///
    /// [`InstallError`] when the directory cannot be created or a file cannot be read or
    /// written; the installed file is then the old one or the new one, never a mix.
    pub fn install(&self, bytes: &[u8]) -> Result<InstallOutcome, InstallError> {
        if self.read()?.as_deref() == Some(bytes) && self.read_record()?.as_deref() == Some(bytes) {
            restrict(&self.path, FILE_MODE)?;
            restrict(&self.record, FILE_MODE)?;
            tracing::debug!(config.path = %self.path.display(), "encryption configuration unchanged");
            return Ok(InstallOutcome::Unchanged);
        }

        self.create_dir()?;
        let _lock = self.lock()?;
        // Another installer may have finished while this one waited for the lock.
        let on_disk = self.read_on_disk()?;
        if on_disk.installed.as_deref() == Some(bytes) {
            restrict(&self.path, FILE_MODE)?;
            self.write_record(bytes)?;
            return Ok(InstallOutcome::Unchanged);
        }
        // Installing the trusted bytes again repairs an edit; the previous version then stays.
        if let Some(trusted) = on_disk.trusted().filter(|trusted| *trusted != bytes) {
            write_atomically(&self.previous, trusted, FILE_MODE)?;
        }
        write_atomically(&self.path, bytes, FILE_MODE)?;
        self.write_record(bytes)?;
        let outcome = if on_disk.trusted() == Some(bytes) {
            InstallOutcome::Restored
        } else if on_disk.installed.is_some() {
            InstallOutcome::Replaced
        } else {
            InstallOutcome::Created
        };
        tracing::info!(
            config.path = %self.path.display(),
            outcome = ?outcome,
            "installed encryption configuration"
        );
        Ok(outcome)
    }

    /// Puts `bytes` back as the installed file without touching the previous version: a repair
    /// of drift, where what is replaced is an outside change, never a version to roll back to.
    /// The record then holds `bytes`, written after the file.
    ///
    /// The write is the one of [`OwnedFile::install`]: under the directory's lock, a temporary
    /// file fsynced and renamed over the file, the directory fsynced, 0600 in a 0700 directory.
    /// When the file already holds `bytes`, only a loosened mode is set back.
    ///
    /// # Errors
    ///
    /// [`InstallError`] when the directory cannot be created or the file cannot be read or
    /// written; the installed file is then the old one or the new one, never a mix.
    pub fn restore(&self, bytes: &[u8]) -> Result<InstallOutcome, InstallError> {
        self.create_dir()?;
        let _lock = self.lock()?;
        let current = self.read()?;
        if current.as_deref() == Some(bytes) {
            restrict(&self.path, FILE_MODE)?;
            self.write_record(bytes)?;
            return Ok(InstallOutcome::Unchanged);
        }
        write_atomically(&self.path, bytes, FILE_MODE)?;
        self.write_record(bytes)?;
        tracing::info!(config.path = %self.path.display(), "restored encryption configuration");
        Ok(InstallOutcome::Restored)
    }

    /// Swaps the installed file and the previous version, records the bytes now installed, and
    /// returns them.
    ///
    /// The swap is one atomic `renameat2(RENAME_EXCHANGE)` where the file system supports it;
    /// elsewhere the installed bytes are kept as the previous version first, then replaced.
    /// When nothing is installed, the previous version simply becomes the installed file.
    ///
    /// # Errors
    ///
    /// [`InstallError::NoPrevious`] when no previous version is kept, or an I/O problem.
    pub fn rollback(&self) -> Result<Vec<u8>, InstallError> {
        if !self.dir().is_dir() {
            return Err(InstallError::NoPrevious(self.previous.clone()));
        }
        let _lock = self.lock()?;
        let Some(previous) = self.read_previous()? else {
            return Err(InstallError::NoPrevious(self.previous.clone()));
        };
        let current = self.read()?;

        let exchanged = current.is_some()
            && rustix::fs::renameat_with(
                rustix::fs::CWD,
                &self.previous,
                rustix::fs::CWD,
                &self.path,
                rustix::fs::RenameFlags::EXCHANGE,
            )
            .is_ok();
        if exchanged {
            sync_dir(self.dir()).map_err(|source| self.write_error(source))?;
        } else if let Some(current) = &current {
            write_atomically(&self.previous, current, FILE_MODE)?;
            write_atomically(&self.path, &previous, FILE_MODE)?;
        } else {
            fs::rename(&self.previous, &self.path).map_err(|source| self.write_error(source))?;
            sync_dir(self.dir()).map_err(|source| self.write_error(source))?;
        }
        restrict(&self.path, FILE_MODE)?;
        if current.is_some() {
            restrict(&self.previous, FILE_MODE)?;
        }
        self.write_record(&previous)?;
        tracing::info!(
            config.path = %self.path.display(),
            exchanged,
            "rolled back encryption configuration"
        );
        Ok(previous)
    }

    /// Creates the directory, 0700, when it does not exist yet.
    fn create_dir(&self) -> Result<(), InstallError> {
        let dir = self.dir();
        if dir.is_dir() {
            return Ok(());
        }
        let err = |source| InstallError::CreateDir { path: dir.to_path_buf(), source };
        DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir).map_err(err)?;
        // The umask may have taken bits away; the mode must be exactly 0700.
        fs::set_permissions(dir, Permissions::from_mode(DIR_MODE)).map_err(err)
    }

    /// Takes the directory's exclusive lock, so that installers (a server's reconciler, an
    /// operator's `apply`) take turns, and removes temporary files a killed installer left.
    ///
    /// The lock is released when the returned handle is dropped, or when the process dies.
    fn lock(&self) -> Result<File, InstallError> {
        let dir = self.dir();
        let err = |source| InstallError::Write { path: dir.to_path_buf(), source };
        let handle = File::open(dir).map_err(err)?;
        rustix::fs::flock(&handle, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|errno| err(errno.into()))?;

        let names = [self.path.file_name(), self.previous.file_name(), self.record.file_name()];
        for entry in fs::read_dir(dir).map_err(err)? {
            let entry = entry.map_err(err)?;
            let leftover = names.iter().flatten().any(|name| {
                is_temporary_name(&entry.file_name().to_string_lossy(), &name.to_string_lossy())
            });
            if leftover {
                tracing::debug!(file = %entry.path().display(), "removing a killed installer's temporary file");
                fs::remove_file(entry.path()).map_err(err)?;
            }
        }
        Ok(handle)
    }

    /// Writes the record when it does not hold `bytes` yet.
    fn write_record(&self, bytes: &[u8]) -> Result<(), InstallError> {
        if self.read_record()?.as_deref() == Some(bytes) {
            return restrict(&self.record, FILE_MODE);
        }
        write_atomically(&self.record, bytes, FILE_MODE)
    }

    fn write_error(&self, source: io::Error) -> InstallError {
        InstallError::Write { path: self.path.clone(), source }
    }
}

/// Whether `candidate` is a temporary file this module made for `name`.
fn is_temporary_name(candidate: &str, name: &str) -> bool {
    candidate
        .strip_prefix('.')
        .and_then(|rest| rest.strip_prefix(name))
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_prefix(TEMPORARY_MARK))
        .is_some_and(|rest| rest.ends_with(TEMPORARY_SUFFIX))
}

/// Reads at most [`MAX_DOCUMENT_BYTES`] of `path`; `None` when it does not exist.
fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, InstallError> {
    let err = |source| InstallError::Read { path: path.to_path_buf(), source };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(source) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(err(source)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_DOCUMENT_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(err)?;
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(InstallError::TooLarge { path: path.to_path_buf(), limit: MAX_DOCUMENT_BYTES });
    }
    Ok(Some(bytes))
}

/// Writes `bytes` to `path` atomically and durably with exactly `mode`: a temporary file
/// beside it (`.<name>.ucp-kms-<random>.tmp`, `mode` from its creation), fsynced, renamed over
/// `path`, then the directory fsynced so that the rename survives a power cut. A crash at any
/// moment leaves the old file or the new one.
///
/// # Errors
///
/// [`InstallError::Write`] naming the file that could not be written.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), InstallError> {
    write_atomically_in_order(&[(path, bytes)], mode)
}

/// Writes several files as [`write_atomically`] does, in order, with one fsync per directory
/// after the last rename instead of one per file.
///
/// Each file's content is fsynced before its rename, and every rename is durable when this
/// returns. A crash before that keeps a prefix of the renames on file systems that journal
/// metadata in order (ext4, XFS, btrfs): a later file never appears without the earlier ones.
///
/// # Errors
///
/// [`InstallError::Write`] naming the file (or directory) that could not be written; the files
/// before it are written.
pub fn write_atomically_in_order(files: &[(&Path, &[u8])], mode: u32) -> Result<(), InstallError> {
    let mut dirs = Vec::new();
    for (path, bytes) in files {
        let err = |source| InstallError::Write { path: path.to_path_buf(), source };
        let dir = path.parent().unwrap_or(Path::new("/"));
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let mut file = tempfile::Builder::new()
            .prefix(&format!(".{name}.{TEMPORARY_MARK}"))
            .suffix(TEMPORARY_SUFFIX)
            .permissions(Permissions::from_mode(mode))
            .tempfile_in(dir)
            .map_err(err)?;
        // The umask may have taken bits away from the creation mode; it must be exactly `mode`.
        file.as_file().set_permissions(Permissions::from_mode(mode)).map_err(err)?;
        file.write_all(bytes).map_err(err)?;
        file.as_file().sync_all().map_err(err)?;
        file.persist(path).map_err(|persist| err(persist.error))?;
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    for dir in dirs {
        sync_dir(dir).map_err(|source| InstallError::Write { path: dir.to_path_buf(), source })?;
    }
    Ok(())
}

/// Sets `path` to `mode` when it is looser or different; the mtime does not change.
fn restrict(path: &Path, mode: u32) -> Result<(), InstallError> {
    let err = |source| InstallError::Write { path: path.to_path_buf(), source };
    let current = fs::metadata(path).map_err(err)?.permissions().mode() & 0o7777;
    if current != mode {
        fs::set_permissions(path, Permissions::from_mode(mode)).map_err(err)?;
    }
    Ok(())
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_root() {
        let root = Path::new("/tmp/r");
        assert_eq!(
            under_root(root, Path::new("/etc/ucp-kms/x.yaml")),
            root.join("etc/ucp-kms/x.yaml")
        );
        assert_eq!(under_root(root, Path::new("/../../etc/x")), root.join("etc/x"));
        assert_eq!(under_root(Path::new("/"), Path::new("/run/p.sock")), Path::new("/run/p.sock"));
    }

    #[test]
    fn temporary_names() {
        let name = "encryption-config.yaml";
        assert!(is_temporary_name(".encryption-config.yaml.ucp-kms-aB3xY9.tmp", name));
        assert!(!is_temporary_name(".encryption-config.yaml.previous", name));
        assert!(!is_temporary_name(".encryption-config.yaml.backup", name));
        assert!(!is_temporary_name("encryption-config.yaml.ucp-kms-aB3xY9.tmp", name));
        assert!(is_temporary_name(".x.yaml.previous.ucp-kms-000000.tmp", "x.yaml.previous"));
    }

    #[test]
    fn owned_file_names() {
        let file = OwnedFile::new(Path::new("/r"), Path::new(DEFAULT_ENCRYPTION_CONFIG)).unwrap();
        assert_eq!(file.path(), Path::new("/r/etc/ucp-kms/encryption-config.yaml"));
        assert_eq!(
            file.previous_path(),
            Path::new("/r/etc/ucp-kms/encryption-config.yaml.previous")
        );
        assert_eq!(file.host_path(), Path::new(DEFAULT_ENCRYPTION_CONFIG));
        assert!(matches!(
            OwnedFile::new(Path::new("/r"), Path::new("etc/x")),
            Err(InstallError::RelativePath(_))
        ));
        assert!(matches!(
            OwnedFile::new(Path::new("/r"), Path::new("/")),
            Err(InstallError::NoFileName(_))
        ));
    }
}
