//! The embedded store: every accepted UCP configuration as a numbered revision on disk.
//!
//! Layout under the data directory:
//!
//! ```text
//! revisions/000001.toml   the document exactly as it was sent
//! revisions/000001.json   its meta: time, sha256, size, token name, where it came from
//! ```
//!
//! Both files are written atomically (temporary file, fsync, rename), the document first and
//! the meta last, then the directory is fsynced once for both renames: a revision exists once
//! its meta does, and a write is acknowledged only after both are durable. A document without a
//! meta above the newest revision is a write that was never acknowledged and is removed at
//! start; any other inconsistency stops the start, so data is never dropped silently.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, MutexGuard};

/// Mode of every file the store writes: the documents may hold secrets of other tables.
const FILE_MODE: u32 = 0o600;
/// Mode of the directories the store creates.
const DIR_MODE: u32 = 0o700;
/// Digits of a revision number in its file names, so that names sort like numbers.
const DIGITS: usize = 6;

/// Why the store cannot be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory could not be read or written.
    #[error("cannot {action} \"{path}\"")]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A revision on disk does not match its meta, or its meta is unreadable.
    #[error(
        "revision file \"{path}\" is truncated or corrupt: {reason}; refusing to start rather \
         than drop it (restore it from a backup or move it away)"
    )]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// Another process holds the data directory.
    #[error(
        "the data directory \"{0}\" is in use by another ucp-kms-server; two servers on one \
         store would lose updates"
    )]
    InUse(PathBuf),
    /// The requested revision does not exist.
    #[error("revision {0} does not exist")]
    NoSuchRevision(u64),
}

/// How a revision came to be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Source {
    /// `PUT /api/ucp/config-toml`.
    Put,
    /// `POST /api/kms/rollback`: a copy of an earlier revision.
    Rollback {
        /// The revision copied.
        from: u64,
    },
}

/// What the store records about one revision; the JSON file beside the document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionMeta {
    /// 1 for the first accepted configuration, then one more per accepted change.
    pub revision: u64,
    /// When it was accepted, RFC 3339 in UTC.
    pub time: String,
    /// `sha256:<hex>` of the document bytes; also checks the document at start.
    pub config_hash: String,
    /// Size of the document in bytes.
    pub bytes: u64,
    /// Name of the token that sent it.
    pub token: String,
    /// How it came to be.
    pub source: Source,
}

/// One revision with its document.
#[derive(Clone, Debug)]
pub struct Revision {
    /// Its meta.
    pub meta: RevisionMeta,
    /// The document, byte for byte as it was sent.
    pub document: Arc<str>,
}

impl Revision {
    /// The strong entity tag of this revision: its number and the start of its hash, quoted.
    ///
    /// The number makes two revisions with the same document differ, so a client holding an
    /// old tag always loses a race.
    pub fn etag(&self) -> String {
        let hex = self.meta.config_hash.trim_start_matches("sha256:");
        format!("\"{}-{}\"", self.meta.revision, &hex[..hex.len().min(16)])
    }
}

/// The revisions on disk, with the newest one in memory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    state: Mutex<State>,
    /// Held open with an exclusive lock for as long as the store is open.
    _lock: fs::File,
}

/// What the store holds in memory; the lock around it serializes writers.
#[derive(Debug, Default)]
pub struct State {
    history: Vec<RevisionMeta>,
    current: Option<Revision>,
}

impl State {
    /// The newest revision, if any configuration was ever accepted.
    pub fn current(&self) -> Option<&Revision> {
        self.current.as_ref()
    }

    /// Every revision's meta, oldest first.
    pub fn history(&self) -> &[RevisionMeta] {
        &self.history
    }
}

impl Store {
    /// Opens the store in `data_dir`, creating it when missing, and checks every revision.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] naming the file when a revision is truncated, altered or has
    /// lost its meta; [`StoreError::Io`] when the directory cannot be read or created.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let dir = data_dir.join("revisions");
        create_private_dir(data_dir)?;
        let lock = lock(data_dir)?;
        create_private_dir(&dir)?;

