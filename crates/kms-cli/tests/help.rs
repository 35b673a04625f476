//! `ucp-kms --help` and `--version`: the command list a newcomer sees first, pinned by a snapshot
//! so that a renamed or vanished command shows up in review.

use std::process::{Command, Output};

fn ucp_kms(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ucp-kms")).args(args).output().expect("ucp-kms runs")
}

#[test]
fn top_level_help_lists_every_command() {
    let output = ucp_kms(&["--help"]);
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8(output.stdout).unwrap();
    for command in [
        "validate",
        "render",
        "lint",
        "plan",
        "apply",
        "status",
        "prune",
        "rollback",
        "probe",
        "dev-plugin",
    ] {
        assert!(help.contains(&format!("\n  {command} ")), "{command} missing from:\n{help}");
    }
    insta::with_settings!({ snapshot_path => "snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("ucp_kms_help", help);
    });
}

#[test]
fn usage_errors_exit_2_with_the_usage_on_stderr() {
    let output = ucp_kms(&["no-such-command"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("Usage: ucp-kms"));
}

#[test]
fn version_names_the_release_and_the_commit() {
    let output = ucp_kms(&["--version"]);
    assert!(output.status.success());
    let version = String::from_utf8(output.stdout).unwrap();
    let expected = format!("ucp-kms {} (", env!("CARGO_PKG_VERSION"));
    assert!(version.starts_with(&expected), "{version}");
    assert!(version.trim_end().ends_with(')'), "{version}");
}
