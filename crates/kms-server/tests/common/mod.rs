//! Helpers shared by the server's integration tests: fixtures, an in-process app, and the
//! binary started on a loopback port.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use clap::Parser;
use tower::ServiceExt;

/// The first token of every test token file.
pub const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
/// A second token, to see which name the history records.
pub const CI_TOKEN: &str = "ci-token-fedcba9876543210";

/// A fixture's text.
pub fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// A sandbox: data directory, host root and token file.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        let tokens = format!("# test tokens\nadmin:{ADMIN_TOKEN}\n\nci:{CI_TOKEN}\n");
        std::fs::write(dir.path().join("tokens"), tokens).unwrap();
        Self { dir }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn token_file(&self) -> PathBuf {
        self.dir.path().join("tokens")
    }

    /// Where the server installs the EncryptionConfiguration under the root.
    pub fn installed(&self) -> PathBuf {
        self.root().join("etc/ucp-kms/encryption-config.yaml")
    }

    /// The common arguments: data, root, token file.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--data-dir".into(),
            self.data().display().to_string(),
            "--root".into(),
            self.root().display().to_string(),
            "--token-file".into(),
            self.token_file().display().to_string(),
        ]
    }
}

/// The app in process, its reconciler running on the test's runtime.
pub fn app(sandbox: &Sandbox, extra: &[&str]) -> Router {
    let mut args = vec!["ucp-kms-server".to_owned()];
    args.extend(sandbox.args());
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let cli = kms_server::Cli::parse_from(args);
    let app = kms_server::App::new(&cli).unwrap();
    let router = app.router();
    tokio::spawn(app.reconciler.run(std::future::pending()));
    router
}

/// One answer, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.text()))
    }

    pub fn etag(&self) -> String {
        self.headers.get("etag").expect("an ETag").to_str().unwrap().to_owned()
    }
}

/// Sends one request through the router, without a socket.
pub async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router.clone().oneshot(request.body(body.into()).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec();
    Answer { status, headers, body }
}

/// The server binary, running; killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the binary with `args` plus `--listen 127.0.0.1:0 --log-format json` and waits
    /// for the address it logs.
    pub fn start(args: &[String]) -> Self {
        Self::try_start(args).unwrap_or_else(|log| panic!("server did not start:\n{log}"))
    }

    /// As [`Server::start`], or the log when the process exits before listening.
    pub fn try_start(args: &[String]) -> Result<Self, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ucp-kms-server"))
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .env_remove("RUST_LOG")
            .env_remove("UCP_KMS_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (found, addr) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
                    && value["message"] == "listening"
                {
                    let _ = found.send(value["http.addr"].as_str().unwrap().to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        match addr.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => Ok(Self { child, addr, log }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                // Let the reader thread collect what remains.
                std::thread::sleep(Duration::from_millis(100));
                Err(log.lock().unwrap().join("\n"))
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle`, at most `timeout`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(line) = self.log().into_iter().find(|line| line.contains(needle)) {
                return Some(line);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(self) -> std::process::ExitStatus {
        self.signal(rustix::process::Signal::TERM)
    }

    /// Sends `signal` and waits for the exit status.
    pub fn signal(mut self, signal: rustix::process::Signal) -> std::process::ExitStatus {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::forget(self);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs curl with `args` and returns (HTTP status, body). `-w` appends the status.
pub fn curl(args: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "30", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}