        let (history, current) = load(&dir)?;
        if let Some(current) = &current {
            tracing::info!(
                store.revision = current.meta.revision,
                store.dir = %dir.display(),
                "store opened"
            );
        } else {
            tracing::info!(store.dir = %dir.display(), "store opened, no configuration yet");
        }
        Ok(Self { dir, state: Mutex::new(State { history, current }), _lock: lock })
    }

    /// Locks the store for reading or for a read-check-write sequence.
    pub async fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().await
    }

    /// Appends `document` as the next revision and makes it current.
    ///
    /// The caller holds the lock from its checks (validation, `If-Match`) to this write, so no
    /// accepted update is ever lost.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] when a file cannot be written; the store is unchanged then.
    pub fn append(
        &self,
        state: &mut State,
        document: &str,
        token: &str,
        source: Source,
    ) -> Result<Revision, StoreError> {
        let revision = state.history.last().map_or(1, |last| last.revision + 1);
        let meta = RevisionMeta {
            revision,
            time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            config_hash: config_hash(document.as_bytes()),
            bytes: document.len() as u64,
            token: token.to_owned(),
            source,
        };
        let json = serde_json::to_vec_pretty(&meta).expect("a meta always serializes");

        let (document_path, meta_path) = (self.document_path(revision), self.meta_path(revision));
        let files: [(&Path, &[u8]); 2] =
            [(&document_path, document.as_bytes()), (&meta_path, &json)];
        kms_mount::install::write_atomically_in_order(&files, FILE_MODE)
            .map_err(|err| io_error("write a revision into", &self.dir, io::Error::other(err)))?;

        let stored = Revision { meta: meta.clone(), document: Arc::from(document) };
        state.history.push(meta);
        state.current = Some(stored.clone());
        Ok(stored)
    }

    /// Reads an earlier revision's document from disk, checking it against its meta.
    ///
    /// # Errors
    ///
    /// [`StoreError::NoSuchRevision`], or [`StoreError::Corrupt`] when the file was damaged
    /// since the start.
    pub fn read(&self, state: &State, revision: u64) -> Result<Revision, StoreError> {
        let meta = state
            .history
            .iter()
            .find(|meta| meta.revision == revision)
            .ok_or(StoreError::NoSuchRevision(revision))?;
        let document = read_checked(&self.document_path(revision), meta)?;
        Ok(Revision { meta: meta.clone(), document: Arc::from(document) })
    }

    fn document_path(&self, revision: u64) -> PathBuf {
        self.dir.join(format!("{revision:0DIGITS$}.toml"))
    }

    fn meta_path(&self, revision: u64) -> PathBuf {
        self.dir.join(format!("{revision:0DIGITS$}.json"))
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn config_hash(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The files of one revision number found in the directory.
#[derive(Default)]
struct Found {
    document: Option<PathBuf>,
    meta: Option<PathBuf>,
}

fn load(dir: &Path) -> Result<(Vec<RevisionMeta>, Option<Revision>), StoreError> {
    let found = scan(dir)?;
    let newest_meta = found.iter().rev().find(|(_, f)| f.meta.is_some()).map(|(n, _)| *n);

    let mut history = Vec::new();
    let mut current = None;
    for (number, files) in &found {
        match (&files.document, &files.meta) {
            (Some(document), Some(meta_path)) => {
                let meta = read_meta(meta_path, *number)?;
                let text = read_checked(document, &meta)?;
                current = Some(Revision { meta: meta.clone(), document: Arc::from(text) });
                history.push(meta);
            }
            (Some(document), None) if newest_meta.is_none_or(|newest| *number > newest) => {
                // The process stopped between the document and its meta: the write was never
                // acknowledged, so it is not part of the history.
                tracing::warn!(
                    store.path = %document.display(),
                    "removing a revision that was never acknowledged"
                );
                fs::remove_file(document).map_err(|source| io_error("remove", document, source))?;
            }
            (Some(document), None) => {
                return Err(StoreError::Corrupt {
                    path: document.clone(),
                    reason: "its meta file is missing".to_owned(),
                });
            }
            (None, Some(meta)) => {
                return Err(StoreError::Corrupt {
                    path: meta.clone(),
                    reason: "the document it describes is missing".to_owned(),
                });
            }
            (None, None) => {}
        }
    }
    Ok((history, current))
}

fn scan(dir: &Path) -> Result<BTreeMap<u64, Found>, StoreError> {
    let mut found: BTreeMap<u64, Found> = BTreeMap::new();
    let entries = fs::read_dir(dir).map_err(|source| io_error("read directory", dir, source))?;
    for entry in entries {
        let entry = entry.map_err(|source| io_error("read directory", dir, source))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // Temporary files of an interrupted atomic write start with a dot.
        if name.starts_with('.') {
            continue;
        }
        let Some((stem, extension)) = name.split_once('.') else { continue };
        let Ok(number) = stem.parse::<u64>() else { continue };
        let slot = found.entry(number).or_default();
        match extension {
            "toml" => slot.document = Some(path),
            "json" => slot.meta = Some(path),
            _ => {}
        }
    }
    Ok(found)
}

fn read_meta(path: &Path, number: u64) -> Result<RevisionMeta, StoreError> {
    let bytes = fs::read(path).map_err(|source| io_error("read", path, source))?;
    let meta: RevisionMeta = serde_json::from_slice(&bytes).map_err(|err| StoreError::Corrupt {
        path: path.to_owned(),
        reason: format!("unreadable meta: {err}"),
    })?;
    if meta.revision != number {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            reason: format!("it describes revision {}, expected {number}", meta.revision),
        });
    }
    Ok(meta)
}

