//! kube-apiserver's load-time checks of an EncryptionConfiguration file.
//!
//! [`lint`] answers "would kube-apiserver of this version, started with these flags, load this
//! file?" in three steps, as kube-apiserver takes them: [`decode`] (rules 3 to 6), defaulting and
//! validation (rules 7 to 32), then the checks made while building providers (rules 33 and 34),
//! which kube-apiserver only reaches when validation passed. Rule numbers are those of the rule
//! table in the project's Kubernetes reference.
//!
//! ```
//! use kms_model::{KubeVersion, LintOptions, lint};
//!
//! let file = b"apiVersion: apiserver.config.k8s.io/v1
//! kind: EncryptionConfiguration
//! resources:
//!   - resources: [secrets]
//!     providers:
//!       - kms: {apiVersion: v2, name: vault, endpoint: unix:///run/kms.sock}
//!       - identity: {}
//! ";
//! assert!(lint(file, &LintOptions::default()).is_empty());
//!
//! let old = LintOptions { version: KubeVersion::new(24).unwrap(), ..LintOptions::default() };
//! // 1.24 has no kms apiVersion field: the block is KMS v1 there, and still accepted.
//! assert!(lint(file, &old).is_empty());
//! ```

mod decode;
mod node;
mod rules;
mod url;

use std::fmt;

use crate::{EncryptionConfiguration, KubeVersion, LintError};

pub(crate) use rules::{GroupResource, validate_resource_names, validate_resource_overlap};

/// What kube-apiserver was started with, beyond the file itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LintOptions {
    /// The target Kubernetes version.
    pub version: KubeVersion,
    /// `--feature-gates=KMSv1=...` when given; `None` means the version's default.
    pub kms_v1_gate: Option<bool>,
    /// `--encryption-provider-config-automatic-reload=true`.
    pub automatic_reload: bool,
    /// `--feature-gates=KMSv2=...` when given (1.25 to 1.31); `None` means the version's
    /// default: off while KMS v2 is alpha (1.25, 1.26), on from 1.27.
    pub kms_v2_gate: Option<bool>,
}

impl LintOptions {
    /// The defaults of kube-apiserver `version`.
    pub fn for_version(version: KubeVersion) -> Self {
        Self { version, ..Self::default() }
    }

    /// Whether KMS v1 providers can be built: the `KMSv1` gate, on by default before 1.29.
    pub fn kms_v1_enabled(&self) -> bool {
        self.kms_v1_gate.unwrap_or(!self.version.kms_v1_needs_gate())
    }

    /// Whether KMS v2 providers can be built: the `KMSv2` gate, on by default from 1.27.
    pub fn kms_v2_enabled(&self) -> bool {
        self.version.has_kms_v2() && self.kms_v2_gate.unwrap_or(self.version.kms_v2_gate_default())
    }

    /// These options with a `--feature-gates` value applied, such as `KMSv1=true`.
    ///
    /// The value is a comma-separated list of `Name=bool`, read as kube-apiserver reads it
    /// (`true`, `false`, `1`, `0`, `t`, `f`, ...). The gates that matter to encryption are
    /// `KMSv1` and, from 1.25 to 1.31, `KMSv2`.
    ///
    /// # Errors
    ///
    /// [`FeatureGateError`] for a malformed entry, a gate this version does not know, or a gate
    /// locked to its value.
    pub fn with_feature_gates(mut self, spec: &str) -> Result<Self, FeatureGateError> {
        for entry in spec.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
            let Some((name, value)) = entry.split_once('=') else {
                return Err(FeatureGateError::MissingValue(entry.to_owned()));
            };
            let (name, value) = (name.trim(), value.trim());
            let enabled = parse_go_bool(value).ok_or_else(|| FeatureGateError::InvalidValue {
                name: name.to_owned(),
                value: value.to_owned(),
            })?;
            match name {
                "KMSv1" => self.kms_v1_gate = Some(enabled),
                "KMSv2" if self.version.has_kms_v2_gate() => {
                    if !enabled && self.version.kms_v2_gate_locked() {
                        return Err(FeatureGateError::Locked {
                            name: name.to_owned(),
                            version: self.version,
                        });
                    }
                    self.kms_v2_gate = Some(enabled);
                }
                _ => {
                    return Err(FeatureGateError::Unknown {
                        name: name.to_owned(),
                        version: self.version,
                        accepted: self.accepted_gates(),
                    });
                }
            }
        }
        Ok(self)
    }

    /// The encryption feature gates this version knows, for messages.
    fn accepted_gates(&self) -> AcceptedGates {
        AcceptedGates { kms_v2: self.version.has_kms_v2_gate() }
    }
}

