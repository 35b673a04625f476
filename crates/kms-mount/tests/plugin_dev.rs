//! The probe against the development plugin over real UNIX sockets, and the development plugin's
//! own socket handling.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use kms_model::{Endpoint, KmsApiVersion};
use kms_mount::plugin::dev::{self, DevPluginConfig, DevPluginError, Misbehaviour};
use kms_mount::plugin::{Diagnosis, NoListener, ProbeOptions, ProbeReport, probe};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Short, so that the tests stay fast; the slow plugin waits far longer than this.
const DEADLINE: Duration = Duration::from_millis(200);

const KEY: [u8; 32] = [0x42; 32];

/// A development plugin serving in the test's runtime.
struct Running {
    endpoint: Endpoint,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), DevPluginError>>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn start(config: DevPluginConfig) -> Running {
    let plugin = dev::bind(config).await.unwrap();
    let endpoint = plugin.endpoint().clone();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(plugin.serve(async {
        let _ = stopped.await;
    }));
    Running { endpoint, stop, task }
}

fn socket_in(dir: &TempDir) -> Endpoint {
    Endpoint::Path(dir.path().join("kms.sock").to_str().unwrap().to_owned())
}

fn config(dir: &TempDir, api_version: KmsApiVersion) -> DevPluginConfig {
    DevPluginConfig::new(socket_in(dir), api_version, KEY)
}

fn misbehaving(dir: &TempDir, misbehaviour: Misbehaviour) -> DevPluginConfig {
    DevPluginConfig { misbehaviour, ..config(dir, KmsApiVersion::V2) }
}

fn options(api_version: KmsApiVersion, roundtrip: bool) -> ProbeOptions {
    ProbeOptions { api_version, timeout: DEADLINE, roundtrip }
}

fn methods(report: &ProbeReport) -> Vec<(&str, bool)> {
    report.calls.iter().map(|call| (call.method.as_str(), call.ok)).collect()
}

/// A name no other test run uses, for abstract sockets, which live outside the file system.
fn abstract_name(test: &str) -> String {
    format!("ucp-kms-test-{test}-{}", std::process::id())
}

#[tokio::test]
async fn healthy_v2_plugin_passes_status() {
    let dir = TempDir::new().unwrap();
    let plugin = start(config(&dir, KmsApiVersion::V2)).await;

    let report = probe(&plugin.endpoint, &options(KmsApiVersion::V2, false)).await;

    assert!(report.healthy, "{:?}", report.problems);
    assert_eq!(report.version.as_deref(), Some("v2"));
    assert_eq!(report.key_id, Some(dev::default_key_id(&KEY)));
    assert_eq!(methods(&report), [("Status", true)]);
    assert_eq!(report.error(), None);
    plugin.stop().await;
}

#[tokio::test]
async fn healthy_v2_plugin_round_trips() {
    let dir = TempDir::new().unwrap();
    let plugin = start(config(&dir, KmsApiVersion::V2)).await;

    let report = probe(&plugin.endpoint, &options(KmsApiVersion::V2, true)).await;

    assert!(report.healthy, "{:?}", report.problems);
    assert_eq!(methods(&report), [("Status", true), ("Encrypt", true), ("Decrypt", true)]);
    assert!(report.latency_ms() >= report.calls[0].latency_ms);
    plugin.stop().await;
}

#[tokio::test]
async fn healthy_v1_plugin_passes_version_and_round_trips() {
    let dir = TempDir::new().unwrap();
    let plugin = start(config(&dir, KmsApiVersion::V1)).await;

    let report = probe(&plugin.endpoint, &options(KmsApiVersion::V1, true)).await;

    assert!(report.healthy, "{:?}", report.problems);
    assert_eq!(report.version.as_deref(), Some("v1beta1"));
    assert_eq!(report.key_id, None);
    assert_eq!(methods(&report), [("Version", true), ("Encrypt", true), ("Decrypt", true)]);
    plugin.stop().await;
}

#[tokio::test]
async fn abstract_socket_plugin_is_reachable() {
    let socket = Endpoint::Abstract(abstract_name("reachable"));
    let plugin = start(DevPluginConfig::new(socket, KmsApiVersion::V2, KEY)).await;

    let report = probe(&plugin.endpoint, &options(KmsApiVersion::V2, true)).await;

    assert!(report.healthy, "{:?}", report.problems);
    assert_eq!(report.endpoint, format!("@{}", abstract_name("reachable")));
    plugin.stop().await;
}

