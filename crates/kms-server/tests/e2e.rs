//! The `ucp-kms-server` binary on a loopback port, driven by curl (the commands of the UCP docs)
//! and by reqwest: installs under a sandbox root, drift repair, races, restarts, crashes, TLS.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ADMIN_TOKEN, Sandbox, Server, curl, fixture};
use kms_model::{Endpoint, KmsApiVersion};
use kms_mount::plugin::dev::{self, DevPluginConfig};

/// The import command of the UCP docs; `$SCHEME`, `$HOST`, `$TOKEN` and `$CURL_OPTS` (curl's
/// `-sS`, and `--cacert` for HTTPS) come from the environment.
const PUT_COMMAND: &str = concat!(
    r#"curl $CURL_OPTS -X PUT -H "accept: application/toml" -H "Authorization: Bearer $TOKEN" "#,
    r#"--upload-file ucp-config.toml $SCHEME://$HOST/api/ucp/config-toml"#,
);

/// The export command of the UCP docs, with the same environment.
const GET_COMMAND: &str = concat!(
    r#"curl $CURL_OPTS -X GET "$SCHEME://$HOST/api/ucp/config-toml" "#,
    r#"-H "accept: application/toml" -H "Authorization: Bearer $TOKEN" > ucp-config.toml"#,
);

/// Host path of the plugin socket in the KMS fixture; it lives under the sandbox root.
const SOCKET: &str = "/run/kmsplugin/socket.sock";

