//! Asking a KMS plugin, over its real gRPC API, whether kube-apiserver would accept it.

use std::collections::HashMap;
use std::error::Error as _;
use std::fmt;
use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use kms_model::duration::format_go_duration;
use kms_model::{Endpoint, KmsApiVersion};
use serde::Serialize;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

use super::api::{self, v1beta1, v2};
use super::client;

/// How to probe a plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeOptions {
    /// The KMS plugin API to speak.
    pub api_version: KmsApiVersion,
    /// The deadline of each call, as the kms block's `timeout`.
    pub timeout: Duration,
    /// Also encrypt 32 random bytes and decrypt them again, as kube-apiserver does with a DEK.
    pub roundtrip: bool,
}

impl Default for ProbeOptions {
    /// KMS v2, kube-apiserver's default deadline of 3s, health calls only.
    fn default() -> Self {
        Self { api_version: KmsApiVersion::V2, timeout: DEFAULT_TIMEOUT, roundtrip: false }
    }
}

/// The largest answer read from a plugin: the biggest valid one, an Encrypt answer with 32 KiB
/// of annotations, fits many times over.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// The most of a plugin's own text (healthz, version, error message) a report repeats.
const MAX_QUOTED_BYTES: usize = 512;

/// kube-apiserver's deadline for a KMS call when the kms block sets no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// What a probe found out about a plugin.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeReport {
    /// The endpoint probed, as given (`/run/kms/p.sock` or `@name`).
    pub endpoint: String,
    /// The KMS plugin API spoken.
    pub api_version: KmsApiVersion,
    /// True when kube-apiserver would find nothing wrong.
    pub healthy: bool,
    /// The API version string the plugin reported, if it answered.
    pub version: Option<String>,
    /// The key ID the plugin reported (KMS v2 only).
    pub key_id: Option<String>,
    /// Every gRPC call made, in order.
    pub calls: Vec<CallRecord>,
    /// Every problem found, as sentences; empty when healthy.
    pub problems: Vec<String>,
    /// The same problems as values, each with a remedy.
    #[serde(skip)]
    pub diagnoses: Vec<Diagnosis>,
}

impl ProbeReport {
    /// The time spent in all calls together, in milliseconds.
    pub fn latency_ms(&self) -> f64 {
        self.calls.iter().map(|call| call.latency_ms).sum()
    }

    /// The first problem found, if any.
    pub fn error(&self) -> Option<&str> {
        self.problems.first().map(String::as_str)
    }
}

/// One gRPC call of a probe.
#[derive(Clone, Debug, Serialize)]
pub struct CallRecord {
    /// The method called: `Version`, `Status`, `Encrypt` or `Decrypt`.
    pub method: String,
    /// True when the plugin answered; the answer may still have failed a check.
    pub ok: bool,
    /// Time from the request to the answer or the failure, in milliseconds.
    pub latency_ms: f64,
    /// Why the call failed, when it did.
    pub error: Option<String>,
}

/// Something about a plugin that kube-apiserver would not accept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Diagnosis {
    /// Nothing accepts connections on the endpoint.
    #[error("no listener on \"{endpoint}\": {reason}")]
    NoListener {
        /// The endpoint, as given.
        endpoint: String,
        /// What the connection attempt found.
        reason: NoListener,
    },
    /// The plugin did not answer a call before its deadline.
    #[error("no answer to {method} within {} (timeout)", format_go_duration(*.timeout))]
    Timeout {
        /// The method called.
        method: String,
        /// The deadline that passed.
        timeout: Duration,
    },
    /// The plugin answered a call with a gRPC error.
    #[error("call to {method} failed: {code:?} \"{message}\"")]
    CallFailed {
        /// The method called.
        method: String,
        /// The gRPC status code.
        code: Code,
        /// The plugin's error message.
        message: String,
    },
    /// The plugin speaks another version of the API than the one asked for.
    #[error("plugin reports API version \"{got}\", expected {}", expected_versions(*.api_version))]
    WrongVersion {
        /// The version string the plugin reported.
        got: String,
        /// The API spoken.
        api_version: KmsApiVersion,
    },
    /// The plugin's Status says it is not healthy.
    #[error("plugin reports healthz \"{healthz}\", expected \"ok\"")]
    Unhealthy {
        /// The plugin's own healthz text.
        healthz: String,
    },
    /// The plugin's Status has no key ID.
    #[error("plugin reports an empty key_id, expected the name of its KEK")]
    KeyIdEmpty,
    /// The plugin's Status key ID is longer than kube-apiserver accepts.
    #[error("plugin reports a key_id of {bytes} bytes, expected at most 1024")]
    KeyIdTooLong {
        /// The key ID's length in bytes.
        bytes: usize,
    },
    /// Encrypt answered with another key ID than Status reported.
    #[error("Encrypt answered key_id \"{encrypt}\", expected \"{status}\" as Status reports")]
    KeyIdMismatch {
        /// The key ID from Status.
        status: String,
        /// The key ID from Encrypt.
        encrypt: String,
    },
    /// Encrypt answered an empty ciphertext.
    #[error("Encrypt answered an empty ciphertext")]
    CiphertextEmpty,
    /// Encrypt answered a ciphertext longer than kube-apiserver accepts.
    #[error("Encrypt answered a ciphertext of {bytes} bytes, expected at most 1024")]
    CiphertextTooLong {
        /// The ciphertext's length in bytes.
        bytes: usize,
    },
    /// Encrypt answered annotations kube-apiserver rejects.
    #[error("Encrypt answered invalid annotations: {reason}")]
    AnnotationsInvalid {
        /// What is wrong with them.
        reason: String,
    },
    /// Decrypt did not give back what Encrypt was given.
    #[error("Decrypt did not give back the bytes given to Encrypt (round-trip mismatch)")]
    RoundTripMismatch,
}

