//! Processes of a benchmark run: installing the load tools, starting services on loopback and
//! stopping them again, whatever happens in between.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The Debian packages of the external tools, by command name.
const TOOLS: [(&str, &str); 2] = [("nginx", "nginx"), ("wrk", "wrk")];

/// Installs nginx and wrk with apt-get when `command -v` does not find them.
///
/// # Errors
///
/// When apt-get fails or a tool is still missing afterwards.
pub(crate) fn ensure_tools() -> anyhow::Result<()> {
    let missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(command, _)| !on_path(command))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("installing {}", missing.join(", "));
    // Not root: sudo asks for what apt-get needs.
    let apt = |args: &[&str]| {
        let mut command = if is_root() { Command::new("apt-get") } else { sudo_apt_get() };
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        crate::run(&mut command)
    };
    apt(&["update"])?;
    apt(&[&["install", "-y"][..], &missing].concat())?;
    if let Some((command, _)) = TOOLS.iter().find(|(command, _)| !on_path(command)) {
        bail!("{command} is still missing after apt-get install");
    }
    Ok(())
}

fn sudo_apt_get() -> Command {
    let mut command = Command::new("sudo");
    command.arg("apt-get");
    command
}

fn on_path(command: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Whether the benchmark runs as root.
pub(crate) fn is_root() -> bool {
    crate::read(Command::new("id").arg("-u")).is_ok_and(|uid| uid == "0")
}

/// The name of the user running the benchmark, for nginx's `user` directive.
pub(crate) fn user_name() -> anyhow::Result<String> {
    crate::read(Command::new("id").arg("-un"))
}

/// A loopback address with a port nothing listens on right now.
///
/// # Errors
///
/// When no port can be bound.
pub(crate) fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(listener.local_addr()?)
}

/// A process started for the run, stopped with SIGTERM (then SIGKILL) when dropped.
pub(crate) struct Service {
    name: &'static str,
    child: Child,
}

impl Service {
    /// Starts `command` with stdout and stderr going to `log`.
    ///
    /// # Errors
    ///
    /// When the log cannot be created or the program cannot be started.
    pub(crate) fn start(
        name: &'static str,
        command: &mut Command,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {name}: {}", crate::display(command)))?;
        Ok(Self { name, child })
    }

    /// The process ID.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the process has already exited.
    ///
    /// # Errors
    ///
    /// When it has exited, with its status.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited with {status}; see its log under target/bench", self.name);
        }
        Ok(())
    }

    /// Waits until `ready` holds, failing if the process exits or `timeout` passes first.
    ///
    /// # Errors
    ///
    /// When the process exits or the time runs out.
    pub(crate) fn wait_until(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while !ready() {
            self.check_running()?;
            if Instant::now() > deadline {
                bail!("{} was not ready after {timeout:?}", self.name);
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Waits until something accepts connections on `addr`.
    ///
    /// # Errors
    ///
    /// As [`Service::wait_until`].
    pub(crate) fn wait_for_port(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        self.wait_until(Duration::from_secs(20), || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        })
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // SIGTERM lets nginx's master stop its workers and the server shut down cleanly.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
