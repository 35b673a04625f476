//! Mount plans for every way a plugin socket and the EncryptionConfiguration reach the API
//! server, pinned by snapshots in JSON, docker and static-pod form.

use std::path::PathBuf;
use std::time::Duration;

use kms_model::encryption::KmsConfiguration;
use kms_model::{EncryptionConfiguration, Endpoint, KmsApiVersion, KmsSettings, KubeVersion};
use kms_mount::plan::{MountKind, MountMode, Plan, PlanError, PlanOptions, plan};

fn version(minor: u16) -> KubeVersion {
    KubeVersion::new(minor).unwrap()
}

fn settings(endpoint: Endpoint) -> KmsSettings {
    KmsSettings {
        enabled: true,
        name: "vault".to_owned(),
        endpoint: Some(endpoint),
        cachesize: 0,
        api_version: None,
        timeout: Some(Duration::from_secs(5)),
        resources: vec!["secrets".to_owned()],
    }
}

fn path(socket: &str) -> Endpoint {
    Endpoint::Path(socket.to_owned())
}

/// Pins the plan in all three output forms under `name`.
fn snapshot(name: &str, plan: &Plan) {
    insta::assert_json_snapshot!(format!("{name}.json"), plan);
    insta::assert_snapshot!(format!("{name}.docker"), plan.to_docker_args());
    insta::assert_snapshot!(format!("{name}.kubernetes"), plan.to_kubernetes_yaml());
}

#[test]
fn socket_directory_is_mounted() {
    let plan =
        plan(&settings(path("/run/kmsplugin/socket.sock")), version(36), &PlanOptions::default())
            .unwrap();
    assert_eq!(plan.mounts.len(), 2);
    assert_eq!(plan.mounts[0].source, PathBuf::from("/etc/ucp-kms"));
    assert!(plan.mounts[0].read_only);
    assert_eq!(plan.mounts[1].source, PathBuf::from("/run/kmsplugin"));
    assert_eq!(plan.mounts[1].kind, MountKind::Directory);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    snapshot("dir", &plan);
}

#[test]
fn socket_in_tmp_is_mounted_as_a_file_with_a_warning() {
    let plan =
        plan(&settings(path("/tmp/kms.sock")), version(36), &PlanOptions::default()).unwrap();
    assert_eq!(plan.mounts[1].source, PathBuf::from("/tmp/kms.sock"));
    assert_eq!(plan.mounts[1].kind, MountKind::Socket);
    assert_eq!(plan.warnings.len(), 1);
    assert!(plan.warnings[0].contains("/run/kmsplugin/"), "{}", plan.warnings[0]);
    snapshot("file-on-tmp", &plan);
}

#[test]
fn every_shared_directory_falls_back_to_a_file_mount() {
    for dir in ["/", "/run", "/var/run", "/var", "/etc", "/usr", "/home", "/root", "/opt"] {
        let socket = format!("{}/kms.sock", dir.trim_end_matches('/'));
        let plan = plan(&settings(path(&socket)), version(36), &PlanOptions::default()).unwrap();
        assert_eq!(plan.mounts[1].kind, MountKind::Socket, "{socket}");
        assert_eq!(plan.mounts[1].source, PathBuf::from(&socket));
    }
}

#[test]
fn forced_file_mode_mounts_the_socket_file() {
    let options = PlanOptions { mount_mode: Some(MountMode::File), ..PlanOptions::default() };
    let plan = plan(&settings(path("/run/kmsplugin/socket.sock")), version(36), &options).unwrap();
    assert_eq!(plan.mounts[1].kind, MountKind::Socket);
    assert_eq!(plan.warnings.len(), 1);
    snapshot("forced-file", &plan);
}

#[test]
fn forced_dir_mode_on_a_shared_directory_is_an_error() {
    let options = PlanOptions { mount_mode: Some(MountMode::Dir), ..PlanOptions::default() };
    let err = plan(&settings(path("/tmp/kms.sock")), version(36), &options).unwrap_err();
    assert!(matches!(err, PlanError::SharedSocketDirectory { .. }));
    insta::assert_snapshot!("forced-dir-on-tmp.error", err.to_string());
}

#[test]
fn abstract_socket_needs_no_mount() {
    let plan = plan(
        &settings(Endpoint::Abstract("kmsplugin".to_owned())),
        version(36),
        &PlanOptions::default(),
    )
    .unwrap();
    assert_eq!(plan.mounts.len(), 1);
    assert!(plan.warnings[0].contains("network namespace"), "{}", plan.warnings[0]);
    snapshot("abstract", &plan);
}

#[test]
fn kms_off_and_nothing_installed_is_an_empty_plan() {
    let plan = plan(&KmsSettings::disabled(), version(36), &PlanOptions::default()).unwrap();
    assert!(plan.is_empty());
    assert!(plan.warnings.is_empty());
    snapshot("kms-off", &plan);
}

