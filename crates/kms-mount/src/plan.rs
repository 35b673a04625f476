//! The mount plan: which host paths the API server container needs and which flags it runs with.
//!
//! A plan is a pure function of the KMS settings, the target Kubernetes version and a few
//! options; it reads nothing from the host. Host paths are mounted at the same path inside the
//! container, so the flags and the EncryptionConfiguration name the same paths on both sides.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use kms_model::encryption::{KmsConfiguration, ProviderConfiguration, ResourceConfiguration};
use kms_model::{EncryptionConfiguration, Endpoint, KmsSettings, KubeVersion};
use serde::Serialize;

use crate::install::DEFAULT_ENCRYPTION_CONFIG;

/// Directories below the top level that the whole system shares, like `/tmp` does.
///
/// Every top-level directory counts as shared as well; see [`is_system_location`].
const SHARED_SUBDIRECTORIES: &[&str] = &[
    "/var/run",
    "/var/tmp",
    "/var/lib",
    "/var/log",
    "/var/cache",
    "/usr/bin",
    "/usr/sbin",
    "/usr/lib",
    "/usr/local",
    "/usr/share",
    "/dev/shm",
    "/run/lock",
    "/run/user",
];

/// How a plugin socket on a file path reaches the API server container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountMode {
    /// Mount the socket's directory, so a socket the plugin re-creates stays reachable.
    Dir,
    /// Mount the socket file itself, as UCP did; a re-created socket is not seen until the
    /// API server restarts.
    File,
}

impl MountMode {
    /// The spelling on the command line: `dir` or `file`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Dir => "dir",
            Self::File => "file",
        }
    }
}

impl fmt::Display for MountMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a mount mode string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("mount mode must be \"dir\" or \"file\", got \"{0}\"")]
pub struct ParseMountModeError(String);

impl FromStr for MountMode {
    type Err = ParseMountModeError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input {
            "dir" => Ok(Self::Dir),
            "file" => Ok(Self::File),
            other => Err(ParseMountModeError(other.to_owned())),
        }
    }
}

/// What a bind mount carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A directory: the EncryptionConfiguration's, or a plugin socket's.
    Directory,
    /// A plugin's socket file.
    Socket,
}

/// One bind mount into the API server container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// The host path.
    pub source: PathBuf,
    /// The path inside the container; the same as `source`.
    pub target: PathBuf,
    /// Whether the container may only read it.
    pub read_only: bool,
    /// What the mount carries.
    pub kind: MountKind,
}

/// The mounts and flags the API server needs for the KMS settings.
///
/// Serializes as `{"mounts": [...], "apiserver_flags": [...], "warnings": [...]}`, the shape of
/// `ucp-kms plan --format json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Bind mounts, the EncryptionConfiguration's directory first.
    pub mounts: Vec<Mount>,
    /// kube-apiserver flags, in the order they should be given.
    pub apiserver_flags: Vec<String>,
    /// What the operator should know about this plan: each says why and what to do instead.
    pub warnings: Vec<String>,
}

/// What the plan depends on besides the settings and the target version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanOptions {
    /// `--mount-mode`; `None` picks `dir` unless the socket sits in a shared system directory.
    pub mount_mode: Option<MountMode>,
    /// Host path of the installed EncryptionConfiguration (absolute).
    pub encryption_config: PathBuf,
    /// Whether an EncryptionConfiguration is installed, so that it stays mounted with KMS off.
    pub installed: bool,
    /// kms providers the installed file keeps for reads; their plugins must stay reachable.
    pub kept_providers: Vec<KmsConfiguration>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            mount_mode: None,
            encryption_config: PathBuf::from(DEFAULT_ENCRYPTION_CONFIG),
            installed: false,
            kept_providers: Vec::new(),
        }
    }
}

impl PlanOptions {
    /// Records that `config` is (or is about to be) installed, keeping every kms provider it
    /// lists, so the plan mounts the sockets of providers kept for reads too.
    #[must_use]
    pub fn with_installed(mut self, config: &EncryptionConfiguration) -> Self {
        self.installed = true;
        self.kept_providers = config
            .resources
            .iter()
            .flat_map(|resource| &resource.providers)
            .filter_map(|provider| provider.kms.clone())
            .collect();
        self
    }
}

