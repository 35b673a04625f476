//! Property test of transitions: along any sequence of settings (enable, disable, rename, new
//! endpoint, new API version, other resources), every provider that was ever the write provider
//! of a resource stays in that resource's list, and every rendered file passes kube-apiserver's
//! load-time checks for its version.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kms_model::encryption::{EncryptionConfiguration, ProviderConfiguration};
use kms_model::{Endpoint, KmsApiVersion, KmsSettings, KubeVersion, LintOptions};
use kms_render::{RenderError, render, required_feature_gates};
use proptest::prelude::*;

const NAMES: [&str; 3] = ["vault", "vault-2", "hsm"];
const ENDPOINTS: [&str; 3] = ["/run/kms/a.sock", "/run/kms/b.sock", "@kms-plugin"];
const CACHESIZES: [i32; 4] = [0, 0, 100, -1];
const TIMEOUTS: [Option<u64>; 3] = [None, Some(3), Some(90)];
const RESOURCE_SETS: [&[&str]; 7] = [
    &["secrets"],
    &["secrets", "configmaps"],
    &["configmaps"],
    &["*."],
    &["*.*"],
    &["secrets", "deployments.apps"],
    &["*.apps", "secrets"],
];
const VERSIONS: [u16; 8] = [14, 20, 25, 27, 28, 29, 31, 36];
/// Installed files to start from, with the oldest version that could have written them (KMS v2
/// from 1.25).
const FIXTURES: [(Option<&str>, u16); 9] = [
    (None, 14),
    (Some("aescbc.yaml"), 14),
    (Some("wildcard-aesgcm.yaml"), 14),
    (Some("kube/legacy.yaml"), 14),
    (Some("kube/identity-first.yaml"), 25),
    (Some("kube/aes-gcm-first.yaml"), 25),
    (Some("kube/kmsv2-first.yaml"), 25),
    (Some("kube/secret-box-first.yaml"), 25),
    (Some("kube/multiple-providers-mixed.yaml"), 25),
];

/// Concrete resources whose provider lists are followed through the sequence.
const PROBES: [&str; 5] =
    ["secrets", "configmaps", "pods", "deployments.apps", "widgets.example.com"];

/// One step of the sequence, as indexes into the tables above.
#[derive(Clone, Debug)]
struct Step {
    enabled: bool,
    name: usize,
    endpoint: usize,
    api_version: usize,
    cachesize: usize,
    timeout: usize,
    resources: usize,
}

fn step() -> impl Strategy<Value = Step> {
    (any::<bool>(), 0..NAMES.len(), 0..ENDPOINTS.len(), 0..3usize, 0..CACHESIZES.len())
        .prop_flat_map(|(enabled, name, endpoint, api_version, cachesize)| {
            (0..TIMEOUTS.len(), 0..RESOURCE_SETS.len()).prop_map(move |(timeout, resources)| Step {
                enabled,
                name,
                endpoint,
                api_version,
                cachesize,
                timeout,
                resources,
            })
        })
}

