//! `cargo xtask ci`: every check CI makes, in the order a developer would run them.
//!
//! Format, clippy, the tests, the tests marked `#[ignore = "needs <tool>"]` whose tool this
//! machine has, then the docs. Every step runs even when an earlier one failed, and each goes on
//! past a failing crate or test binary, so one run shows everything that is wrong. The last line
//! counts the tests: `tests: N passed, N failed, N skipped`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::{cargo, display, project_root, run as run_command, tidy};

/// Runs every check and fails if any failed.
pub(crate) fn run() -> anyhow::Result<()> {
    let mut failed = Vec::new();
    let mut check = |name: &'static str, result: anyhow::Result<()>| {
        if let Err(err) = result {
            eprintln!("ci: {name} failed: {err:#}");
            failed.push(name);
        }
    };

    check("fmt", run_command(&mut cargo(["fmt", "--all", "--check"])));
    check(
        "clippy",
        run_command(&mut cargo([
            "clippy",
            "--workspace",
            "--all-targets",
            "--keep-going",
            "--",
            "-D",
            "warnings",
        ])),
    );
    let mut tests = Tally::default();
    check("test", run_tests(&mut cargo(["test", "--workspace", "--no-fail-fast"]), &mut tests));
    let mut ignored = Tally::default();
    check("ignored tests", ignored_tests(&project_root(), &mut ignored));
    check(
        "doc",
        run_command(cargo(["doc", "--workspace", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings")),
    );

    // Ignored tests are counted by the first run; those the second run ran are not skipped.
    let ran_ignored = ignored.passed + ignored.failed;
    println!(
        "tests: {} passed, {} failed, {} skipped",
        tests.passed + ignored.passed,
        tests.failed + ignored.failed,
        tests.ignored.saturating_sub(ran_ignored),
    );
    if !failed.is_empty() {
        bail!("ci failed: {}", failed.join(", "));
    }
    Ok(())
}

/// Test counts summed over the `test result:` lines of a cargo test run.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) passed: u64,
    pub(crate) failed: u64,
    pub(crate) ignored: u64,
}

impl Tally {
    /// Adds the counts of one libtest summary line, if `line` is one.
    pub(crate) fn add_line(&mut self, line: &str) {
        let Some(counts) = line.trim().strip_prefix("test result: ") else { return };
        for part in counts.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(kind), Some(number)) = (words.next(), words.next()) else { continue };
            let Ok(number) = number.parse::<u64>() else { continue };
            match kind {
                "passed" => self.passed += number,
                "failed" => self.failed += number,
                "ignored" => self.ignored += number,
                _ => {}
            }
        }
    }
}

/// Runs a cargo test command, passing its output through and counting its results.
fn run_tests(command: &mut Command, tally: &mut Tally) -> anyhow::Result<()> {
    eprintln!("$ {}", display(command));
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {}", display(command)))?;
    let stdout = child.stdout.take().context("test output is not piped")?;
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading test output")?;
        tally.add_line(&line);
        writeln!(out, "{line}")?;
    }
    drop(out);
    let status = child.wait()?;
    if !status.success() {
        bail!("{} failed with {status}", display(command));
    }
    Ok(())
}

/// A test kept out of the default run because it needs something from the environment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct IgnoredTest {
    /// The test function's name.
    pub(crate) name: String,
    /// What it needs: a program on `PATH`, or `root`.
    pub(crate) needs: String,
}