/// Why no plan can be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// `--mount-mode dir` for a socket in a shared system directory.
    #[error(
        "--mount-mode dir would mount \"{dir}\", a directory the whole system shares, into the \
         API server for {field} \"{endpoint}\"; give the plugin a directory of its own, such as \
         /run/kmsplugin/, or use --mount-mode file"
    )]
    SharedSocketDirectory {
        /// Which setting named the socket.
        field: String,
        /// The socket path.
        endpoint: String,
        /// Its directory.
        dir: PathBuf,
    },
    /// The EncryptionConfiguration path is relative.
    #[error("the EncryptionConfiguration path must be absolute, got \"{0}\"")]
    RelativeEncryptionConfig(PathBuf),
    /// The EncryptionConfiguration would sit in a shared system directory.
    #[error(
        "the EncryptionConfiguration \"{path}\" is in \"{dir}\", a directory the whole system \
         shares, and its directory is what the API server mounts; give it a directory of its own, \
         such as /etc/ucp-kms/"
    )]
    SharedConfigDirectory {
        /// The EncryptionConfiguration path.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
    },
    /// KMS is enabled but no endpoint is set.
    #[error("kms_endpoint is required when kms_enabled is true")]
    MissingEndpoint,
}

/// Plans the API server's mounts and flags for `settings` on Kubernetes `version`.
///
/// With KMS off and nothing installed the plan is empty. Otherwise the EncryptionConfiguration's
/// directory is mounted read-only (a directory, because an atomic replacement creates a new
/// inode that a file bind mount never sees), and each plugin socket is reachable through its
/// directory, its file, or, for an abstract socket, the shared network namespace. The flags
/// name the file, turn on its automatic reload from 1.26, and add the feature gates
/// kube-apiserver needs to load it (`KMSv1=true` for a KMS v1 provider from 1.29 on,
/// `KMSv2=true` for a KMS v2 provider before 1.27).
///
/// # Errors
///
/// [`PlanError`] when `--mount-mode dir` names a shared system directory, when the
/// EncryptionConfiguration path is relative or in a shared system directory, or when KMS is
/// enabled without an endpoint.
pub fn plan(
    settings: &KmsSettings,
    version: KubeVersion,
    options: &PlanOptions,
) -> Result<Plan, PlanError> {
    if !settings.enabled && !options.installed {
        return Ok(Plan::default());
    }

    let mut plan = Plan::default();
    let config_path = lexical(&options.encryption_config);
    if !config_path.is_absolute() {
        return Err(PlanError::RelativeEncryptionConfig(options.encryption_config.clone()));
    }
    let config_dir = config_path.parent().unwrap_or(Path::new("/")).to_path_buf();
    if is_system_location(&config_dir) {
        return Err(PlanError::SharedConfigDirectory { path: config_path, dir: config_dir });
    }
    plan.push_mount(config_dir, true, MountKind::Directory);

    for socket in sockets(settings, options)? {
        plan.add_socket(&socket, options.mount_mode)?;
    }

    plan.apiserver_flags.push(format!("--encryption-provider-config={}", config_path.display()));
    if version.has_automatic_reload() {
        plan.apiserver_flags.push("--encryption-provider-config-automatic-reload=true".to_owned());
    }
    let gates =
        kms_render::required_feature_gates(&kms_providers(settings, version, options), version);
    if !gates.is_empty() {
        plan.apiserver_flags.push(format!("--feature-gates={}", gates.join(",")));
    }
    Ok(plan)
}

/// Whether `dir` is `/`, a top-level directory or another directory the whole system shares
/// (`/var/run`, `/usr/lib`, ...), which must never be bind-mounted into the API server.
pub fn is_system_location(dir: &Path) -> bool {
    let dir = lexical(dir);
    let depth = dir.components().filter(|c| matches!(c, Component::Normal(_))).count();
    depth <= 1 || SHARED_SUBDIRECTORIES.iter().any(|shared| dir == Path::new(shared))
}

/// Reads a kms provider's `endpoint` (`unix:///run/p.sock`, `unix:///@name`) back into an
/// [`Endpoint`]; `None` when it is not a UNIX socket address.
pub fn endpoint_from_url(url: &str) -> Option<Endpoint> {
    let rest = url.strip_prefix("unix://")?;
    if let Some(name) = rest.strip_prefix("/@").or_else(|| rest.strip_prefix('@')) {
        return (!name.is_empty()).then(|| Endpoint::Abstract(name.to_owned()));
    }
    rest.starts_with('/').then(|| Endpoint::Path(rest.to_owned()))
}

