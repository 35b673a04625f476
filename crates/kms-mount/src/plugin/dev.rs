//! A development KMS plugin: AES-256-GCM under a key held in memory, for tests and demos only.
//!
//! It serves either KMS plugin API on a UNIX socket. The key never leaves the process and is
//! never logged; the ciphertext is the 12-byte nonce followed by the sealed data. Switches in
//! [`Misbehaviour`] make it fail the ways real plugins fail, so clients can be tested against
//! each failure.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Nonce};
use kms_model::{Endpoint, KmsApiVersion};
use sha2::{Digest, Sha256};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use super::api::v1beta1::key_management_service_server::KeyManagementServiceServer as V1Server;
use super::api::v2::key_management_service_server::KeyManagementServiceServer as V2Server;
use super::api::{self, v1beta1, v2};

/// The annotation the plugin adds to each KMS v2 Encrypt answer and requires back on Decrypt,
/// so a client that drops annotations is caught.
pub const ALGORITHM_ANNOTATION: &str = "algorithm.dev-plugin.ucp-kms.io";

/// The value of [`ALGORITHM_ANNOTATION`].
const ALGORITHM: &[u8] = b"AES-256-GCM";

/// The healthz text and error message of a plugin switched to `unhealthy`.
pub const UNHEALTHY: &str = "kms unavailable";

/// The largest request the plugin decodes; kube-apiserver sends 32-byte DEKs.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The longest a stopping plugin waits for calls in flight before it closes anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The largest key file read; a key is 32 bytes, or 44 in base64.
const MAX_KEY_FILE_BYTES: u64 = 4096;

const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;

/// How to run the development plugin.
#[derive(Clone)]
pub struct DevPluginConfig {
    /// Where to listen: a socket file or an abstract name.
    pub socket: Endpoint,
    /// The KMS plugin API to serve.
    pub api_version: KmsApiVersion,
    /// The key ID the plugin reports (KMS v2).
    pub key_id: String,
    /// The AES-256 key; never printed.
    pub key: [u8; 32],
    /// Deliberate faults, for testing clients.
    pub misbehaviour: Misbehaviour,
}

impl DevPluginConfig {
    /// A well-behaved plugin with the key ID derived from `key` by [`default_key_id`].
    pub fn new(socket: Endpoint, api_version: KmsApiVersion, key: [u8; 32]) -> Self {
        let key_id = default_key_id(&key);
        Self { socket, api_version, key_id, key, misbehaviour: Misbehaviour::default() }
    }
}

impl fmt::Debug for DevPluginConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevPluginConfig")
            .field("socket", &self.socket)
            .field("api_version", &self.api_version)
            .field("key_id", &self.key_id)
            .field("key", &"<redacted>")
            .field("misbehaviour", &self.misbehaviour)
            .finish()
    }
}

/// Deliberate faults of the development plugin. They exist to test clients such as
/// `ucp-kms probe`; a plugin with any of them set is broken on purpose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Misbehaviour {
    /// Status reports healthz [`UNHEALTHY`]; every other call fails with it.
    pub unhealthy: bool,
    /// A pause before each answer, to test deadlines.
    pub delay: Duration,
    /// Encrypt answers this key ID instead of the one Status reports (KMS v2).
    pub encrypt_key_id: Option<String>,
    /// Version or Status reports this API version string instead of the right one.
    pub report_version: Option<String>,
}

