//! The probe against small gRPC servers that break kube-apiserver's rules in ways the
//! development plugin never does, each over a real UNIX socket.

use std::collections::HashMap;
use std::time::Duration;

use kms_model::{Endpoint, KmsApiVersion};
use kms_mount::plugin::api::v1beta1::key_management_service_server::{
    KeyManagementService as V1Api, KeyManagementServiceServer as V1Server,
};
use kms_mount::plugin::api::v2::key_management_service_server::{
    KeyManagementService as V2Api, KeyManagementServiceServer as V2Server,
};
use kms_mount::plugin::api::{v1beta1, v2};
use kms_mount::plugin::{Diagnosis, ProbeOptions, ProbeReport, probe};
use tempfile::TempDir;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Code, Request, Response, Status};

const DEADLINE: Duration = Duration::from_millis(200);

/// A KMS v2 plugin whose every answer the test chooses. Encrypt returns the plaintext as the
/// ciphertext unless told otherwise; Decrypt returns the ciphertext, or `decrypt_plaintext`.
#[derive(Clone)]
struct FakeV2 {
    status: v2::StatusResponse,
    encrypt_key_id: Option<String>,
    ciphertext: Option<Vec<u8>>,
    annotations: HashMap<String, Vec<u8>>,
    encrypt_delay: Duration,
    encrypt_error: Option<Status>,
    decrypt_plaintext: Option<Vec<u8>>,
}

impl Default for FakeV2 {
    fn default() -> Self {
        Self {
            status: v2::StatusResponse {
                version: "v2".to_owned(),
                healthz: "ok".to_owned(),
                key_id: "kek-1".to_owned(),
            },
            encrypt_key_id: None,
            ciphertext: None,
            annotations: HashMap::new(),
            encrypt_delay: Duration::ZERO,
            encrypt_error: None,
            decrypt_plaintext: None,
        }
    }
}

#[tonic::async_trait]
impl V2Api for FakeV2 {
    async fn status(
        &self,
        _: Request<v2::StatusRequest>,
    ) -> Result<Response<v2::StatusResponse>, Status> {
        Ok(Response::new(self.status.clone()))
    }

    async fn encrypt(
        &self,
        request: Request<v2::EncryptRequest>,
    ) -> Result<Response<v2::EncryptResponse>, Status> {
        tokio::time::sleep(self.encrypt_delay).await;
        if let Some(error) = &self.encrypt_error {
            return Err(error.clone());
        }
        let plaintext = request.into_inner().plaintext;
        Ok(Response::new(v2::EncryptResponse {
            ciphertext: self.ciphertext.clone().unwrap_or(plaintext),
            key_id: self.encrypt_key_id.clone().unwrap_or_else(|| self.status.key_id.clone()),
            annotations: self.annotations.clone(),
        }))
    }

    async fn decrypt(
        &self,
        request: Request<v2::DecryptRequest>,
    ) -> Result<Response<v2::DecryptResponse>, Status> {
        let ciphertext = request.into_inner().ciphertext;
        let plaintext = self.decrypt_plaintext.clone().unwrap_or(ciphertext);
        Ok(Response::new(v2::DecryptResponse { plaintext }))
    }
}

/// A KMS v1 plugin that reports the right version and decrypts to fixed bytes.
struct ForgetfulV1;

#[tonic::async_trait]
impl V1Api for ForgetfulV1 {
    async fn version(
        &self,
        _: Request<v1beta1::VersionRequest>,
    ) -> Result<Response<v1beta1::VersionResponse>, Status> {
        Ok(Response::new(v1beta1::VersionResponse {
            version: "v1beta1".to_owned(),
            runtime_name: "forgetful".to_owned(),
            runtime_version: "0.0.1".to_owned(),
        }))
    }

    async fn encrypt(
        &self,
        request: Request<v1beta1::EncryptRequest>,
    ) -> Result<Response<v1beta1::EncryptResponse>, Status> {
        Ok(Response::new(v1beta1::EncryptResponse { cipher: request.into_inner().plain }))
    }

