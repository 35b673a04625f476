//! Preflight: is the host ready for the API server to use the KMS plugin?
//!
//! The plugin must run before the node serves as a manager: an API server whose plugin socket
//! has no listener cannot read or write encrypted resources. Preflight looks at the socket
//! (missing, not a socket, stale, listening), at the owner and mode of the directories involved,
//! and then asks the plugin over its gRPC API whether kube-apiserver would find it healthy.
//! Host paths are absolute and interpreted under a root directory, so every check can run
//! against a sandbox.

use std::fmt;
use std::fs;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{SocketAddr, UnixStream};
use std::path::{Path, PathBuf};

use kms_model::{EncryptionConfiguration, Endpoint, KmsSettings, KubeVersion};
use serde::Serialize;

use crate::install::{DEFAULT_ENCRYPTION_CONFIG, FILE_MODE, under_root};
use crate::plan::endpoint_from_url;
use crate::plugin::{self, ProbeOptions, ProbeReport};

/// What is found at the plugin's endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SocketState {
    /// Nothing at the path, or nothing bound to the abstract name.
    Missing,
    /// Something other than a socket (a file, a directory) sits at the path.
    NotASocket,
    /// A socket file with no listener: connect gives "connection refused".
    Stale,
    /// A process accepts connections.
    Listening,
    /// The socket exists but cannot be connected to for another reason, such as its mode.
    Unreachable,
}

impl SocketState {
    /// The spelling in reports: `missing`, `not-a-socket`, `stale`, `listening`, `unreachable`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::NotASocket => "not-a-socket",
            Self::Stale => "stale",
            Self::Listening => "listening",
            Self::Unreachable => "unreachable",
        }
    }
}

impl fmt::Display for SocketState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of a plugin endpoint, with what it means and what to do about it.
///
/// Serializes as `{"path", "state"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SocketCheck {
    /// The endpoint as the host sees it: `/run/kmsplugin/socket.sock` or `@name`.
    pub path: String,
    /// What was found.
    pub state: SocketState,
    /// What the state means for this endpoint, as a sentence.
    #[serde(skip)]
    pub message: String,
    /// What the operator can do; empty when listening.
    #[serde(skip)]
    pub remedy: String,
}

impl SocketCheck {
    /// Whether a process accepts connections.
    pub fn is_listening(&self) -> bool {
        self.state == SocketState::Listening
    }
}

impl fmt::Display for SocketCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.remedy.is_empty() {
            write!(f, ": {}", self.remedy)?;
        }
        Ok(())
    }
}

/// Looks at the plugin endpoint: a socket path under `root`, or an abstract name.
///
/// Connecting is the only way to tell a live socket from a stale one; the connection is closed
/// at once without a byte sent.
pub fn check_socket(root: &Path, endpoint: &Endpoint) -> SocketCheck {
    match endpoint {
        Endpoint::Path(host_path) => {
            check_socket_file(host_path, &under_root(root, Path::new(host_path)))
        }
        Endpoint::Abstract(name) => check_abstract(name),
    }
}

fn check_socket_file(host_path: &str, path: &Path) -> SocketCheck {
    let found = |state, message: String, remedy: &str| SocketCheck {
        path: host_path.to_owned(),
        state,
        message,
        remedy: remedy.to_owned(),
    };
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return found(
                SocketState::Missing,
                format!("no plugin socket at \"{host_path}\""),
                "start the KMS plugin and check that kms_endpoint is the socket it listens on; \
                 the plugin must run before the node serves as a manager",
            );
        }
        Err(err) => {
            return found(
                SocketState::Unreachable,
                format!("cannot look at \"{host_path}\": {err}"),
                "check the permissions of the socket's directories",
            );
        }
    };

    let file_type = metadata.file_type();
    if !file_type.is_socket() {
        let what = if file_type.is_dir() {
            "a directory"
        } else if file_type.is_file() {
            "a regular file"
        } else {
            "not a socket"
        };
        return found(
            SocketState::NotASocket,
            format!("\"{host_path}\" is {what}, not a socket"),
            "point kms_endpoint at the plugin's socket, or move what is there out of the way \
             and start the plugin, which creates its socket there",
        );
    }

    match UnixStream::connect(path) {
        Ok(_) => {
            found(SocketState::Listening, format!("the plugin listens on \"{host_path}\""), "")
        }
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => found(
            SocketState::Stale,
            format!(
                "\"{host_path}\" is a stale socket: the file exists but nothing listens on it \
                 (connection refused)"
            ),
            "the plugin stopped without removing its socket: start it again (a plugin that \
             refuses to start over the stale file needs it removed first)",
        ),
        Err(err) => found(
            SocketState::Unreachable,
            format!("cannot connect to \"{host_path}\": {err}"),
            "run as a user that may open the socket, or fix the socket's owner and mode",
        ),
    }
}