impl Diagnosis {
    /// What an operator can do about it.
    pub fn remedy(&self) -> String {
        match self {
            Self::NoListener { reason, .. } => reason.remedy().to_owned(),
            Self::Timeout { .. } => "the plugin is stuck or slow to reach its KMS: check its logs \
                and its KMS connection, or raise kms_timeout if the KMS is known to be slow"
                .to_owned(),
            Self::CallFailed { code: Code::Unimplemented, .. } => {
                "the plugin does not serve this API: probe with the other --api-version and set \
                 kms_api_version to the API the plugin speaks"
                    .to_owned()
            }
            Self::CallFailed { .. } => "check the plugin's logs and its KMS connection".to_owned(),
            Self::WrongVersion { api_version, .. } => format!(
                "run a plugin release that speaks KMS {api_version}, or set kms_api_version to \
                 the API the plugin speaks"
            ),
            Self::Unhealthy { .. } => {
                "the plugin cannot use its KMS: check the plugin's logs, credentials and KMS \
                 connection"
                    .to_owned()
            }
            Self::KeyIdEmpty | Self::KeyIdTooLong { .. } => {
                "the plugin is misconfigured: its key ID must name the KEK in 1 to 1024 bytes"
                    .to_owned()
            }
            Self::KeyIdMismatch { .. } => {
                "kube-apiserver discards Encrypt answers whose key ID differs from Status and \
                 marks the plugin unhealthy: fix the plugin's key configuration"
                    .to_owned()
            }
            Self::CiphertextEmpty
            | Self::CiphertextTooLong { .. }
            | Self::AnnotationsInvalid { .. } => {
                "kube-apiserver rejects this Encrypt answer: upgrade or replace the plugin"
                    .to_owned()
            }
            Self::RoundTripMismatch => {
                "the plugin cannot decrypt what it encrypts, so stored data \
                would be unreadable: do not enable it"
                    .to_owned()
            }
        }
    }
}

/// What a failed connection attempt found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoListener {
    /// The socket file does not exist.
    SocketMissing,
    /// The socket file exists but nothing listens on it: the plugin died without removing it.
    StaleSocket,
    /// The path exists but is not a socket.
    NotASocket,
    /// Nothing listens on the abstract socket.
    Refused,
    /// The socket may not be opened by this user.
    PermissionDenied,
    /// Another I/O error.
    Other(String),
}

impl NoListener {
    fn remedy(&self) -> &'static str {
        match self {
            Self::SocketMissing => {
                "start the KMS plugin, and check that the endpoint is the socket it listens on"
            }
            Self::StaleSocket => {
                "the plugin is not running: start it (a plugin that refuses to start over the \
                 stale socket file needs the file removed first)"
            }
            Self::NotASocket => "point the endpoint at the plugin's socket",
            Self::Refused => "start the KMS plugin in the API server's network namespace",
            Self::PermissionDenied => {
                "run as a user that may open the socket, or fix the socket's owner and mode"
            }
            Self::Other(_) => "check that the plugin runs and listens on this endpoint",
        }
    }
}

