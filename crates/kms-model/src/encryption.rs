//! The Kubernetes `EncryptionConfiguration` schema (`apiserver.config.k8s.io/v1`).
//!
//! Field names, order and optionality follow kube-apiserver's own types, so that a value
//! serialized here is what kube-apiserver decodes. A provider element keeps one optional field
//! per provider type, as upstream does, because "exactly one type per element" is a rule to
//! check, not a shape to assume.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The `apiVersion` of the current form.
pub const API_VERSION: &str = "apiserver.config.k8s.io/v1";
/// The `kind` of the current form.
pub const KIND: &str = "EncryptionConfiguration";
/// The `apiVersion` of the legacy form, still decoded by kube-apiserver.
pub const LEGACY_API_VERSION: &str = "v1";
/// The `kind` of the legacy form.
pub const LEGACY_KIND: &str = "EncryptionConfig";

/// A whole EncryptionConfiguration file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionConfiguration {
    /// `apiserver.config.k8s.io/v1`, or `v1` in the legacy form.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// `EncryptionConfiguration`, or `EncryptionConfig` in the legacy form.
    pub kind: String,
    /// Resource entries; for each resource the first matching entry wins.
    #[serde(default)]
    pub resources: Vec<ResourceConfiguration>,
}

impl EncryptionConfiguration {
    /// An empty configuration of the current form.
    pub fn new(resources: Vec<ResourceConfiguration>) -> Self {
        Self { api_version: API_VERSION.to_owned(), kind: KIND.to_owned(), resources }
    }

    /// The configuration after kube-apiserver's defaulting: every kms block gets a timeout of
    /// 3s, an `apiVersion` of `v1` when it has none, and a cachesize of 1000 when it is v1.
    #[must_use]
    pub fn with_defaults(&self) -> Self {
        let mut config = self.clone();
        let kms_blocks = config.resources.iter_mut().flat_map(|r| r.providers.iter_mut());
        for kms in kms_blocks.filter_map(|p| p.kms.as_mut()) {
            kms.apply_defaults();
        }
        config
    }
}

/// Which providers protect a list of resources.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceConfiguration {
    /// Resource names: `secrets`, `deployments.apps`, `*.apps`, `*.` or `*.*`.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Providers in order: the first writes, all are tried on reads.
    #[serde(default)]
    pub providers: Vec<ProviderConfiguration>,
}

/// One provider element: exactly one of its fields should be set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderConfiguration {
    /// AES-GCM with local keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aesgcm: Option<AesConfiguration>,
    /// AES-CBC with local keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aescbc: Option<AesConfiguration>,
    /// XSalsa20-Poly1305 with local keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secretbox: Option<SecretboxConfiguration>,
    /// No encryption: writes plaintext, reads data that has no encryption prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityConfiguration>,
    /// Envelope encryption through a KMS plugin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms: Option<KmsConfiguration>,
}

/// The provider types, in kube-apiserver's wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// `aesgcm`
    AesGcm,
    /// `aescbc`
    AesCbc,
    /// `secretbox`
    Secretbox,
    /// `identity`
    Identity,
    /// `kms`
    Kms,
}

impl ProviderConfiguration {
    /// The `identity: {}` element.
    pub fn identity() -> Self {
        Self { identity: Some(IdentityConfiguration {}), ..Self::default() }
    }

    /// A `kms` element.
    pub fn kms(kms: KmsConfiguration) -> Self {
        Self { kms: Some(kms), ..Self::default() }
    }

    /// The provider types set in this element, in field order.
    pub fn kinds(&self) -> Vec<ProviderKind> {
        let set = [
            (self.aesgcm.is_some(), ProviderKind::AesGcm),
            (self.aescbc.is_some(), ProviderKind::AesCbc),
            (self.secretbox.is_some(), ProviderKind::Secretbox),
            (self.identity.is_some(), ProviderKind::Identity),
            (self.kms.is_some(), ProviderKind::Kms),
        ];
        set.into_iter().filter_map(|(present, kind)| present.then_some(kind)).collect()
    }

    /// Whether this element is `identity: {}` and nothing else.
    pub fn is_identity(&self) -> bool {
        self.kinds() == [ProviderKind::Identity]
    }
}

/// Keys of an `aesgcm` or `aescbc` provider; the first key encrypts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AesConfiguration {
    /// The keys, the first one used for writes.
    #[serde(default)]
    pub keys: Vec<Key>,
}

impl AesConfiguration {
    /// A provider block with these keys.
    pub fn new(keys: Vec<Key>) -> Self {
        Self { keys }
    }
}

/// Keys of a `secretbox` provider; the first key encrypts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretboxConfiguration {
    /// The keys, the first one used for writes.
    #[serde(default)]
    pub keys: Vec<Key>,
}

impl SecretboxConfiguration {
    /// A provider block with these keys.
    pub fn new(keys: Vec<Key>) -> Self {
        Self { keys }
    }
}

/// The empty `identity: {}` provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityConfiguration {}

/// A named local key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// The key name, part of the storage prefix.
    #[serde(default)]
    pub name: String,
    /// The base64 of the raw key.
    #[serde(default)]
    pub secret: Secret,
}

/// Key material: shown as `REDACTED` by Debug and Display, like kube-apiserver's `String()`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps the base64 text of a key.
    pub fn new(base64: impl Into<String>) -> Self {
        Self(base64.into())
    }

    /// The base64 text, for the few places that must decode or write it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("REDACTED")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("REDACTED")
    }
}

/// A `kms` provider block.
///
/// Its fields are kept as written, so that rendering writes only what was set; kube-apiserver's
/// defaults come from [`KmsConfiguration::apply_defaults`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsConfiguration {
    /// `v1` or `v2`; kube-apiserver defaults an empty value to `v1`. Absent before 1.25.
    #[serde(rename = "apiVersion", default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// The provider name, part of the storage prefix.
    #[serde(default)]
    pub name: String,
    /// KMS v1 only: DEKs cached in the clear, negative to disable the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cachesize: Option<i32>,
    /// The plugin's gRPC address, `unix:///path` or `unix:///@name`.
    #[serde(default)]
    pub endpoint: String,
    /// The per-call deadline as a Go duration (`3s`, `1m30s`); kube-apiserver defaults it to 3s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

impl KmsConfiguration {
    /// kube-apiserver's default timeout, as written in a kms block.
    pub const DEFAULT_TIMEOUT: &'static str = "3s";
    /// kube-apiserver's default cachesize for KMS v1.
    pub const DEFAULT_CACHESIZE: i32 = 1000;

    /// The `apiVersion` kube-apiserver uses: the field, or `v1` when absent or empty.
    pub fn effective_api_version(&self) -> &str {
        match self.api_version.as_deref() {
            None | Some("") => "v1",
            Some(version) => version,
        }
    }

    /// kube-apiserver's defaulting, in its order: timeout, then apiVersion, then cachesize
    /// (only for v1, so a v2 block keeps no cachesize).
    pub fn apply_defaults(&mut self) {
        if self.timeout.is_none() {
            self.timeout = Some(Self::DEFAULT_TIMEOUT.to_owned());
        }
        if self.api_version.as_deref().is_none_or(str::is_empty) {
            self.api_version = Some("v1".to_owned());
        }
        if self.cachesize.is_none() && self.api_version.as_deref() == Some("v1") {
            self.cachesize = Some(Self::DEFAULT_CACHESIZE);
        }
    }
}