    async fn decrypt(
        &self,
        _: Request<v1beta1::DecryptRequest>,
    ) -> Result<Response<v1beta1::DecryptResponse>, Status> {
        Ok(Response::new(v1beta1::DecryptResponse { plain: vec![0; 32] }))
    }
}

/// Serves a router on a socket in a fresh temporary directory until the test ends.
fn serve(router: tonic::transport::server::Router) -> (TempDir, Endpoint) {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&path).unwrap();
    tokio::spawn(router.serve_with_incoming(UnixListenerStream::new(listener)));
    (dir, Endpoint::Path(path.to_str().unwrap().to_owned()))
}

async fn probe_v2(fake: FakeV2, roundtrip: bool) -> ProbeReport {
    let (_dir, endpoint) =
        serve(tonic::transport::Server::builder().add_service(V2Server::new(fake)));
    let options = ProbeOptions { api_version: KmsApiVersion::V2, timeout: DEADLINE, roundtrip };
    probe(&endpoint, &options).await
}

fn with_status(version: &str, healthz: &str, key_id: &str) -> FakeV2 {
    let status = v2::StatusResponse {
        version: version.to_owned(),
        healthz: healthz.to_owned(),
        key_id: key_id.to_owned(),
    };
    FakeV2 { status, ..FakeV2::default() }
}

#[tokio::test]
async fn well_behaved_fake_is_healthy() {
    let report = probe_v2(FakeV2::default(), true).await;

    assert!(report.healthy, "{:?}", report.problems);
    assert_eq!(report.key_id.as_deref(), Some("kek-1"));
}

#[tokio::test]
async fn v2beta1_is_accepted_as_kube_apiserver_does() {
    let report = probe_v2(with_status("v2beta1", "ok", "kek-1"), false).await;

    assert!(report.healthy, "{:?}", report.problems);
    assert_eq!(report.version.as_deref(), Some("v2beta1"));
}

#[tokio::test]
async fn healthz_text_is_quoted() {
    let report = probe_v2(with_status("v2", "vault is sealed", "kek-1"), false).await;

    let expected = Diagnosis::Unhealthy { healthz: "vault is sealed".to_owned() };
    assert_eq!(report.diagnoses, [expected]);
    assert!(report.problems[0].contains("\"vault is sealed\""), "{}", report.problems[0]);
}

#[tokio::test]
async fn every_status_problem_is_reported_at_once() {
    let report = probe_v2(with_status("v1beta1", "", ""), false).await;

    let expected = [
        Diagnosis::WrongVersion { got: "v1beta1".to_owned(), api_version: KmsApiVersion::V2 },
        Diagnosis::Unhealthy { healthz: String::new() },
        Diagnosis::KeyIdEmpty,
    ];
    assert_eq!(report.diagnoses, expected);
    assert_eq!(report.problems.len(), 3);
}

#[tokio::test]
async fn key_id_of_1025_bytes_is_too_long() {
    let report = probe_v2(with_status("v2", "ok", &"k".repeat(1025)), false).await;

    assert_eq!(report.diagnoses, [Diagnosis::KeyIdTooLong { bytes: 1025 }]);
    assert_eq!(report.problems, ["plugin reports a key_id of 1025 bytes, expected at most 1024"]);
}

#[tokio::test]
async fn encrypt_key_id_must_equal_status_key_id() {
    let fake = FakeV2 { encrypt_key_id: Some("kek-2".to_owned()), ..FakeV2::default() };

    let report = probe_v2(fake, true).await;

    let expected =
        Diagnosis::KeyIdMismatch { status: "kek-1".to_owned(), encrypt: "kek-2".to_owned() };
    assert_eq!(report.diagnoses, [expected]);
}

#[tokio::test]
async fn round_trip_mismatch_is_reported() {
    let fake = FakeV2 { decrypt_plaintext: Some(b"something else".to_vec()), ..FakeV2::default() };

    let report = probe_v2(fake, true).await;

    assert_eq!(report.diagnoses, [Diagnosis::RoundTripMismatch]);
    let calls: Vec<bool> = report.calls.iter().map(|call| call.ok).collect();
    assert_eq!(calls, [true, true, true], "every call answered; the answer was wrong");
}