#[tokio::test]
async fn missing_socket_is_no_listener() {
    let dir = TempDir::new().unwrap();
    let endpoint = socket_in(&dir);

    let report = probe(&endpoint, &options(KmsApiVersion::V2, true)).await;

    assert!(!report.healthy);
    let expected =
        Diagnosis::NoListener { endpoint: endpoint.to_string(), reason: NoListener::SocketMissing };
    assert_eq!(report.diagnoses, [expected]);
    assert_eq!(methods(&report), [("Status", false)]);
    let error = report.calls[0].error.as_deref().unwrap();
    assert!(error.starts_with("no listener on"), "{error}");
    assert_eq!(report.error(), Some(error));
}

#[tokio::test]
async fn stale_socket_is_no_listener_and_said_so() {
    let dir = TempDir::new().unwrap();
    let endpoint = socket_in(&dir);
    // A listener that is gone leaves its socket file behind, as a crashed plugin does.
    drop(std::os::unix::net::UnixListener::bind(endpoint.socket_path().unwrap()).unwrap());

    let report = probe(&endpoint, &options(KmsApiVersion::V1, false)).await;

    let expected =
        Diagnosis::NoListener { endpoint: endpoint.to_string(), reason: NoListener::StaleSocket };
    assert_eq!(report.diagnoses, [expected]);
    assert!(report.problems[0].contains("stale socket"), "{}", report.problems[0]);
}

#[tokio::test]
async fn regular_file_is_not_a_socket() {
    let dir = TempDir::new().unwrap();
    let endpoint = socket_in(&dir);
    std::fs::write(endpoint.socket_path().unwrap(), b"not a socket").unwrap();

    let report = probe(&endpoint, &options(KmsApiVersion::V2, false)).await;

    let expected =
        Diagnosis::NoListener { endpoint: endpoint.to_string(), reason: NoListener::NotASocket };
    assert_eq!(report.diagnoses, [expected]);
}

#[tokio::test]
async fn abstract_socket_without_listener_is_refused() {
    let endpoint = Endpoint::Abstract(abstract_name("nobody"));

    let report = probe(&endpoint, &options(KmsApiVersion::V2, false)).await;

    let expected =
        Diagnosis::NoListener { endpoint: endpoint.to_string(), reason: NoListener::Refused };
    assert_eq!(report.diagnoses, [expected]);
}

#[tokio::test]
async fn plugin_slower_than_the_deadline_times_out() {
    let dir = TempDir::new().unwrap();
    let slow = Misbehaviour { delay: Duration::from_secs(5), ..Misbehaviour::default() };
    let plugin = start(misbehaving(&dir, slow)).await;

    let report = probe(&plugin.endpoint, &options(KmsApiVersion::V2, true)).await;

    let expected = Diagnosis::Timeout { method: "Status".to_owned(), timeout: DEADLINE };
    assert_eq!(report.diagnoses, [expected]);
    assert_eq!(report.problems, ["no answer to Status within 200ms (timeout)"]);
    assert_eq!(methods(&report), [("Status", false)]);
    // The slow call is still in flight; dropping the task is enough to end the test.
    drop(plugin);
}

