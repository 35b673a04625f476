//! `ucp-kms lint` end to end: the real binary on kube-apiserver's own test files and on hostile
//! input, checking the exit status, the text lines and the JSON report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lint")
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

fn lint(file: &str, extra: &[&str]) -> Output {
    let mut args = vec!["lint", file];
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

/// Every file of kube-apiserver's test corpus, with and without `--feature-gates KMSv1=true`,
/// against `VERDICTS.tsv`.
#[test]
fn the_conformance_corpus_matches_its_verdicts() {
    let verdicts = std::fs::read_to_string(fixtures().join("conformance/VERDICTS.tsv")).unwrap();
    let mut checked = 0;
    let mut mismatches = Vec::new();
    for line in verdicts.lines().filter(|l| !l.starts_with('#') && !l.starts_with("file\t")) {
        let columns: Vec<_> = line.split('\t').collect();
        let file = format!("conformance/{}", columns[0]);
        for (extra, verdict) in
            [(&[][..], columns[1]), (&["--feature-gates", "KMSv1=true"][..], columns[2])]
        {
            let output = lint(&file, extra);
            let expected = if verdict == "accept" { 0 } else { 1 };
            if output.status.code() != Some(expected) {
                mismatches.push(format!(
                    "{file} {extra:?}: {}{}",
                    stdout(&output),
                    stderr(&output)
                ));
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 58);
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn an_accepted_file() {
    let output = lint("kms-v2.yaml", &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "kms-v2.yaml: accepted by kube-apiserver 1.36\n");
    let output = lint("kms-v2.yaml", &["-o", "json"]);
    assert_eq!(json_of(&output), json!({"accepted": true, "errors": []}));
}

#[test]
fn the_kms_v1_gate() {
    let file = "conformance/valid-configs/kms/default-timeout.yaml";
    let output = lint(file, &["-o", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let report = json_of(&output);
    assert_eq!(report["accepted"], false);
    assert_eq!(report["errors"][0]["field"], "resources[0].providers[0].kms");
    let output = lint(file, &["--feature-gates", "KMSv1=true"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        stdout(&output),
        format!("{file}: accepted by kube-apiserver 1.36 (--feature-gates=KMSv1=true)\n")
    );
    // KMS v1 needs no gate before 1.29.
    assert_eq!(lint(file, &["--kubernetes-version", "1.28"]).status.code(), Some(0));
}

#[test]
fn every_problem_with_kube_apiserver_field_paths() {
    let output = lint("many-problems.yaml", &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    snapshot("lint_many_problems_text", &stdout(&output));
    let output = lint("many-problems.yaml", &["-o", "json"]);
    snapshot("lint_many_problems_json", &stdout(&output));
    assert!(!stdout(&output).contains("cGFzc3dvcmQK"), "key material leaked");
    // Before 1.27 the resource names are not checked.
    let old = lint("many-problems.yaml", &["--kubernetes-version", "1.26", "-o", "json"]);
    let fields: Vec<_> = json_of(&old)["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert!(fields.iter().all(|f| !f.starts_with("resources[0].resources")), "{fields:?}");
}

#[test]
fn strict_decoding_starts_at_1_31() {
    let file = "conformance/invalid-configs/invalid-typo.yaml";
    let at = |version: &str| {
        lint(file, &["--kubernetes-version", version, "--feature-gates", "KMSv1=true"])
    };
    assert_eq!(at("1.30").status.code(), Some(0));
    let strict = at("1.31");
    assert_eq!(strict.status.code(), Some(1));
    assert!(stdout(&strict).contains("unknown field \"resources[0].providers[3].kms.pandas\""));
}

#[test]
fn automatic_reload_makes_kms_v1_names_unique() {
    let (_dir, path) = temp_file(
        "dup.yaml",
        b"apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
          - resources: [secrets]\n  providers:\n  - kms: {name: foo, endpoint: 'unix:///a'}\n\
          \x20 - kms: {name: foo, endpoint: 'unix:///b'}\n",
    );
    let file = path.to_str().unwrap();
    assert_eq!(lint(file, &["--feature-gates", "KMSv1=true"]).status.code(), Some(0));
    let reload = lint(file, &["--feature-gates", "KMSv1=true", "--automatic-reload"]);
    assert_eq!(reload.status.code(), Some(1));
    assert!(stdout(&reload).contains("duplicate KMS provider name foo"));
    let too_old = lint(file, &["--automatic-reload", "--kubernetes-version", "1.25"]);
    assert_eq!(too_old.status.code(), Some(2));
}

#[test]
fn unknown_feature_gates_are_a_usage_error() {
    let output = lint("kms-v2.yaml", &["--feature-gates", "KMSv3=true"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("accepted: KMSv1"), "{}", stderr(&output));
    assert!(stdout(&output).is_empty());
    let output = lint("kms-v2.yaml", &["--feature-gates", "KMSv1=maybe"]);
    assert_eq!(output.status.code(), Some(2));
    let ok = lint(
        "kms-v2.yaml",
        &["--kubernetes-version", "1.26", "--feature-gates", "KMSv1=true,KMSv2=true"],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
}

fn temp_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

#[test]
fn hostile_input_is_rejected_without_a_panic() {
    let output = lint("alias-bomb.yaml", &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(!stderr(&output).contains("panicked"));

    let garbage: Vec<u8> =
        (0..65_536u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8).collect();
    let (_dir, path) = temp_file("garbage.yaml", &garbage);
    let output = lint(path.to_str().unwrap(), &["-o", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(json_of(&output)["accepted"], false);

    for (name, bytes) in [
        ("kinds.yaml", &b"apiVersion: v1\nkind: Pod\n"[..]),
        ("list.yaml", b"- a\n- b\n"),
        ("deep.json", &[b'['; 100_000][..]),
        ("tabs.yaml", b"kind:\tEncryptionConfiguration\n\t- x"),
    ] {
        let (_dir, path) = temp_file(name, bytes);
        let output = lint(path.to_str().unwrap(), &[]);
        assert_eq!(output.status.code(), Some(1), "{name}: {}", stderr(&output));
        assert!(!stderr(&output).contains("panicked"), "{name}");
    }

    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.yaml");
    std::fs::File::create(&huge).unwrap().set_len(100 * 1024 * 1024).unwrap();
    let output = lint(huge.to_str().unwrap(), &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("larger than"));

    assert_eq!(lint("missing.yaml", &[]).status.code(), Some(2));
}

#[test]
fn help() {
    let output = ucp_kms(&["lint", "--help"]);
    assert_eq!(output.status.code(), Some(0));
    snapshot("lint_help", &stdout(&output));
}
