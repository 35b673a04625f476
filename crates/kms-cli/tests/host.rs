//! `ucp-kms plan`, `apply`, `status`, `prune` and `rollback` end to end: the real binary, a
//! temporary root, a real development plugin on a real socket, real file modes.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// How long a freshly started plugin may take to listen; generous for a loaded CI machine.
const START_LIMIT: Duration = Duration::from_secs(30);

const INSTALLED: &str = "etc/ucp-kms/encryption-config.yaml";
const PREVIOUS: &str = "etc/ucp-kms/encryption-config.yaml.previous";

/// A UCP configuration with KMS on, as an exported one looks; `{extra}` adds kms_* keys.
fn ucp_config(extra: &str) -> String {
    format!(
        "[cluster_config]\n  controller_port = 443\n  kms_enabled = true\n  \
         kms_name = \"vault\"\n  kms_endpoint = \"/run/kmsplugin/socket.sock\"\n{extra}\n\
         [auth]\n  backend = \"managed\"\n"
    )
}

const KMS_OFF: &str = "[cluster_config]\n  kms_enabled = false\n";

/// A sandbox: a temporary root and a UCP configuration file beside it.
struct Host {
    root: TempDir,
    config: PathBuf,
    plugin: Option<Child>,
}

impl Host {
    fn new(ucp: &str) -> Self {
        let root = tempfile::tempdir().unwrap();
        let config = root.path().join("ucp-config.toml");
        fs::write(&config, ucp).unwrap();
        Self { root, config, plugin: None }
    }