#[tokio::test]
async fn wrong_v2_version_string_is_reported() {
    let dir = TempDir::new().unwrap();
    let version = Misbehaviour { report_version: Some("v3".to_owned()), ..Misbehaviour::default() };
    let plugin = start(misbehaving(&dir, version)).await;

    let report = probe(&plugin.endpoint, &options(KmsApiVersion::V2, false)).await;

    let expected = Diagnosis::WrongVersion { got: "v3".to_owned(), api_version: KmsApiVersion::V2 };
    assert_eq!(report.diagnoses, [expected]);
    assert_eq!(report.problems, [r#"plugin reports API version "v3", expected "v2" or "v2beta1""#]);
    assert_eq!(report.version.as_deref(), Some("v3"));
    plugin.stop().await;
}

#[tokio::test]
async fn wrong_v1_version_string_is_reported() {
    let dir = TempDir::new().unwrap();
    let misbehaviour =
        Misbehaviour { report_version: Some("v2".to_owned()), ..Misbehaviour::default() };
    let config = DevPluginConfig { misbehaviour, ..config(&dir, KmsApiVersion::V1) };
    let plugin = start(config).await;

    let report = probe(&plugin.endpoint, &options(KmsApiVersion::V1, false)).await;

    let expected = Diagnosis::WrongVersion { got: "v2".to_owned(), api_version: KmsApiVersion::V1 };
    assert_eq!(report.diagnoses, [expected]);
    plugin.stop().await;
}

#[tokio::test]
async fn unhealthy_plugin_is_quoted() {
    let dir = TempDir::new().unwrap();
    let unhealthy = Misbehaviour { unhealthy: true, ..Misbehaviour::default() };
    let plugin = start(misbehaving(&dir, unhealthy)).await;

    let report = probe(&plugin.endpoint, &options(KmsApiVersion::V2, false)).await;

    let expected = Diagnosis::Unhealthy { healthz: "kms unavailable".to_owned() };
    assert_eq!(report.diagnoses, [expected]);
    assert_eq!(report.problems, [r#"plugin reports healthz "kms unavailable", expected "ok""#]);
    // The Status call itself succeeded: the plugin answered, and said it is unhealthy.
    assert_eq!(methods(&report), [("Status", true)]);
    plugin.stop().await;
}

#[tokio::test]
async fn empty_key_id_is_reported() {
    let dir = TempDir::new().unwrap();
    let plugin =
        start(DevPluginConfig { key_id: String::new(), ..config(&dir, KmsApiVersion::V2) }).await;

    let report = probe(&plugin.endpoint, &options(KmsApiVersion::V2, false)).await;

    assert_eq!(report.diagnoses, [Diagnosis::KeyIdEmpty]);
    plugin.stop().await;
}

#[tokio::test]
async fn key_id_of_1025_bytes_is_too_long_and_1024_is_not() {
    for (bytes, expected) in [(1025, vec![Diagnosis::KeyIdTooLong { bytes: 1025 }]), (1024, vec![])]
    {
        let dir = TempDir::new().unwrap();
        let key_id = "k".repeat(bytes);
        let plugin = start(DevPluginConfig { key_id, ..config(&dir, KmsApiVersion::V2) }).await;

        let report = probe(&plugin.endpoint, &options(KmsApiVersion::V2, true)).await;

        assert_eq!(report.diagnoses, expected, "key_id of {bytes} bytes");
        plugin.stop().await;
    }
}

#[tokio::test]
async fn encrypt_key_id_differing_from_status_is_reported() {
    let dir = TempDir::new().unwrap();
    let other =
        Misbehaviour { encrypt_key_id: Some("other".to_owned()), ..Misbehaviour::default() };
    let plugin = start(misbehaving(&dir, other)).await;

    let report = probe(&plugin.endpoint, &options(KmsApiVersion::V2, true)).await;

    let expected =
        Diagnosis::KeyIdMismatch { status: dev::default_key_id(&KEY), encrypt: "other".to_owned() };
    assert_eq!(report.diagnoses, [expected]);
    assert_eq!(methods(&report), [("Status", true), ("Encrypt", true), ("Decrypt", true)]);
    plugin.stop().await;
}

#[tokio::test]
async fn v2_probe_of_a_v1_plugin_is_unimplemented() {
    let dir = TempDir::new().unwrap();
    let plugin = start(config(&dir, KmsApiVersion::V1)).await;

    let report = probe(&plugin.endpoint, &options(KmsApiVersion::V2, false)).await;

    let [Diagnosis::CallFailed { method, code, .. }] = &report.diagnoses[..] else {
        panic!("expected one failed call, got {:?}", report.diagnoses);
    };
    assert_eq!((method.as_str(), *code), ("Status", tonic::Code::Unimplemented));
    assert!(report.diagnoses[0].remedy().contains("--api-version"));
    plugin.stop().await;
}

#[tokio::test]
async fn plugin_creates_its_directory_and_a_private_socket() {
    let dir = TempDir::new().unwrap();
    let socket_dir = dir.path().join("run/kms");
    let path = socket_dir.join("p.sock");
    let socket = Endpoint::Path(path.to_str().unwrap().to_owned());

    let plugin = start(DevPluginConfig::new(socket, KmsApiVersion::V2, KEY)).await;

    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&socket_dir), 0o700);
    assert_eq!(mode(&path), 0o600);
    assert!(std::fs::metadata(&path).unwrap().file_type().is_socket());
    plugin.stop().await;
    assert!(!path.exists(), "socket removed at shutdown");
}

#[tokio::test]
async fn plugin_refuses_a_live_socket() {
    let dir = TempDir::new().unwrap();
    let first = start(config(&dir, KmsApiVersion::V2)).await;

    let error = dev::bind(config(&dir, KmsApiVersion::V2)).await.unwrap_err();

    assert!(matches!(error, DevPluginError::SocketInUse { .. }), "{error:?}");
    assert!(error.to_string().contains("in use"), "{error}");
    // The first plugin is untouched and still serves.
    let report = probe(&first.endpoint, &options(KmsApiVersion::V2, false)).await;
    assert!(report.healthy, "{:?}", report.problems);
    first.stop().await;
}

#[tokio::test]
async fn plugin_refuses_a_live_abstract_socket() {
    let socket = Endpoint::Abstract(abstract_name("live"));
    let first = start(DevPluginConfig::new(socket.clone(), KmsApiVersion::V2, KEY)).await;

    let error = dev::bind(DevPluginConfig::new(socket, KmsApiVersion::V2, KEY)).await.unwrap_err();

    assert!(matches!(error, DevPluginError::SocketInUse { .. }), "{error:?}");
    first.stop().await;
}

#[tokio::test]
async fn plugin_replaces_a_stale_socket() {
    let dir = TempDir::new().unwrap();
    let endpoint = socket_in(&dir);
    drop(std::os::unix::net::UnixListener::bind(endpoint.socket_path().unwrap()).unwrap());

    let plugin = start(config(&dir, KmsApiVersion::V2)).await;

    let report = probe(&plugin.endpoint, &options(KmsApiVersion::V2, false)).await;
    assert!(report.healthy, "{:?}", report.problems);
    plugin.stop().await;
}

#[tokio::test]
async fn plugin_refuses_to_replace_a_regular_file() {
    let dir = TempDir::new().unwrap();
    let endpoint = socket_in(&dir);
    std::fs::write(endpoint.socket_path().unwrap(), b"precious").unwrap();

    let error = dev::bind(config(&dir, KmsApiVersion::V2)).await.unwrap_err();

    assert!(matches!(error, DevPluginError::NotASocket { .. }), "{error:?}");
    assert_eq!(std::fs::read(endpoint.socket_path().unwrap()).unwrap(), b"precious");
}

#[tokio::test]
async fn stopped_plugin_leaves_no_listener() {
    let dir = TempDir::new().unwrap();
    let plugin = start(config(&dir, KmsApiVersion::V2)).await;
    let endpoint = plugin.endpoint.clone();
    plugin.stop().await;

    let report = probe(&endpoint, &options(KmsApiVersion::V2, false)).await;

    let expected =
        Diagnosis::NoListener { endpoint: endpoint.to_string(), reason: NoListener::SocketMissing };
    assert_eq!(report.diagnoses, [expected]);
}

#[test]
fn key_file_holds_raw_or_base64_key() {
    let dir = TempDir::new().unwrap();
    let raw = dir.path().join("raw.key");
    std::fs::write(&raw, KEY).unwrap();
    let encoded = dir.path().join("base64.key");
    std::fs::write(&encoded, "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=\n").unwrap();

    assert_eq!(dev::read_key_file(&raw).unwrap(), KEY);
    assert_eq!(dev::read_key_file(&encoded).unwrap(), KEY);
}

#[test]
fn bad_key_file_is_refused_without_showing_its_content() {
    let dir = TempDir::new().unwrap();
    let short = dir.path().join("short.key");
    std::fs::write(&short, "c2VjcmV0LXZhbHVl").unwrap();

    let error = dev::read_key_file(&short).unwrap_err();

    assert!(matches!(error, DevPluginError::KeyFileFormat { bytes: 16, .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("32 raw bytes or the base64 of 32 bytes"), "{message}");
    assert!(!message.contains("c2VjcmV0") && !message.contains("secret"), "{message}");
}