/// A development KMS plugin on its own runtime, stopped when dropped.
struct Plugin {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Plugin {
    fn start(socket: PathBuf) -> Self {
        let (ready, is_ready) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            runtime.unwrap().block_on(async move {
                let endpoint = Endpoint::Path(socket.display().to_string());
                let key = dev::random_key().unwrap();
                let config = DevPluginConfig::new(endpoint, KmsApiVersion::V2, key);
                let plugin = dev::bind(config).await.unwrap();
                ready.send(()).unwrap();
                plugin.serve(async move { drop(stopped.await) }).await.unwrap();
            });
        });
        is_ready.recv_timeout(Duration::from_secs(30)).expect("the plugin binds its socket");
        Self { stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn kms_config() -> String {
    fixture("ucp-config-kms.toml").replace("@SOCKET@", SOCKET)
}

fn client() -> reqwest::Client {
    client_with_roots(&[])
}

fn client_with_roots(ca_pems: &[&str]) -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for pem in ca_pems {
        use rustls_pki_types::pem::PemObject;
        roots
            .add(rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
            .unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder().use_preconfigured_tls(tls).build().unwrap()
}

/// Runs a UCP docs command line in `dir` against `host` and returns its stdout.
fn sh(dir: &Path, line: &str, host: &str, scheme: &str, curl_opts: &str) -> String {
    let output = Command::new("sh")
        .arg("-c")
        .arg(line)
        .current_dir(dir)
        .env("TOKEN", ADMIN_TOKEN)
        .env("HOST", host)
        .env("SCHEME", scheme)
        .env("CURL_OPTS", curl_opts)
        .output()
        .unwrap();
    assert!(output.status.success(), "{line}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_curl_commands_of_the_ucp_docs_work() {
    let sandbox = Sandbox::new();
    let server = Server::start(&sandbox.args());
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("ucp-config.toml"), fixture("ucp-config.toml")).unwrap();

    let put = sh(work.path(), PUT_COMMAND, &server.addr, "http", "-sS");
    let answer: serde_json::Value = serde_json::from_str(&put).unwrap();
    assert!(answer["message"].as_str().unwrap().contains("revision 1"), "{answer}");

    std::fs::remove_file(work.path().join("ucp-config.toml")).unwrap();
    sh(work.path(), GET_COMMAND, &server.addr, "http", "-sS");
    let exported = std::fs::read_to_string(work.path().join("ucp-config.toml")).unwrap();
    assert_eq!(exported, fixture("ucp-config.toml"));

    let (status, body) = curl(&[&server.url("/api/ucp/config-toml")]);
    assert_eq!(status, 401, "{body}");

    // curl sends a large upload with "Expect: 100-continue"; the answer comes without the body.
    let large = work.path().join("large.toml");
    std::fs::write(&large, vec![b'#'; 2 * 1024 * 1024]).unwrap();
    let token = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let large_arg = large.display().to_string();
    let url = server.url("/api/ucp/config-toml");
    let (status, body) = curl(&["-H", &token, "--upload-file", &large_arg, &url]);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("larger than 1048576 bytes"), "{body}");
    let exported = sh(work.path(), GET_COMMAND, &server.addr, "http", "-sS");
    assert!(exported.is_empty());
    let still = std::fs::read_to_string(work.path().join("ucp-config.toml")).unwrap();
    assert_eq!(still, fixture("ucp-config.toml"));
    let (status, body) = curl(&[&server.url("/_ping")]);
    assert_eq!((status, body.as_str()), (200, "OK"));
}

#[test]
fn kms_is_installed_under_the_root_and_hand_edits_are_undone() {
    let sandbox = Sandbox::new();
    let _plugin = Plugin::start(kms_mount::install::under_root(&sandbox.root(), Path::new(SOCKET)));
    let marker = sandbox.dir.path().join("on-change.log");
    let mut args = sandbox.args();
    args.extend(["--on-change".into(), format!("echo changed >> {}", marker.display())]);
    let server = Server::start(&args);
    let token = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let config = sandbox.dir.path().join("kms.toml");
    std::fs::write(&config, kms_config()).unwrap();

    let config_arg = config.display().to_string();
    let put_url = server.url("/api/ucp/config-toml");
    let (status, body) = curl(&["-X", "PUT", "-H", &token, "--upload-file", &config_arg, &put_url]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("installed EncryptionConfiguration sha256:"), "{body}");

    let installed = sandbox.installed();
    let yaml = std::fs::read_to_string(&installed).unwrap();
    assert!(yaml.contains("name: vault") && yaml.contains(&format!("unix://{SOCKET}")), "{yaml}");
    assert_eq!(mode(&installed), 0o600);
    assert_eq!(mode(installed.parent().unwrap()), 0o700);

    let (status, served) = curl(&["-H", &token, &server.url("/api/kms/encryption-config")]);
    assert_eq!((status, served.as_str()), (200, yaml.as_str()));
    let (_, status_json) = curl(&["-H", &token, &server.url("/api/kms/status")]);
    let status_json: serde_json::Value = serde_json::from_str(&status_json).unwrap();
    assert_eq!(status_json["reconcile"]["outcome"], "installed", "{status_json}");
    assert_eq!(status_json["plugin"]["healthy"], true, "{status_json}");
    assert_eq!(status_json["drift"], false, "{status_json}");
    assert_eq!(status_json["socket"]["state"], "listening", "{status_json}");
    assert!(status_json["plugin"]["key_id"].as_str().unwrap().starts_with("dev-"), "{status_json}");
    assert_eq!(status_json["problems"], serde_json::json!([]), "{status_json}");
    // The fields of `ucp-kms status --output json`, and the server's own three.
    let mut fields: Vec<_> = status_json.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    let expected = [
        "desired_hash",
        "diff",
        "drift",
        "installed_hash",
        "kms_enabled",
        "path",
        "plugin",
        "problems",
        "reconcile",
        "revision",
        "socket",
        "warnings",
    ];
    assert_eq!(fields, expected, "{status_json}");
    let (status, _) = curl(&[&server.url("/readyz")]);
    assert_eq!(status, 200);
    let (status, plan) = curl(&["-H", &token, &server.url("/api/kms/plan")]);
    assert_eq!(status, 200, "{plan}");
    assert!(plan.contains("--encryption-provider-config="), "{plan}");
    wait_until(Duration::from_secs(10), || std::fs::read_to_string(&marker).is_ok());

    // A hand edit, a deletion and a chmod are each undone.
    // An editor writes a new file and renames it over the old one.
    let edit = || {
        let mut text = std::fs::read_to_string(&installed).unwrap();
        text.push_str("# edited by hand\n");
        let saved = installed.with_extension("yaml.swp");
        std::fs::write(&saved, text).unwrap();
        std::fs::rename(&saved, &installed).unwrap();
    };
    let delete = || std::fs::remove_file(&installed).unwrap();
    let chmod = || std::fs::set_permissions(&installed, PermissionsExt::from_mode(0o644)).unwrap();
    let scenarios: [(&str, &dyn Fn()); 3] =
        [("edit", &edit), ("delete", &delete), ("chmod", &chmod)];
    for (name, change) in scenarios {
        let started = Instant::now();
        change();
        let repaired = wait_until(Duration::from_secs(5), || {
            std::fs::read_to_string(&installed).is_ok_and(|now| now == yaml)
                && mode(&installed) == 0o600
        });
        let elapsed = started.elapsed();
        eprintln!("drift repair of {name}: {:.1} ms", elapsed.as_secs_f64() * 1000.0);
        assert!(repaired, "{name} was not repaired within 5 s");
    }
    // The log line follows the restore; give the reader a moment to catch up.
    let repairs_logged =
        || server.log().into_iter().filter(|line| line.contains("changed outside ucp-kms")).count();
    wait_until(Duration::from_secs(5), || repairs_logged() >= 3);
    let repairs: Vec<String> =
        server.log().into_iter().filter(|line| line.contains("changed outside ucp-kms")).collect();
    // Repairs never make an outside change the version kept for rollback.
    let previous = installed.with_extension("yaml.previous");
    assert!(!previous.exists(), "{}", std::fs::read_to_string(&previous).unwrap_or_default());
    assert!(repairs.len() >= 3, "{repairs:#?}\n{}", server.log().join("\n"));
    assert!(repairs.iter().any(|line| line.contains("1 line(s) added")), "{repairs:#?}");
    assert!(repairs.iter().any(|line| line.contains("file deleted")), "{repairs:#?}");
    assert!(repairs.iter().any(|line| line.contains("mode 644")), "{repairs:#?}");

    let (_, metrics) = curl(&["-H", &token, &server.url("/metrics")]);
    let repaired = metric(&metrics, "ucp_kms_drift_repairs_total");
    assert!(repaired >= 3.0, "{metrics}");
    assert_eq!(metric(&metrics, "ucp_kms_plugin_healthy"), 1.0, "{metrics}");
    assert_eq!(metric(&metrics, "ucp_kms_config_revision"), 1.0, "{metrics}");
    assert!(metrics.contains(r#"ucp_kms_reconciles_total{outcome="installed"} 1"#), "{metrics}");
    assert!(metrics.contains("ucp_kms_plugin_probe_duration_seconds_count"), "{metrics}");
    assert!(
        metrics.contains(r#"route="/api/ucp/config-toml",method="PUT",status="200""#),
        "{metrics}"
    );

    // The reconciler's own writes caused no further repairs once things settled.
    std::thread::sleep(Duration::from_millis(500));
    let (_, again) = curl(&["-H", &token, &server.url("/metrics")]);
    assert_eq!(
        metric(&again, "ucp_kms_drift_repairs_total"),
        metric(&metrics, "ucp_kms_drift_repairs_total")
    );
    // The install and the rewrites by repairs each ran --on-change, in the background.
    let runs = || std::fs::read_to_string(&marker).unwrap_or_default().lines().count();
    assert!(wait_until(Duration::from_secs(10), || runs() >= 2), "--on-change ran {}", runs());
    assert!(server.wait_log("--on-change finished", Duration::from_secs(5)).is_some());
}

#[test]
fn kms_is_never_installed_while_the_plugin_fails_preflight() {
    let sandbox = Sandbox::new();
    let server = Server::start(&sandbox.args());
    let token = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let config = sandbox.dir.path().join("kms.toml");
    std::fs::write(&config, kms_config()).unwrap();

    let config_arg = config.display().to_string();
    let url = server.url("/api/ucp/config-toml");
    let (status, body) = curl(&["-X", "PUT", "-H", &token, "--upload-file", &config_arg, &url]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("not applied to this host"), "{body}");
    assert!(!sandbox.installed().exists());

    let (_, status_json) = curl(&["-H", &token, &server.url("/api/kms/status")]);
    let status_json: serde_json::Value = serde_json::from_str(&status_json).unwrap();
    assert_eq!(status_json["reconcile"]["outcome"], "blocked", "{status_json}");
    assert_eq!(status_json["socket"]["state"], "missing", "{status_json}");
    assert_eq!(status_json["drift"], true, "{status_json}");
    let message = status_json["reconcile"]["message"].as_str().unwrap();
    assert!(message.contains("preflight") && message.contains(SOCKET), "{message}");
    let (status, body) = curl(&[&server.url("/readyz")]);
    assert_eq!(status, 503);
    assert!(body.contains("preflight"), "{body}");
    let (status, _) = curl(&[&server.url("/_ping")]);
    assert_eq!(status, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_racing_puts_with_one_etag_exactly_one_wins() {
    let sandbox = Sandbox::new();
    let server = Server::start(&sandbox.args());
    let client = client();
    let url = server.url("/api/ucp/config-toml");
    let first = client
        .put(&url)
        .bearer_auth(ADMIN_TOKEN)
        .body(fixture("ucp-config.toml"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();

    let mut racers = Vec::new();
    for n in 0..16 {
        let (client, url, etag) = (client.clone(), url.clone(), etag.clone());
        let body = fixture("ucp-config.toml")
            .replace("per_user_limit = 10", &format!("per_user_limit = {n}"));
        racers.push(tokio::spawn(async move {
            let answer = client
                .put(&url)
                .bearer_auth(ADMIN_TOKEN)
                .header("if-match", etag)
                .body(body)
                .send()
                .await
                .unwrap();
            answer.status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for racer in racers {
        statuses.push(racer.await.unwrap());
    }
    let winners = statuses.iter().filter(|status| (200..300).contains(*status)).count();
    assert_eq!(winners, 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|status| (200..300).contains(status) || *status == 412),
        "{statuses:?}"
    );

    let history: serde_json::Value = client
        .get(server.url("/api/kms/history"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history["current"], 2, "{history}");
}

#[test]
fn a_restart_resumes_from_the_latest_revision() {
    let sandbox = Sandbox::new();
    let server = Server::start(&sandbox.args());
    let token = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let config = sandbox.dir.path().join("c.toml");
    let document = fixture("ucp-config.toml").replace("per_user_limit = 10", "per_user_limit = 4");
    std::fs::write(&config, &document).unwrap();
    let config_arg = config.display().to_string();
    let (status, _) = curl(&[
        "-X",
        "PUT",
        "-H",
        &token,
        "--upload-file",
        &config_arg,
        &server.url("/api/ucp/config-toml"),
    ]);
    assert_eq!(status, 200);

    let exit = server.terminate();
    assert!(exit.success(), "SIGTERM should shut down cleanly, got {exit}");

    let server = Server::start(&sandbox.args());
    let (status, body) = curl(&["-H", &token, &server.url("/api/ucp/config-toml")]);
    assert_eq!((status, body.as_str()), (200, document.as_str()));
    let exit = server.signal(rustix::process::Signal::INT);
    assert!(exit.success(), "Ctrl-C should shut down cleanly, got {exit}");
    let server = Server::start(&sandbox.args());
    let (status, body) = curl(&["-H", &token, &server.url("/api/ucp/config-toml")]);
    assert_eq!((status, body.as_str()), (200, document.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_puts_leaves_an_acknowledged_config_intact() {
    let sandbox = Sandbox::new();
    let server = Server::start(&sandbox.args());
    let url = server.url("/api/ucp/config-toml");
    let client = client();
    let document = |n: usize| {
        fixture("ucp-config.toml")
            .replace("lifetime_minutes = 60", &format!("lifetime_minutes = {n}"))
    };

    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
    let writer = tokio::spawn({
        let (client, url) = (client.clone(), url.clone());
        async move {
            for n in 1..10_000 {
                let sent = client.put(&url).bearer_auth(ADMIN_TOKEN).body(document(n)).send().await;
                match sent {
                    Ok(answer) if answer.status() == 200 => {
                        if acked_tx.send(n).is_err() {
                            return n;
                        }
                    }
                    _ => return n,
                }
            }
            10_000
        }
    });
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 20 {
        acknowledged.push(acked_rx.recv().await.expect("the writer acknowledges puts"));
    }
    server.kill();
    let in_flight = writer.await.unwrap();
    while let Ok(n) = acked_rx.try_recv() {
        acknowledged.push(n);
    }
    let last_acked = *acknowledged.last().unwrap();

    let server = Server::start(&sandbox.args());
    let stored = client
        .get(server.url("/api/ucp/config-toml"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 200);
    let stored = stored.text().await.unwrap();
    // Every acknowledged write survives; the one in flight at the kill may or may not.
    let candidates: HashSet<usize> = (last_acked..=in_flight).collect();
    let found = candidates.iter().find(|n| document(**n) == stored);
    assert!(found.is_some(), "stored config is none of {last_acked}..={in_flight}:\n{stored}");
    eprintln!("acknowledged up to {last_acked}, in flight {in_flight}, stored {}", found.unwrap());
}

#[test]
fn a_corrupt_revision_stops_the_start_and_names_the_file() {
    let sandbox = Sandbox::new();
    let server = Server::start(&sandbox.args());
    let token = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let config = sandbox.dir.path().join("c.toml");
    std::fs::write(&config, fixture("ucp-config.toml")).unwrap();
    let config_arg = config.display().to_string();
    curl(&[
        "-X",
        "PUT",
        "-H",
        &token,
        "--upload-file",
        &config_arg,
        &server.url("/api/ucp/config-toml"),
    ]);
    server.terminate();

    let revision = sandbox.data().join("revisions/000001.toml");
    let text = std::fs::read_to_string(&revision).unwrap();
    std::fs::write(&revision, &text[..text.len() / 2]).unwrap();

    let log = Server::try_start(&sandbox.args()).err().expect("the server must refuse to start");
    let output = Command::new(env!("CARGO_BIN_EXE_ucp-kms-server"))
        .args(sandbox.args())
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&revision.display().to_string()), "{stderr}\n{log}");
    assert!(stderr.contains("truncated or corrupt"), "{stderr}");
    // Nothing was dropped.
    assert_eq!(std::fs::read_to_string(&revision).unwrap(), text[..text.len() / 2]);
}

#[test]
fn a_generated_token_is_written_once_and_never_logged() {
    let sandbox = Sandbox::new();
    let args = vec![
        "--data-dir".to_owned(),
        sandbox.data().display().to_string(),
        "--root".to_owned(),
        sandbox.root().display().to_string(),
    ];
    let server = Server::start(&args);
    let path = sandbox.data().join("token");
    let line = std::fs::read_to_string(&path).unwrap();
    let token = line.trim().strip_prefix("admin:").expect("an admin:<token> line");
    assert_eq!(mode(&path), 0o600);
    let log = server.log().join("\n");
    assert!(log.contains(&path.display().to_string()), "{log}");
    assert!(!log.contains(token), "the token leaked into the log");

    let (status, _) =
        curl(&["-H", &format!("Authorization: Bearer {token}"), &server.url("/api/kms/history")]);
    assert_eq!(status, 200);
}

#[test]
fn bad_starts_are_refused_with_the_reason() {
    let sandbox = Sandbox::new();
    let bad_tokens = sandbox.dir.path().join("bad-tokens");
    std::fs::write(&bad_tokens, "# ok\nalice:0123456789abcdef0\nbob-without-colon\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ucp-kms-server"))
        .args(["--data-dir", &sandbox.data().display().to_string()])
        .args(["--token-file", &bad_tokens.display().to_string()])
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");

    // 192.0.2.1 is a documentation address this host never has, so nothing can be bound even
    // if the check were missing; the refusal must come first.
    let output = Command::new(env!("CARGO_BIN_EXE_ucp-kms-server"))
        .args(sandbox.args())
        .args(["--listen", "192.0.2.1:8443"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("refusing plain HTTP") && stderr.contains("--insecure-http"),
        "{stderr}"
    );
}

#[test]
fn version_names_the_commit() {
    let output =
        Command::new(env!("CARGO_BIN_EXE_ucp-kms-server")).arg("--version").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    let expected = format!("ucp-kms-server {} (", env!("CARGO_PKG_VERSION"));
    assert!(stdout.starts_with(&expected) && stdout.trim_end().ends_with(')'), "{stdout}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
}

impl Pki {
    fn new() -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name.push(rcgen::DnType::CommonName, "ucp-kms test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let mut server =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client.distinguished_name.push(rcgen::DnType::CommonName, "admin");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client.signed_by(&client_key, &issuer).unwrap();

        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", ca_cert.pem());
        write("server.pem", server_cert.pem());
        write("server-key.pem", server_key.serialize_pem());
        write("cert.pem", client_cert.pem());
        write("key.pem", client_key.serialize_pem());
        Self { ca_pem: ca_cert.pem(), dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn server_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.path("server.pem"),
            "--tls-key".into(),
            self.path("server-key.pem"),
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_the_ucp_commands_with_a_private_ca() {
    let sandbox = Sandbox::new();
    let pki = Pki::new();
    let mut args = sandbox.args();
    args.extend(pki.server_args());
    let server = Server::start(&args);
    let line = server.wait_log("listening", Duration::from_secs(1)).unwrap();
    assert!(line.contains("https://"), "{line}");

    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("ucp-config.toml"), fixture("ucp-config.toml")).unwrap();
    let opts = format!("-sS --cacert {}", pki.path("ca.pem"));
    let put = sh(work.path(), PUT_COMMAND, &server.addr, "https", &opts);
    assert!(put.contains("revision 1"), "{put}");
    std::fs::remove_file(work.path().join("ucp-config.toml")).unwrap();
    sh(work.path(), GET_COMMAND, &server.addr, "https", &opts);
    let get = std::fs::read_to_string(work.path().join("ucp-config.toml")).unwrap();
    assert_eq!(get, fixture("ucp-config.toml"));

    // Without the CA, curl refuses the certificate; plain HTTP gets no answer.
    let (status, _) = curl(&[&format!("https://{}/_ping", server.addr)]);
    assert_eq!(status, 0);

    let client = client_with_roots(&[&pki.ca_pem]);
    let answer = client
        .get(format!("https://{}/api/ucp/config-toml", server.addr))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), fixture("ucp-config.toml"));
}

#[test]
fn client_certificates_are_required_with_a_client_ca() {
    let sandbox = Sandbox::new();
    let pki = Pki::new();
    let mut args = sandbox.args();
    args.extend(pki.server_args());
    args.extend(["--client-ca".into(), pki.path("ca.pem")]);
    let server = Server::start(&args);
    let url = format!("https://{}/api/kms/history", server.addr);
    let ca = pki.path("ca.pem");
    let token = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let (cert, key) = (pki.path("cert.pem"), pki.path("key.pem"));

    let (status, _) = curl(&["--cacert", &ca, "-H", &token, &url]);
    assert_eq!(status, 0, "a connection without a client certificate must fail");
    let (status, body) =
        curl(&["--cacert", &ca, "--cert", &cert, "--key", &key, "-H", &token, &url]);
    assert_eq!(status, 200, "{body}");
    // As with a UCP admin client bundle, the certificate alone authenticates; the history
    // names it by fingerprint.
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("ucp-config.toml"), fixture("ucp-config.toml")).unwrap();
    let put_url = format!("https://{}/api/ucp/config-toml", server.addr);
    let bundle = ["--cacert", &ca, "--cert", &cert, "--key", &key];
    let upload = ["--upload-file", "ucp-config.toml", put_url.as_str()];
    let output = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}"])
        .args(bundle)
        .args(upload)
        .current_dir(work.path())
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&output.stdout);
    assert!(answer.ends_with("\n200") && answer.contains("revision 1"), "{answer}");
    let (status, history) = curl(&["--cacert", &ca, "--cert", &cert, "--key", &key, &url]);
    assert_eq!(status, 200);
    assert!(history.contains("\"token\":\"cert:"), "{history}");
    let ping = format!("https://{}/_ping", server.addr);
    let (status, _) = curl(&["--cacert", &ca, "--cert", &cert, "--key", &key, &ping]);
    assert_eq!(status, 200);
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    done()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

#[test]
fn a_removed_directory_comes_back_with_the_next_resync() {
    let sandbox = Sandbox::new();
    let _plugin = Plugin::start(kms_mount::install::under_root(&sandbox.root(), Path::new(SOCKET)));
    let mut args = sandbox.args();
    args.extend(["--resync".into(), "200ms".into()]);
    let server = Server::start(&args);
    let config = sandbox.dir.path().join("kms.toml");
    std::fs::write(&config, kms_config()).unwrap();
    let token = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let config_arg = config.display().to_string();
    let url = server.url("/api/ucp/config-toml");
    let (status, body) = curl(&["-X", "PUT", "-H", &token, "--upload-file", &config_arg, &url]);
    assert_eq!(status, 200, "{body}");
    let installed = sandbox.installed();
    let yaml = std::fs::read_to_string(&installed).unwrap();

    let dir = installed.parent().unwrap();
    // The reconciler may put the file back while the directory is being removed.
    for _ in 0..10_000 {
        if !dir.exists() {
            break;
        }
        let _ = std::fs::remove_dir_all(dir);
    }
    assert!(!dir.exists(), "could not remove {}", dir.display());
    let back = wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&installed).is_ok_and(|now| now == yaml)
    });
    assert!(back, "the installed file did not come back");
    assert_eq!(mode(dir), 0o700);

    // Later edits are still undone.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&installed, "edited").unwrap();
    let repaired = wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&installed).is_ok_and(|now| now == yaml)
    });
    assert!(repaired);
}

/// The text of an EncryptionConfiguration without the kms provider named `name`.
fn without_provider(yaml: &str, name: &str) -> String {
    let lines: Vec<&str> = yaml.lines().collect();
    let at = lines.iter().position(|line| line.trim() == format!("name: {name}")).unwrap();
    let start = (0..at).rev().find(|&i| lines[i].trim_start().starts_with("- kms:")).unwrap();
    let indent = lines[start].len() - lines[start].trim_start().len();
    let end = (at..lines.len())
        .find(|&i| lines[i].len() - lines[i].trim_start().len() <= indent)
        .unwrap_or(lines.len());
    let kept: Vec<&str> = lines[..start].iter().chain(&lines[end..]).copied().collect();
    kept.join("\n") + "\n"
}

#[test]
fn a_provider_kept_for_reads_deleted_while_the_server_is_down_is_restored() {
    let sandbox = Sandbox::new();
    let _plugin = Plugin::start(kms_mount::install::under_root(&sandbox.root(), Path::new(SOCKET)));
    let token = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let config = sandbox.dir.path().join("kms.toml");
    let config_arg = config.display().to_string();
    let server = Server::start(&sandbox.args());
    let put_url = server.url("/api/ucp/config-toml");
    for name in ["vault", "vault2"] {
        std::fs::write(&config, kms_config().replace("\"vault\"", &format!("\"{name}\""))).unwrap();
        let (status, body) =
            curl(&["-X", "PUT", "-H", &token, "--upload-file", &config_arg, &put_url]);
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("installed EncryptionConfiguration"), "{body}");
    }
    assert!(server.terminate().success());

    let installed = sandbox.installed();
    let yaml = std::fs::read_to_string(&installed).unwrap();
    assert!(yaml.contains("name: vault\n") && yaml.contains("name: vault2\n"), "{yaml}");
    let previous = std::fs::read_to_string(installed.with_extension("yaml.previous")).unwrap();
    std::fs::write(&installed, without_provider(&yaml, "vault")).unwrap();

    // The server remembers what it installed across the restart, and undoes the edit.
    let server = Server::start(&sandbox.args());
    let restored = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&installed).is_ok_and(|now| now == yaml)
    });
    assert!(
        restored,
        "{}\n{}",
        std::fs::read_to_string(&installed).unwrap(),
        server.log().join("\n")
    );
    let kept = std::fs::read_to_string(installed.with_extension("yaml.previous")).unwrap();
    assert_eq!(kept, previous, "the hand edit never becomes the version kept for rollback");
    let (_, status_json) = curl(&["-H", &token, &server.url("/api/kms/status")]);
    let status_json: serde_json::Value = serde_json::from_str(&status_json).unwrap();
    assert_eq!(status_json["drift"], false, "{status_json}");
}
