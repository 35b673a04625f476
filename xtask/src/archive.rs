//! A reproducible `.tar.gz` writer: the same files give the same bytes, whoever builds them.
//!
//! Everything a tar header could take from the machine is fixed: entries are sorted by path,
//! every mtime is one given timestamp, owner and group are 0/0 named `root`, modes are 0755 for
//! directories and executables and 0644 for the rest, and the gzip header has no name and no time.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use flate2::{Compression, GzBuilder};

/// Mode of directories and executables in the archive.
pub(crate) const MODE_EXECUTABLE: u32 = 0o755;
/// Mode of every other file in the archive.
pub(crate) const MODE_FILE: u32 = 0o644;

/// One entry of the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Path inside the archive, `/`-separated, without a leading `/`.
    pub(crate) path: String,
    /// What the entry is.
    pub(crate) kind: EntryKind,
}

/// A directory or a file with its contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// A directory, mode 0755.
    Directory,
    /// A file; executables get 0755, everything else 0644.
    File { contents: Vec<u8>, executable: bool },
}

impl Entry {
    fn mode(&self) -> u32 {
        match self.kind {
            EntryKind::Directory | EntryKind::File { executable: true, .. } => MODE_EXECUTABLE,
            EntryKind::File { executable: false, .. } => MODE_FILE,
        }
    }
}

/// Collects a directory tree as entries under `prefix`, with `prefix` itself as the first one.
///
/// A file is executable in the archive when any execute bit is set on disk; nothing else of the
/// file's metadata is kept. Symbolic links and other special files are refused.
pub(crate) fn collect(dir: &Path, prefix: &str) -> anyhow::Result<Vec<Entry>> {
    let mut entries = vec![Entry { path: prefix.to_owned(), kind: EntryKind::Directory }];
    collect_into(dir, prefix, &mut entries)?;
    Ok(entries)
}

fn collect_into(dir: &Path, prefix: &str, entries: &mut Vec<Entry>) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;

    let listing = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for item in listing {
        let item = item.with_context(|| format!("reading {}", dir.display()))?;
        let name = item.file_name();
        let Some(name) = name.to_str() else {
            bail!("file name {:?} in {} is not UTF-8", name, dir.display());
        };
        let path = format!("{prefix}/{name}");
        let file_type = item.file_type()?;
        if file_type.is_dir() {
            entries.push(Entry { path: path.clone(), kind: EntryKind::Directory });
            collect_into(&item.path(), &path, entries)?;
        } else if file_type.is_file() {
            let contents = std::fs::read(item.path())
                .with_context(|| format!("reading {}", item.path().display()))?;
            let executable = item.metadata()?.permissions().mode() & 0o111 != 0;
            entries.push(Entry { path, kind: EntryKind::File { contents, executable } });
        } else {
            bail!("{} is neither a file nor a directory", item.path().display());
        }
    }
    Ok(())
}

