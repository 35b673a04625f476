//! The gRPC messages, clients and server traits of both KMS plugin APIs, generated at build time
//! from `proto/` so that their wire format is exactly the one kube-apiserver speaks.

/// KMS v1: package `v1beta1`, service `KeyManagementService` (Version, Encrypt, Decrypt).
///
/// kube-apiserver deprecated this API in 1.28 and needs `--feature-gates=KMSv1=true` for it from
/// 1.29 on; ucp-kms still speaks it because UCP 3.2.5 clusters use it.
#[allow(missing_docs, unreachable_pub, reason = "generated code; documented by the .proto file")]
#[allow(clippy::all, reason = "generated code")]
pub mod v1beta1 {
    tonic::include_proto!("v1beta1");
}

/// KMS v2: package `v2`, service `KeyManagementService` (Status, Encrypt, Decrypt).
#[allow(missing_docs, unreachable_pub, reason = "generated code; documented by the .proto file")]
#[allow(clippy::all, reason = "generated code")]
pub mod v2 {
    tonic::include_proto!("v2");
}

/// The API version string a KMS v1 plugin must report from `Version`.
pub const V1BETA1: &str = "v1beta1";

/// The API version strings kube-apiserver accepts from a KMS v2 plugin's `Status`.
pub const V2_VERSIONS: [&str; 2] = ["v2", "v2beta1"];

/// The `healthz` a healthy KMS v2 plugin reports.
pub const HEALTHZ_OK: &str = "ok";

/// The longest key ID kube-apiserver accepts, in bytes.
pub const MAX_KEY_ID_BYTES: usize = 1024;

/// The longest KMS v2 ciphertext kube-apiserver accepts, in bytes.
pub const MAX_CIPHERTEXT_BYTES: usize = 1024;

/// The largest total size of KMS v2 annotations (keys and values) kube-apiserver accepts.
pub const MAX_ANNOTATIONS_BYTES: usize = 32 * 1024;