#[tokio::test]
async fn v1_round_trip_mismatch_is_reported() {
    let (_dir, endpoint) =
        serve(tonic::transport::Server::builder().add_service(V1Server::new(ForgetfulV1)));
    let options =
        ProbeOptions { api_version: KmsApiVersion::V1, timeout: DEADLINE, roundtrip: true };

    let report = probe(&endpoint, &options).await;

    assert_eq!(report.diagnoses, [Diagnosis::RoundTripMismatch]);
    assert_eq!(report.version.as_deref(), Some("v1beta1"));
}

#[tokio::test]
async fn ciphertext_must_be_between_1_and_1024_bytes() {
    for (ciphertext, expected) in [
        (vec![], Diagnosis::CiphertextEmpty),
        (vec![7; 1025], Diagnosis::CiphertextTooLong { bytes: 1025 }),
    ] {
        let fake = FakeV2 { ciphertext: Some(ciphertext), ..FakeV2::default() };

        let report = probe_v2(fake, true).await;

        // The fake decrypts to its ciphertext, so the round trip fails as well.
        assert_eq!(report.diagnoses, [expected, Diagnosis::RoundTripMismatch]);
    }
}

#[tokio::test]
async fn annotation_keys_must_be_domain_names() {
    let annotations = HashMap::from([("NotADomain".to_owned(), b"x".to_vec())]);
    let fake = FakeV2 { annotations, ..FakeV2::default() };

    let report = probe_v2(fake, true).await;

    let [Diagnosis::AnnotationsInvalid { reason }] = &report.diagnoses[..] else {
        panic!("expected invalid annotations, got {:?}", report.diagnoses);
    };
    assert!(reason.contains("\"NotADomain\""), "{reason}");
}

#[tokio::test]
async fn slow_encrypt_times_out_after_a_quick_status() {
    let fake = FakeV2 { encrypt_delay: Duration::from_secs(5), ..FakeV2::default() };

    let report = probe_v2(fake, true).await;

    let expected = Diagnosis::Timeout { method: "Encrypt".to_owned(), timeout: DEADLINE };
    assert_eq!(report.diagnoses, [expected]);
    let calls: Vec<(&str, bool)> =
        report.calls.iter().map(|call| (call.method.as_str(), call.ok)).collect();
    assert_eq!(calls, [("Status", true), ("Encrypt", false)]);
}

#[tokio::test]
async fn plugin_errors_are_passed_on() {
    let fake = FakeV2 {
        encrypt_error: Some(Status::permission_denied("vault token expired")),
        ..FakeV2::default()
    };

    let report = probe_v2(fake, true).await;

    let expected = Diagnosis::CallFailed {
        method: "Encrypt".to_owned(),
        code: Code::PermissionDenied,
        message: "vault token expired".to_owned(),
    };
    assert_eq!(report.diagnoses, [expected]);
    assert_eq!(report.calls[1].error.as_deref(), Some(report.problems[0].as_str()));
}

#[tokio::test]
async fn long_healthz_is_cut_and_huge_answers_are_refused() {
    let report = probe_v2(with_status("v2", &"x".repeat(2000), "kek-1"), false).await;
    let [Diagnosis::Unhealthy { healthz }] = &report.diagnoses[..] else {
        panic!("expected unhealthy, got {:?}", report.diagnoses);
    };
    assert!(healthz.ends_with("... (2000 bytes)") && healthz.len() < 600, "{healthz}");

    let report = probe_v2(with_status("v2", &"x".repeat(1024 * 1024), "kek-1"), false).await;
    let [Diagnosis::CallFailed { method, code, .. }] = &report.diagnoses[..] else {
        panic!("expected a refused answer, got {:?}", report.diagnoses);
    };
    assert_eq!((method.as_str(), *code), ("Status", Code::OutOfRange));
}