fn check_abstract(name: &str) -> SocketCheck {
    let path = format!("@{name}");
    let found = |state, message: String, remedy: &str| SocketCheck {
        path: path.clone(),
        state,
        message,
        remedy: remedy.to_owned(),
    };
    let connected = SocketAddr::from_abstract_name(name.as_bytes())
        .and_then(|address| UnixStream::connect_addr(&address));
    match connected {
        Ok(_) => found(SocketState::Listening, format!("the plugin listens on \"{path}\""), ""),
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => found(
            SocketState::Missing,
            format!("nothing listens on the abstract socket \"{path}\" in this network namespace"),
            "start the KMS plugin in the API server's network namespace",
        ),
        Err(err) => found(
            SocketState::Unreachable,
            format!("cannot connect to \"{path}\": {err}"),
            "check that the plugin runs in the API server's network namespace",
        ),
    }
}

/// The sockets of kms providers that `config` keeps for reads, other than the settings' own
/// endpoint, that do not listen: each is a problem, as kube-apiserver needs every kms plugin of
/// its file to read what that plugin encrypted and to pass its health checks.
pub fn check_kept_sockets(
    root: &Path,
    settings: &KmsSettings,
    config: &EncryptionConfiguration,
) -> Vec<String> {
    let own = settings.endpoint.as_ref().filter(|_| settings.enabled);
    let mut seen: Vec<Endpoint> = own.into_iter().cloned().collect();
    let mut problems = Vec::new();
    let kept = config.resources.iter().flat_map(|entry| &entry.providers);
    for kms in kept.filter_map(|provider| provider.kms.as_ref()) {
        let Some(endpoint) = endpoint_from_url(&kms.endpoint) else { continue };
        if seen.contains(&endpoint) {
            continue;
        }
        let check = check_socket(root, &endpoint);
        if !check.is_listening() {
            problems.push(format!(
                "the plugin of kms provider \"{}\", kept for reads, is not reachable: {check}",
                kms.name
            ));
        }
        seen.push(endpoint);
    }
    problems
}

/// Owner and mode problems of the plugin socket, its directory, the EncryptionConfiguration
/// and its directory, as warnings. Paths that do not exist yet give none.
pub fn check_permissions(
    root: &Path,
    endpoint: Option<&Endpoint>,
    encryption_config: &Path,
) -> Vec<String> {
    let mut warnings = Vec::new();

    if let Some(Endpoint::Path(host_path)) = endpoint {
        let host_path = Path::new(host_path);
        let path = under_root(root, host_path);
        if let Ok(metadata) = fs::metadata(&path) {
            let mode = metadata.permissions().mode() & 0o7777;
            if metadata.file_type().is_socket() && mode & 0o002 != 0 {
                warnings.push(format!(
                    "the plugin socket \"{}\" is writable by others (mode {mode:04o}): any local \
                     user can ask the plugin to decrypt data keys; have the plugin create it 0660 \
                     or stricter",
                    host_path.display()
                ));
            }
        }
        if let Some(host_dir) = host_path.parent() {
            warnings.extend(loose_directory(
                root,
                host_dir,
                "the plugin socket's directory",
                0o022,
            ));
        }
    }

    if let Ok(metadata) = fs::metadata(under_root(root, encryption_config)) {
        let mode = metadata.permissions().mode() & 0o7777;
        if metadata.is_file() && mode != FILE_MODE {
            warnings.push(format!(
                "the EncryptionConfiguration \"{}\" has mode {mode:04o}, expected 0600: it may \
                 hold local keys of providers kept for reads; ucp-kms apply sets it back",
                encryption_config.display()
            ));
        }
    }

    if let Some(host_dir) = encryption_config.parent() {
        warnings.extend(loose_directory(
            root,
            host_dir,
            "the EncryptionConfiguration's directory",
            0o077,
        ));
        if let Ok(metadata) = fs::metadata(under_root(root, host_dir)) {
            let owner = metadata.uid();
            let me = rustix::process::geteuid().as_raw();
            if owner != 0 && owner != me {
                warnings.push(format!(
                    "the EncryptionConfiguration's directory \"{}\" is owned by uid {owner}, who \
                     can replace the file the API server loads; make root its owner",
                    host_dir.display()
                ));
            }
        }
    }
    warnings
}

