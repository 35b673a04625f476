//! Preflight against real UNIX sockets, real directory modes and a real development plugin,
//! all under a temporary root.

use std::fs;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use kms_model::{Endpoint, KmsApiVersion, KmsSettings, KubeVersion};
use kms_mount::install::{DEFAULT_ENCRYPTION_CONFIG, under_root};
use kms_mount::plugin::dev::{self, DevPluginConfig, Misbehaviour};
use kms_mount::preflight::{
    PreflightOptions, SocketState, check_permissions, check_socket, preflight,
};
use tempfile::TempDir;

const SOCKET: &str = "/run/kmsplugin/socket.sock";

fn endpoint() -> Endpoint {
    Endpoint::Path(SOCKET.to_owned())
}

/// A temporary root with the socket's directory made, 0755.
fn root() -> TempDir {
    let root = tempfile::tempdir().unwrap();
    let dir = under_root(root.path(), Path::new("/run/kmsplugin"));
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    root
}

fn socket_path(root: &TempDir) -> PathBuf {
    under_root(root.path(), Path::new(SOCKET))
}

fn settings(api_version: KmsApiVersion) -> KmsSettings {
    KmsSettings {
        enabled: true,
        name: "vault".to_owned(),
        endpoint: Some(endpoint()),
        api_version: Some(api_version),
        timeout: Some(Duration::from_secs(2)),
        ..KmsSettings::disabled()
    }
}

fn options(root: &TempDir) -> PreflightOptions {
    PreflightOptions { root: root.path().to_path_buf(), ..PreflightOptions::default() }
}

#[test]
fn a_listening_socket_is_listening() {
    let root = root();
    let _listener = UnixListener::bind(socket_path(&root)).unwrap();

    let check = check_socket(root.path(), &endpoint());

    assert_eq!(check.state, SocketState::Listening);
    assert_eq!(check.path, SOCKET, "reports name the host path, not the sandbox path");
    assert!(check.remedy.is_empty());
}

#[test]
fn a_socket_without_listener_is_stale() {
    let root = root();
    drop(UnixListener::bind(socket_path(&root)).unwrap());
    assert!(socket_path(&root).exists(), "closing a listener leaves its socket file");

    let check = check_socket(root.path(), &endpoint());

    assert_eq!(check.state, SocketState::Stale);
    assert!(check.message.contains("connection refused"), "{}", check.message);
    assert!(check.remedy.contains("start it again"), "{}", check.remedy);
}

#[test]
fn a_missing_socket_is_missing() {
    let root = root();
    let check = check_socket(root.path(), &endpoint());
    assert_eq!(check.state, SocketState::Missing);
    assert!(check.remedy.contains("before the node serves as a manager"), "{}", check.remedy);
}

#[test]
fn a_file_or_directory_in_its_place_is_not_a_socket() {
    let root = root();
    fs::write(socket_path(&root), b"").unwrap();
    let check = check_socket(root.path(), &endpoint());
    assert_eq!(check.state, SocketState::NotASocket);
    assert!(check.message.contains("a regular file"), "{}", check.message);

    fs::remove_file(socket_path(&root)).unwrap();
    fs::create_dir(socket_path(&root)).unwrap();
    let check = check_socket(root.path(), &endpoint());
    assert_eq!(check.state, SocketState::NotASocket);
    assert!(check.message.contains("a directory"), "{}", check.message);
}

#[test]
fn each_state_has_its_own_message_and_remedy() {
    let root = root();
    let mut seen = Vec::new();
    seen.push(check_socket(root.path(), &endpoint()));
    fs::write(socket_path(&root), b"").unwrap();
    seen.push(check_socket(root.path(), &endpoint()));
    fs::remove_file(socket_path(&root)).unwrap();
    drop(UnixListener::bind(socket_path(&root)).unwrap());
    seen.push(check_socket(root.path(), &endpoint()));

    let states: Vec<_> = seen.iter().map(|check| check.state.as_str()).collect();
    assert_eq!(states, ["missing", "not-a-socket", "stale"]);
    for (i, a) in seen.iter().enumerate() {
        for b in &seen[i + 1..] {
            assert_ne!(a.message, b.message);
            assert_ne!(a.remedy, b.remedy);
        }
    }
}

