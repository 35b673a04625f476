//! Rendering scenarios: the YAML of each is pinned by a named snapshot in `tests/snapshots/`,
//! and what matters about it is asserted as well.

use std::time::Duration;

use kms_model::encryption::EncryptionConfiguration;
use kms_model::{Endpoint, KmsApiVersion, KmsSettings, KubeVersion};
use kms_render::{MANAGED_HEADER, RenderError, Rendered, config_hash, prune, render, to_yaml};

fn v(minor: u16) -> KubeVersion {
    KubeVersion::new(minor).unwrap()
}

fn enabled(name: &str, endpoint: &str) -> KmsSettings {
    KmsSettings {
        enabled: true,
        name: name.to_owned(),
        endpoint: Some(Endpoint::Path(endpoint.to_owned())),
        ..KmsSettings::disabled()
    }
}

fn vault() -> KmsSettings {
    enabled("vault", "/run/kms/vault.sock")
}

fn fixture(name: &str) -> EncryptionConfiguration {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn rendered(
    settings: &KmsSettings,
    version: KubeVersion,
    previous: Option<&EncryptionConfiguration>,
) -> Rendered {
    render(settings, version, previous).unwrap().expect("a file to render")
}

/// Renders `steps` in turn at `version`, each on top of the one before.
fn sequence(steps: &[KmsSettings], version: KubeVersion) -> Rendered {
    let mut previous: Option<Rendered> = None;
    for settings in steps {
        let next = rendered(settings, version, previous.as_ref().map(|r| &r.config));
        previous = Some(next);
    }
    previous.unwrap()
}

/// Pins the YAML under `tests/snapshots/<name>.snap`, with the warnings as snapshot info.
fn check(name: &str, description: &str, rendered: &Rendered) {
    let yaml = String::from_utf8(rendered.yaml.clone()).unwrap();
    assert!(yaml.starts_with(MANAGED_HEADER), "{yaml}");
    assert_eq!(rendered.hash, config_hash(&rendered.yaml));
    assert_eq!(rendered.yaml, to_yaml(&rendered.config));

    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_description(description);
    settings.set_info(&rendered.warnings);
    settings.bind(|| insta::assert_snapshot!(name, yaml));
}

/// The provider lines of each entry, in order, like `kms vault` or `identity`.
fn shape(config: &EncryptionConfiguration) -> Vec<(Vec<String>, Vec<String>)> {
    config
        .resources
        .iter()
        .map(|entry| {
            let providers = entry
                .providers
                .iter()
                .map(|p| match (&p.kms, &p.aescbc, &p.aesgcm, &p.identity) {
                    (Some(kms), ..) => format!("kms {}", kms.name),
                    (_, Some(_), ..) => "aescbc".to_owned(),
                    (_, _, Some(_), _) => "aesgcm".to_owned(),
                    (.., Some(_)) => "identity".to_owned(),
                    _ => "other".to_owned(),
                })
                .collect();
            (entry.resources.clone(), providers)
        })
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn ucp_docs_example_on_1_14() {
    let settings = KmsSettings { cachesize: 100, ..enabled("vault", "/tmp/socketfile.sock") };
    let rendered = rendered(&settings, v(14), None);

    let kms = rendered.config.resources[0].providers[0].kms.as_ref().unwrap();
    assert_eq!(kms.api_version, None, "no apiVersion field before 1.25");
    assert_eq!(kms.cachesize, Some(100));
    assert_eq!(kms.endpoint, "unix:///tmp/socketfile.sock");
    assert!(rendered.warnings.is_empty(), "{:?}", rendered.warnings);
    check(
        "ucp_docs_example_1_14",
        "UCP 3.2.5 docs: vault, /tmp/socketfile.sock, cachesize 100",
        &rendered,
    );
}

#[test]
fn ucp_docs_example_on_1_36() {
    let settings = KmsSettings { cachesize: 100, ..enabled("vault", "/tmp/socketfile.sock") };
    let rendered = rendered(&settings, v(36), None);

    let kms = rendered.config.resources[0].providers[0].kms.as_ref().unwrap();
    assert_eq!(kms.api_version.as_deref(), Some("v1"), "a cachesize keeps the meaning of KMS v1");
    assert_eq!(kms.cachesize, Some(100));
    assert!(rendered.warnings.iter().any(|w| w.contains("--feature-gates=KMSv1=true")));
    check("ucp_docs_example_1_36", "UCP 3.2.5 docs example rendered for 1.36", &rendered);
}

#[test]
fn v2_with_timeout() {
    let settings = KmsSettings { timeout: Some(Duration::from_secs(90)), ..vault() };
    let rendered = rendered(&settings, v(36), None);

    let kms = rendered.config.resources[0].providers[0].kms.as_ref().unwrap();
    assert_eq!(kms.api_version.as_deref(), Some("v2"));
    assert_eq!(kms.cachesize, None);
    assert_eq!(kms.timeout.as_deref(), Some("1m30s"));
    check("v2_with_timeout", "KMS v2 inferred on 1.36, kms_timeout = \"90s\"", &rendered);
}

#[test]
fn negative_cachesize_turns_the_cache_off() {
    let settings = KmsSettings { cachesize: -1, ..vault() };
    let rendered = rendered(&settings, v(28), None);

    let kms = rendered.config.resources[0].providers[0].kms.as_ref().unwrap();
    assert_eq!((kms.api_version.as_deref(), kms.cachesize), (Some("v1"), Some(-1)));
    check("negative_cachesize", "KMS v1 with the DEK cache off, on 1.28", &rendered);
}

#[test]
fn zero_cachesize_is_left_out_for_v1() {
    let settings = KmsSettings { api_version: Some(KmsApiVersion::V1), ..vault() };
    let rendered = rendered(&settings, v(36), None);
    let kms = rendered.config.resources[0].providers[0].kms.as_ref().unwrap();
    assert_eq!((kms.api_version.as_deref(), kms.cachesize), (Some("v1"), None));
    assert!(!String::from_utf8(rendered.yaml).unwrap().contains("cachesize"));
}

#[test]
fn abstract_socket() {
    let settings =
        KmsSettings { endpoint: Some(Endpoint::Abstract("kms-plugin".to_owned())), ..vault() };
    let rendered = rendered(&settings, v(36), None);

    let kms = rendered.config.resources[0].providers[0].kms.as_ref().unwrap();
    assert_eq!(kms.endpoint, "unix:///@kms-plugin");
    check("abstract_socket", "an abstract socket: unix:///@name", &rendered);
}

#[test]
fn several_resources_share_one_entry() {
    let settings =
        KmsSettings { resources: strings(&["secrets", "configmaps", "*.apps"]), ..vault() };
    let rendered = rendered(&settings, v(36), None);

    assert_eq!(
        shape(&rendered.config),
        [(strings(&["secrets", "configmaps", "*.apps"]), strings(&["kms vault", "identity"]))]
    );
    check("several_resources", "kms_resources = [secrets, configmaps, *.apps]", &rendered);
}

#[test]
fn disable_after_enable() {
    let rendered = sequence(&[vault(), KmsSettings::disabled()], v(36));

    assert_eq!(
        shape(&rendered.config),
        [(strings(&["secrets"]), strings(&["identity", "kms vault"]))]
    );
    assert!(rendered.warnings.iter().any(|w| w.contains("plaintext")), "{:?}", rendered.warnings);
    check("disable_after_enable", "enabled, then kms_enabled = false", &rendered);
}

#[test]
fn rename_after_enable() {
    let rendered = sequence(&[vault(), enabled("vault-2", "/run/kms/vault.sock")], v(36));

    assert_eq!(
        shape(&rendered.config),
        [(strings(&["secrets"]), strings(&["kms vault-2", "kms vault", "identity"]))]
    );
    assert!(rendered.warnings.iter().any(|w| w.contains("reads only") && w.contains("\"vault\"")));
    check("rename_after_enable", "kms_name vault, then vault-2: vault stays for reads", &rendered);
}

#[test]
fn endpoint_change_under_the_same_name() {
    let rendered = sequence(&[vault(), enabled("vault", "/run/kms-new/vault.sock")], v(36));

    assert_eq!(
        shape(&rendered.config),
        [(strings(&["secrets"]), strings(&["kms vault", "identity"]))]
    );
    let kms = rendered.config.resources[0].providers[0].kms.as_ref().unwrap();
    assert_eq!(kms.endpoint, "unix:///run/kms-new/vault.sock");
    assert!(
        rendered.warnings.iter().any(|w| w.contains("endpoint moved under the same name")),
        "{:?}",
        rendered.warnings
    );
    check("endpoint_change", "kms_endpoint moves, kms_name stays: replaced in place", &rendered);
}

#[test]
fn enable_disable_enable() {
    let rendered = sequence(&[vault(), KmsSettings::disabled(), vault()], v(36));

    assert_eq!(
        shape(&rendered.config),
        [(strings(&["secrets"]), strings(&["kms vault", "identity"]))]
    );
    assert_eq!(rendered, sequence(&[vault()], v(36)), "back to the first file, byte for byte");
    check("enable_disable_enable", "enabled, disabled, enabled again", &rendered);
}

#[test]
fn from_aescbc_to_kms() {
    let aescbc = fixture("aescbc.yaml");
    let rendered = rendered(&vault(), v(36), Some(&aescbc));

    assert_eq!(
        shape(&rendered.config),
        [
            (strings(&["secrets"]), strings(&["kms vault", "aescbc", "identity"])),
            (strings(&["configmaps"]), strings(&["aescbc", "identity"])),
        ]
    );
    assert!(rendered.warnings.iter().any(|w| w.contains("aescbc (key \"key1\")")));
    assert!(rendered.warnings.iter().all(|w| !w.contains("MDEy")), "no key material in warnings");
    check(
        "aescbc_to_kms",
        "an aescbc file for secrets and configmaps, then KMS for secrets",
        &rendered,
    );
}

#[test]
fn from_wildcard_aesgcm_without_identity() {
    let aesgcm = fixture("wildcard-aesgcm.yaml");
    let rendered = rendered(&vault(), v(36), Some(&aesgcm));

    // The installed file had no identity for `*.*`, so nothing of secrets is in plaintext.
    assert_eq!(
        shape(&rendered.config),
        [
            (strings(&["secrets"]), strings(&["kms vault", "aesgcm"])),
            (strings(&["*.*"]), strings(&["aesgcm"])),
        ]
    );
    check("wildcard_aesgcm_to_kms", "an aesgcm file for *.*, then KMS for secrets", &rendered);
}

#[test]
fn pruned_file_stays_without_identity_until_a_new_resource_joins() {
    let pruned = prune(&sequence(&[vault()], v(36)).config);
    let again = rendered(&vault(), v(36), Some(&pruned));
    assert_eq!(shape(&again.config), [(strings(&["secrets"]), strings(&["kms vault"]))]);

    // configmaps was never encrypted: its data is plaintext and needs identity to be read.
    let wider = KmsSettings { resources: strings(&["secrets", "configmaps"]), ..vault() };
    let widened = rendered(&wider, v(36), Some(&pruned));
    assert_eq!(
        shape(&widened.config),
        [(strings(&["secrets", "configmaps"]), strings(&["kms vault", "identity"]))]
    );
    check("pruned_then_new_resource", "pruned file, then configmaps joins", &widened);
}

#[test]
fn resources_that_leave_keep_their_providers() {
    let both = KmsSettings { resources: strings(&["secrets", "configmaps"]), ..vault() };
    let renamed = enabled("hsm", "/run/kms/hsm.sock");
    let rendered = sequence(&[both, renamed], v(36));

    // vault may appear in one entry only, so configmaps stays in the kms entry, with a warning.
    assert_eq!(
        shape(&rendered.config),
        [(strings(&["secrets", "configmaps"]), strings(&["kms hsm", "kms vault", "identity"]))]
    );
    assert!(rendered.warnings.iter().any(|w| w.contains("\"configmaps\" is not in kms_resources")));
    check("resource_leaves", "secrets and configmaps, then hsm for secrets only", &rendered);
}

#[test]
fn switching_api_version_needs_a_new_name() {
    let v1 = KmsSettings { cachesize: 100, ..vault() };
    let installed = rendered(&v1, v(36), None);

    let err = render(&vault(), v(36), Some(&installed.config)).unwrap_err();
    assert_eq!(
        err,
        RenderError::ApiVersionChange {
            name: "vault".to_owned(),
            installed: KmsApiVersion::V1,
            requested: KmsApiVersion::V2,
        }
    );
    assert!(err.to_string().contains("choose a new kms_name"), "{err}");

    let renamed =
        rendered(&enabled("vault-v2", "/run/kms/vault.sock"), v(36), Some(&installed.config));
    assert_eq!(
        shape(&renamed.config),
        [(strings(&["secrets"]), strings(&["kms vault-v2", "kms vault", "identity"]))]
    );
    check("v1_to_v2_new_name", "KMS v1 vault, then KMS v2 under vault-v2", &renamed);
}

#[test]
fn disabled_and_nothing_installed_renders_nothing() {
    assert_eq!(render(&KmsSettings::disabled(), v(36), None), Ok(None));
}

#[test]
fn same_input_same_bytes() {
    let settings = KmsSettings { resources: strings(&["secrets", "configmaps"]), ..vault() };
    let first = rendered(&settings, v(36), None);
    let second = rendered(&settings, v(36), None);
    assert_eq!(first.yaml, second.yaml);
    assert_eq!(first.hash, second.hash);

    // Rendering over its own output changes nothing.
    let again = rendered(&settings, v(36), Some(&first.config));
    assert_eq!(again.yaml, first.yaml);
}

#[test]
fn hash_names_the_bytes() {
    assert_eq!(
        config_hash(b""),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let rendered = rendered(&vault(), v(36), None);
    let other = rendered_with_timeout();
    assert_ne!(rendered.hash, other.hash);
}

fn rendered_with_timeout() -> Rendered {
    rendered(&KmsSettings { timeout: Some(Duration::from_secs(5)), ..vault() }, v(36), None)
}

#[test]
fn prune_keeps_the_write_provider_of_each_entry() {
    let aescbc = fixture("aescbc.yaml");
    let installed = rendered(&vault(), v(36), Some(&aescbc));
    let pruned = prune(&installed.config);
    assert_eq!(
        shape(&pruned),
        [
            (strings(&["secrets"]), strings(&["kms vault"])),
            (strings(&["configmaps"]), strings(&["aescbc"]))
        ]
    );
}

#[test]
fn enabled_settings_without_endpoint_are_refused() {
    let settings = KmsSettings { endpoint: None, ..vault() };
    let err = render(&settings, v(36), None).unwrap_err();
    assert_eq!(err, RenderError::MissingEndpoint { name: "vault".to_owned() });
    assert_eq!(
        err.to_string(),
        "kms_endpoint is required when kms_enabled is true (kms_name \"vault\")"
    );
}