/// Why the development plugin could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DevPluginError {
    /// A running process already listens on the socket.
    #[error("socket \"{socket}\" is in use by a running process; refusing to replace it")]
    SocketInUse {
        /// The socket.
        socket: String,
    },
    /// Something other than a socket is at the socket path.
    #[error("\"{path}\" exists and is not a socket; refusing to replace it")]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The socket's directory could not be created.
    #[error("cannot create socket directory \"{path}\"")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The socket path could not be inspected.
    #[error("cannot inspect socket \"{path}\"")]
    Inspect {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A stale socket file could not be removed.
    #[error("cannot remove stale socket \"{path}\"")]
    RemoveStale {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Listening on the socket failed.
    #[error("cannot listen on socket \"{socket}\"")]
    Bind {
        /// The socket.
        socket: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The gRPC server failed while serving.
    #[error("the development plugin's gRPC server failed")]
    Serve(#[source] tonic::transport::Error),
    /// The key file could not be read.
    #[error("cannot read key file \"{path}\"")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The key file holds no usable key.
    #[error(
        "key file \"{path}\" must hold 32 raw bytes or the base64 of 32 bytes, got {bytes} bytes \
         that are neither"
    )]
    KeyFileFormat {
        /// The key file.
        path: PathBuf,
        /// The size of the file.
        bytes: usize,
    },
    /// The operating system's random number generator failed.
    #[error("cannot draw a random key: {0}")]
    Random(getrandom::Error),
}

/// A fresh random AES-256 key.
///
/// # Errors
///
/// [`DevPluginError::Random`] when the operating system has no randomness to give.
pub fn random_key() -> Result<[u8; 32], DevPluginError> {
    let mut key = [0; 32];
    getrandom::fill(&mut key).map_err(DevPluginError::Random)?;
    Ok(key)
}

/// Reads a key file: 32 raw bytes, or the standard base64 of 32 bytes (surrounding whitespace
/// allowed).
///
/// # Errors
///
/// [`DevPluginError::KeyFile`] when the file cannot be read, [`DevPluginError::KeyFileFormat`]
/// when it holds anything else. Neither carries the file's content.
pub fn read_key_file(path: &Path) -> Result<[u8; 32], DevPluginError> {
    use base64::Engine as _;

    let key_file_error = |source| DevPluginError::KeyFile { path: path.to_owned(), source };
    let file = std::fs::File::open(path).map_err(key_file_error)?;
    let mode = file.metadata().map_err(key_file_error)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(kms.key_file = %path.display(), mode = format!("{:o}", mode & 0o777),
            "key file is readable by other users");
    }
    let mut content = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut content).map_err(key_file_error)?;

    if let Ok(key) = <[u8; 32]>::try_from(content.as_slice()) {
        return Ok(key);
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(content.trim_ascii()).ok();
    decoded.and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok()).ok_or_else(|| {
        DevPluginError::KeyFileFormat { path: path.to_owned(), bytes: content.len() }
    })
}

/// The key ID for `key`: `dev-` and 16 hex digits of a SHA-256 over a fixed label and the key.
///
/// The same key always gets the same ID, and a new key a new one, as a real KEK's name would;
/// like a key check value it tells keys apart without revealing them.
pub fn default_key_id(key: &[u8; 32]) -> String {
    let digest = Sha256::new().chain_update(b"ucp-kms dev-plugin key id\0").chain_update(key);
    let hex: String = digest.finalize().iter().take(8).map(|byte| format!("{byte:02x}")).collect();
    format!("dev-{hex}")
}