/// Runs the ignored tests whose needs are met here, and says which ones it leaves out.
fn ignored_tests(root: &Path, tally: &mut Tally) -> anyhow::Result<()> {
    let mut tests = Vec::new();
    for file in tidy::rust_files(root)? {
        let text = std::fs::read_to_string(&file)?;
        tests.extend(find_ignored_tests(&text));
    }
    if tests.is_empty() {
        eprintln!("ci: no tests marked #[ignore = \"needs ...\"]");
        return Ok(());
    }

    let (runnable, missing): (Vec<_>, Vec<_>) = tests.iter().partition(|test| is_met(&test.needs));
    for test in &missing {
        eprintln!(
            "ci: leaving out {} (needs {}, not found on this machine)",
            test.name, test.needs
        );
    }
    if runnable.is_empty() {
        return Ok(());
    }

    let mut command = cargo(["test", "--workspace", "--no-fail-fast", "--", "--ignored"]);
    for test in &missing {
        command.args(["--skip", &test.name]);
    }
    run_tests(&mut command, tally)
}

/// Finds `#[ignore = "needs <what>"]` tests and the name of the function each one marks.
pub(crate) fn find_ignored_tests(source: &str) -> Vec<IgnoredTest> {
    let mut found = Vec::new();
    let lines: Vec<&str> = source.lines().collect();
    for (index, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim().strip_prefix("#[ignore = \"needs ") else { continue };
        let Some(needs) = rest.split('"').next() else { continue };
        // The first word that is not an article: "needs an etcd binary" needs etcd.
        let Some(needs) =
            needs.split_whitespace().find(|word| !matches!(*word, "a" | "an" | "the"))
        else {
            continue;
        };
        let name = lines[index + 1..].iter().take(8).find_map(|line| function_name(line));
        if let Some(name) = name {
            found.push(IgnoredTest { name: name.to_owned(), needs: needs.to_owned() });
        }
    }
    found
}

/// The name declared by a `fn` line, `async fn` and visibility included.
fn function_name(line: &str) -> Option<&str> {
    let (_, after) = line.split_once("fn ")?;
    let name = after.split(|c: char| !(c.is_alphanumeric() || c == '_')).next()?;
    (!name.is_empty()).then_some(name)
}

/// Whether this machine has what a test needs.
fn is_met(needs: &str) -> bool {
    if needs == "root" {
        return is_root();
    }
    let Some(path) = std::env::var_os("PATH") else { return false };
    std::env::split_paths(&path).any(|dir| is_executable(&dir.join(needs)))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Whether this process runs as root, read from the kernel's view of it.
fn is_root() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return false };
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .is_some_and(|effective| effective == "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ignored_tests_and_what_they_need() {
        // Built line by line so that this file holds no real ignored-test markers.
        let source = [
            "#[test]",
            "#[ignore = \"needs etcd\"]",
            "fn stores_revisions_in_etcd() {}",
            "",
            "#[tokio::test]",
            "#[ignore = \"needs an etcd-server binary\"]",
            "async fn watches_etcd() {}",
            "",
            "#[test]",
            "    #[ignore = \"needs root\"]",
            "    pub(crate) fn chowns_the_socket_dir() {}",
            "",
            "#[test]",
            "fn runs_everywhere() {}",
        ]
        .join("\n");
        assert_eq!(
            find_ignored_tests(&source),
            [
                IgnoredTest { name: "stores_revisions_in_etcd".into(), needs: "etcd".into() },
                IgnoredTest { name: "watches_etcd".into(), needs: "etcd-server".into() },
                IgnoredTest { name: "chowns_the_socket_dir".into(), needs: "root".into() },
            ]
        );
    }

    #[test]
    fn test_result_lines_are_counted() {
        let mut tally = Tally::default();
        for line in [
            "running 3 tests",
            "test a ... ok",
            "test result: ok. 2 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; \
             finished in 0.01s",
            "test result: FAILED. 5 passed; 2 failed; 0 ignored; 0 measured; 3 filtered out; \
             finished in 1.20s",
            "   Doc-tests kms_model",
            "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out",
        ] {
            tally.add_line(line);
        }
        assert_eq!(tally, Tally { passed: 7, failed: 2, ignored: 1 });
    }

    #[test]
    fn needs_are_met_by_programs_on_path_only() {
        assert!(is_met("sh"), "every Unix machine has sh");
        assert!(!is_met("no-such-program-ucp-kms"));
    }
}