/// A plugin socket the API server must reach, and the words that name it in messages.
struct Socket {
    field: String,
    endpoint: Endpoint,
}

/// The settings' endpoint (when KMS is on) and those of kept providers, without repeats.
fn sockets(settings: &KmsSettings, options: &PlanOptions) -> Result<Vec<Socket>, PlanError> {
    let mut sockets: Vec<Socket> = Vec::new();
    if settings.enabled {
        let endpoint = settings.endpoint.clone().ok_or(PlanError::MissingEndpoint)?;
        sockets.push(Socket { field: "kms_endpoint".to_owned(), endpoint });
    }
    for provider in &options.kept_providers {
        let Some(endpoint) = endpoint_from_url(&provider.endpoint) else { continue };
        if sockets.iter().all(|known| known.endpoint != endpoint) {
            let field = format!("the endpoint of kept provider \"{}\"", provider.name);
            sockets.push(Socket { field, endpoint });
        }
    }
    Ok(sockets)
}

/// The kms providers of the file that will be installed, written or kept, as one resource
/// entry: enough to tell which feature gates kube-apiserver needs to load it.
fn kms_providers(
    settings: &KmsSettings,
    version: KubeVersion,
    options: &PlanOptions,
) -> EncryptionConfiguration {
    let written = settings.enabled.then(|| KmsConfiguration {
        api_version: Some(settings.effective_api_version(version).as_str().to_owned()),
        name: settings.name.clone(),
        ..KmsConfiguration::default()
    });
    let providers = written
        .into_iter()
        .chain(options.kept_providers.iter().cloned())
        .map(ProviderConfiguration::kms)
        .collect();
    EncryptionConfiguration::new(vec![ResourceConfiguration { resources: Vec::new(), providers }])
}

impl Plan {
    fn push_mount(&mut self, source: PathBuf, read_only: bool, kind: MountKind) {
        if self.mounts.iter().any(|mount| mount.source == source) {
            return;
        }
        self.mounts.push(Mount { target: source.clone(), source, read_only, kind });
    }

    fn add_socket(&mut self, socket: &Socket, forced: Option<MountMode>) -> Result<(), PlanError> {
        let Socket { field, endpoint } = socket;
        let path = match endpoint {
            Endpoint::Abstract(_) => {
                self.warnings.push(format!(
                    "{field} \"{endpoint}\" is an abstract socket: it needs no mount, but the \
                     plugin must share the API server's network namespace"
                ));
                return Ok(());
            }
            Endpoint::Path(path) => lexical(Path::new(path)),
        };
        let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let shared = is_system_location(&dir);

        match forced {
            Some(MountMode::Dir) if shared => {
                return Err(PlanError::SharedSocketDirectory {
                    field: field.clone(),
                    endpoint: endpoint.to_string(),
                    dir,
                });
            }
            Some(MountMode::Dir) => self.push_mount(dir, false, MountKind::Directory),
            Some(MountMode::File) => {
                self.warnings.push(format!(
                    "--mount-mode file mounts the socket file \"{}\" itself: when the plugin \
                     restarts and re-creates it, the API server keeps the old one until it \
                     restarts too",
                    path.display()
                ));
                self.push_mount(path, false, MountKind::Socket);
            }
            None if shared => {
                self.warnings.push(format!(
                    "{field} \"{}\" is in \"{}\", a directory the whole system shares, so the \
                     socket file itself is mounted: when the plugin restarts and re-creates it, \
                     the API server keeps the old one until it restarts too; give the plugin a \
                     directory of its own, such as /run/kmsplugin/",
                    path.display(),
                    dir.display()
                ));
                self.push_mount(path, false, MountKind::Socket);
            }
            None => self.push_mount(dir, false, MountKind::Directory),
        }
        Ok(())
    }

    /// Whether the plan has nothing to mount and no flag to set.
    pub fn is_empty(&self) -> bool {
        self.mounts.is_empty() && self.apiserver_flags.is_empty()
    }