/// Writes `entries` as a gzip-compressed tar archive, every entry stamped with `mtime`.
///
/// The order of `entries` does not matter: they are written sorted by path, so that a directory
/// comes before what it holds and two runs over the same files agree byte for byte.
pub(crate) fn write_tar_gz(
    mut entries: Vec<Entry>,
    mtime: u64,
    out: impl Write,
) -> anyhow::Result<()> {
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    if let Some(pair) = entries.windows(2).find(|pair| pair[0].path == pair[1].path) {
        bail!("the archive would hold {:?} twice", pair[0].path);
    }

    // No file name and a zero time in the gzip header: both would differ between builds.
    let gzip = GzBuilder::new().mtime(0).write(out, Compression::best());
    let mut tar = tar::Builder::new(gzip);
    for entry in &entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(entry.mode());
        header.set_uid(0);
        header.set_gid(0);
        header.set_username("root")?;
        header.set_groupname("root")?;
        header.set_mtime(mtime);
        match &entry.kind {
            EntryKind::Directory => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                tar.append_data(&mut header, format!("{}/", entry.path), std::io::empty())
            }
            EntryKind::File { contents, .. } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(contents.len() as u64);
                tar.append_data(&mut header, &entry.path, contents.as_slice())
            }
        }
        .with_context(|| format!("adding {} to the archive", entry.path))?;
    }
    tar.into_inner()?.finish()?.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, SystemTime};

    use flate2::read::GzDecoder;

    use super::*;

    /// What a reader sees of one archive entry.
    #[derive(Debug, PartialEq, Eq)]
    struct Seen {
        path: String,
        mode: u32,
        uid: u64,
        gid: u64,
        username: String,
        groupname: String,
        mtime: u64,
        contents: Vec<u8>,
    }

    fn read_back(bytes: &[u8]) -> Vec<Seen> {
        let mut archive = tar::Archive::new(GzDecoder::new(bytes));
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let mut contents = Vec::new();
            entry.read_to_end(&mut contents).unwrap();
            seen.push(Seen {
                path: entry.path().unwrap().to_string_lossy().into_owned(),
                mode: header.mode().unwrap(),
                uid: header.uid().unwrap(),
                gid: header.gid().unwrap(),
                username: header.username().unwrap().unwrap_or_default().to_owned(),
                groupname: header.groupname().unwrap().unwrap_or_default().to_owned(),
                mtime: header.mtime().unwrap(),
                contents,
            });
        }
        seen
    }

    /// A small release tree, written in an order unlike the sorted one, with modes and times
    /// that must not reach the archive.
    fn staging_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("man")).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("man/ucp-kms.1"), ".TH ucp-kms 1\n").unwrap();
        std::fs::write(root.join("README.md"), "# readme\n").unwrap();
        std::fs::write(root.join("bin/ucp-kms"), b"\x7fELF").unwrap();
        std::fs::write(root.join("LICENSE"), "license\n").unwrap();
        let set_mode = |path: &str, mode: u32| {
            let perms = std::fs::Permissions::from_mode(mode);
            std::fs::set_permissions(root.join(path), perms).unwrap();
        };
        set_mode("bin/ucp-kms", 0o700);
        set_mode("README.md", 0o600);
        set_mode("LICENSE", 0o664);
        dir
    }

    fn build(dir: &Path, mtime: u64) -> Vec<u8> {
        let entries = collect(dir, "ucp-kms-1.2.3-x86_64-unknown-linux-gnu").unwrap();
        let mut bytes = Vec::new();
        write_tar_gz(entries, mtime, &mut bytes).unwrap();
        bytes
    }

    #[test]
    fn entries_are_sorted_with_fixed_owner_modes_and_times() {
        let dir = staging_tree();
        let seen = read_back(&build(dir.path(), 1_764_720_000));

        let paths: Vec<&str> = seen.iter().map(|entry| entry.path.as_str()).collect();
        let top = "ucp-kms-1.2.3-x86_64-unknown-linux-gnu";
        assert_eq!(
            paths,
            [
                format!("{top}/"),
                format!("{top}/LICENSE"),
                format!("{top}/README.md"),
                format!("{top}/bin/"),
                format!("{top}/bin/ucp-kms"),
                format!("{top}/man/"),
                format!("{top}/man/ucp-kms.1"),
            ]
        );
        for entry in &seen {
            assert_eq!((entry.uid, entry.gid), (0, 0), "{}", entry.path);
            assert_eq!((entry.username.as_str(), entry.groupname.as_str()), ("root", "root"));
            assert_eq!(entry.mtime, 1_764_720_000, "{}", entry.path);
            let expected_mode = if entry.path.ends_with('/') || entry.path.ends_with("bin/ucp-kms")
            {
                0o755
            } else {
                0o644
            };
            assert_eq!(entry.mode, expected_mode, "{}", entry.path);
        }
        let binary = seen.iter().find(|entry| entry.path.ends_with("bin/ucp-kms")).unwrap();
        assert_eq!(binary.contents, b"\x7fELF");
    }

    #[test]
    fn gzip_header_has_no_time_and_no_name() {
        let dir = staging_tree();
        let bytes = build(dir.path(), 42);

        assert_eq!(&bytes[..3], &[0x1f, 0x8b, 8], "a gzip stream with deflate");
        let flags = bytes[3];
        assert_eq!(flags & 0b0001_1000, 0, "no FNAME and no FCOMMENT flag");
        assert_eq!(&bytes[4..8], &[0, 0, 0, 0], "mtime 0");
    }

    #[test]
    fn same_files_give_the_same_bytes_whatever_their_disk_metadata() {
        let dir = staging_tree();
        let first = build(dir.path(), 1_764_720_000);

        // Touch everything: new times and other modes on disk, same contents.
        let later = SystemTime::now() + Duration::from_secs(3600);
        for path in ["README.md", "LICENSE", "man/ucp-kms.1"] {
            let file = std::fs::File::options().write(true).open(dir.path().join(path)).unwrap();
            file.set_modified(later).unwrap();
            let perms = std::fs::Permissions::from_mode(0o640);
            std::fs::set_permissions(dir.path().join(path), perms).unwrap();
        }
        let second = build(dir.path(), 1_764_720_000);
        assert_eq!(first, second);

        // A different content or timestamp does show, so the comparison above means something.
        assert_ne!(first, build(dir.path(), 1_764_720_001));
        std::fs::write(dir.path().join("LICENSE"), "other\n").unwrap();
        assert_ne!(first, build(dir.path(), 1_764_720_000));
    }

    #[test]
    fn input_order_does_not_matter() {
        let file = |path: &str| Entry {
            path: path.to_owned(),
            kind: EntryKind::File { contents: path.as_bytes().to_vec(), executable: false },
        };
        let forward = vec![file("a/x"), file("a/y"), file("b")];
        let backward: Vec<Entry> = forward.iter().rev().cloned().collect();

        let mut one = Vec::new();
        let mut two = Vec::new();
        write_tar_gz(forward, 7, &mut one).unwrap();
        write_tar_gz(backward, 7, &mut two).unwrap();
        assert_eq!(one, two);
    }

    #[test]
    fn duplicate_paths_are_refused() {
        let entry = Entry { path: "a".to_owned(), kind: EntryKind::Directory };
        let err = write_tar_gz(vec![entry.clone(), entry], 0, std::io::sink()).unwrap_err();
        assert_eq!(err.to_string(), "the archive would hold \"a\" twice");
    }
}
