//! The KMS options of a UCP configuration file (`[cluster_config]` `kms_*` keys).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::KubeVersion;
use crate::diagnostic::Diagnostic;

/// The KMS plugin API kube-apiserver speaks to the plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum KmsApiVersion {
    /// KMS v1 (`v1beta1` gRPC API): deprecated from 1.28, behind the `KMSv1` gate from 1.29.
    #[serde(rename = "v1")]
    V1,
    /// KMS v2 (`v2` gRPC API): from 1.25, generally available from 1.29.
    #[serde(rename = "v2")]
    V2,
}

impl KmsApiVersion {
    /// The spelling used in settings and in the kms block: `v1` or `v2`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }
}

impl fmt::Display for KmsApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the KMS plugin listens: a UNIX socket file or a Linux abstract socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// An absolute host path of a socket file, such as `/run/kmsplugin/socket.sock`.
    Path(String),
    /// An abstract socket name, without its leading `@`. It has no file and needs no mount,
    /// but the plugin must share the API server's network namespace.
    Abstract(String),
}

impl Endpoint {
    /// The socket file's host path, or `None` for an abstract socket.
    pub fn socket_path(&self) -> Option<&Path> {
        match self {
            Self::Path(path) => Some(Path::new(path)),
            Self::Abstract(_) => None,
        }
    }

    /// The endpoint as kube-apiserver wants it: `unix:///run/p.sock` or `unix:///@name`.
    pub fn to_url(&self) -> String {
        match self {
            Self::Path(path) => format!("unix://{path}"),
            Self::Abstract(name) => format!("unix:///@{name}"),
        }
    }
}

/// Why an endpoint was refused; says what is accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EndpointError {
    message: String,
}

/// Parses what `kms_endpoint` accepts: `/run/p.sock`, `unix:///run/p.sock`, `@name` or
/// `unix:///@name`. Relative paths, `..` components, other schemes and paths too long for a
/// socket address are refused.
impl std::str::FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        crate::ucp::parse_endpoint(text).map_err(|message| EndpointError { message })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(path) => f.write_str(path),
            Self::Abstract(name) => write!(f, "@{name}"),
        }
    }
}

/// The KMS settings of one UCP configuration, after validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsSettings {
    /// `kms_enabled`: configure a KMS provider.
    pub enabled: bool,
    /// `kms_name`: the provider name, part of the storage prefix.
    pub name: String,
    /// `kms_endpoint`: the plugin socket; `None` only when KMS is disabled and no endpoint is set.
    pub endpoint: Option<Endpoint>,
    /// `kms_cachesize`: 0 for the Kubernetes default, > 0 DEKs cached, < 0 cache off (KMS v1).
    pub cachesize: i32,
    /// `kms_api_version`, when the configuration states it.
    pub api_version: Option<KmsApiVersion>,
    /// `kms_timeout`, when the configuration states it.
    pub timeout: Option<Duration>,
    /// `kms_resources`: what to encrypt.
    pub resources: Vec<String>,
}

impl KmsSettings {
    /// The per-call deadline kube-apiserver uses when the kms block has no timeout.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

    /// The settings of a configuration without any `kms_*` key.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            name: String::new(),
            endpoint: None,
            cachesize: 0,
            api_version: None,
            timeout: None,
            resources: vec!["secrets".to_owned()],
        }
    }

    /// The API version to render for `version`.
    ///
    /// An explicit `kms_api_version` wins. Otherwise a non-zero cachesize means v1, so a
    /// UCP 3.2.5 configuration keeps meaning what it meant; without one, v2 from 1.29 on and
    /// v1 before.
    pub fn effective_api_version(&self, version: KubeVersion) -> KmsApiVersion {
        match self.api_version {
            Some(explicit) => explicit,
            None if self.cachesize != 0 => KmsApiVersion::V1,
            None if version.kms_v2_is_ga() => KmsApiVersion::V2,
            None => KmsApiVersion::V1,
        }
    }

    /// The per-call deadline: `kms_timeout`, or kube-apiserver's default of 3s.
    pub fn effective_timeout(&self) -> Duration {
        self.timeout.unwrap_or(Self::DEFAULT_TIMEOUT)
    }
}

impl Default for KmsSettings {
    fn default() -> Self {
        Self::disabled()
    }
}

/// A UCP configuration whose KMS settings passed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validated {
    /// The KMS settings.
    pub settings: KmsSettings,
    /// Problems that do not stop rendering.
    pub warnings: Vec<Diagnostic>,
}

/// A UCP configuration that cannot be used, with every problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid UCP configuration: {} error(s)", errors.len())]
pub struct Invalid {
    /// Problems that stop rendering; never empty.
    pub errors: Vec<Diagnostic>,
    /// Problems that would not stop rendering on their own.
    pub warnings: Vec<Diagnostic>,
}
