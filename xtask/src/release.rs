//! `cargo xtask release <version>`: checks a release and prepares it; a dry run by default.
//!
//! In order: a clean tree, no tag of that name yet, a CHANGELOG section for the version, the one
//! workspace version bumped (with the internal crates' dependency versions), `cargo xtask ci`,
//! and `cargo publish --dry-run` of every crate. A dry run puts Cargo.toml and Cargo.lock back
//! as they were; `--execute` commits the bump and tags `v<version>` locally. Nothing is pushed
//! and nothing is published: that stays a person's decision.

use std::path::Path;

use anyhow::{Context, bail, ensure};
use toml_edit::{DocumentMut, Item, Value};

use crate::{cargo, ci, git, project_root, read, run as run_command};

/// The crates published to crates.io, libraries first in dependency order.
const PUBLISHED: [&str; 5] = ["kms-model", "kms-render", "kms-mount", "kms-cli", "kms-server"];

/// Arguments of `cargo xtask release`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReleaseArgs {
    /// The version to release, X.Y.Z with an optional pre-release (1.2.0-rc.1).
    version: String,

    /// Commit the version bump and tag it; without it nothing is left changed.
    #[arg(long)]
    execute: bool,

    /// Run the dry run on a tree with uncommitted changes (never allowed with --execute).
    #[arg(long, conflicts_with = "execute")]
    allow_dirty: bool,
}

/// Runs the release checks, and with `--execute` commits and tags.
pub(crate) fn run(args: &ReleaseArgs) -> anyhow::Result<()> {
    let root = project_root();
    let version = args.version.strip_prefix('v').unwrap_or(&args.version);
    check_version_syntax(version)?;
    let tag = format!("v{version}");

    let status = read(&mut git(["status", "--porcelain"]))?;
    if !status.is_empty() {
        ensure!(
            args.allow_dirty,
            "the working tree has uncommitted changes; commit or stash them first \
             (a dry run takes --allow-dirty):\n{status}"
        );
        eprintln!("release: going on with uncommitted changes (--allow-dirty)");
    }
    if read(&mut git(["rev-parse", "--quiet", "--verify", &format!("refs/tags/{tag}")])).is_ok() {
        bail!("tag {tag:?} already exists");
    }

    let changelog =
        std::fs::read_to_string(root.join("CHANGELOG.md")).context("reading CHANGELOG.md")?;
    let date = changelog_release_date(&changelog, version)?;
    eprintln!("release: CHANGELOG.md has {version} dated {date}");

    let manifest_path = root.join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path).context("reading Cargo.toml")?;
    let current = workspace_version(&manifest)?;
    let bumped = bump_workspace_version(&manifest, version)?;

    // Both files are put back whatever fails below, and after a dry run; only a successful
    // --execute keeps the bump, once it is committed.
    let lock_path = root.join("Cargo.lock");
    let restore = Restore::capture(&[&manifest_path, &lock_path])?;
    if bumped != manifest {
        eprintln!("release: bumping the workspace version {current} -> {version}");
        std::fs::write(&manifest_path, &bumped).context("writing Cargo.toml")?;
        run_command(&mut cargo(["update", "--workspace"]))?;
    } else {
        eprintln!("release: the workspace version is already {version}");
    }

    ci::run()?;
    publish_dry_run(bumped != manifest || args.allow_dirty)?;

    if !args.execute {
        restore.put_back()?;
        eprintln!("release: dry run of {tag} passed; run again with --execute to commit and tag");
        return Ok(());
    }

    if bumped != manifest {
        let message = format!("Release {tag}");
        run_command(&mut git(["commit", "--message", &message, "--", "Cargo.toml", "Cargo.lock"]))?;
    }
    restore.keep();
    run_command(&mut git(["tag", "--annotate", &tag, "--message", &format!("ucp-kms {version}")]))?;
    eprintln!("release: committed and tagged {tag} locally; push it when ready");
    Ok(())
}

/// `cargo publish --dry-run` of every published crate in one run.
///
/// One cargo run with every package lets cargo order them by dependency and verify each one
/// against the others through a temporary local registry: kms-render's package can be built
/// while kms-model of the same version is not on crates.io yet. Crate by crate, each dry run
/// after the first would fail on its unpublished dependency.
fn publish_dry_run(allow_dirty: bool) -> anyhow::Result<()> {
    let mut command = cargo(["publish", "--dry-run", "--locked"]);
    for package in PUBLISHED {
        command.args(["--package", package]);
    }
    if allow_dirty {
        // The only changes are the version bump just made, or those --allow-dirty accepted.
        command.arg("--allow-dirty");
    }
    run_command(&mut command)
}