    fn set_config(&self, ucp: &str) {
        fs::write(&self.config, ucp).unwrap();
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    fn socket(&self) -> PathBuf {
        self.path("run/kmsplugin/socket.sock")
    }

    /// Runs `ucp-kms <command> --config <file> --root <root> <args>`.
    fn run(&self, command: &str, args: &[&str]) -> Output {
        let mut all = vec![command, "--config", self.config.to_str().unwrap()];
        all.extend(["--root", self.root.path().to_str().unwrap()]);
        all.extend(args);
        ucp_kms(&all)
    }

    /// Starts `ucp-kms dev-plugin` on the socket under the root and waits until it listens.
    fn start_plugin(&mut self, extra: &[&str]) {
        let socket = self.socket();
        let child = Command::new(env!("CARGO_BIN_EXE_ucp-kms"))
            .args(["dev-plugin", "--socket", socket.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.plugin = Some(child);
        let started = Instant::now();
        while UnixStream::connect(&socket).is_err() {
            assert!(started.elapsed() < START_LIMIT, "the dev plugin never listened");
            sleep(Duration::from_millis(20));
        }
    }

    /// Kills the plugin with SIGKILL, which leaves its socket file behind: a stale socket.
    fn kill_plugin(&mut self) {
        if let Some(mut child) = self.plugin.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill_plugin();
    }
}

fn ucp_kms(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ucp-kms"))
        .args(args)
        .env_remove("UCP_KMS_LOG")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .output()
        .expect("ucp-kms runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(output)))
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn apply_refuses_without_a_listening_plugin() {
    let host = Host::new(&ucp_config(""));

    let output = host.run("apply", &[]);

    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert!(stderr(&output).contains("no plugin socket at \"/run/kmsplugin/socket.sock\""));
    assert!(stderr(&output).contains("refusing to install"), "{}", stderr(&output));
    assert!(stdout(&output).contains("nothing written"));
    assert!(!host.path(INSTALLED).exists());
    assert!(!host.path("etc/ucp-kms").exists(), "not even the directory is made");
}

#[test]
fn apply_force_installs_without_a_plugin_with_a_warning() {
    let host = Host::new(&ucp_config(""));

    let output = host.run("apply", &["--force"]);

    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("warning: installing anyway (--force)"),
        "{}",
        stderr(&output)
    );
    let installed = fs::read_to_string(host.path(INSTALLED)).unwrap();
    assert!(installed.contains("endpoint: unix:///run/kmsplugin/socket.sock"), "{installed}");
    assert_eq!(mode(&host.path(INSTALLED)), 0o600);
    assert_eq!(mode(&host.path("etc/ucp-kms")), 0o700);
}

#[test]
fn apply_dry_run_shows_the_diff_and_plan_and_writes_nothing() {
    let mut host = Host::new(&ucp_config(""));
    host.start_plugin(&[]);

    let output = host.run("apply", &["--dry-run"]);

    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.starts_with("--- installed\n+++ desired\n"), "{out}");
    assert!(out.contains("+      name: vault\n"), "{out}");
    assert!(out.contains("dry run: would install /etc/ucp-kms/encryption-config.yaml"), "{out}");
    assert!(out.contains("  /run/kmsplugin -> /run/kmsplugin (directory)"), "{out}");
    assert!(!host.path("etc/ucp-kms").exists());
}

#[test]
fn apply_installs_once_and_then_changes_nothing() {
    let mut host = Host::new(&ucp_config(""));
    host.start_plugin(&[]);

    let first = host.run("apply", &[]);
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    assert!(stdout(&first).contains("installed /etc/ucp-kms/encryption-config.yaml (sha256:"));
    let before = fs::metadata(host.path(INSTALLED)).unwrap();
    assert_eq!(mode(&host.path(INSTALLED)), 0o600);

    sleep(Duration::from_millis(20));
    let second = host.run("apply", &["--output", "json"]);

    assert_eq!(code(&second), 0, "{}", stderr(&second));
    let report = json(&second);
    assert_eq!(report["outcome"], "unchanged");
    assert_eq!(report["diff"], "");
    assert_eq!(report["installed_hash"], report["desired_hash"]);
    assert_eq!(report["plugin"]["healthy"], true);
    assert_eq!(report["plan"]["mounts"][1]["source"], "/run/kmsplugin");
    let after = fs::metadata(host.path(INSTALLED)).unwrap();
    assert_eq!(after.ino(), before.ino());
    assert_eq!(after.modified().unwrap(), before.modified().unwrap());
    assert!(!host.path(PREVIOUS).exists());
}

#[test]
fn apply_refuses_an_unhealthy_plugin() {
    let mut host = Host::new(&ucp_config(""));
    host.start_plugin(&["--unhealthy"]);

    let output = host.run("apply", &[]);

    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert!(stderr(&output).contains("is unhealthy"), "{}", stderr(&output));
    assert!(!host.path(INSTALLED).exists());
}

#[test]
fn apply_never_loses_an_unparseable_file() {
    let mut host = Host::new(&ucp_config(""));
    host.start_plugin(&[]);
    fs::create_dir_all(host.path("etc/ucp-kms")).unwrap();
    fs::write(host.path(INSTALLED), "kind: [unbalanced\n").unwrap();

    let refused = host.run("apply", &[]);
    assert_eq!(code(&refused), 1, "{}", stderr(&refused));
    assert!(stderr(&refused).contains("cannot be decoded"), "{}", stderr(&refused));
    assert_eq!(fs::read_to_string(host.path(INSTALLED)).unwrap(), "kind: [unbalanced\n");

    let forced = host.run("apply", &["--force"]);
    assert_eq!(code(&forced), 0, "{}", stderr(&forced));
    assert_eq!(fs::read_to_string(host.path(PREVIOUS)).unwrap(), "kind: [unbalanced\n");
    assert!(fs::read_to_string(host.path(INSTALLED)).unwrap().contains("name: vault"));

    // Rolling back to it would hand kube-apiserver a file it cannot load.
    let refused = rollback(&host, &[]);
    assert_eq!(code(&refused), 1);
    assert!(
        stderr(&refused).contains("cannot decode the previous version"),
        "{}",
        stderr(&refused)
    );
    let forced = rollback(&host, &["--force"]);
    assert_eq!(code(&forced), 0, "{}", stderr(&forced));
    assert_eq!(fs::read_to_string(host.path(INSTALLED)).unwrap(), "kind: [unbalanced\n");
}

#[test]
fn status_follows_drift_and_the_plugin() {
    let mut host = Host::new(&ucp_config(""));
    host.start_plugin(&[]);
    assert_eq!(code(&host.run("apply", &[])), 0);

    let healthy = host.run("status", &["--output", "json"]);
    assert_eq!(code(&healthy), 0, "{}", stdout(&healthy));
    let report = json(&healthy);
    assert_eq!(report["drift"], false);
    assert_eq!(report["socket"]["state"], "listening");
    assert_eq!(report["socket"]["path"], "/run/kmsplugin/socket.sock");
    assert_eq!(report["plugin"]["healthy"], true);
    assert!(report["plugin"]["key_id"].as_str().unwrap().starts_with("dev-"));
    assert!(report["plugin"]["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(report["problems"], Value::Array(vec![]));

    // A hand edit points the provider elsewhere: drift, with the diff.
    let edited = fs::read_to_string(host.path(INSTALLED))
        .unwrap()
        .replace("unix:///run/kmsplugin/socket.sock", "unix:///run/other/socket.sock");
    fs::write(host.path(INSTALLED), edited).unwrap();
    let drifted = host.run("status", &[]);
    assert_eq!(code(&drifted), 1);
    let out = stdout(&drifted);
    assert!(out.contains("drift:      yes"), "{out}");
    assert!(out.contains("-      endpoint: unix:///run/other/socket.sock"), "{out}");
    assert!(out.contains("+      endpoint: unix:///run/kmsplugin/socket.sock"), "{out}");

    // apply repairs it.
    let repaired = host.run("apply", &[]);
    assert_eq!(code(&repaired), 0, "{}", stderr(&repaired));
    assert_eq!(code(&host.run("status", &[])), 0);

    // A plugin killed without cleaning up leaves a stale socket.
    host.kill_plugin();
    let stale = host.run("status", &["--output", "json"]);
    assert_eq!(code(&stale), 1);
    let report = json(&stale);
    assert_eq!(report["socket"]["state"], "stale");
    assert_eq!(report["plugin"], Value::Null);
    assert_eq!(report["drift"], false);

    fs::remove_file(host.socket()).unwrap();
    let missing = host.run("status", &["--output", "json"]);
    assert_eq!(code(&missing), 1);
    assert_eq!(json(&missing)["socket"]["state"], "missing");
}

#[test]
fn disabling_kms_keeps_needing_its_plugin_for_reads() {
    let mut host = Host::new(&ucp_config(""));
    host.start_plugin(&[]);
    assert_eq!(code(&host.run("apply", &[])), 0);
    host.set_config(KMS_OFF);
    host.kill_plugin();

    let refused = host.run("apply", &[]);
    assert_eq!(code(&refused), 1, "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("kms provider \"vault\", kept for reads"),
        "{}",
        stderr(&refused)
    );
    assert!(!host.path(PREVIOUS).exists(), "nothing was written");

    host.start_plugin(&[]);
    assert_eq!(code(&host.run("apply", &[])), 0);
    let status = host.run("status", &["--output", "json"]);
    assert_eq!(code(&status), 0, "{}", stdout(&status));
    assert_eq!(json(&status)["socket"], Value::Null);
    // The API server keeps reading through the plugin, so its socket stays mounted.
    let plan = json(&host.run("plan", &["--output", "json"]));
    assert_eq!(plan["mounts"][1]["source"], "/run/kmsplugin", "{plan}");

    host.kill_plugin();
    let status = host.run("status", &["--output", "json"]);
    assert_eq!(code(&status), 1);
    assert!(json(&status)["problems"][0].as_str().unwrap().contains("stale socket"));
}

#[test]
fn status_with_kms_off_and_nothing_installed_is_fine() {
    let host = Host::new(KMS_OFF);

    let output = host.run("status", &["--output", "json"]);

    assert_eq!(code(&output), 0, "{}", stdout(&output));
    let report = json(&output);
    assert_eq!(report["kms_enabled"], false);
    assert_eq!(report["installed_hash"], Value::Null);
    assert_eq!(report["desired_hash"], Value::Null);
    assert_eq!(report["socket"], Value::Null);
    assert_eq!(report["plugin"], Value::Null);

    let nothing = host.run("apply", &[]);
    assert_eq!(code(&nothing), 0, "{}", stderr(&nothing));
    assert!(stdout(&nothing).contains("nothing to install"));
    assert!(!host.path("etc").exists());
}

#[test]
fn status_reports_a_missing_file_as_drift() {
    let mut host = Host::new(&ucp_config(""));
    host.start_plugin(&[]);

    let output = host.run("status", &["--output", "json"]);

    assert_eq!(code(&output), 1);
    let report = json(&output);
    assert_eq!(report["drift"], true);
    assert_eq!(report["installed_hash"], Value::Null);
    assert!(report["problems"][0].as_str().unwrap().contains("nothing is installed"));
}

#[test]
fn prune_needs_the_confirmation_and_keeps_only_the_writer() {
    let mut host = Host::new(&ucp_config(""));
    host.start_plugin(&[]);
    assert_eq!(code(&host.run("apply", &[])), 0);

    let refused = host.run("prune", &[]);
    assert_eq!(code(&refused), 1);
    assert!(
        stderr(&refused).contains("kubectl get secrets -A -o json | kubectl replace -f -"),
        "{}",
        stderr(&refused)
    );
    assert!(!host.path(PREVIOUS).exists());

    let before = fs::read_to_string(host.path(INSTALLED)).unwrap();
    let pruned = host.run("prune", &["--confirm-reencrypted"]);

    assert_eq!(code(&pruned), 0, "{}", stderr(&pruned));
    assert!(stdout(&pruned).contains("-  - identity: {}"), "{}", stdout(&pruned));
    let after = fs::read_to_string(host.path(INSTALLED)).unwrap();
    assert!(!after.contains("identity"), "{after}");
    assert!(after.contains("name: vault"));
    assert_eq!(fs::read_to_string(host.path(PREVIOUS)).unwrap(), before);
    assert_eq!(mode(&host.path(INSTALLED)), 0o600);
    assert_eq!(mode(&host.path(PREVIOUS)), 0o600);

    // The pruned file is what the settings call for now: no drift, nothing more to prune.
    assert_eq!(code(&host.run("status", &[])), 0);
    let again = host.run("prune", &["--confirm-reencrypted"]);
    assert_eq!(code(&again), 0);
    assert!(stdout(&again).contains("nothing to prune"));
}

#[test]
fn prune_refuses_a_file_that_is_not_the_desired_one() {
    let mut host = Host::new(&ucp_config(""));
    host.start_plugin(&[]);
    assert_eq!(code(&host.run("apply", &[])), 0);
    host.set_config(&ucp_config("").replace("\"vault\"", "\"vault-next\""));

    let output = host.run("prune", &["--confirm-reencrypted"]);

    assert_eq!(code(&output), 1);
    assert!(stderr(&output).contains("differs from the desired file"), "{}", stderr(&output));
}

/// Runs `ucp-kms rollback --root <root> <args>`: rollback takes no UCP configuration.
fn rollback(host: &Host, args: &[&str]) -> Output {
    let mut all = vec!["rollback", "--root", host.root.path().to_str().unwrap()];
    all.extend(args);
    ucp_kms(&all)
}

#[test]
fn rollback_without_a_previous_version_fails() {
    let host = Host::new(&ucp_config(""));
    let output = rollback(&host, &[]);
    assert_eq!(code(&output), 1);
    assert!(
        stderr(&output).contains(
            "no previous version to roll back to: \
             /etc/ucp-kms/encryption-config.yaml.previous does not exist"
        ),
        "{}",
        stderr(&output)
    );
}

#[test]
fn rollback_swaps_and_a_second_one_undoes_it() {
    let mut host = Host::new(&ucp_config(""));
    host.start_plugin(&[]);
    assert_eq!(code(&host.run("apply", &[])), 0);
    let enabled = fs::read_to_string(host.path(INSTALLED)).unwrap();
    host.set_config(KMS_OFF);
    assert_eq!(code(&host.run("apply", &[])), 0);
    let disabled = fs::read_to_string(host.path(INSTALLED)).unwrap();
    assert!(disabled.find("- identity").unwrap() < disabled.find("- kms:").unwrap(), "{disabled}");

    let output = rollback(&host, &[]);

    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(stdout(&output).contains("restored /etc/ucp-kms/encryption-config.yaml"));
    assert_eq!(fs::read_to_string(host.path(INSTALLED)).unwrap(), enabled);
    assert_eq!(fs::read_to_string(host.path(PREVIOUS)).unwrap(), disabled);
    assert_eq!(mode(&host.path(INSTALLED)), 0o600);

    let back = rollback(&host, &["--output", "json"]);
    assert_eq!(code(&back), 0);
    assert_eq!(json(&back)["rolled_back"], true);
    assert_eq!(fs::read_to_string(host.path(INSTALLED)).unwrap(), disabled);
}

#[test]
fn rollback_refuses_to_drop_the_provider_writing_now() {
    let mut host = Host::new(&ucp_config(""));
    host.start_plugin(&[]);
    assert_eq!(code(&host.run("apply", &[])), 0);
    host.set_config(&ucp_config("").replace("\"vault\"", "\"vault-next\""));
    assert_eq!(code(&host.run("apply", &[])), 0);
    let next = fs::read_to_string(host.path(INSTALLED)).unwrap();

    let refused = rollback(&host, &[]);
    assert_eq!(code(&refused), 1);
    assert!(
        stderr(&refused).contains("kms \"vault-next\" (v2) for secrets"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(fs::read_to_string(host.path(INSTALLED)).unwrap(), next);

    let forced = rollback(&host, &["--force"]);
    assert_eq!(code(&forced), 0, "{}", stderr(&forced));
    assert!(stderr(&forced).contains("rolling back anyway (--force)"));
    assert_ne!(fs::read_to_string(host.path(INSTALLED)).unwrap(), next);
}

#[test]
fn plan_prints_json_docker_and_kubernetes() {
    let host = Host::new(&ucp_config(""));

    let as_json = host.run("plan", &["--output", "json"]);
    assert_eq!(code(&as_json), 0, "{}", stderr(&as_json));
    let plan = json(&as_json);
    assert_eq!(plan["mounts"][0]["target"], "/etc/ucp-kms");
    assert_eq!(plan["mounts"][0]["read_only"], true);
    assert_eq!(plan["mounts"][1]["kind"], "directory");
    assert_eq!(plan["apiserver_flags"][1], "--encryption-provider-config-automatic-reload=true");
    assert_eq!(json(&host.run("plan", &["--format", "json"])), plan);

    let docker = stdout(&host.run("plan", &["--format", "docker"]));
    assert_eq!(
        docker,
        "--mount type=bind,source=/etc/ucp-kms,target=/etc/ucp-kms,readonly\n\
         --mount type=bind,source=/run/kmsplugin,target=/run/kmsplugin\n"
    );

    let kubernetes = stdout(&host.run("plan", &["--format", "kubernetes"]));
    assert!(
        kubernetes.contains("hostPath:\n    path: /run/kmsplugin\n    type: Directory"),
        "{kubernetes}"
    );

    let old = host.run("plan", &["--format", "json", "--kubernetes-version", "1.14"]);
    assert_eq!(json(&old)["apiserver_flags"].as_array().unwrap().len(), 1);
}

#[test]
fn plan_mount_modes() {
    let host = Host::new(&ucp_config("").replace("/run/kmsplugin/socket.sock", "/tmp/kms.sock"));

    let fallback = host.run("plan", &["--format", "docker"]);
    assert_eq!(code(&fallback), 0);
    assert!(stdout(&fallback).contains("source=/tmp/kms.sock,target=/tmp/kms.sock"));
    assert!(
        stderr(&fallback).contains("give the plugin a directory of its own"),
        "{}",
        stderr(&fallback)
    );

    let refused = host.run("plan", &["--mount-mode", "dir"]);
    assert_eq!(code(&refused), 1);
    assert!(stderr(&refused).starts_with("error: --mount-mode dir would mount \"/tmp\""));

    let off = Host::new(KMS_OFF);
    let empty = off.run("plan", &["--output", "json"]);
    assert_eq!(code(&empty), 0);
    assert_eq!(
        json(&empty),
        serde_json::json!({"mounts": [], "apiserver_flags": [], "warnings": []})
    );
}

#[test]
fn invalid_settings_are_a_no() {
    let host =
        Host::new("[cluster_config]\n  kms_enabled = true\n  kms_endpoint = \"run/kms.sock\"\n");
    for command in ["plan", "apply", "status"] {
        let output = host.run(command, &[]);
        assert_eq!(code(&output), 1, "{command}");
        assert!(stderr(&output).contains("ucp-config.toml:"), "{command}: {}", stderr(&output));
        let output = host.run(command, &["--output", "json"]);
        assert_eq!(code(&output), 1, "{command}");
        let report = json(&output);
        assert_eq!(report["valid"], false);
        assert_eq!(report["errors"][1]["field"], "cluster_config.kms_endpoint", "{report}");
    }
}

fn snapshot(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots");
    settings.bind(|| insta::assert_snapshot!(name, text));
}

#[test]
fn help() {
    for command in ["plan", "apply", "status", "prune", "rollback"] {
        let output = Command::new(env!("CARGO_BIN_EXE_ucp-kms"))
            .args([command, "--help"])
            .env("COLUMNS", "100")
            .output()
            .unwrap();
        assert_eq!(code(&output), 0, "{command}");
        snapshot(&format!("{command}_help"), &stdout(&output));
    }
}

#[test]
fn apply_dry_run_text() {
    let host = Host::new(&ucp_config("  kms_timeout = \"5s\""));

    let output = host.run("apply", &["--dry-run", "--force", "--kubernetes-version", "1.28"]);

    assert_eq!(code(&output), 0, "{}", stderr(&output));
    snapshot("apply_dry_run_1_28", &stdout(&output));
}

#[test]
fn diffs_never_show_local_keys() {
    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let mut host = Host::new(&ucp_config(""));
    host.start_plugin(&[]);
    fs::create_dir_all(host.path("etc/ucp-kms")).unwrap();
    // Flow style, which the rendered file does not keep, puts the key lines into the diff.
    let aescbc = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
         - resources:\n  - secrets\n  providers:\n  - aescbc:\n      \
         keys: [{{name: key1, secret: \"{KEY}\"}}]\n  - identity: {{}}\n"
    );
    fs::write(host.path(INSTALLED), aescbc).unwrap();

    let status = host.run("status", &[]);
    let dry_run = host.run("apply", &["--dry-run", "--output", "json"]);
    let applied = host.run("apply", &[]);
    assert_eq!(code(&applied), 0, "{}", stderr(&applied));
    let rolled_back = rollback(&host, &["--force"]);

    for output in [&status, &dry_run, &applied, &rolled_back] {
        assert!(!stdout(output).contains(KEY), "{}", stdout(output));
        assert!(!stderr(output).contains(KEY), "{}", stderr(output));
    }
    assert_eq!(code(&status), 1);
    assert!(
        stdout(&status).contains("-      keys: [{name: key1, secret: REDACTED}]"),
        "{}",
        stdout(&status)
    );
    assert!(stdout(&status).contains("+        secret: REDACTED\n"), "{}", stdout(&status));
    assert!(json(&dry_run)["diff"].as_str().unwrap().contains("secret: REDACTED"));
    // The key itself stays where it belongs: in the installed file, for reads.
    assert!(fs::read_to_string(host.path(INSTALLED)).unwrap().contains(KEY));
}

#[test]
fn unusable_paths_are_errors_of_usage() {
    let host = Host::new(&ucp_config(""));
    let missing_root = host.path("no-such-root");

    let output = ucp_kms(&[
        "apply",
        "--config",
        host.config.to_str().unwrap(),
        "--root",
        missing_root.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("--root must be an existing directory"),
        "{}",
        stderr(&output)
    );
    assert!(!missing_root.exists());

    let relative = host.run("status", &["--encryption-config", "etc/enc.yaml"]);
    assert_eq!(code(&relative), 2);
    assert!(
        stderr(&relative)
            .contains("the EncryptionConfiguration path must be absolute, got \"etc/enc.yaml\""),
        "{}",
        stderr(&relative)
    );
}

/// The installed file without the lines of the kms provider named `name`.
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
fn a_hand_deleted_provider_kept_for_reads_is_drift_and_apply_restores_it() {
    let mut host = Host::new(&ucp_config(""));
    host.start_plugin(&[]);
    assert_eq!(code(&host.run("apply", &[])), 0);
    // A rename: "vault2" writes, "vault" is kept for what it wrote.
    host.set_config(&ucp_config("").replace("\"vault\"", "\"vault2\""));
    assert_eq!(code(&host.run("apply", &[])), 0);
    let applied = fs::read_to_string(host.path(INSTALLED)).unwrap();
    let kept_for_reads = fs::read_to_string(host.path(PREVIOUS)).unwrap();
    assert!(applied.contains("name: vault2\n") && applied.contains("name: vault\n"), "{applied}");
    assert_eq!(code(&host.run("status", &[])), 0);

    let edited = without_provider(&applied, "vault");
    assert!(!edited.contains("name: vault\n") && edited.contains("name: vault2\n"), "{edited}");
    fs::write(host.path(INSTALLED), &edited).unwrap();

    let status = host.run("status", &["--output", "json"]);
    assert_eq!(code(&status), 1, "{}", stdout(&status));
    let report = json(&status);
    assert_eq!(report["drift"], true, "{report}");
    let diff = report["diff"].as_str().unwrap();
    assert!(diff.contains("+      name: vault\n"), "{diff}");
    assert!(!diff.lines().any(|line| line.starts_with('-') && !line.starts_with("---")), "{diff}");
    let text = host.run("status", &[]);
    assert_eq!(code(&text), 1);
    assert!(stdout(&text).contains("differs from the desired file (drift)"), "{}", stdout(&text));

    let applied_again = host.run("apply", &[]);
    assert_eq!(code(&applied_again), 0, "{}", stderr(&applied_again));
    assert!(
        stdout(&applied_again).contains("the hand edit is not kept"),
        "{}",
        stdout(&applied_again)
    );
    assert_eq!(fs::read_to_string(host.path(INSTALLED)).unwrap(), applied);
    assert_eq!(
        fs::read_to_string(host.path(PREVIOUS)).unwrap(),
        kept_for_reads,
        "the hand edit never becomes the version kept for rollback"
    );
    assert_eq!(code(&host.run("status", &[])), 0);
}

#[test]
fn the_record_of_the_installed_file_is_private() {
    let mut host = Host::new(&ucp_config(""));
    host.start_plugin(&[]);
    assert_eq!(code(&host.run("apply", &[])), 0);
    let record = host.path("etc/ucp-kms/.encryption-config.yaml.ucp-kms");
    assert_eq!(fs::read(&record).unwrap(), fs::read(host.path(INSTALLED)).unwrap());
    assert_eq!(mode(&record), 0o600);
}