/// Binds the socket and serves until `shutdown` completes, then removes the socket.
///
/// # Errors
///
/// See [`bind`] and [`DevPlugin::serve`].
pub async fn serve(
    config: DevPluginConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DevPluginError> {
    bind(config).await?.serve(shutdown).await
}

/// Binds the socket without serving yet, so a caller knows the plugin is reachable before it
/// goes on.
///
/// A socket file nothing listens on is replaced; a live socket is refused. A missing parent
/// directory is created with mode 0700; the socket file gets mode 0600.
///
/// # Errors
///
/// [`DevPluginError::SocketInUse`] when a process listens on the socket,
/// [`DevPluginError::NotASocket`] when a file other than a socket is in the way, and the I/O
/// errors of creating the directory, removing a stale socket or binding.
pub async fn bind(config: DevPluginConfig) -> Result<DevPlugin, DevPluginError> {
    let (listener, socket_file) = match &config.socket {
        Endpoint::Path(path) => {
            let (listener, file) = bind_path(Path::new(path))?;
            (listener, Some(file))
        }
        Endpoint::Abstract(name) => (bind_abstract(name)?, None),
    };
    let cipher = Aes256Gcm::new(&config.key.into());
    let plugin = Plugin { key_id: config.key_id, cipher, misbehaviour: config.misbehaviour };
    Ok(DevPlugin {
        endpoint: config.socket,
        api_version: config.api_version,
        listener,
        plugin: Arc::new(plugin),
        _socket_file: socket_file,
    })
}

/// A development plugin whose socket is bound.
pub struct DevPlugin {
    endpoint: Endpoint,
    api_version: KmsApiVersion,
    listener: UnixListener,
    plugin: Arc<Plugin>,
    /// Removes the socket file when the plugin is dropped, however serving ended.
    _socket_file: Option<SocketFile>,
}

impl DevPlugin {
    /// Where the plugin listens.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Serves the plugin's API until `shutdown` completes, waits a few seconds at most for
    /// calls in flight, then removes the socket file.
    ///
    /// # Errors
    ///
    /// [`DevPluginError::Serve`] when the gRPC server fails.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), DevPluginError> {
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel();
        let signal = async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        };
        let incoming = UnixListenerStream::new(self.listener);
        let mut server = tonic::transport::Server::builder();
        let serving = async {
            match self.api_version {
                KmsApiVersion::V1 => {
                    let service = V1Server::new(V1Service(Arc::clone(&self.plugin)))
                        .max_decoding_message_size(MAX_REQUEST_BYTES);
                    server.add_service(service).serve_with_incoming_shutdown(incoming, signal).await
                }
                KmsApiVersion::V2 => {
                    let service = V2Server::new(V2Service(Arc::clone(&self.plugin)))
                        .max_decoding_message_size(MAX_REQUEST_BYTES);
                    server.add_service(service).serve_with_incoming_shutdown(incoming, signal).await
                }
            }
        };
        let grace = async {
            // Only a sent signal starts the grace period; a dropped sender means serving ended.
            if stopping_rx.await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };

        tokio::select! {
            biased;
            result = serving => result.map_err(DevPluginError::Serve),
            () = grace => {
                tracing::warn!(kms.socket = %self.endpoint, "calls in flight cut off at shutdown");
                Ok(())
            }
        }
    }
}

impl fmt::Debug for DevPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevPlugin")
            .field("endpoint", &self.endpoint)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

fn bind_path(path: &Path) -> Result<(UnixListener, SocketFile), DevPluginError> {
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty())
        && !parent.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|source| DevPluginError::CreateDir { path: parent.to_owned(), source })?;
    }
    replace_stale(path)?;

    let bind_error = |source| DevPluginError::Bind { socket: path.display().to_string(), source };
    let listener = UnixListener::bind(path).map_err(bind_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_error)?;
    let meta = std::fs::symlink_metadata(path).map_err(bind_error)?;
    let file = SocketFile { path: path.to_owned(), device: meta.dev(), inode: meta.ino() };
    Ok((listener, file))
}

/// Removes a socket file nobody listens on, the leftover of a plugin that died; refuses a live
/// socket and anything that is not a socket.
fn replace_stale(path: &Path) -> Result<(), DevPluginError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(DevPluginError::Inspect { path: path.to_owned(), source }),
    };
    if !meta.file_type().is_socket() {
        return Err(DevPluginError::NotASocket { path: path.to_owned() });
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(DevPluginError::SocketInUse { socket: path.display().to_string() }),
        Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(kms.socket = %path.display(), "replacing stale socket");
            std::fs::remove_file(path)
                .map_err(|source| DevPluginError::RemoveStale { path: path.to_owned(), source })
        }
        Err(source) => Err(DevPluginError::Inspect { path: path.to_owned(), source }),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn bind_abstract(name: &str) -> Result<UnixListener, DevPluginError> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;

    let socket = format!("@{name}");
    let bind_error = |source| DevPluginError::Bind { socket: socket.clone(), source };
    let address =
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).map_err(bind_error)?;
    let listener = match std::os::unix::net::UnixListener::bind_addr(&address) {
        Ok(listener) => listener,
        Err(error) if error.kind() == io::ErrorKind::AddrInUse => {
            return Err(DevPluginError::SocketInUse { socket });
        }
        Err(source) => return Err(bind_error(source)),
    };
    listener.set_nonblocking(true).map_err(bind_error)?;
    UnixListener::from_std(listener).map_err(bind_error)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn bind_abstract(name: &str) -> Result<UnixListener, DevPluginError> {
    Err(DevPluginError::Bind {
        socket: format!("@{name}"),
        source: io::Error::new(io::ErrorKind::Unsupported, "abstract sockets need Linux"),
    })
}

