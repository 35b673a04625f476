//! The record of what ucp-kms installed, seen through drift and status: a hand edit is measured
//! against the file ucp-kms installed, so deleting a provider kept for reads is drift.

use std::fs;
use std::path::Path;

use kms_model::{Endpoint, KmsSettings, KubeVersion};
use kms_mount::drift::{self, Installation, Installed};
use kms_mount::install::{DEFAULT_ENCRYPTION_CONFIG, OwnedFile};
use kms_mount::preflight::Preflight;
use kms_mount::status::{Status, StatusOptions};

const VERSION: KubeVersion = KubeVersion::DEFAULT;

fn settings(name: &str) -> KmsSettings {
    KmsSettings {
        enabled: true,
        name: name.to_owned(),
        endpoint: Some(Endpoint::Path("/run/kmsplugin/socket.sock".to_owned())),
        ..KmsSettings::disabled()
    }
}

fn owned(root: &Path) -> OwnedFile {
    OwnedFile::new(root, Path::new(DEFAULT_ENCRYPTION_CONFIG)).unwrap()
}

/// Installs the render of `name` with the transition from what is installed.
fn apply(file: &OwnedFile, name: &str) -> Vec<u8> {
    let installation = Installation::read(file, VERSION).unwrap();
    let desired = drift::desired(&settings(name), VERSION, installation.start()).unwrap().unwrap();
    file.install(&desired.yaml).unwrap();
    desired.yaml
}

/// `yaml` without the kms provider named `name`, as an operator's editor would leave it.
fn without_provider(yaml: &[u8], name: &str) -> Vec<u8> {
    let yaml = String::from_utf8(yaml.to_vec()).unwrap();
    let config = kms_model::decode(yaml.as_bytes(), VERSION).unwrap();
    let mut edited = config.clone();
    for entry in &mut edited.resources {
        entry.providers.retain(|provider| provider.kms.as_ref().is_none_or(|kms| kms.name != name));
    }
    assert_ne!(edited, config, "{yaml}");
    kms_render::to_yaml(&edited)
}

fn no_preflight() -> Preflight {
    Preflight { socket: None, plugin: None, problems: Vec::new(), warnings: Vec::new() }
}

#[test]
fn a_deleted_provider_kept_for_reads_is_drift_against_the_record() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    apply(&file, "vault");
    let renamed = apply(&file, "vault2");
    fs::write(file.path(), without_provider(&renamed, "vault")).unwrap();

    let installation = Installation::read(&file, VERSION).unwrap();
    assert!(installation.is_hand_edited());
    assert!(installation.warnings.is_empty(), "{:?}", installation.warnings);
    assert_eq!(installation.start().bytes(), Some(renamed.as_slice()));

    let status = Status::assemble(
        &settings("vault2"),
        VERSION,
        &installation,
        &no_preflight(),
        &StatusOptions { root: root.path().to_owned(), ..StatusOptions::default() },
    );
    assert!(status.drift, "{status:?}");
    assert_eq!(status.desired_hash, Some(kms_render::config_hash(&renamed)));
    assert!(status.diff.contains("+      name: vault\n"), "{}", status.diff);
    assert!(status.problems[0].contains("differs from the desired file"), "{:?}", status.problems);

    // The next install undoes the edit.
    assert_eq!(apply(&file, "vault2"), renamed);
    assert_eq!(file.read().unwrap().unwrap(), renamed);
    assert!(!Installation::read(&file, VERSION).unwrap().is_hand_edited());
}

#[test]
fn without_a_record_the_transition_starts_from_the_installed_file() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    apply(&file, "vault");
    let renamed = apply(&file, "vault2");
    let edited = without_provider(&renamed, "vault");
    fs::write(file.path(), &edited).unwrap();
    fs::remove_file(file.record_path()).unwrap();

    let installation = Installation::read(&file, VERSION).unwrap();
    assert!(!installation.is_hand_edited());
    assert_eq!(installation.start().bytes(), Some(edited.as_slice()));
}

#[test]
fn an_undecodable_record_is_not_used_and_says_so() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    let installed = apply(&file, "vault");
    fs::write(file.record_path(), b"kind: NotAnEncryptionConfiguration\n").unwrap();
    fs::write(file.previous_path(), b"something else\n").unwrap();

    let installation = Installation::read(&file, VERSION).unwrap();
    assert!(!installation.is_hand_edited());
    assert!(matches!(installation.start(), Installed::Parsed { bytes, .. } if *bytes == installed));
    assert_eq!(installation.warnings.len(), 1, "{:?}", installation.warnings);
    assert!(installation.warnings[0].contains(".encryption-config.yaml.ucp-kms"));

    let status = Status::assemble(
        &settings("vault"),
        VERSION,
        &installation,
        &no_preflight(),
        &StatusOptions::default(),
    );
    assert!(!status.drift, "{status:?}");
    assert_eq!(status.warnings, installation.warnings);
}
