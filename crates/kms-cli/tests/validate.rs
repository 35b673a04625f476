//! `ucp-kms validate` end to end: the real binary on UCP configuration files, checking the exit
//! status, the text lines with their positions and the JSON report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/validate")
}

/// Runs `ucp-kms` in the fixtures directory, so file names in the output are short and stable.
fn ucp_kms(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ucp-kms"))
        .args(args)
        .current_dir(fixtures())
        .env_remove("UCP_KMS_LOG")
        .env_remove("RUST_LOG")
        .output()
        .expect("ucp-kms runs")
}

fn validate(config: &str, extra: &[&str]) -> Output {
    let mut args = vec!["validate", "--config", config];
    args.extend_from_slice(extra);
    ucp_kms(&args)
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(output)))
}

fn snapshot(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots");
    settings.bind(|| insta::assert_snapshot!(name, text));
}

fn temp_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

#[test]
fn the_exported_sample_is_valid() {
    let output = validate("ucp-config-sample.toml", &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "ucp-config-sample.toml: valid for Kubernetes 1.36: KMS disabled\n"
    );

    let output = validate("ucp-config-sample.toml", &["--output", "json"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(json_of(&output), json!({"valid": true, "errors": [], "warnings": []}));
}

#[test]
fn the_sample_with_kms_enabled_is_valid_for_every_version() {
    let output = validate("ucp-config-kms.toml", &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    snapshot("validate_kms_enabled", &stdout(&output));
    for version in ["1.14", "1.24", "1.25", "1.28", "1.29", "1.36"] {
        let output = validate("ucp-config-kms.toml", &["--kubernetes-version", version]);
        assert_eq!(output.status.code(), Some(0), "{version}: {}", stdout(&output));
    }
}

#[test]
fn broken_settings_are_reported_with_positions() {
    let output = validate("ucp-config-broken.toml", &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    snapshot("validate_broken_text", &stdout(&output));

    let output = validate("ucp-config-broken.toml", &["-o", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let report = json_of(&output);
    assert_eq!(report["valid"], false);
    let errors = report["errors"].as_array().unwrap();
    let placed: Vec<_> = errors
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["line"].as_u64(), e["column"].as_u64()))
        .collect();
    assert_eq!(
        placed,
        [
            ("cluster_config.kms_name", Some(109), Some(14)),
            ("cluster_config.kms_endpoint", Some(110), Some(18)),
            ("cluster_config.kms_cachesize", Some(111), Some(19)),
        ]
    );
    assert_eq!(
        errors[1]["message"],
        "must be an absolute path, a unix:// URL or an abstract @name, got \"run/kms.sock\""
    );
    snapshot("validate_broken_json", &stdout(&output));
}

#[test]
fn kms_v1_validates_with_warnings() {
    let output = validate("ucp-config-kms-v1.toml", &["--kubernetes-version", "1.29"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with("warning: ucp-config-kms-v1.toml:111:19: cluster_config.kms_cachesize:"),
        "{text}"
    );
    assert!(text.contains("--feature-gates=KMSv1=true"), "{text}");
    assert!(
        text.ends_with(
            "KMS v1 provider \"vault\" at unix:///run/kmsplugin/socket.sock, 1 warning\n"
        ),
        "{text}"
    );

    let output =
        validate("ucp-config-kms-v1.toml", &["--kubernetes-version", "1.29", "-o", "json"]);
    let report = json_of(&output);
    assert_eq!((report["valid"].clone(), report["errors"].clone()), (json!(true), json!([])));
    assert_eq!(report["warnings"][0]["field"], "cluster_config.kms_cachesize");
    assert_eq!(report["warnings"][0]["line"], 111);
}

#[test]
fn a_toml_syntax_error_is_invalid_with_its_line() {
    let output = validate("syntax-error.toml", &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("syntax-error.toml:3:"), "{text}");
    assert!(text.contains("invalid TOML"), "{text}");
}

#[test]
fn empty_and_binary_files_are_invalid() {
    let (_dir, empty) = temp_file("empty.toml", b"");
    let output = validate(empty.to_str().unwrap(), &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("the file is empty"), "{}", stdout(&output));

    let garbage: Vec<u8> =
        (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let (_dir, binary) = temp_file("garbage.toml", &garbage);
    let output = validate(binary.to_str().unwrap(), &["-o", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report = json_of(&output);
    assert_eq!(report["valid"], false);
    assert!(report["errors"][0]["message"].as_str().unwrap().contains("not UTF-8"));
}

#[test]
fn unreadable_and_huge_files_cannot_be_validated() {
    let output = validate("no-such-file.toml", &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no-such-file.toml"), "{}", stderr(&output));
    assert!(stdout(&output).is_empty());

    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.toml");
    std::fs::File::create(&huge).unwrap().set_len(100 * 1024 * 1024).unwrap();
    let output = validate(huge.to_str().unwrap(), &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("larger than"), "{}", stderr(&output));
}

#[test]
fn reads_stdin() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ucp-kms"))
        .args(["validate", "--config", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let toml = "[cluster_config]\nkms_enabled = true\nkms_name = \"v\"\nkms_endpoint = \"@kms\"\n";
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), toml.as_bytes()).unwrap();
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        stdout(&output),
        "<stdin>: valid for Kubernetes 1.36: KMS v2 provider \"v\" at unix:///@kms\n"
    );
}

#[test]
fn refuses_an_unsupported_kubernetes_version() {
    let output = validate("ucp-config-sample.toml", &["--kubernetes-version", "1.13"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("1.14 to 1.36"), "{}", stderr(&output));
}

#[test]
fn help() {
    let output = ucp_kms(&["validate", "--help"]);
    assert_eq!(output.status.code(), Some(0));
    snapshot("validate_help", &stdout(&output));
}