    /// The `docker run` arguments of the mounts, one `--mount type=bind,...` per line.
    pub fn to_docker_args(&self) -> String {
        let mut out = String::new();
        for mount in &self.mounts {
            let mut fields = vec![
                "type=bind".to_owned(),
                docker_field("source", &mount.source),
                docker_field("target", &mount.target),
            ];
            if mount.read_only {
                fields.push("readonly".to_owned());
            }
            out.push_str("--mount ");
            out.push_str(&fields.join(","));
            out.push('\n');
        }
        out
    }

    /// The `volumes` and `volumeMounts` of a static pod as YAML with `hostPath` volumes,
    /// preceded by the API server flags as comments.
    pub fn to_kubernetes_yaml(&self) -> String {
        let mut volumes = Vec::new();
        let mut volume_mounts = Vec::new();
        let mut sockets = 0;
        for mount in &self.mounts {
            let name = if mount.read_only {
                "ucp-kms-config".to_owned()
            } else {
                sockets += 1;
                format!("kms-plugin-{sockets}")
            };
            let kind = match mount.kind {
                MountKind::Directory => "Directory",
                MountKind::Socket => "Socket",
            };
            volumes.push(Volume {
                name: name.clone(),
                host_path: HostPath { path: mount.source.display().to_string(), kind },
            });
            volume_mounts.push(VolumeMount {
                name,
                mount_path: mount.target.display().to_string(),
                read_only: mount.read_only,
            });
        }

        let mut out = String::new();
        if !self.apiserver_flags.is_empty() {
            out.push_str("# kube-apiserver flags:\n");
            for flag in &self.apiserver_flags {
                out.push_str(&format!("#   {flag}\n"));
            }
        }
        let fragment = PodFragment { volumes, volume_mounts };
        // Serializing plain strings and booleans to YAML cannot fail.
        out.push_str(&serde_yaml::to_string(&fragment).unwrap_or_default());
        out
    }
}

/// A field of docker's `--mount` value, quoted in its CSV syntax when it holds a comma or quote.
fn docker_field(key: &str, path: &Path) -> String {
    let field = format!("{key}={}", path.display());
    if field.contains([',', '"']) { format!("\"{}\"", field.replace('"', "\"\"")) } else { field }
}

/// `/run//kms/./p.sock/` as `/run/kms/p.sock`, without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[derive(Serialize)]
struct PodFragment {
    volumes: Vec<Volume>,
    #[serde(rename = "volumeMounts")]
    volume_mounts: Vec<VolumeMount>,
}

#[derive(Serialize)]
struct Volume {
    name: String,
    #[serde(rename = "hostPath")]
    host_path: HostPath,
}

#[derive(Serialize)]
struct HostPath {
    path: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct VolumeMount {
    name: String,
    #[serde(rename = "mountPath")]
    mount_path: String,
    #[serde(rename = "readOnly", skip_serializing_if = "std::ops::Not::not")]
    read_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_locations() {
        for shared in ["/", "/tmp", "/run", "/var/run", "/var", "/etc", "/usr", "/home", "/root"] {
            assert!(is_system_location(Path::new(shared)), "{shared}");
        }
        assert!(is_system_location(Path::new("/opt/")));
        assert!(is_system_location(Path::new("/var/run/./")));
        assert!(!is_system_location(Path::new("/run/kmsplugin")));
        assert!(!is_system_location(Path::new("/var/run/kms")));
        assert!(!is_system_location(Path::new("/etc/ucp-kms")));
    }

    #[test]
    fn endpoint_urls() {
        assert_eq!(
            endpoint_from_url("unix:///run/p.sock"),
            Some(Endpoint::Path("/run/p.sock".into()))
        );
        assert_eq!(endpoint_from_url("unix:///@kms"), Some(Endpoint::Abstract("kms".into())));
        assert_eq!(endpoint_from_url("unix://@kms"), Some(Endpoint::Abstract("kms".into())));
        assert_eq!(endpoint_from_url("unix://run/p.sock"), None);
        assert_eq!(endpoint_from_url("tcp://1.2.3.4:80"), None);
        assert_eq!(endpoint_from_url("unix:///@"), None);
    }

    #[test]
    fn mount_modes_parse() {
        assert_eq!("dir".parse::<MountMode>(), Ok(MountMode::Dir));
        assert_eq!("file".parse::<MountMode>(), Ok(MountMode::File));
        let err = "socket".parse::<MountMode>().unwrap_err();
        assert_eq!(err.to_string(), "mount mode must be \"dir\" or \"file\", got \"socket\"");
    }
}
