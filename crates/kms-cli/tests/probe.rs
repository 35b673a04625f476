//! `ucp-kms probe` and `ucp-kms dev-plugin` end to end: the real binary, real sockets in
//! temporary directories, exit statuses, JSON and signals.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// How long a freshly started binary may take to listen; generous for a loaded CI machine.
const START_LIMIT: Duration = Duration::from_secs(30);

fn ucp_kms() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ucp-kms"));
    command.env_remove("UCP_KMS_LOG").env_remove("RUST_LOG").env("NO_COLOR", "1");
    // Help text wraps at the terminal width; a fixed one keeps the snapshots stable.
    command.env("COLUMNS", "100");
    command
}

fn run(args: &[&str]) -> Output {
    ucp_kms().args(args).output().expect("ucp-kms runs")
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

fn code(output: &Output) -> Option<i32> {
    output.status.code()
}

fn snapshot(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots");
    settings.bind(|| insta::assert_snapshot!(name, text));
}

/// A `ucp-kms dev-plugin` process, killed when dropped if still running.
struct DevPlugin {
    child: Option<Child>,
}

impl DevPlugin {
    /// Starts the plugin on `endpoint` and waits until it accepts connections.
    fn start(endpoint: &str, extra: &[&str]) -> Self {
        Self::start_with(ucp_kms(), endpoint, extra)
    }

    fn start_with(mut command: Command, endpoint: &str, extra: &[&str]) -> Self {
        let mut child = command
            .args(["dev-plugin", "--socket", endpoint])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dev-plugin starts");
        let started = Instant::now();
        while !listening(endpoint) {
            if let Some(status) = child.try_wait().unwrap() {
                let output = child.wait_with_output().unwrap();
                panic!("dev-plugin exited with {status}: {}", stderr(&output));
            }
            assert!(started.elapsed() < START_LIMIT, "dev-plugin did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child: Some(child) }
    }

    /// Sends SIGTERM and returns the exit status and everything the plugin wrote to stderr.
    fn terminate(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(kill.success(), "kill -TERM {pid}");
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(started.elapsed() < START_LIMIT, "dev-plugin ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().unwrap();
        (output.status, stderr(&output))
    }
}

impl Drop for DevPlugin {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn listening(endpoint: &str) -> bool {
    match endpoint.strip_prefix('@') {
        Some(name) => abstract_listening(name),
        None => UnixStream::connect(endpoint).is_ok(),
    }
}

fn abstract_listening(name: &str) -> bool {
    use std::os::linux::net::SocketAddrExt;
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    UnixStream::connect_addr(&address).is_ok()
}

fn socket_in(dir: &TempDir) -> PathBuf {
    dir.path().join("kms/p.sock")
}

fn probe(endpoint: &str, extra: &[&str]) -> Output {
    let mut args = vec!["probe", "--endpoint", endpoint];
    args.extend_from_slice(extra);
    run(&args)
}

fn methods(report: &Value) -> Vec<(String, bool)> {
    let calls = report["calls"].as_array().unwrap();
    calls.iter().map(|c| (c["method"].as_str().unwrap().to_owned(), c["ok"] == true)).collect()
}

#[test]
fn healthy_plugin_round_trips_with_exit_0_and_json() {
    let dir = TempDir::new().unwrap();
    let socket = socket_in(&dir);
    let path = socket.to_str().unwrap();
    let plugin = DevPlugin::start(path, &[]);

    let output = probe(path, &["--roundtrip", "--output", "json"]);

    assert_eq!(code(&output), Some(0), "{}", stderr(&output));
    let report = json(&output);
    assert_eq!(report["endpoint"], path);
    assert_eq!(report["api_version"], "v2");
    assert_eq!(report["healthy"], true);
    assert_eq!(report["version"], "v2");
    assert!(report["key_id"].as_str().unwrap().starts_with("dev-"), "{report}");
    assert_eq!(report["problems"], serde_json::json!([]));
    let expected = [("Status", true), ("Encrypt", true), ("Decrypt", true)];
    assert_eq!(methods(&report), expected.map(|(m, ok)| (m.to_owned(), ok)));
    for call in report["calls"].as_array().unwrap() {
        assert!(call["latency_ms"].as_f64().unwrap() >= 0.0);
        assert_eq!(call["error"], Value::Null);
    }
    drop(plugin);
}

#[test]
fn text_output_lists_each_call() {
    let dir = TempDir::new().unwrap();
    let socket = socket_in(&dir);
    let path = socket.to_str().unwrap();
    let _plugin = DevPlugin::start(path, &[]);

    let output = probe(&format!("unix://{path}"), &["--roundtrip"]);

    assert_eq!(code(&output), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with(&format!("KMS v2 plugin at {path}: healthy\n")), "{text}");
    for method in ["Status", "Encrypt", "Decrypt"] {
        assert!(text.lines().any(|l| l.trim_start().starts_with(method) && l.ends_with(" ms")));
    }
    assert!(!text.contains("problem:"), "{text}");
}

#[test]
fn v1_plugin_on_an_abstract_socket() {
    let name = format!("@ucp-kms-cli-test-{}", std::process::id());
    let _plugin = DevPlugin::start(&name, &["--api-version", "v1"]);

    let output =
        probe(&format!("unix:///{name}"), &["--api-version", "v1", "--roundtrip", "-o", "json"]);

    assert_eq!(code(&output), Some(0), "{}", stdout(&output));
    let report = json(&output);
    assert_eq!(report["endpoint"], name);
    assert_eq!(report["version"], "v1beta1");
    assert_eq!(report["key_id"], Value::Null);
}

#[test]
fn no_listener_is_unhealthy_with_exit_1() {
    let dir = TempDir::new().unwrap();
    let path = socket_in(&dir);

    let output = probe(path.to_str().unwrap(), &["--output", "json"]);

    assert_eq!(code(&output), Some(1));
    let report = json(&output);
    assert_eq!(report["healthy"], false);
    let problem = report["problems"][0].as_str().unwrap();
    assert!(problem.starts_with("no listener on"), "{problem}");
    assert!(problem.contains("does not exist"), "{problem}");
    assert_eq!(report["calls"][0]["error"], problem);
}

#[test]
fn no_listener_text_gives_the_remedy() {
    let dir = TempDir::new().unwrap();
    let path = socket_in(&dir);

    let output = probe(path.to_str().unwrap(), &[]);

    assert_eq!(code(&output), Some(1));
    let text = stdout(&output);
    assert!(text.contains(": unhealthy\n"), "{text}");
    assert!(text.contains("problem: no listener on"), "{text}");
    assert!(text.contains("  remedy: start the KMS plugin"), "{text}");
}

#[test]
fn unhealthy_plugin_is_quoted_with_exit_1() {
    let dir = TempDir::new().unwrap();
    let socket = socket_in(&dir);
    let path = socket.to_str().unwrap();
    let _plugin = DevPlugin::start(path, &["--unhealthy"]);

    let output = probe(path, &["-o", "json"]);

    assert_eq!(code(&output), Some(1));
    assert_eq!(
        json(&output)["problems"],
        serde_json::json!([r#"plugin reports healthz "kms unavailable", expected "ok""#])
    );
}

#[test]
fn slow_plugin_times_out() {
    let dir = TempDir::new().unwrap();
    let socket = socket_in(&dir);
    let path = socket.to_str().unwrap();
    let _plugin = DevPlugin::start(path, &["--delay", "10s"]);

    let output = probe(path, &["--timeout", "200ms", "-o", "json"]);

    assert_eq!(code(&output), Some(1));
    assert_eq!(
        json(&output)["problems"],
        serde_json::json!(["no answer to Status within 200ms (timeout)"])
    );
}

#[test]
fn mismatching_encrypt_key_id_and_wrong_version_are_reported() {
    let dir = TempDir::new().unwrap();
    let socket = socket_in(&dir);
    let path = socket.to_str().unwrap();
    let switches = ["--key-id", "kek-1", "--encrypt-key-id", "kek-2", "--report-version", "v9"];
    let _plugin = DevPlugin::start(path, &switches);

    let output = probe(path, &["--roundtrip", "-o", "json"]);

    assert_eq!(code(&output), Some(1));
    assert_eq!(
        json(&output)["problems"],
        serde_json::json!([
            r#"plugin reports API version "v9", expected "v2" or "v2beta1""#,
            r#"Encrypt answered key_id "kek-2", expected "kek-1" as Status reports"#,
        ])
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["probe", "--endpoint", "run/kms.sock"][..],
        &["probe", "--endpoint", "https://kms.example.com"],
        &["probe", "--endpoint", "/run/kms.sock", "--timeout", "3"],
        &["probe", "--endpoint", "/run/kms.sock", "--timeout", "0s"],
        &["probe", "--endpoint", "/run/kms.sock", "--api-version", "v3"],
        &["probe"],
        &["dev-plugin", "--socket", "relative.sock"],
    ] {
        let output = run(args);
        assert_eq!(code(&output), Some(2), "{args:?}: {}", stderr(&output));
        assert!(stdout(&output).is_empty(), "{args:?}");
    }
}

#[test]
fn dev_plugin_refuses_a_live_socket_with_exit_2() {
    let dir = TempDir::new().unwrap();
    let socket = socket_in(&dir);
    let path = socket.to_str().unwrap();
    let _first = DevPlugin::start(path, &[]);

    let second = run(&["dev-plugin", "--socket", path]);

    assert_eq!(code(&second), Some(2));
    let message = stderr(&second);
    assert!(message.contains(&format!("error: socket \"{path}\" is in use")), "{message}");
    assert_eq!(code(&probe(path, &[])), Some(0), "the first plugin still serves");
}

#[test]
fn dev_plugin_replaces_a_stale_socket() {
    let dir = TempDir::new().unwrap();
    let socket = socket_in(&dir);
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let path = socket.to_str().unwrap();
    assert_eq!(code(&probe(path, &[])), Some(1), "stale before the plugin starts");

    let _plugin = DevPlugin::start(path, &[]);

    assert_eq!(code(&probe(path, &[])), Some(0));
}

#[test]
fn dev_plugin_removes_its_socket_on_sigterm() {
    let dir = TempDir::new().unwrap();
    let socket = socket_in(&dir);
    let path = socket.to_str().unwrap();
    let plugin = DevPlugin::start(path, &[]);
    assert!(socket.exists());

    let (status, messages) = plugin.terminate();

    assert!(status.success(), "{status}: {messages}");
    assert!(!socket.exists(), "socket removed");
    assert!(messages.contains("for tests and demos only"), "{messages}");
    let output = probe(path, &["-o", "json"]);
    assert_eq!(code(&output), Some(1));
    assert!(json(&output)["problems"][0].as_str().unwrap().starts_with("no listener"));
}

#[test]
fn key_file_gives_a_stable_key_id_and_is_never_logged() {
    let dir = TempDir::new().unwrap();
    let key_file = dir.path().join("dev.key");
    let key_base64 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    std::fs::write(&key_file, key_base64).unwrap();
    let socket = socket_in(&dir);
    let path = socket.to_str().unwrap();
    let key_args = ["--key-file", key_file.to_str().unwrap()];

    let mut key_ids = Vec::new();
    for _ in 0..2 {
        let mut command = ucp_kms();
        command.env("UCP_KMS_LOG", "info");
        let plugin = DevPlugin::start_with(command, path, &key_args);
        key_ids.push(json(&probe(path, &["-o", "json"]))["key_id"].clone());
        let (status, messages) = plugin.terminate();
        assert!(status.success(), "{messages}");
        assert!(messages.contains("kms.key_id="), "{messages}");
        assert!(messages.contains("kms.api_version=v2"), "{messages}");
        assert!(messages.contains(&format!("kms.socket={path}")), "{messages}");
        assert!(!messages.contains(key_base64) && !messages.contains("0123456789abcdef"));
    }
    assert_eq!(key_ids[0], key_ids[1]);
}

#[test]
fn help_marks_the_misbehaviour_switches_as_testing_only() {
    let help = stdout(&run(&["dev-plugin", "--help"]));
    snapshot("dev_plugin_help", &help);
    for switch in ["--unhealthy", "--delay", "--encrypt-key-id", "--report-version"] {
        let line = help.lines().find(|l| l.trim_start().starts_with(switch)).unwrap();
        let at = help.find(line).unwrap();
        assert!(help[at..].contains("TESTING ONLY"), "{switch}");
    }
    snapshot("probe_help", &stdout(&run(&["probe", "--help"])));
}
