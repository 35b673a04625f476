//! Build script: records the git commit the binary is built from, for `--version`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=UCP_KMS_COMMIT");

    // Packagers building from a source tarball have no repository; they can say the commit.
    let commit = match std::env::var("UCP_KMS_COMMIT") {
        Ok(commit) if !commit.is_empty() => commit,
        _ => {
            let manifest_dir =
                PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
            commit_of(&manifest_dir).unwrap_or_else(|| "unknown".to_owned())
        }
    };
    println!("cargo:rustc-env=UCP_KMS_COMMIT={commit}");
}

/// The short commit of the repository this crate is part of, if it is built from one.
///
/// A crate unpacked from crates.io may sit inside some other repository (a vendored tree); that
/// repository's commit says nothing about this code, so the repository must be the workspace's.
fn commit_of(manifest_dir: &Path) -> Option<String> {
    let workspace_root = manifest_dir.parent()?.parent()?.canonicalize().ok()?;
    let toplevel = git(manifest_dir, &["rev-parse", "--show-toplevel"])?;
    if Path::new(&toplevel).canonicalize().ok()? != workspace_root {
        return None;
    }

    // Rebuild when HEAD moves: a checkout changes HEAD, a commit changes the branch's ref,
    // which lives in its own file or, after `git gc`, in packed-refs.
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    watched.extend(git(manifest_dir, &["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        let Some(path) = git(manifest_dir, &["rev-parse", "--git-path", &name]) else { continue };
        let path = manifest_dir.join(path);
        // A path that does not exist would make cargo rerun this script on every build.
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }

    git(manifest_dir, &["rev-parse", "--short=12", "HEAD"])
}

/// Runs git in `dir` and returns its trimmed stdout, or `None` when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).current_dir(dir).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}
