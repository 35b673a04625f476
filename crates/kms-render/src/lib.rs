//! Turns validated UCP KMS settings into the EncryptionConfiguration file kube-apiserver loads.
//!
//! Layer: above `kms-model`, below the host side and the front ends. It does no file I/O: the
//! caller reads the installed file and writes the result. It must not depend on `kms-mount`,
//! a runtime or anything that touches the host.
//!
//! - [`render`] builds the next file from the settings, the target Kubernetes version and the
//!   installed file, if any. The kms provider comes first (it writes), `identity: {}` last (it
//!   reads what was stored before encryption), and every provider that may have written data
//!   stays for reads.
//! - [`to_yaml`] writes a configuration as deterministic YAML under [`MANAGED_HEADER`], and
//!   [`config_hash`] names those bytes the way kube-apiserver reports its own configuration.
//! - [`prune`] drops the read-only providers once the operator has re-encrypted every object.
//!
//! ```
//! use kms_model::{Endpoint, KmsSettings, KubeVersion};
//!
//! let settings = KmsSettings {
//!     enabled: true,
//!     name: "vault".to_owned(),
//!     endpoint: Some(Endpoint::Path("/run/kmsplugin/socket.sock".to_owned())),
//!     ..KmsSettings::disabled()
//! };
//! let rendered = kms_render::render(&settings, KubeVersion::DEFAULT, None)?
//!     .expect("kms is enabled, so there is a file");
//!
//! let yaml = String::from_utf8(rendered.yaml)?;
//! assert!(yaml.starts_with(kms_render::MANAGED_HEADER));
//! assert!(yaml.contains("apiVersion: v2\n      name: vault\n"));
//! assert!(yaml.contains("endpoint: unix:///run/kmsplugin/socket.sock\n  - identity: {}\n"));
//! assert!(rendered.hash.starts_with("sha256:"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Transitions
//!
//! With an installed file, the kms entry holds `kms_resources` with the new kms provider first,
//! then the installed providers that may have written their data, in their order (a provider of
//! the same kms name is replaced in place, so a new endpoint is the one used), then
//! `identity: {}` if the installed file had it there or some of that data was never encrypted.
//! Resources that leave `kms_resources` keep their installed entries. Disabling KMS puts
//! `identity: {}` first in each entry a kms provider wrote, and keeps the kms providers after it.
//!
//! A kms name keeps its API version: KMS v1 and v2 store data under different prefixes, and
//! kube-apiserver rejects a name used twice, so switching a name from v1 to v2 is refused with
//! [`RenderError::ApiVersionChange`]; the operator picks a new `kms_name` and the old provider
//! stays for reads. Every rendered file passes kube-apiserver's load-time checks for the target
//! version, with automatic reload from 1.26 and the `KMSv1` gate when it holds a KMS v1 provider;
//! a file that would not is refused with [`RenderError::Rejected`].

mod error;
mod provider;
mod resource;
mod transition;

use kms_model::encryption::{EncryptionConfiguration, KmsConfiguration, ResourceConfiguration};
use kms_model::{KmsApiVersion, KmsSettings, KubeVersion, LintOptions};
use sha2::{Digest, Sha256};

pub use error::RenderError;

use crate::provider::api_version_of;

/// The comment block at the top of every rendered file: ucp-kms owns the file, and hand edits
/// are undone.
pub const MANAGED_HEADER: &str = "\
# Managed by ucp-kms: rendered from the kms_* settings of the UCP configuration.
# Do not edit: ucp-kms undoes hand edits. Change the settings and apply them instead.
";

/// A rendered EncryptionConfiguration, ready to install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The configuration.
    pub config: EncryptionConfiguration,
    /// The file's bytes: [`MANAGED_HEADER`] and the YAML of `config`.
    pub yaml: Vec<u8>,
    /// `sha256:<lowercase hex>` of `yaml`.
    pub hash: String,
    /// What the operator should know about the change: read-only providers kept, a kms endpoint
    /// moved under the same name, the `KMSv1` feature gate needed, ...
    pub warnings: Vec<String>,
}