impl fmt::Display for NoListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SocketMissing => f.write_str("the socket file does not exist"),
            Self::StaleSocket => {
                f.write_str("the socket file exists but nothing listens on it (stale socket)")
            }
            Self::NotASocket => f.write_str("the path is not a socket"),
            Self::Refused => f.write_str("connection refused"),
            Self::PermissionDenied => f.write_str("permission denied"),
            Self::Other(error) => f.write_str(error),
        }
    }
}

/// Probes the plugin at `endpoint` as kube-apiserver would judge it.
///
/// KMS v1: `Version` must answer `v1beta1`. KMS v2: `Status` must answer version `v2` or
/// `v2beta1`, healthz `ok` and a key ID of 1 to 1024 bytes. With `roundtrip`, 32 random bytes
/// are encrypted and decrypted again; for v2 the Encrypt answer must carry the Status key ID and
/// a ciphertext of 1 to 1024 bytes. Every call runs under `timeout`. A failure is never an
/// error of this function: it is a problem in the report.
pub async fn probe(endpoint: &Endpoint, options: &ProbeOptions) -> ProbeReport {
    let mut run = Run::new(endpoint, options);
    let channel = client::channel(endpoint);
    match options.api_version {
        KmsApiVersion::V1 => run.v1(channel).await,
        KmsApiVersion::V2 => run.v2(channel).await,
    }
    run.report
}

/// One probe in progress.
struct Run<'a> {
    endpoint: &'a Endpoint,
    options: &'a ProbeOptions,
    report: ProbeReport,
}

impl<'a> Run<'a> {
    fn new(endpoint: &'a Endpoint, options: &'a ProbeOptions) -> Self {
        let report = ProbeReport {
            endpoint: endpoint.to_string(),
            api_version: options.api_version,
            healthy: true,
            version: None,
            key_id: None,
            calls: Vec::new(),
            problems: Vec::new(),
            diagnoses: Vec::new(),
        };
        Self { endpoint, options, report }
    }

    async fn v1(&mut self, channel: Channel) {
        use v1beta1::key_management_service_client::KeyManagementServiceClient;

        let mut client =
            KeyManagementServiceClient::new(channel).max_decoding_message_size(MAX_ANSWER_BYTES);
        let version = v1beta1::VersionRequest { version: api::V1BETA1.to_owned() };
        let Some(answer) = self.call("Version", client.version(self.request(version))).await else {
            return;
        };
        if answer.version != api::V1BETA1 {
            self.problem(Diagnosis::WrongVersion {
                got: quoted(&answer.version),
                api_version: KmsApiVersion::V1,
            });
        }
        self.report.version = Some(answer.version);
        if !self.options.roundtrip {
            return;
        }

        let plain = random_dek();
        let encrypt =
            v1beta1::EncryptRequest { version: api::V1BETA1.to_owned(), plain: plain.clone() };
        let Some(encrypted) = self.call("Encrypt", client.encrypt(self.request(encrypt))).await
        else {
            return;
        };
        let decrypt =
            v1beta1::DecryptRequest { version: api::V1BETA1.to_owned(), cipher: encrypted.cipher };
        let Some(decrypted) = self.call("Decrypt", client.decrypt(self.request(decrypt))).await
        else {
            return;
        };
        if decrypted.plain != plain {
            self.problem(Diagnosis::RoundTripMismatch);
        }
    }

    async fn v2(&mut self, channel: Channel) {
        use v2::key_management_service_client::KeyManagementServiceClient;

        let mut client =
            KeyManagementServiceClient::new(channel).max_decoding_message_size(MAX_ANSWER_BYTES);
        let request = self.request(v2::StatusRequest {});
        let Some(status) = self.call("Status", client.status(request)).await else {
            return;
        };
        self.check_status(&status);
        self.report.version = Some(status.version);
        self.report.key_id = Some(status.key_id.clone());
        if !self.options.roundtrip {
            return;
        }

        let plaintext = random_dek();
        let uid = probe_uid();
        let encrypt = v2::EncryptRequest { plaintext: plaintext.clone(), uid: uid.clone() };
        let Some(encrypted) = self.call("Encrypt", client.encrypt(self.request(encrypt))).await
        else {
            return;
        };
        self.check_encrypted(&status.key_id, &encrypted);

        let decrypt = v2::DecryptRequest {
            ciphertext: encrypted.ciphertext,
            uid,
            key_id: encrypted.key_id,
            annotations: encrypted.annotations,
        };
        let Some(decrypted) = self.call("Decrypt", client.decrypt(self.request(decrypt))).await
        else {
            return;
        };
        if decrypted.plaintext != plaintext {
            self.problem(Diagnosis::RoundTripMismatch);
        }
    }

