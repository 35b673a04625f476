//! kube-apiserver's own EncryptionConfiguration test files, judged as kube-apiserver 1.36 judges
//! them with default feature gates and with `--feature-gates=KMSv1=true` (`VERDICTS.tsv`).

use std::fs;
use std::path::{Path, PathBuf};

use kms_model::{KubeVersion, LintOptions, lint};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conformance")
}

/// `(file, accepted by default, accepted with KMSv1=true, deciding rule)` from `VERDICTS.tsv`.
fn verdicts() -> Vec<(String, bool, bool, String)> {
    let text = fs::read_to_string(corpus().join("VERDICTS.tsv")).unwrap();
    let verdict = |word: &str| match word {
        "accept" => true,
        "reject" => false,
        other => panic!("unknown verdict {other:?}"),
    };
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with("file\t") && !line.is_empty())
        .map(|line| {
            let columns: Vec<_> = line.split('\t').collect();
            assert_eq!(columns.len(), 4, "{line}");
            (columns[0].to_owned(), verdict(columns[1]), verdict(columns[2]), columns[3].to_owned())
        })
        .collect()
}

fn files_under(dir: &Path, base: &Path, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, base, out);
        } else {
            out.push(path.strip_prefix(base).unwrap().to_string_lossy().into_owned());
        }
    }
}

#[test]
fn every_file_has_a_verdict() {
    let mut files = Vec::new();
    files_under(&corpus(), &corpus(), &mut files);
    files.retain(|f| f != "VERDICTS.tsv");
    files.sort();
    let mut listed: Vec<_> = verdicts().into_iter().map(|(file, ..)| file).collect();
    listed.sort();
    assert_eq!(files, listed);
    assert_eq!(listed.len(), 29);
}

#[test]
fn verdicts_match_kube_apiserver_1_36() {
    let default = LintOptions::for_version(KubeVersion::new(36).unwrap());
    let with_v1 = default.with_feature_gates("KMSv1=true").unwrap();
    let mut mismatches = Vec::new();
    for (file, accept_default, accept_v1, rule) in verdicts() {
        let bytes = fs::read(corpus().join(&file)).unwrap();
        for (options, expected, label) in
            [(default, accept_default, "default"), (with_v1, accept_v1, "KMSv1=true")]
        {
            let errors = lint(&bytes, &options);
            if errors.is_empty() != expected {
                mismatches.push(format!("{file} ({label}, {rule}): {errors:?}"));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// The deciding rule of each rejection is the one reported, not some other problem.
#[test]
fn rejections_name_the_deciding_rule() {
    let options = LintOptions::for_version(KubeVersion::new(36).unwrap());
    let expect = [
        (
            "valid-configs/kms/default-timeout.yaml",
            "resources[0].providers[0].kms",
            "KMSv1 is deprecated",
        ),
        (
            "invalid-configs/invalid-aes-gcm.yaml",
            "resources[0].providers[0].aesgcm.keys",
            "at least one keys is required",
        ),
        (
            "invalid-configs/invalid-typo.yaml",
            "resources[0].providers[3].kms.pandas",
            "unknown field",
        ),
        (
            "invalid-configs/kms/invalid-apiversion.yaml",
            "resources[0].providers[0].kms.apiVersion",
            "only v1 and v2 are supported",
        ),
        (
            "invalid-configs/kms/invalid-config-type.yaml",
            "kind",
            "no kind \"EncryptionConfigurations\"",
        ),
        ("invalid-configs/kms/invalid-content.yaml", "", "empty"),
        ("invalid-configs/kms/invalid-gvk.yaml", "kind", "kind is missing"),
        (
            "historical-pre-1.18/invalid-configs/aes/invalid-key.yaml",
            "resources[0].providers[0].aesgcm.keys[1].secret",
            "got 17",
        ),
        (
            "historical-pre-1.18/invalid-configs/aes/no-key.yaml",
            "resources[0].providers[0].aesgcm.keys[0].secret",
            "secret is a mandatory field",
        ),
        (
            "historical-pre-1.18/invalid-configs/kms/negative-timeout.yaml",
            "resources[0].providers[0].kms.timeout",
            "positive",
        ),
        (
            "historical-pre-1.18/invalid-configs/kms/zero-timeout.yaml",
            "resources[0].providers[0].kms.timeout",
            "positive",
        ),
        (
            "historical-pre-1.18/invalid-configs/kms/no-endpoint.yaml",
            "resources[0].providers[0].kms.endpoint",
            "endpoint is a mandatory field",
        ),
    ];
    for (file, field, message) in expect {
        let errors = lint(&fs::read(corpus().join(file)).unwrap(), &options);
        assert!(
            errors.iter().any(|e| e.field == field && e.message.contains(message)),
            "{file}: {errors:?}"
        );
    }
}

/// Before 1.31 kube-apiserver ignored unknown fields, so the typo file loads with the gate on.
#[test]
fn the_typo_file_loads_before_strict_decoding() {
    let bytes = fs::read(corpus().join("invalid-configs/invalid-typo.yaml")).unwrap();
    let at_30 = LintOptions::for_version(KubeVersion::new(30).unwrap());
    assert!(!lint(&bytes, &at_30).is_empty());
    assert!(lint(&bytes, &at_30.with_feature_gates("KMSv1=true").unwrap()).is_empty());
}