/// Renders the EncryptionConfiguration for `settings` on Kubernetes `version`, keeping every
/// provider of `previous` (the installed file) that may have written data.
///
/// Returns `Ok(None)` when KMS is disabled and nothing is installed: there is no file to write.
/// With KMS disabled and a file installed, the result stops writing through kms but keeps the
/// kms providers for reads.
///
/// # Errors
///
/// [`RenderError`] when enabled settings lack what kube-apiserver needs (name, endpoint,
/// resources), ask for something the version does not have (KMS v2 before 1.25), switch an
/// installed kms name to another API version, or would produce a file kube-apiserver rejects.
pub fn render(
    settings: &KmsSettings,
    version: KubeVersion,
    previous: Option<&EncryptionConfiguration>,
) -> Result<Option<Rendered>, RenderError> {
    let installed: &[ResourceConfiguration] = previous.map_or(&[], |config| &config.resources);
    let transition = match (settings.enabled, previous) {
        (false, None) => return Ok(None),
        (false, Some(_)) => transition::disable(installed),
        (true, _) => {
            let kms = provider::kms_block(settings, version)?;
            transition::enable(kms, &settings.resources, installed)?
        }
    };

    let config = EncryptionConfiguration::new(transition.resources);
    check(&config, version)?;

    let mut warnings = transition.warnings;
    warnings.extend(gate_warnings(&config, version));
    let yaml = to_yaml(&config);
    let hash = config_hash(&yaml);
    Ok(Some(Rendered { config, yaml, hash, warnings }))
}

/// The file's bytes for `config`: [`MANAGED_HEADER`], then YAML with fields in kube-apiserver's
/// order and unset fields left out. The same configuration always gives the same bytes.
pub fn to_yaml(config: &EncryptionConfiguration) -> Vec<u8> {
    let body = serde_yaml::to_string(config)
        .expect("an EncryptionConfiguration has only string keys, so it always serializes");
    let mut yaml = MANAGED_HEADER.as_bytes().to_vec();
    yaml.extend_from_slice(body.as_bytes());
    yaml
}

/// `sha256:<lowercase hex>` of `bytes`, the form kube-apiserver uses for its configuration's hash.
pub fn config_hash(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `config` with only the first provider of each resource entry, the one that writes.
///
/// Only safe once every object has been re-encrypted (read and written back), so that nothing
/// stored still needs a dropped provider.
pub fn prune(config: &EncryptionConfiguration) -> EncryptionConfiguration {
    let mut pruned = config.clone();
    for entry in &mut pruned.resources {
        entry.providers.truncate(1);
    }
    pruned
}

/// Whether `config` has a KMS v1 provider, which kube-apiserver loads from 1.29 on only with
/// `--feature-gates=KMSv1=true`.
pub fn uses_kms_v1(config: &EncryptionConfiguration) -> bool {
    kms_blocks(config).any(|kms| api_version_of(kms) == Some(KmsApiVersion::V1))
}

/// Whether `config` has a KMS v2 provider, which kube-apiserver 1.25 and 1.26 load only with
/// `--feature-gates=KMSv2=true`.
pub fn uses_kms_v2(config: &EncryptionConfiguration) -> bool {
    kms_blocks(config).any(|kms| api_version_of(kms) == Some(KmsApiVersion::V2))
}

/// The `--feature-gates` entries kube-apiserver `version` needs to load `config`, such as
/// `KMSv1=true`; empty when its defaults do.
pub fn required_feature_gates(
    config: &EncryptionConfiguration,
    version: KubeVersion,
) -> Vec<&'static str> {
    let mut gates = Vec::new();
    if version.kms_v1_needs_gate() && uses_kms_v1(config) {
        gates.push("KMSv1=true");
    }
    if version.has_kms_v2_gate() && !version.kms_v2_gate_default() && uses_kms_v2(config) {
        gates.push("KMSv2=true");
    }
    gates
}

/// Every kms block of `config`, in order.
fn kms_blocks(config: &EncryptionConfiguration) -> impl Iterator<Item = &KmsConfiguration> {
    config.resources.iter().flat_map(|entry| &entry.providers).filter_map(|p| p.kms.as_ref())
}

/// The options kube-apiserver runs with when ucp-kms installs `config`: automatic reload where
/// it exists, and the feature gates the file needs.
fn install_options(config: &EncryptionConfiguration, version: KubeVersion) -> LintOptions {
    let mut options = LintOptions::for_version(version);
    options.automatic_reload = version.has_automatic_reload();
    for gate in required_feature_gates(config, version) {
        match gate {
            "KMSv1=true" => options.kms_v1_gate = Some(true),
            _ => options.kms_v2_gate = Some(true),
        }
    }
    options
}

/// Refuses a file kube-apiserver would not load.
fn check(config: &EncryptionConfiguration, version: KubeVersion) -> Result<(), RenderError> {
    let errors = kms_model::validate(config, &install_options(config, version));
    if errors.is_empty() { Ok(()) } else { Err(RenderError::Rejected { version, errors }) }
}

/// One warning per feature gate the file needs on `version`.
fn gate_warnings(config: &EncryptionConfiguration, version: KubeVersion) -> Vec<String> {
    required_feature_gates(config, version)
        .into_iter()
        .map(|gate| {
            let what =
                if gate.starts_with("KMSv1") { "a KMS v1 provider" } else { "a KMS v2 provider" };
            format!(
                "the file has {what}, which kube-apiserver {version} loads only with \
                 --feature-gates={gate}"
            )
        })
        .collect()
}
