//! `ucp-kms render` end to end: the real binary on fixture files, checking stdout, stderr and
//! the exit status.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/render").join(name)
}

fn ucp_kms(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ucp-kms"))
        .args(args)
        .env_remove("UCP_KMS_LOG")
        .env_remove("RUST_LOG")
        .output()
        .expect("ucp-kms runs")
}

fn render(config: &str, extra: &[&str]) -> Output {
    let config = fixture(config);
    let mut args = vec!["render", "--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    ucp_kms(&args)
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(output)))
}

fn snapshot(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots");
    settings.bind(|| insta::assert_snapshot!(name, text));
}

/// Writes `bytes` into a fresh temporary directory and returns the directory and the file path.
fn temp_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

#[test]
fn renders_the_ucp_docs_example_for_1_14() {
    let output = render("ucp-docs-example.toml", &["--kubernetes-version", "1.14"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let yaml = stdout(&output);
    assert!(yaml.starts_with("# Managed by ucp-kms"), "{yaml}");
    assert!(!yaml.contains("apiVersion: v1\n      name"), "no kms apiVersion before 1.25: {yaml}");
    snapshot("render_ucp_docs_example_1_14", &yaml);
}

#[test]
fn same_config_same_bytes() {
    let first = render("kms-v2.toml", &[]);
    let second = render("kms-v2.toml", &[]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(!first.stdout.is_empty());
    assert_eq!(first.stdout, second.stdout);
}

#[test]
fn json_carries_yaml_hash_and_warnings() {
    let text = render("ucp-docs-example.toml", &[]);
    let output = render("ucp-docs-example.toml", &["--output", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report = json(&output);

    assert_eq!(report["rendered"], true);
    assert_eq!(report["yaml"].as_str().unwrap().as_bytes(), text.stdout.as_slice());
    assert_eq!(report["hash"].as_str().unwrap(), kms_render::config_hash(&text.stdout));
    let warnings = report["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w["message"].as_str().unwrap().contains("KMSv1=true")),
        "{warnings:?}"
    );
    assert_eq!(report["errors"], Value::Array(vec![]));
}

#[test]
fn warnings_go_to_stderr() {
    let output = render("ucp-docs-example.toml", &["--kubernetes-version", "1.36"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(stderr(&output).contains("warning: "), "{}", stderr(&output));
    assert!(!stdout(&output).contains("warning"));
}

#[test]
fn disabled_without_installed_file_renders_nothing() {
    let output = render("ucp-disabled.toml", &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(output.stdout.is_empty());
    assert!(stderr(&output).contains("nothing to render"), "{}", stderr(&output));

    let report = json(&render("ucp-disabled.toml", &["-o", "json"]));
    assert_eq!(report["rendered"], false);
    assert_eq!(report["yaml"], "");
    assert_eq!(report["hash"], Value::Null);
    assert!(report["note"].as_str().unwrap().contains("nothing to render"));
}

#[test]
fn invalid_settings_are_reported_with_their_position() {
    let output = render("invalid-endpoint.toml", &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(output.stdout.is_empty());
    let path = fixture("invalid-endpoint.toml");
    let expected = format!("{}:4:", path.display());
    let err = stderr(&output);
    assert!(err.contains(&expected) && err.contains("cluster_config.kms_endpoint: "), "{err}");

    let report = json(&render("invalid-endpoint.toml", &["-o", "json"]));
    assert_eq!(report["rendered"], false);
    assert_eq!(report["errors"][0]["field"], "cluster_config.kms_endpoint");
    assert_eq!(report["errors"][0]["line"], 4);
}

#[test]
fn keeps_the_providers_of_an_aescbc_file() {
    let previous = fixture("aescbc.yaml");
    let output = render("kms-v2.toml", &["--previous", previous.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let yaml = stdout(&output);
    let kms = yaml.find("name: vault").unwrap();
    let aescbc = yaml.find("aescbc:").unwrap();
    let identity = yaml.find("identity: {}").unwrap();
    assert!(kms < aescbc && aescbc < identity, "{yaml}");
    snapshot("render_aescbc_to_kms", &yaml);
}

#[test]
fn rename_keeps_the_old_provider_for_reads() {
    let first = render("kms-v2.toml", &[]);
    let (_dir, installed) = temp_file("installed.yaml", &first.stdout);
    let output = render("kms-v2-renamed.toml", &["--previous", installed.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let yaml = stdout(&output);
    let new = yaml.find("name: vault-2").unwrap();
    let old = yaml.find("name: vault\n").unwrap();
    assert!(new < old, "{yaml}");
    assert!(stderr(&output).contains("reads only"), "{}", stderr(&output));
}

#[test]
fn disable_puts_identity_first() {
    let first = render("kms-v2.toml", &[]);
    let (_dir, installed) = temp_file("installed.yaml", &first.stdout);
    let output = render("kms-v2-disabled.toml", &["--previous", installed.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let yaml = stdout(&output);
    assert!(yaml.find("identity: {}").unwrap() < yaml.find("name: vault").unwrap(), "{yaml}");
}

#[test]
fn switching_a_name_to_kms_v2_is_refused() {
    let v1 = render("ucp-docs-example.toml", &[]);
    let (_dir, installed) = temp_file("installed.yaml", &v1.stdout);
    let output = render("kms-v2.toml", &["--previous", installed.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(output.stdout.is_empty());
    assert!(stderr(&output).contains("choose a new kms_name"), "{}", stderr(&output));
}

#[test]
fn an_invalid_installed_file_is_refused() {
    let previous = fixture("not-a-config.yaml");
    let output = render("kms-v2.toml", &["--previous", previous.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(output.stdout.is_empty());
    assert!(stderr(&output).contains("not-a-config.yaml"), "{}", stderr(&output));
}

#[test]
fn a_missing_file_cannot_run() {
    let output = ucp_kms(&["render", "--config", "/nonexistent/ucp-config.toml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("/nonexistent/ucp-config.toml"), "{}", stderr(&output));
}

#[test]
fn rendered_files_pass_lint_for_their_version() {
    let cases = [
        ("ucp-docs-example.toml", "1.14"),
        ("ucp-docs-example.toml", "1.36"),
        ("kms-v2.toml", "1.29"),
    ];
    for (config, version) in cases {
        let output = render(config, &["--kubernetes-version", version]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let (_dir, path) = temp_file("encryption-config.yaml", &output.stdout);

        let mut args = vec!["lint", path.to_str().unwrap(), "--kubernetes-version", version];
        if stdout(&output).contains("apiVersion: v1\n") {
            args.extend(["--feature-gates", "KMSv1=true"]);
        }
        let lint = ucp_kms(&args);
        assert_eq!(
            lint.status.code(),
            Some(0),
            "{config} on {version}: {}{}",
            stdout(&lint),
            stderr(&lint)
        );
    }
}

#[test]
fn help() {
    let output = ucp_kms(&["render", "--help"]);
    assert_eq!(output.status.code(), Some(0));
    snapshot("render_help", &stdout(&output));
}

#[test]
fn reads_the_config_from_stdin() {
    let from_file = render("kms-v2.toml", &[]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ucp-kms"))
        .args(["render", "--config", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let toml = std::fs::read(fixture("kms-v2.toml")).unwrap();
    child.stdin.take().unwrap().write_all(&toml).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(output.stdout, from_file.stdout);
}

#[test]
fn stdin_serves_one_file_only() {
    let output = ucp_kms(&["render", "--config", "-", "--previous", "-"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("cannot both read stdin"), "{}", stderr(&output));
}