/// Settings that `kms_model::load_settings` would accept for `version`.
fn settings(step: &Step, version: KubeVersion) -> KmsSettings {
    if !step.enabled {
        return KmsSettings::disabled();
    }
    let endpoint = ENDPOINTS[step.endpoint];
    let endpoint = match endpoint.strip_prefix('@') {
        Some(name) => Endpoint::Abstract(name.to_owned()),
        None => Endpoint::Path(endpoint.to_owned()),
    };
    let api_version = match step.api_version {
        1 => Some(KmsApiVersion::V1),
        2 if version.has_kms_v2() => Some(KmsApiVersion::V2),
        _ => None,
    };
    let cachesize = match api_version {
        Some(KmsApiVersion::V2) => 0,
        _ => CACHESIZES[step.cachesize],
    };
    KmsSettings {
        enabled: true,
        name: NAMES[step.name].to_owned(),
        endpoint: Some(endpoint),
        cachesize,
        api_version,
        timeout: TIMEOUTS[step.timeout].map(Duration::from_secs),
        resources: RESOURCE_SETS[step.resources].iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn fixture(name: &str) -> EncryptionConfiguration {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `(resource, group)` as kube-apiserver splits a name.
fn split(name: &str) -> (&str, &str) {
    name.split_once('.').unwrap_or((name, ""))
}

/// What a provider stores data under; two elements with the same prefix read the same data.
fn prefix(provider: &ProviderConfiguration) -> String {
    if let Some(kms) = &provider.kms {
        let api = match kms.api_version.as_deref() {
            None | Some("") => "v1",
            Some(api) => api,
        };
        return format!("k8s:enc:kms:{api}:{}:", kms.name);
    }
    if provider.identity.is_some() {
        return "identity".to_owned();
    }
    let keys = |keys: &[kms_model::encryption::Key]| {
        keys.iter().map(|key| key.name.clone()).collect::<Vec<_>>().join(",")
    };
    match (&provider.aescbc, &provider.aesgcm, &provider.secretbox) {
        (Some(aes), ..) => format!("k8s:enc:aescbc:v1:{}", keys(&aes.keys)),
        (_, Some(aes), _) => format!("k8s:enc:aesgcm:v1:{}", keys(&aes.keys)),
        (.., Some(secretbox)) => format!("k8s:enc:secretbox:v1:{}", keys(&secretbox.keys)),
        _ => "empty".to_owned(),
    }
}

/// The providers kube-apiserver uses for a concrete resource: every entry naming it exactly,
/// else every entry with its group wildcard, else every `*.*` entry, else identity.
fn lookup(config: Option<&EncryptionConfiguration>, resource: &str) -> Vec<String> {
    let Some(config) = config else { return vec!["identity".to_owned()] };
    let (_, group) = split(resource);
    let candidates = [split(resource), ("*", group), ("*", "*")];
    for wanted in candidates {
        let providers: Vec<String> = config
            .resources
            .iter()
            .filter(|entry| entry.resources.iter().any(|name| split(name) == wanted))
            .flat_map(|entry| entry.providers.iter().map(prefix))
            .collect();
        if !providers.is_empty() {
            return providers;
        }
    }
    vec!["identity".to_owned()]
}

/// Whether `resources` (kms_resources) matches the concrete `resource`.
fn matched_by(resource: &str, resources: &[String]) -> bool {
    let (_, group) = split(resource);
    resources
        .iter()
        .map(|name| split(name))
        .any(|r| r == split(resource) || r == ("*", group) || r == ("*", "*"))
}

/// The flags ucp-kms starts kube-apiserver with for `config`.
fn lint_options(config: &EncryptionConfiguration, version: KubeVersion) -> LintOptions {
    let gates = required_feature_gates(config, version).join(",");
    let mut options = LintOptions::for_version(version).with_feature_gates(&gates).unwrap();
    options.automatic_reload = version.has_automatic_reload();
    options
}

fn run(version: KubeVersion, start: Option<&str>, steps: &[Step]) -> Result<(), TestCaseError> {
    let mut installed: Option<EncryptionConfiguration> = start.map(fixture);
    let mut ever_first: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for probe in PROBES {
        ever_first.entry(probe).or_default().insert(lookup(installed.as_ref(), probe)[0].clone());
    }

    for step in steps {
        let settings = settings(step, version);
        let rendered = match render(&settings, version, installed.as_ref()) {
            Ok(Some(rendered)) => rendered,
            Ok(None) => {
                prop_assert!(!settings.enabled && installed.is_none(), "nothing rendered");
                continue;
            }
            Err(RenderError::ApiVersionChange { name, installed: old, requested }) => {
                // The one refusal valid settings can meet: the name exists with the other version.
                prop_assert_eq!(requested, settings.effective_api_version(version));
                let old_prefix = format!("k8s:enc:kms:{old}:{name}:");
                let config = installed.as_ref().unwrap();
                let has_old = config
                    .resources
                    .iter()
                    .flat_map(|e| &e.providers)
                    .any(|p| prefix(p) == old_prefix);
                prop_assert!(has_old, "refused without an installed {}", old_prefix);
                continue;
            }
            Err(err) => return Err(TestCaseError::fail(format!("{settings:?}: {err}"))),
        };
        let config = &rendered.config;

        let problems = kms_model::lint(&rendered.yaml, &lint_options(config, version));
        prop_assert!(
            problems.is_empty(),
            "{:?}\n{}",
            problems,
            String::from_utf8_lossy(&rendered.yaml)
        );

        for probe in PROBES {
            let list = lookup(Some(config), probe);
            for first in &ever_first[probe] {
                prop_assert!(list.contains(first), "{} lost {}: {:?}", probe, first, list);
            }

            let before = lookup(installed.as_ref(), probe);
            if settings.enabled && matched_by(probe, &settings.resources) {
                let api = settings.effective_api_version(version);
                prop_assert_eq!(&list[0], &format!("k8s:enc:kms:{api}:{}:", settings.name));
            } else if !settings.enabled && before[0].starts_with("k8s:enc:kms:") {
                prop_assert_eq!(&list[0], "identity", "{} still written through kms", probe);
            }
            ever_first.get_mut(probe).unwrap().insert(list[0].clone());
        }

        // Rendering over its own output changes nothing.
        let again = render(&settings, version, Some(config)).unwrap().unwrap();
        prop_assert_eq!(&again.yaml, &rendered.yaml);

        installed = Some(rendered.config);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_write_provider_stays_for_reads(
        version in proptest::sample::select(VERSIONS.to_vec()),
        (start, since) in proptest::sample::select(FIXTURES.to_vec()),
        steps in proptest::collection::vec(step(), 1..10),
    ) {
        let start = start.filter(|_| version >= since);
        run(KubeVersion::new(version).unwrap(), start, &steps)?;
    }
}