/// The socket file this plugin created; removed on drop unless another process replaced it.
struct SocketFile {
    path: PathBuf,
    device: u64,
    inode: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| meta.dev() == self.device && meta.ino() == self.inode);
        if ours && let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!(kms.socket = %self.path.display(), %error, "cannot remove socket");
        }
    }
}

/// The state both API services share.
struct Plugin {
    key_id: String,
    cipher: Aes256Gcm,
    misbehaviour: Misbehaviour,
}

impl Plugin {
    /// Applies the delay and the unhealthy switch before an answer.
    async fn answer(&self) -> Result<(), Status> {
        if !self.misbehaviour.delay.is_zero() {
            tokio::time::sleep(self.misbehaviour.delay).await;
        }
        if self.misbehaviour.unhealthy {
            return Err(Status::unavailable(UNHEALTHY));
        }
        Ok(())
    }

    fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, Status> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, plaintext)
            .map_err(|_| Status::internal("encryption failed"))?;
        let mut ciphertext = nonce.to_vec();
        ciphertext.extend_from_slice(&sealed);
        Ok(ciphertext)
    }

    fn open(&self, ciphertext: &[u8]) -> Result<Vec<u8>, Status> {
        if ciphertext.len() < NONCE_BYTES + TAG_BYTES {
            return Err(Status::invalid_argument(format!(
                "ciphertext must be at least {} bytes, got {}",
                NONCE_BYTES + TAG_BYTES,
                ciphertext.len()
            )));
        }
        let (nonce, sealed) = ciphertext.split_at(NONCE_BYTES);
        self.cipher.decrypt(Nonce::from_slice(nonce), sealed).map_err(|_| {
            Status::invalid_argument("ciphertext was not sealed with this plugin's key")
        })
    }

    fn knows_key_id(&self, key_id: &str) -> bool {
        key_id == self.key_id || self.misbehaviour.encrypt_key_id.as_deref() == Some(key_id)
    }
}

/// The KMS v1 (`v1beta1`) API of the plugin.
struct V1Service(Arc<Plugin>);

#[tonic::async_trait]
impl v1beta1::key_management_service_server::KeyManagementService for V1Service {
    async fn version(
        &self,
        _request: Request<v1beta1::VersionRequest>,
    ) -> Result<Response<v1beta1::VersionResponse>, Status> {
        self.0.answer().await?;
        let version = self.0.misbehaviour.report_version.as_deref().unwrap_or(api::V1BETA1);
        Ok(Response::new(v1beta1::VersionResponse {
            version: version.to_owned(),
            runtime_name: "ucp-kms-dev-plugin".to_owned(),
            runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
        }))
    }

    async fn decrypt(
        &self,
        request: Request<v1beta1::DecryptRequest>,
    ) -> Result<Response<v1beta1::DecryptResponse>, Status> {
        self.0.answer().await?;
        let plain = self.0.open(&request.get_ref().cipher)?;
        Ok(Response::new(v1beta1::DecryptResponse { plain }))
    }

    async fn encrypt(
        &self,
        request: Request<v1beta1::EncryptRequest>,
    ) -> Result<Response<v1beta1::EncryptResponse>, Status> {
        self.0.answer().await?;
        let cipher = self.0.seal(&request.get_ref().plain)?;
        Ok(Response::new(v1beta1::EncryptResponse { cipher }))
    }
}