/// Saved contents of files, written back on request or when dropped.
struct Restore {
    files: Vec<(std::path::PathBuf, Vec<u8>)>,
}

impl Restore {
    fn capture(paths: &[&Path]) -> anyhow::Result<Self> {
        let mut files = Vec::new();
        for path in paths {
            let contents =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            files.push((path.to_path_buf(), contents));
        }
        Ok(Self { files })
    }

    /// Keeps the files as they are now.
    fn keep(mut self) {
        self.files.clear();
    }

    fn put_back(mut self) -> anyhow::Result<()> {
        for (path, contents) in std::mem::take(&mut self.files) {
            std::fs::write(&path, contents)
                .with_context(|| format!("restoring {}", path.display()))?;
        }
        Ok(())
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        for (path, contents) in &self.files {
            if let Err(err) = std::fs::write(path, contents) {
                eprintln!("release: could not restore {}: {err}", path.display());
            }
        }
    }
}

/// A version is `X.Y.Z` with numbers, optionally followed by `-<pre-release>`.
pub(crate) fn check_version_syntax(version: &str) -> anyhow::Result<()> {
    let (core, pre) = match version.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (version, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    let numeric = |part: &&str| {
        !part.is_empty()
            && part.bytes().all(|byte| byte.is_ascii_digit())
            && (part.len() == 1 || !part.starts_with('0'))
    };
    let pre_ok = pre.is_none_or(|pre| {
        pre.split('.').all(|part| {
            !part.is_empty()
                && part.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        })
    });
    ensure!(
        numbers.len() == 3 && numbers.iter().all(numeric) && pre_ok,
        "version must look like X.Y.Z or X.Y.Z-rc.1, got {version:?}"
    );
    Ok(())
}

/// The date of the `## [<version>] - YYYY-MM-DD` section of a Keep a Changelog file.
///
/// # Errors
///
/// When there is no such section, or its date is not a date.
pub(crate) fn changelog_release_date<'a>(
    changelog: &'a str,
    version: &str,
) -> anyhow::Result<&'a str> {
    let heading = format!("## [{version}]");
    let Some(line) = changelog.lines().find(|line| line.starts_with(&heading)) else {
        bail!("CHANGELOG.md has no section \"{heading} - YYYY-MM-DD\"; add one with the changes");
    };
    let date = line[heading.len()..].strip_prefix(" - ").map(str::trim).unwrap_or_default();
    ensure!(
        is_date(date),
        "CHANGELOG.md section {line:?} must be dated: \"{heading} - YYYY-MM-DD\""
    );
    Ok(date)
}

fn is_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let [year, month, day] = parts.as_slice() else { return false };
    let number = |part: &str, len: usize| {
        part.len() == len && part.bytes().all(|byte| byte.is_ascii_digit())
    };
    if !(number(year, 4) && number(month, 2) && number(day, 2)) {
        return false;
    }
    let (month, day): (u32, u32) = (month.parse().unwrap_or(0), day.parse().unwrap_or(0));
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

/// `[workspace.package] version` of the root manifest.
pub(crate) fn workspace_version(manifest: &str) -> anyhow::Result<String> {
    let doc: DocumentMut = manifest.parse().context("parsing Cargo.toml")?;
    doc.get("workspace")
        .and_then(|workspace| workspace.get("package"))
        .and_then(|package| package.get("version"))
        .and_then(Item::as_str)
        .map(str::to_owned)
        .context("Cargo.toml has no [workspace.package] version")
}

/// The root manifest with `[workspace.package] version` and the `version` of every internal
/// crate (a `path` dependency) in `[workspace.dependencies]` set to `version`.
///
/// Only those values change: comments, order and layout stay as they were.
pub(crate) fn bump_workspace_version(manifest: &str, version: &str) -> anyhow::Result<String> {
    let mut doc: DocumentMut = manifest.parse().context("parsing Cargo.toml")?;
    let workspace = doc
        .get_mut("workspace")
        .and_then(Item::as_table_like_mut)
        .context("Cargo.toml has no [workspace] table")?;

    let package_version = workspace
        .get_mut("package")
        .and_then(Item::as_table_like_mut)
        .and_then(|package| package.get_mut("version"))
        .and_then(Item::as_value_mut)
        .context("Cargo.toml has no [workspace.package] version")?;
    set_keeping_decor(package_version, version);

    let mut internal = 0;
    if let Some(dependencies) = workspace.get_mut("dependencies").and_then(Item::as_table_like_mut)
    {
        for (name, dependency) in dependencies.iter_mut() {
            let Some(dependency) = dependency.as_table_like_mut() else { continue };
            if !dependency.contains_key("path") {
                continue;
            }
            let Some(value) = dependency.get_mut("version").and_then(Item::as_value_mut) else {
                bail!("workspace dependency {:?} has a path but no version", name.get());
            };
            set_keeping_decor(value, version);
            internal += 1;
        }
    }
    ensure!(internal > 0, "Cargo.toml lists no internal crates in [workspace.dependencies]");
    Ok(doc.to_string())
}