/// The gate names accepted by [`LintOptions::with_feature_gates`] for one version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptedGates {
    kms_v2: bool,
}

impl fmt::Display for AcceptedGates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.kms_v2 { "KMSv1, KMSv2" } else { "KMSv1" })
    }
}

/// Why a `--feature-gates` value was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FeatureGateError {
    /// An entry without `=`.
    #[error("missing bool value for \"{0}\"; expected Name=true or Name=false")]
    MissingValue(String),
    /// A value that is not a boolean.
    #[error("invalid value of {name}={value}; expected true or false")]
    InvalidValue {
        /// The gate.
        name: String,
        /// The value as written.
        value: String,
    },
    /// A gate kube-apiserver of this version does not know (it refuses to start).
    #[error("unrecognized feature gate \"{name}\" for Kubernetes {version}; accepted: {accepted}")]
    Unknown {
        /// The gate as written.
        name: String,
        /// The target version.
        version: KubeVersion,
        /// The gates that version knows.
        accepted: AcceptedGates,
    },
    /// A gate that is locked on in this version.
    #[error(
        "cannot set feature gate {name} to false, it is locked to true in Kubernetes {version}"
    )]
    Locked {
        /// The gate.
        name: String,
        /// The target version.
        version: KubeVersion,
    },
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Decodes a file (YAML or JSON) as kube-apiserver of `version` would (rules 3 to 6).
///
/// The result is the file as written, before kube-apiserver's defaulting
/// ([`EncryptionConfiguration::with_defaults`]). Fields the version does not know are dropped,
/// like the kms `apiVersion` before 1.25.
///
/// # Errors
///
/// Every decoding problem: empty file, not UTF-8, broken YAML or JSON, unknown kind, wrong types,
/// unknown or duplicate fields (from 1.31), a document that expands past a fixed size.
pub fn decode(
    bytes: &[u8],
    version: KubeVersion,
) -> Result<EncryptionConfiguration, Vec<LintError>> {
    decode::decode(bytes, version)
}

/// The load-time checks of a decoded configuration (rules 7 to 34); empty when accepted.
///
/// Defaulting is applied first, as kube-apiserver does. The build-time checks (feature gates of
/// the KMS versions, resources masked by earlier wildcards) run only when validation passed,
/// because kube-apiserver never gets to them otherwise.
pub fn validate(config: &EncryptionConfiguration, options: &LintOptions) -> Vec<LintError> {
    let mut config = config.clone();
    if !options.version.has_kms_api_version_field() {
        let kms_blocks = config.resources.iter_mut().flat_map(|r| r.providers.iter_mut());
        for kms in kms_blocks.filter_map(|p| p.kms.as_mut()) {
            kms.api_version = None;
        }
    }
    let config = config.with_defaults();

    let errors = rules::validate_configuration(
        Some(&config),
        options.automatic_reload,
        options.version.checks_resource_names(),
    );
    if !errors.is_empty() {
        return errors;
    }
    let gates = rules::Gates { kms_v1: options.kms_v1_enabled(), kms_v2: options.kms_v2_enabled() };
    rules::check_build(&config, options.version, gates)
}

/// Decodes and validates; empty when kube-apiserver would load the file.
pub fn lint(bytes: &[u8], options: &LintOptions) -> Vec<LintError> {
    match decode(bytes, options.version) {
        Ok(config) => validate(&config, options),
        Err(errors) => errors,
    }
}

#[cfg(test)]
mod tests;
