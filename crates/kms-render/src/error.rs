//! Why settings could not be rendered into an EncryptionConfiguration.

use kms_model::{KmsApiVersion, KubeVersion, LintError};

/// Why [`render`](crate::render) produced no file.
///
/// Settings that passed `kms_model::load_settings` only fail here when the transition from the
/// installed file would lose data or would be rejected by kube-apiserver.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// KMS is enabled but `kms_name` is empty.
    #[error("kms_name is required when kms_enabled is true, got an empty name")]
    MissingName,

    /// KMS is enabled but `kms_endpoint` is not set.
    #[error("kms_endpoint is required when kms_enabled is true (kms_name \"{name}\")")]
    MissingEndpoint {
        /// The provider name.
        name: String,
    },

    /// KMS is enabled but `kms_resources` is empty.
    #[error("kms_resources must name at least one resource, like \"secrets\", got an empty list")]
    NoResources,

    /// KMS v2 was asked for a Kubernetes release that does not have it.
    #[error("kms_api_version \"v2\" needs Kubernetes 1.25 or newer, got \"{version}\"")]
    KmsV2Unavailable {
        /// The target Kubernetes version.
        version: KubeVersion,
    },

    /// A cache size was given for KMS v2, which has no DEK cache setting.
    #[error("kms_cachesize is for KMS v1 only, got {cachesize} with kms_api_version \"v2\"")]
    CachesizeWithV2 {
        /// The cache size given.
        cachesize: i32,
    },

    /// A zero per-call deadline, which kube-apiserver rejects.
    #[error("kms_timeout must be greater than zero, got \"0s\"")]
    ZeroTimeout,

    /// A KMS v2 provider name with a colon, which kube-apiserver rejects.
    #[error("kms_name must not contain ':' with KMS v2, got \"{name}\"")]
    ColonInV2Name {
        /// The provider name.
        name: String,
    },

    /// The installed file has a kms provider of the same name with another API version.
    ///
    /// The storage prefix holds the API version (`k8s:enc:kms:v1:<name>:` against
    /// `k8s:enc:kms:v2:<name>:`), so the installed provider must stay for reads; but
    /// kube-apiserver rejects a kms name used twice, so both cannot be in one file.
    #[error(
        "kms_name \"{name}\" is installed as KMS {installed} and KMS {requested} stores data \
         under another prefix; choose a new kms_name for KMS {requested} so that the KMS \
         {installed} provider \"{name}\" stays for reads"
    )]
    ApiVersionChange {
        /// The provider name in the settings and in the installed file.
        name: String,
        /// The API version in the installed file.
        installed: KmsApiVersion,
        /// The API version the settings ask for.
        requested: KmsApiVersion,
    },

    /// The file that would be rendered fails kube-apiserver's load-time checks, usually because
    /// the installed file already did.
    #[error("kube-apiserver {version} would reject the rendered configuration: {}", join(errors))]
    Rejected {
        /// The target Kubernetes version.
        version: KubeVersion,
        /// kube-apiserver's objections.
        errors: Vec<LintError>,
    },
}

fn join(errors: &[LintError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}