#[test]
fn abstract_sockets_are_listening_or_missing() {
    let name = format!("ucp-kms-preflight-{}", std::process::id());
    let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixListener::bind_addr(&address).unwrap();
    let abstract_endpoint = Endpoint::Abstract(name.clone());

    let check = check_socket(Path::new("/nonexistent"), &abstract_endpoint);
    assert_eq!(check.state, SocketState::Listening);
    assert_eq!(check.path, format!("@{name}"));

    drop(listener);
    let check = check_socket(Path::new("/nonexistent"), &abstract_endpoint);
    assert_eq!(check.state, SocketState::Missing);
    assert!(check.remedy.contains("network namespace"), "{}", check.remedy);
}

#[test]
fn loose_directories_are_warned_about() {
    let root = root();
    let socket_dir = under_root(root.path(), Path::new("/run/kmsplugin"));
    let config_dir = under_root(root.path(), Path::new("/etc/ucp-kms"));
    fs::create_dir_all(&config_dir).unwrap();
    fs::set_permissions(&config_dir, fs::Permissions::from_mode(0o700)).unwrap();
    let config = Path::new(DEFAULT_ENCRYPTION_CONFIG);
    assert_eq!(check_permissions(root.path(), Some(&endpoint()), config), Vec::<String>::new());

    fs::set_permissions(&socket_dir, fs::Permissions::from_mode(0o777)).unwrap();
    fs::set_permissions(&config_dir, fs::Permissions::from_mode(0o755)).unwrap();
    let warnings = check_permissions(root.path(), Some(&endpoint()), config);

    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("\"/run/kmsplugin\" is writable by others (mode 0777)"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[1].contains("\"/etc/ucp-kms\" is open to other users (mode 0755)"),
        "{}",
        warnings[1]
    );
    assert!(warnings[1].contains("make it 0700"), "{}", warnings[1]);
}

#[test]
fn a_loosened_encryption_configuration_is_warned_about() {
    let root = root();
    let config = under_root(root.path(), Path::new(DEFAULT_ENCRYPTION_CONFIG));
    fs::create_dir_all(config.parent().unwrap()).unwrap();
    fs::set_permissions(config.parent().unwrap(), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(&config, b"kind: EncryptionConfiguration\n").unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).unwrap();
    let check = || check_permissions(root.path(), None, Path::new(DEFAULT_ENCRYPTION_CONFIG));
    assert_eq!(check(), Vec::<String>::new());

    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
    let warnings = check();

    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("has mode 0644, expected 0600"), "{}", warnings[0]);
}

#[test]
fn a_socket_open_to_everyone_is_warned_about() {
    let root = root();
    let _listener = UnixListener::bind(socket_path(&root)).unwrap();
    fs::set_permissions(socket_path(&root), fs::Permissions::from_mode(0o777)).unwrap();

    let warnings =
        check_permissions(root.path(), Some(&endpoint()), Path::new(DEFAULT_ENCRYPTION_CONFIG));

    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("any local user can ask the plugin to decrypt"),
        "{}",
        warnings[0]
    );
}