/// A warning when the directory at `host_dir` grants any of the `forbidden` mode bits.
fn loose_directory(root: &Path, host_dir: &Path, what: &str, forbidden: u32) -> Option<String> {
    let metadata = fs::metadata(under_root(root, host_dir)).ok()?;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & forbidden == 0 {
        return None;
    }
    let who = if mode & 0o002 != 0 {
        "writable by others"
    } else if mode & 0o020 != 0 {
        "writable by its group"
    } else {
        "open to other users"
    };
    let expected = if forbidden == 0o077 { "0700" } else { "0755 or stricter" };
    Some(format!(
        "{what} \"{}\" is {who} (mode {mode:04o}): make it {expected}, owned by root",
        host_dir.display()
    ))
}

/// Where preflight looks and what it asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreflightOptions {
    /// The directory host paths are interpreted under; `/` on a real host.
    pub root: PathBuf,
    /// Host path of the installed EncryptionConfiguration.
    pub encryption_config: PathBuf,
    /// Whether to ask a listening plugin over gRPC for its health and to encrypt and decrypt
    /// a random DEK.
    pub probe: bool,
}

impl Default for PreflightOptions {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/"),
            encryption_config: PathBuf::from(DEFAULT_ENCRYPTION_CONFIG),
            probe: true,
        }
    }
}

/// What preflight found.
#[derive(Clone, Debug)]
pub struct Preflight {
    /// The plugin endpoint, when KMS is enabled.
    pub socket: Option<SocketCheck>,
    /// The plugin's answer, when the socket listens and a probe was asked for.
    pub plugin: Option<ProbeReport>,
    /// What keeps the host from serving with these settings; empty when ready.
    pub problems: Vec<String>,
    /// What the operator should know but does not block.
    pub warnings: Vec<String>,
}

impl Preflight {
    /// Whether nothing keeps the host from serving with these settings.
    pub fn is_ready(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Runs every preflight check for `settings` on Kubernetes `version`.
///
/// With KMS disabled only permissions are checked. With KMS enabled the socket must listen
/// and, when `options.probe` is set, the plugin must answer its health call with the settings'
/// API version within their timeout, and give back a random DEK it encrypted.
pub async fn preflight(
    settings: &KmsSettings,
    version: KubeVersion,
    options: &PreflightOptions,
) -> Preflight {
    let endpoint = settings.endpoint.as_ref().filter(|_| settings.enabled);
    let mut report = Preflight {
        socket: None,
        plugin: None,
        problems: Vec::new(),
        warnings: check_permissions(&options.root, endpoint, &options.encryption_config),
    };
    let Some(endpoint) = endpoint else {
        return report;
    };

    let socket = check_socket(&options.root, endpoint);
    tracing::debug!(kms.endpoint = %endpoint, socket.state = %socket.state, "checked plugin socket");
    if !socket.is_listening() {
        report.problems.push(socket.to_string());
    } else if options.probe {
        let probe_options = ProbeOptions {
            api_version: settings.effective_api_version(version),
            timeout: settings.effective_timeout(),
            // kube-apiserver's own KMS v1 health check is a round trip, and only a round trip
            // shows that what the plugin encrypts can be read back.
            roundtrip: true,
        };
        let reachable = match endpoint {
            Endpoint::Path(host_path) => {
                let path = under_root(&options.root, Path::new(host_path));
                Endpoint::Path(path.to_string_lossy().into_owned())
            }
            Endpoint::Abstract(_) => endpoint.clone(),
        };
        let mut answer = plugin::probe(&reachable, &probe_options).await;
        // Reports name the endpoint as the host sees it, not as this sandbox reached it.
        answer.endpoint = endpoint.to_string();
        for problem in &answer.problems {
            report.problems.push(format!("plugin at \"{endpoint}\" is unhealthy: {problem}"));
        }
        report.plugin = Some(answer);
    }
    report.socket = Some(socket);
    report
}
