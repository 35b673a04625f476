//! UCP KMS settings and the Kubernetes `EncryptionConfiguration` schema, validated exactly as
//! kube-apiserver does for a chosen Kubernetes version.
//!
//! This is the bottom layer of ucp-kms: types and rules, no I/O. It depends on serde and a few
//! parsers, never on the renderer, the host side or a runtime.
//!
//! - [`load_settings`] reads a whole UCP configuration file (TOML) and reports every problem of
//!   its `[cluster_config]` `kms_*` keys at once, with line and column;
//!   [`load_settings_bytes`] does the same for a file's raw bytes.
//! - [`lint()`] judges an EncryptionConfiguration file as kube-apiserver of a target version would
//!   when loading it, with field paths in kube-apiserver's form; [`decode`] and [`validate`] are
//!   its two halves, for callers that build the configuration themselves.
//! - [`duration`] reads and writes Go duration strings (`3s`, `1m30s`) exactly as Go does.
//! - [`KubeVersion`] holds every rule that changes between Kubernetes releases.
//!
//! Key material (the secrets of aescbc, aesgcm and secretbox keys) never appears in `Debug`,
//! `Display` or any error.
//!
//! ```
//! use kms_model::{KmsApiVersion, KubeVersion, load_settings};
//!
//! let toml = r#"
//! [cluster_config]
//! kms_enabled = true
//! kms_name = "vault"
//! kms_endpoint = "/run/kmsplugin/socket.sock"
//! "#;
//! let validated = load_settings(toml, KubeVersion::DEFAULT).expect("valid settings");
//! assert_eq!(validated.settings.effective_api_version(KubeVersion::DEFAULT), KmsApiVersion::V2);
//! ```

pub mod diagnostic;
pub mod duration;
pub mod encryption;
pub mod lint;
pub mod settings;
pub mod ucp;
pub mod version;

pub use diagnostic::{Diagnostic, LintError, Severity};
pub use encryption::EncryptionConfiguration;
pub use lint::{FeatureGateError, LintOptions, decode, lint, validate};
pub use settings::{Endpoint, EndpointError, Invalid, KmsApiVersion, KmsSettings, Validated};
pub use ucp::{load_settings, load_settings_bytes};
pub use version::KubeVersion;

/// The largest document any ucp-kms front end reads: a UCP configuration or an
/// EncryptionConfiguration is a few kilobytes, so anything bigger is refused unread.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
