//! `cargo xtask dist`: the release tarball, reproducible from a commit.
//!
//! `target/dist/ucp-kms-<version>-<target>.tar.gz` holds both binaries, their shell completions
//! and man pages (generated from the clap definitions), the systemd unit of the server, the
//! README, LICENSE and CHANGELOG; `target/dist/SHA256SUMS` lists its digest in the form
//! `sha256sum -c` reads.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;
use sha2::{Digest, Sha256};

use crate::archive;
use crate::{cargo, git, project_root, read, run as run_command};

/// A binary of the release.
struct Binary {
    /// File name of the executable.
    name: &'static str,
    /// The package that builds it.
    package: &'static str,
    /// Its clap definition, for completions and man pages.
    command: fn() -> clap::Command,
}

const BINARIES: [Binary; 2] = [
    Binary {
        name: "ucp-kms",
        package: "kms-cli",
        command: <kms_cli::Cli as CommandFactory>::command,
    },
    Binary {
        name: "ucp-kms-server",
        package: "kms-server",
        command: <kms_server::Cli as CommandFactory>::command,
    },
];

/// Files copied from the repository into the archive: source path, path in the archive.
const DOCUMENTS: [(&str, &str); 4] = [
    ("README.md", "README.md"),
    ("LICENSE", "LICENSE"),
    ("CHANGELOG.md", "CHANGELOG.md"),
    ("dist/ucp-kms-server.service", "systemd/ucp-kms-server.service"),
];

/// Builds the tarball and SHA256SUMS; returns the tarball's path.
pub(crate) fn run() -> anyhow::Result<PathBuf> {
    let root = project_root();
    let target = host_target()?;
    let version = env!("CARGO_PKG_VERSION");
    let name = format!("ucp-kms-{version}-{target}");
    let target_dir = target_dir(&root);
    let dist_dir = target_dir.join("dist");

    build_binaries(&root, &target)?;

    // The tree is staged on disk first, so what the archive holds can also be looked at.
    let staging = dist_dir.join(&name);
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("removing {}", staging.display()))?;
    }
    stage(&root, &target_dir.join(&target).join("release"), &staging)?;

    let mtime = source_date_epoch()?;
    let entries = archive::collect(&staging, &name)?;
    let tarball = dist_dir.join(format!("{name}.tar.gz"));
    let mut bytes = Vec::new();
    archive::write_tar_gz(entries, mtime, &mut bytes)?;
    std::fs::write(&tarball, &bytes).with_context(|| format!("writing {}", tarball.display()))?;

    let file_name = format!("{name}.tar.gz");
    let sums = sha256sums_line(&bytes, &file_name);
    std::fs::write(dist_dir.join("SHA256SUMS"), &sums).context("writing SHA256SUMS")?;

    eprintln!("{}", tarball.display());
    eprint!("{sums}");
    Ok(tarball)
}

/// The host's target triple, as rustc reports it.
fn host_target() -> anyhow::Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = read(std::process::Command::new(rustc).arg("-vV"))?;
    version
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV printed no \"host: \" line")
}

/// Release builds of both binaries for `target`.
///
/// Paths of the checkout and of cargo's registry are remapped, so that panic locations and
/// debug info do not depend on where the sources happen to live.
fn build_binaries(root: &Path, target: &str) -> anyhow::Result<()> {
    let mut rustflags: Vec<String> = match std::env::var("RUSTFLAGS") {
        Ok(flags) => flags.split_whitespace().map(str::to_owned).collect(),
        Err(_) => Vec::new(),
    };
    rustflags.push(format!("--remap-path-prefix={}=/ucp-kms", root.display()));
    if let Some(cargo_home) = cargo_home() {
        rustflags.push(format!("--remap-path-prefix={}=/cargo", cargo_home.display()));
    }

    let mut build = cargo(["build", "--release", "--locked", "--target", target]);
    for binary in &BINARIES {
        build.args(["--package", binary.package]);
    }
    // An explicit --target keeps these flags away from build scripts and proc macros.
    build.env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\x1f"));
    run_command(&mut build)
}

fn cargo_home() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return Some(PathBuf::from(home));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo"))
}

/// Cargo's build directory: `target` unless `CARGO_TARGET_DIR` moves it.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// Lays out the release tree in `staging`, with the binaries from `release_dir`.
fn stage(root: &Path, release_dir: &Path, staging: &Path) -> anyhow::Result<()> {
    for dir in ["bin", "completions", "man", "systemd"] {
        create_dir(&staging.join(dir))?;
    }

    for binary in &BINARIES {
        let built = release_dir.join(binary.name);
        let staged = staging.join("bin").join(binary.name);
        std::fs::copy(&built, &staged)
            .with_context(|| format!("copying {} to {}", built.display(), staged.display()))?;
        write_completions((binary.command)(), binary.name, &staging.join("completions"))?;
        clap_mangen::generate_to((binary.command)(), staging.join("man"))
            .with_context(|| format!("writing the man pages of {}", binary.name))?;
    }

    for (source, destination) in DOCUMENTS {
        let source = root.join(source);
        let destination = staging.join(destination);
        std::fs::copy(&source, &destination).with_context(|| {
            format!("copying {} to {}", source.display(), destination.display())
        })?;
    }
    Ok(())
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Completion scripts for bash, zsh and fish, named as each shell looks them up.
fn write_completions(mut command: clap::Command, binary: &str, dir: &Path) -> anyhow::Result<()> {
    for (shell, file_name) in [
        (Shell::Bash, format!("{binary}.bash")),
        (Shell::Zsh, format!("_{binary}")),
        (Shell::Fish, format!("{binary}.fish")),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command, binary, &mut script);
        let path = dir.join(file_name);
        std::fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The time stamped on every archive entry: the commit's time, so that the same commit gives
/// the same archive; else `SOURCE_DATE_EPOCH`; else the epoch.
fn source_date_epoch() -> anyhow::Result<u64> {
    if let Ok(time) = read(&mut git(["log", "-1", "--format=%ct"])) {
        return time.parse().with_context(|| format!("git printed commit time {time:?}"));
    }
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(time) => time.trim().parse().with_context(|| {
            format!("SOURCE_DATE_EPOCH must be seconds since the epoch, got {time:?}")
        }),
        Err(_) => Ok(0),
    }
}

/// One line of a `sha256sum` listing: the hex digest, two spaces, the file name.
fn sha256sums_line(bytes: &[u8], file_name: &str) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{hex}  {file_name}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256sums_line_is_what_sha256sum_prints() {
        // sha256sum of the three bytes "abc", a published test vector.
        assert_eq!(
            sha256sums_line(b"abc", "x.tar.gz"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  x.tar.gz\n"
        );
    }
}