    /// The checks kube-apiserver applies to every Status answer.
    fn check_status(&mut self, status: &v2::StatusResponse) {
        if !api::V2_VERSIONS.contains(&status.version.as_str()) {
            let got = quoted(&status.version);
            self.problem(Diagnosis::WrongVersion { got, api_version: KmsApiVersion::V2 });
        }
        if status.healthz != api::HEALTHZ_OK {
            self.problem(Diagnosis::Unhealthy { healthz: quoted(&status.healthz) });
        }
        if status.key_id.is_empty() {
            self.problem(Diagnosis::KeyIdEmpty);
        } else if status.key_id.len() > api::MAX_KEY_ID_BYTES {
            self.problem(Diagnosis::KeyIdTooLong { bytes: status.key_id.len() });
        }
    }

    /// The checks kube-apiserver applies to an Encrypt answer before it stores anything.
    fn check_encrypted(&mut self, status_key_id: &str, encrypted: &v2::EncryptResponse) {
        if encrypted.key_id != status_key_id {
            self.problem(Diagnosis::KeyIdMismatch {
                status: status_key_id.to_owned(),
                encrypt: encrypted.key_id.clone(),
            });
        }
        let bytes = encrypted.ciphertext.len();
        if bytes == 0 {
            self.problem(Diagnosis::CiphertextEmpty);
        } else if bytes > api::MAX_CIPHERTEXT_BYTES {
            self.problem(Diagnosis::CiphertextTooLong { bytes });
        }
        if let Err(reason) = check_annotations(&encrypted.annotations) {
            self.problem(Diagnosis::AnnotationsInvalid { reason });
        }
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        // Sends grpc-timeout, as kube-apiserver's context deadline does, so the plugin can give
        // up too.
        request.set_timeout(self.options.timeout);
        request
    }

    /// Makes one call under the deadline and records it; `None` when there was no answer.
    async fn call<T>(
        &mut self,
        method: &str,
        call: impl Future<Output = Result<Response<T>, Status>>,
    ) -> Option<T> {
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.options.timeout, call).await;
        // Microsecond precision: finer digits are noise, and they make JSON hard to read.
        let latency_ms = started.elapsed().as_micros() as f64 / 1000.0;
        let failure = match outcome {
            Ok(Ok(answer)) => {
                let record =
                    CallRecord { method: method.to_owned(), ok: true, latency_ms, error: None };
                self.report.calls.push(record);
                return Some(answer.into_inner());
            }
            Ok(Err(status)) => self.diagnose(method, &status),
            Err(_elapsed) => {
                Diagnosis::Timeout { method: method.to_owned(), timeout: self.options.timeout }
            }
        };
        tracing::debug!(kms.method = method, error = %failure, "kms plugin call failed");
        self.report.calls.push(CallRecord {
            method: method.to_owned(),
            ok: false,
            latency_ms,
            error: Some(failure.to_string()),
        });
        self.problem(failure);
        None
    }

    /// Tells a missing plugin and a passed deadline apart from an error the plugin answered.
    fn diagnose(&self, method: &str, status: &Status) -> Diagnosis {
        if let Some(error) = io_error_in(status) {
            let reason = no_listener(self.endpoint, error);
            return Diagnosis::NoListener { endpoint: self.endpoint.to_string(), reason };
        }
        let expired = std::iter::successors(status.source(), |&error| error.source())
            .any(|error| error.is::<tonic::TimeoutExpired>());
        if expired || status.code() == Code::DeadlineExceeded {
            return Diagnosis::Timeout { method: method.to_owned(), timeout: self.options.timeout };
        }
        Diagnosis::CallFailed {
            method: method.to_owned(),
            code: status.code(),
            message: quoted(status.message()),
        }
    }

    fn problem(&mut self, diagnosis: Diagnosis) {
        self.report.healthy = false;
        self.report.problems.push(diagnosis.to_string());
        self.report.diagnoses.push(diagnosis);
    }
}

/// The I/O error behind a failed connection, if that is what failed.
fn io_error_in(status: &Status) -> Option<&io::Error> {
    std::iter::successors(status.source(), |&error| error.source())
        .find_map(|error| error.downcast_ref::<io::Error>())
}