#[test]
fn kms_off_with_a_file_installed_keeps_the_config_and_the_kept_plugin() {
    let kept = EncryptionConfiguration::new(vec![kms_model::encryption::ResourceConfiguration {
        resources: vec!["secrets".to_owned()],
        providers: vec![
            kms_model::encryption::ProviderConfiguration::identity(),
            kms_model::encryption::ProviderConfiguration::kms(KmsConfiguration {
                api_version: Some("v2".to_owned()),
                name: "vault".to_owned(),
                endpoint: "unix:///run/kmsplugin/socket.sock".to_owned(),
                ..KmsConfiguration::default()
            }),
        ],
    }]);
    let options = PlanOptions::default().with_installed(&kept);
    let plan = plan(&KmsSettings::disabled(), version(36), &options).unwrap();
    assert_eq!(plan.mounts.len(), 2);
    assert_eq!(plan.mounts[1].source, PathBuf::from("/run/kmsplugin"));
    assert!(!plan.apiserver_flags.iter().any(|flag| flag.contains("KMSv1")));
    snapshot("kms-off-installed", &plan);
}

#[test]
fn kms_v1_from_1_29_needs_the_feature_gate() {
    let mut v1 = settings(path("/run/kmsplugin/socket.sock"));
    v1.cachesize = 1000;
    assert_eq!(v1.effective_api_version(version(29)), KmsApiVersion::V1);
    let plan = plan(&v1, version(29), &PlanOptions::default()).unwrap();
    assert!(plan.apiserver_flags.contains(&"--feature-gates=KMSv1=true".to_owned()));
    snapshot("v1-at-1.29", &plan);

    let before = kms_mount::plan::plan(&v1, version(28), &PlanOptions::default()).unwrap();
    assert!(!before.apiserver_flags.iter().any(|flag| flag.contains("KMSv1")));
}

#[test]
fn a_kept_v1_provider_needs_the_gate_too() {
    let kept = EncryptionConfiguration::new(vec![kms_model::encryption::ResourceConfiguration {
        resources: vec!["secrets".to_owned()],
        providers: vec![kms_model::encryption::ProviderConfiguration::kms(KmsConfiguration {
            name: "old".to_owned(),
            endpoint: "unix:///run/old/socket.sock".to_owned(),
            cachesize: Some(100),
            ..KmsConfiguration::default()
        })],
    }]);
    let options = PlanOptions::default().with_installed(&kept);
    let plan = plan(&settings(path("/run/kmsplugin/socket.sock")), version(30), &options).unwrap();
    assert!(plan.apiserver_flags.contains(&"--feature-gates=KMSv1=true".to_owned()));
    let sources: Vec<_> = plan.mounts.iter().map(|mount| mount.source.clone()).collect();
    assert_eq!(sources, ["/etc/ucp-kms", "/run/kmsplugin", "/run/old"].map(PathBuf::from));
}

#[test]
fn kubernetes_1_14_has_no_automatic_reload() {
    let plan =
        plan(&settings(path("/run/kmsplugin/socket.sock")), version(14), &PlanOptions::default())
            .unwrap();
    assert_eq!(
        plan.apiserver_flags,
        ["--encryption-provider-config=/etc/ucp-kms/encryption-config.yaml"]
    );
    snapshot("v1-at-1.14", &plan);
}

#[test]
fn encryption_config_path_is_checked() {
    let socket = settings(path("/run/kmsplugin/socket.sock"));
    let relative = PlanOptions { encryption_config: "enc.yaml".into(), ..PlanOptions::default() };
    assert!(matches!(
        plan(&socket, version(36), &relative),
        Err(PlanError::RelativeEncryptionConfig(_))
    ));
    let shared =
        PlanOptions { encryption_config: "/etc/enc.yaml".into(), ..PlanOptions::default() };
    assert!(matches!(
        plan(&socket, version(36), &shared),
        Err(PlanError::SharedConfigDirectory { .. })
    ));
    let own = PlanOptions {
        encryption_config: "/etc/kubernetes/enc/enc.yaml".into(),
        ..PlanOptions::default()
    };
    let plan = plan(&socket, version(36), &own).unwrap();
    assert_eq!(plan.mounts[0].source, PathBuf::from("/etc/kubernetes/enc"));
    assert_eq!(
        plan.apiserver_flags[0],
        "--encryption-provider-config=/etc/kubernetes/enc/enc.yaml"
    );
}

#[test]
fn kms_v2_before_1_27_needs_its_beta_gate() {
    let mut v2 = settings(path("/run/kmsplugin/socket.sock"));
    v2.api_version = Some(KmsApiVersion::V2);
    let plan = plan(&v2, version(25), &PlanOptions::default()).unwrap();
    assert_eq!(plan.apiserver_flags.last().unwrap(), "--feature-gates=KMSv2=true");
    let later = kms_mount::plan::plan(&v2, version(29), &PlanOptions::default()).unwrap();
    assert!(!later.apiserver_flags.iter().any(|flag| flag.starts_with("--feature-gates")));
}