#[tokio::test]
async fn a_healthy_plugin_passes_preflight() {
    let root = root();
    let config = DevPluginConfig::new(
        Endpoint::Path(socket_path(&root).to_string_lossy().into_owned()),
        KmsApiVersion::V2,
        [7; 32],
    );
    let plugin = dev::bind(config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(plugin.serve(async {
        let _ = stopped.await;
    }));

    let report =
        preflight(&settings(KmsApiVersion::V2), KubeVersion::DEFAULT, &options(&root)).await;

    assert!(report.is_ready(), "{:?}", report.problems);
    assert_eq!(report.socket.as_ref().unwrap().state, SocketState::Listening);
    let plugin = report.plugin.as_ref().unwrap();
    assert!(plugin.healthy);
    assert_eq!(plugin.endpoint, SOCKET);
    assert!(plugin.key_id.is_some());

    // The same plugin asked for the other API answers Unimplemented: not ready.
    let report =
        preflight(&settings(KmsApiVersion::V1), KubeVersion::DEFAULT, &options(&root)).await;
    assert!(!report.is_ready());
    assert!(
        report.problems[0].starts_with("plugin at \"/run/kmsplugin/socket.sock\" is unhealthy")
    );

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_unhealthy_plugin_fails_preflight() {
    let root = root();
    let mut config = DevPluginConfig::new(
        Endpoint::Path(socket_path(&root).to_string_lossy().into_owned()),
        KmsApiVersion::V2,
        [7; 32],
    );
    config.misbehaviour = Misbehaviour { unhealthy: true, ..Misbehaviour::default() };
    let plugin = dev::bind(config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(plugin.serve(async {
        let _ = stopped.await;
    }));

    let report =
        preflight(&settings(KmsApiVersion::V2), KubeVersion::DEFAULT, &options(&root)).await;

    assert!(!report.is_ready());
    assert!(!report.plugin.as_ref().unwrap().healthy);
    assert_eq!(report.socket.as_ref().unwrap().state, SocketState::Listening);

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_plugin_whose_encrypt_answer_kube_apiserver_would_discard_fails_preflight() {
    let root = root();
    let mut config = DevPluginConfig::new(
        Endpoint::Path(socket_path(&root).to_string_lossy().into_owned()),
        KmsApiVersion::V2,
        [7; 32],
    );
    // Status is fine; only an Encrypt call shows the mismatch.
    config.misbehaviour =
        Misbehaviour { encrypt_key_id: Some("another-kek".to_owned()), ..Misbehaviour::default() };
    let plugin = dev::bind(config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(plugin.serve(async {
        let _ = stopped.await;
    }));

    let report =
        preflight(&settings(KmsApiVersion::V2), KubeVersion::DEFAULT, &options(&root)).await;

    assert!(!report.is_ready());
    let methods: Vec<_> =
        report.plugin.as_ref().unwrap().calls.iter().map(|call| call.method.as_str()).collect();
    assert!(methods.contains(&"Encrypt"), "{methods:?}");
    assert!(report.problems[0].contains("another-kek"), "{}", report.problems[0]);

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_stale_socket_fails_preflight_without_a_probe() {
    let root = root();
    drop(UnixListener::bind(socket_path(&root)).unwrap());

    let report =
        preflight(&settings(KmsApiVersion::V2), KubeVersion::DEFAULT, &options(&root)).await;

    assert!(!report.is_ready());
    assert_eq!(report.socket.as_ref().unwrap().state, SocketState::Stale);
    assert!(report.plugin.is_none());
    assert!(report.problems[0].contains("stale socket"), "{}", report.problems[0]);
}

#[tokio::test]
async fn kms_off_needs_no_socket() {
    let root = root();
    let report = preflight(&KmsSettings::disabled(), KubeVersion::DEFAULT, &options(&root)).await;
    assert!(report.is_ready());
    assert!(report.socket.is_none() && report.plugin.is_none());
}

#[test]
fn kept_plugins_must_listen_too() {
    let root = root();
    let kept = |name: &str, endpoint: &str| {
        kms_model::encryption::ProviderConfiguration::kms(kms_model::encryption::KmsConfiguration {
            name: name.to_owned(),
            api_version: Some("v2".to_owned()),
            endpoint: endpoint.to_owned(),
            ..Default::default()
        })
    };
    let config = kms_model::EncryptionConfiguration::new(vec![
        kms_model::encryption::ResourceConfiguration {
            resources: vec!["secrets".to_owned()],
            providers: vec![
                kept("vault", "unix:///run/kmsplugin/socket.sock"),
                kept("old", "unix:///run/old/socket.sock"),
                kms_model::encryption::ProviderConfiguration::identity(),
            ],
        },
    ]);

    // The settings' own endpoint is preflight's job; only the kept one is checked here.
    let problems = kms_mount::preflight::check_kept_sockets(
        root.path(),
        &settings(KmsApiVersion::V2),
        &config,
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("the plugin of kms provider \"old\", kept for reads"));
    assert!(problems[0].contains("\"/run/old/socket.sock\""), "{}", problems[0]);

    fs::create_dir_all(under_root(root.path(), Path::new("/run/old"))).unwrap();
    let _old = UnixListener::bind(under_root(root.path(), Path::new("/run/old/socket.sock")));
    let problems = kms_mount::preflight::check_kept_sockets(
        root.path(),
        &settings(KmsApiVersion::V2),
        &config,
    );
    assert_eq!(problems, Vec::<String>::new());

    // With KMS off, the provider that used to write is a kept one like the others.
    let problems =
        kms_mount::preflight::check_kept_sockets(root.path(), &KmsSettings::disabled(), &config);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("\"vault\""), "{}", problems[0]);
}