fn no_listener(endpoint: &Endpoint, error: &io::Error) -> NoListener {
    use std::os::unix::fs::FileTypeExt;

    match error.kind() {
        io::ErrorKind::NotFound => NoListener::SocketMissing,
        io::ErrorKind::PermissionDenied => NoListener::PermissionDenied,
        io::ErrorKind::ConnectionRefused => match endpoint.socket_path() {
            None => NoListener::Refused,
            Some(path) => match std::fs::symlink_metadata(path) {
                Ok(meta) if meta.file_type().is_socket() => NoListener::StaleSocket,
                Ok(_) => NoListener::NotASocket,
                Err(_) => NoListener::Refused,
            },
        },
        _ => NoListener::Other(error.to_string()),
    }
}

/// kube-apiserver's rule for v2 annotations: keys are fully qualified domain names, and keys
/// and values together take at most 32 KiB.
fn check_annotations(annotations: &HashMap<String, Vec<u8>>) -> Result<(), String> {
    let mut keys: Vec<&String> = annotations.keys().collect();
    keys.sort();
    if let Some(key) = keys.iter().find(|key| !is_fully_qualified_domain_name(key)) {
        return Err(format!("key \"{key}\" must be a fully qualified domain name"));
    }
    let total: usize = annotations.iter().map(|(key, value)| key.len() + value.len()).sum();
    if total > api::MAX_ANNOTATIONS_BYTES {
        return Err(format!("they take {total} bytes, expected at most 32768"));
    }
    Ok(())
}

/// A DNS subdomain of at least two labels, as Kubernetes' `IsFullyQualifiedDomainName` checks.
fn is_fully_qualified_domain_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let labels: Vec<&str> = name.split('.').collect();
    name.len() <= 253 && labels.len() >= 2 && labels.iter().all(|label| is_dns_label(label))
}

fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    let alphanumeric = |byte: &u8| byte.is_ascii_lowercase() || byte.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().is_some_and(alphanumeric)
        && bytes.last().is_some_and(alphanumeric)
        && bytes.iter().all(|byte| alphanumeric(byte) || *byte == b'-')
}

/// A fresh 32-byte value, the size of the DEK or DEK seed kube-apiserver sends.
fn random_dek() -> Vec<u8> {
    let mut dek = vec![0; 32];
    // The value is only compared with what comes back; if the OS RNG fails, zeros still test
    // the round trip.
    let _ = getrandom::fill(&mut dek);
    dek
}

/// A request UID for the plugin's logs, so probes can be told from kube-apiserver's calls.
fn probe_uid() -> String {
    let mut bytes = [0; 8];
    let _ = getrandom::fill(&mut bytes);
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("ucp-kms-probe-{hex}")
}

/// The plugin's text, cut to [`MAX_QUOTED_BYTES`] so that a faulty plugin cannot flood reports.
fn quoted(text: &str) -> String {
    if text.len() <= MAX_QUOTED_BYTES {
        return text.to_owned();
    }
    let cut = (0..=MAX_QUOTED_BYTES).rev().find(|at| text.is_char_boundary(*at)).unwrap_or(0);
    format!("{}... ({} bytes)", &text[..cut], text.len())
}

fn expected_versions(api_version: KmsApiVersion) -> &'static str {
    match api_version {
        KmsApiVersion::V1 => "\"v1beta1\"",
        KmsApiVersion::V2 => "\"v2\" or \"v2beta1\"",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_keys_must_be_fully_qualified_domain_names() {
        assert!(is_fully_qualified_domain_name("version.encryption.example.com"));
        assert!(is_fully_qualified_domain_name("kms.example.com."));
        assert!(!is_fully_qualified_domain_name("example"));
        assert!(!is_fully_qualified_domain_name("Upper.example.com"));
        assert!(!is_fully_qualified_domain_name("-dash.example.com"));
        assert!(!is_fully_qualified_domain_name("a..b"));
    }

    #[test]
    fn long_plugin_text_is_cut() {
        assert_eq!(quoted("kms unavailable"), "kms unavailable");
        let long = quoted(&"é".repeat(1000));
        assert!(long.ends_with("... (2000 bytes)") && long.len() <= 530, "{long}");
    }

    #[test]
    fn annotations_are_bounded_in_total() {
        let small = HashMap::from([("a.example.com".to_owned(), vec![0; 100])]);
        assert_eq!(check_annotations(&small), Ok(()));
        let large = HashMap::from([("a.example.com".to_owned(), vec![0; 32 * 1024])]);
        let error = check_annotations(&large).unwrap_err();
        assert!(error.contains("32781 bytes"), "{error}");
    }
}