/// Replaces a string value, keeping the spaces and comments around it.
fn set_keeping_decor(value: &mut Value, version: &str) {
    let decor = value.decor().clone();
    *value = Value::from(version);
    *value.decor_mut() = decor;
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"[workspace]
members = ["crates/*", "xtask"]

[workspace.package]
version = "0.1.0"   # the one version of every crate
edition = "2024"

[workspace.dependencies]
# Internal crates, by path and version so they can be published.
kms-model = { path = "crates/kms-model", version = "0.1.0" }
kms-render = { path = "crates/kms-render", version = "0.1.0" }
serde = { version = "1", features = ["derive"] }
toml = "0.1.0"

[workspace.dependencies.kms-mount]
path = "crates/kms-mount"
version = "0.1.0"
"#;

    #[test]
    fn bump_changes_the_versions_and_nothing_else() {
        let bumped = bump_workspace_version(MANIFEST, "0.2.0").unwrap();
        let expected = MANIFEST
            .replace(r#"version = "0.1.0"   #"#, r#"version = "0.2.0"   #"#)
            .replace(r#"kms-model", version = "0.1.0""#, r#"kms-model", version = "0.2.0""#)
            .replace(r#"kms-render", version = "0.1.0""#, r#"kms-render", version = "0.2.0""#)
            .replace("kms-mount\"\nversion = \"0.1.0\"", "kms-mount\"\nversion = \"0.2.0\"");
        assert_eq!(bumped, expected);
        assert!(bumped.contains(r#"toml = "0.1.0""#), "external crates keep their versions");
        assert_eq!(workspace_version(&bumped).unwrap(), "0.2.0");
    }

    #[test]
    fn bump_to_the_same_version_changes_nothing() {
        assert_eq!(bump_workspace_version(MANIFEST, "0.1.0").unwrap(), MANIFEST);
    }

    #[test]
    fn bump_refuses_manifests_it_cannot_bump() {
        let no_package = "[workspace]\nmembers = []\n";
        let err = bump_workspace_version(no_package, "1.0.0").unwrap_err();
        assert_eq!(err.to_string(), "Cargo.toml has no [workspace.package] version");

        let internal_without_version = MANIFEST.replace(
            r#"kms-render = { path = "crates/kms-render", version = "0.1.0" }"#,
            r#"kms-render = { path = "crates/kms-render" }"#,
        );
        let err = bump_workspace_version(&internal_without_version, "1.0.0").unwrap_err();
        assert_eq!(
            err.to_string(),
            "workspace dependency \"kms-render\" has a path but no version"
        );
    }

    #[test]
    fn changelog_section_must_exist_and_be_dated() {
        let changelog = "# Changelog\n\n## [Unreleased]\n\n## [0.2.0] - 2026-12-03\n\n### Added\n\n\
                         ## [0.1.0-rc.1] - soon\n";
        assert_eq!(changelog_release_date(changelog, "0.2.0").unwrap(), "2026-12-03");

        let err = changelog_release_date(changelog, "0.3.0").unwrap_err();
        assert_eq!(
            err.to_string(),
            "CHANGELOG.md has no section \"## [0.3.0] - YYYY-MM-DD\"; add one with the changes"
        );
        let err = changelog_release_date(changelog, "0.1.0-rc.1").unwrap_err();
        assert!(err.to_string().contains("must be dated"), "{err}");
        // "## [0.2.0]" must not be found as the start of "## [0.2.0-rc.1]".
        assert!(changelog_release_date("## [0.2.0-rc.1] - 2026-01-01\n", "0.2.0").is_err());
    }

    #[test]
    fn dates_are_checked() {
        assert!(is_date("2026-12-03"));
        for bad in ["2026-13-01", "2026-12-32", "2026-1-03", "26-12-03", "2026-12-03x", ""] {
            assert!(!is_date(bad), "{bad:?}");
        }
    }

    #[test]
    fn versions_are_checked() {
        for good in ["0.1.0", "1.20.300", "1.0.0-rc.1", "2.0.0-beta"] {
            check_version_syntax(good).unwrap();
        }
        for bad in ["1.0", "1.0.0.0", "01.0.0", "1.x.0", "1.0.0-", "1.0.0-rc..1", ""] {
            assert!(check_version_syntax(bad).is_err(), "{bad:?}");
        }
    }
}