fn read_checked(path: &Path, meta: &RevisionMeta) -> Result<String, StoreError> {
    let bytes = fs::read(path).map_err(|source| io_error("read", path, source))?;
    let hash = config_hash(&bytes);
    if bytes.len() as u64 != meta.bytes || hash != meta.config_hash {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            reason: format!(
                "expected {} bytes with {}, found {} bytes with {hash}",
                meta.bytes,
                meta.config_hash,
                bytes.len()
            ),
        });
    }
    String::from_utf8(bytes).map_err(|_| StoreError::Corrupt {
        path: path.to_owned(),
        reason: "the document is not UTF-8".to_owned(),
    })
}

/// Takes the exclusive lock of the data directory; the kernel releases it when the process
/// ends, however it ends.
fn lock(data_dir: &Path) -> Result<fs::File, StoreError> {
    let path = data_dir.join("lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(|source| io_error("open", &path, source))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(StoreError::InUse(data_dir.to_owned())),
        Err(errno) => Err(io_error("lock", &path, errno.into())),
    }
}

fn create_private_dir(path: &Path) -> Result<(), StoreError> {
    match fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(path) {
        Ok(()) => {}
        Err(source) => return Err(io_error("create directory", path, source)),
    }
    let metadata = fs::metadata(path).map_err(|source| io_error("inspect", path, source))?;
    if metadata.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            store.dir = %path.display(),
            mode = format_args!("{:o}", metadata.permissions().mode() & 0o777),
            "data directory is readable by others; expected mode 700"
        );
    }
    Ok(())
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> StoreError {
    StoreError::Io { action, path: path.to_owned(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# kept as sent\n[cluster_config]\nkms_enabled = false\n";

    #[tokio::test]
    async fn appends_and_reopens_with_the_same_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        {
            let mut state = store.lock().await;
            store.append(&mut state, DOC, "admin", Source::Put).unwrap();
            store
                .append(&mut state, "[cluster_config]\n", "ci", Source::Rollback { from: 1 })
                .unwrap();
        }
        drop(store);
        let reopened = Store::open(dir.path()).unwrap();
        let state = reopened.lock().await;
        assert_eq!(state.history().len(), 2);
        assert_eq!(state.current().unwrap().meta.revision, 2);
        assert_eq!(state.history()[1].source, Source::Rollback { from: 1 });
        assert_eq!(&*reopened.read(&state, 1).unwrap().document, DOC);

        let mode = fs::metadata(dir.path().join("revisions/000001.toml")).unwrap();
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        let mode = fs::metadata(dir.path().join("revisions")).unwrap();
        assert_eq!(mode.permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn one_store_per_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::InUse(_)), "{err:?}");
        drop(first);
        Store::open(dir.path()).unwrap();
    }

    #[tokio::test]
    async fn a_truncated_revision_stops_the_start_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.append(&mut *store.lock().await, DOC, "admin", Source::Put).unwrap();
        drop(store);
        let path = dir.path().join("revisions/000001.toml");
        fs::write(&path, &DOC[..10]).unwrap();

        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    }

    #[tokio::test]
    async fn an_unacknowledged_document_is_removed_but_a_lost_meta_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.append(&mut *store.lock().await, DOC, "admin", Source::Put).unwrap();
        drop(store);
        let orphan = dir.path().join("revisions/000002.toml");
        fs::write(&orphan, "half").unwrap();

        let reopened = Store::open(dir.path()).unwrap();
        assert_eq!(reopened.lock().await.current().unwrap().meta.revision, 1);
        assert!(!orphan.exists());

        // A meta lost below the newest revision is damage, not an interrupted write.
        reopened.append(&mut *reopened.lock().await, DOC, "admin", Source::Put).unwrap();
        drop(reopened);
        fs::remove_file(dir.path().join("revisions/000001.json")).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("000001.toml"), "{err}");
    }

    #[test]
    fn etags_differ_between_revisions_of_the_same_document() {
        let meta = |revision| RevisionMeta {
            revision,
            time: String::new(),
            config_hash: config_hash(DOC.as_bytes()),
            bytes: 0,
            token: String::new(),
            source: Source::Put,
        };
        let a = Revision { meta: meta(1), document: Arc::from(DOC) };
        let b = Revision { meta: meta(2), document: Arc::from(DOC) };
        assert_ne!(a.etag(), b.etag());
        assert!(a.etag().starts_with("\"1-") && a.etag().ends_with('"'));
    }
}
