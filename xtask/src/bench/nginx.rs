//! nginx serving a static file on loopback: the floor that an HTTP answer of the same bytes is
//! measured against.

use std::path::Path;
use std::process::Command;

use anyhow::Context;

use super::process::{self, Service};

/// Starts nginx on `addr` serving the files of `www`, with its configuration, pid file, logs and
/// temporary directories under `dir`.
///
/// # Errors
///
/// When the configuration cannot be written or nginx does not come up.
pub(crate) fn start(dir: &Path, www: &Path, addr: std::net::SocketAddr) -> anyhow::Result<Service> {
    let user = if process::is_root() { Some(process::user_name()?) } else { None };
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config(dir, www, &addr.to_string(), user.as_deref()))
        .with_context(|| format!("cannot write {}", conf.display()))?;

    let mut command = Command::new("nginx");
    command.arg("-p").arg(dir).arg("-c").arg(&conf).arg("-e").arg(dir.join("error.log"));
    let mut nginx = Service::start("nginx", &mut command, &dir.join("nginx.out"))?;
    nginx.wait_for_port(addr)?;
    Ok(nginx)
}

/// A minimal nginx.conf: one worker per core, the static file with sendfile, no access log.
///
/// `keepalive_requests` is raised so that nginx, like the server, keeps each of wrk's
/// connections for the whole run: nginx is the floor, so it gets its best setting, not a
/// handicap. `user` is set only when running as root, where nginx would otherwise switch its
/// workers to `nobody`.
pub(crate) fn config(dir: &Path, www: &Path, listen: &str, user: Option<&str>) -> String {
    let dir = dir.display();
    let user = user.map(|user| format!("user {user};\n")).unwrap_or_default();
    format!(
        "\
{user}daemon off;
master_process on;
worker_processes auto;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/yaml;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    server {{
        listen {listen};
        root {www};
    }}
}}
",
        www = www.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_listens_on_loopback_and_stays_in_its_directory() {
        let conf = config(Path::new("/tmp/b"), Path::new("/tmp/b/www"), "127.0.0.1:4000", None);
        assert!(conf.contains("listen 127.0.0.1:4000;"), "{conf}");
        assert!(conf.contains("root /tmp/b/www;"), "{conf}");
        assert!(conf.contains("daemon off;"), "{conf}");
        assert!(!conf.contains("user "), "{conf}");
        for line in conf.lines().filter(|line| line.contains("_path") || line.contains("pid ")) {
            assert!(line.contains("/tmp/b/"), "{line} leaves the run's directory");
        }
        assert!(
            config(Path::new("/b"), Path::new("/w"), "x", Some("root")).starts_with("user root;")
        );
    }
}