/// The KMS v2 API of the plugin.
struct V2Service(Arc<Plugin>);

#[tonic::async_trait]
impl v2::key_management_service_server::KeyManagementService for V2Service {
    async fn status(
        &self,
        _request: Request<v2::StatusRequest>,
    ) -> Result<Response<v2::StatusResponse>, Status> {
        let plugin = &self.0;
        if !plugin.misbehaviour.delay.is_zero() {
            tokio::time::sleep(plugin.misbehaviour.delay).await;
        }
        // Status answers even when unhealthy: saying so is its job.
        let healthz = if plugin.misbehaviour.unhealthy { UNHEALTHY } else { api::HEALTHZ_OK };
        let version = plugin.misbehaviour.report_version.as_deref().unwrap_or("v2");
        Ok(Response::new(v2::StatusResponse {
            version: version.to_owned(),
            healthz: healthz.to_owned(),
            key_id: plugin.key_id.clone(),
        }))
    }

    async fn decrypt(
        &self,
        request: Request<v2::DecryptRequest>,
    ) -> Result<Response<v2::DecryptResponse>, Status> {
        self.0.answer().await?;
        let request = request.into_inner();
        if !self.0.knows_key_id(&request.key_id) {
            return Err(Status::invalid_argument(format!(
                "unknown key_id, expected \"{}\"",
                self.0.key_id
            )));
        }
        if request.annotations.get(ALGORITHM_ANNOTATION).map(Vec::as_slice) != Some(ALGORITHM) {
            return Err(Status::invalid_argument(format!(
                "annotation \"{ALGORITHM_ANNOTATION}\" must be the one Encrypt returned"
            )));
        }
        let plaintext = self.0.open(&request.ciphertext)?;
        Ok(Response::new(v2::DecryptResponse { plaintext }))
    }

    async fn encrypt(
        &self,
        request: Request<v2::EncryptRequest>,
    ) -> Result<Response<v2::EncryptResponse>, Status> {
        self.0.answer().await?;
        let ciphertext = self.0.seal(&request.get_ref().plaintext)?;
        let key_id = self.0.misbehaviour.encrypt_key_id.as_ref().unwrap_or(&self.0.key_id);
        let annotations = HashMap::from([(ALGORITHM_ANNOTATION.to_owned(), ALGORITHM.to_vec())]);
        Ok(Response::new(v2::EncryptResponse { ciphertext, key_id: key_id.clone(), annotations }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_tell_keys_apart_without_showing_them() {
        let one = default_key_id(&[1; 32]);
        assert_eq!(one, default_key_id(&[1; 32]));
        assert_ne!(one, default_key_id(&[2; 32]));
        assert!(one.starts_with("dev-") && one.len() == 20, "{one}");
    }

    #[test]
    fn debug_output_hides_the_key() {
        let config = DevPluginConfig::new(
            Endpoint::Abstract("test".to_owned()),
            KmsApiVersion::V2,
            [0xab; 32],
        );
        let debug = format!("{config:?}");
        assert!(debug.contains("<redacted>"), "{debug}");
        assert!(!debug.contains("171") && !debug.to_lowercase().contains("abab"), "{debug}");
    }

    #[test]
    fn sealed_data_opens_only_with_the_same_key() {
        let plugin = |key: [u8; 32]| Plugin {
            key_id: default_key_id(&key),
            cipher: Aes256Gcm::new(&key.into()),
            misbehaviour: Misbehaviour::default(),
        };
        let sealed = plugin([7; 32]).seal(b"data encryption key").unwrap();
        assert_eq!(sealed.len(), NONCE_BYTES + 19 + TAG_BYTES);
        assert_eq!(plugin([7; 32]).open(&sealed).unwrap(), b"data encryption key");
        assert!(plugin([8; 32]).open(&sealed).is_err());
        assert!(plugin([7; 32]).open(&sealed[..20]).is_err());
    }
}
