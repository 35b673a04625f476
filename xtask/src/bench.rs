//! `cargo xtask bench`: the release binaries measured side by side with the floor of what they
//! do (cat, nginx, a bare fsync), printed as a table and written to `target/bench/report.json`.
//!
//! Every figure is a ratio to a reference run in the same invocation, or an absolute limit that
//! the operator cares about (repair time, memory), so that a slow machine does not pass or fail
//! on its own. Runs of the measured program and its reference are interleaved where they are
//! short, so that noise from the rest of the machine falls on both.

mod http;
mod nginx;
mod process;
mod report;
mod stats;
mod wrk;

use std::fs;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use self::http::Client;
use self::process::Service;
use self::report::{Bound, Figure};
use self::stats::{median, ms, percentile};

/// Arguments of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// A shorter run for a first look: 5 s of HTTP load instead of 20 s, 200 PUTs instead of
    /// 1000, 50 drift repairs instead of 200. Published figures come from the full run.
    #[arg(long)]
    quick: bool,
}

/// How much of each measurement a run does.
#[derive(Clone, Copy, Debug)]
struct Plan {
    cli_runs: usize,
    load: Duration,
    puts: usize,
    edits: usize,
}

impl Plan {
    const FULL: Self = Self { cli_runs: 30, load: Duration::from_secs(20), puts: 1000, edits: 200 };
    const QUICK: Self = Self { cli_runs: 30, load: Duration::from_secs(5), puts: 200, edits: 50 };
}

/// Runs that warm the page cache and the dynamic loader before anything is recorded.
const WARM_UP_RUNS: usize = 3;
/// Where the server installs the EncryptionConfiguration under its `--root`.
const INSTALLED: &str = "etc/ucp-kms/encryption-config.yaml";
/// Where the example configuration points its plugin, under the server's `--root`.
const PLUGIN_SOCKET: &str = "run/kmsplugin/socket.sock";
const CONFIG_PATH: &str = "/api/ucp/config-toml";
const ENCRYPTION_CONFIG_PATH: &str = "/api/kms/encryption-config";
/// The same bytes as a static file of nginx.
const NGINX_PATH: &str = "/encryption-config.yaml";

/// Runs every measurement, prints the table and writes the report.
///
/// # Errors
///
/// When a tool cannot be installed, a binary cannot be built or started, a request fails, or a
/// target is missed (after the report is written).
pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let plan = if args.quick { Plan::QUICK } else { Plan::FULL };
    process::ensure_tools()?;
    crate::run(&mut crate::cargo(["build", "--release", "-p", "kms-cli", "-p", "kms-server"]))?;

    let target = target_dir();
    let bins = Binaries {
        cli: target.join("release/ucp-kms"),
        server: target.join("release/ucp-kms-server"),
    };
    let out = target.join("bench");
    let work = out.join("run");
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("cannot clear {}", work.display()))?;
    }
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let example = crate::project_root().join("examples/ucp-config.toml");

    let mut figures = vec![cli_render_vs_cat(&bins, &example, &work, plan)?];
    figures.extend(server_figures(&bins, &example, &work, plan)?);

    let machine = report::machine(
        &fs::read_to_string("/proc/cpuinfo").unwrap_or_default(),
        &fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default(),
    );
    let date = crate::read(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]))?;
    let mode = if args.quick { " (--quick)" } else { "" };
    println!("\ncargo xtask bench{mode}: {date}, {machine}\n");
    println!("{}", report::table(&figures));

    let json = report::to_json(&figures, &machine, &date);
    let path = out.join("report.json");
    fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("report: {}", path.display());

    let missed: Vec<&str> = figures.iter().filter(|f| !f.met()).map(|f| f.name).collect();
    if !missed.is_empty() {
        bail!("targets missed: {}", missed.join(", "));
    }
    Ok(())
}

/// The release binaries under test.
struct Binaries {
    cli: PathBuf,
    server: PathBuf,
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| crate::project_root().join("target"), PathBuf::from)
}

/// `ucp-kms render` of the example as a whole process, against `cat` of the YAML it prints.
fn cli_render_vs_cat(
    bins: &Binaries,
    example: &Path,
    work: &Path,
    plan: Plan,
) -> anyhow::Result<Figure> {
    eprintln!("cli_render_vs_cat: {} runs each, interleaved", plan.cli_runs);
    let mut render = Command::new(&bins.cli);
    render.arg("render").arg("--config").arg(example);
    let rendered = render.output().context("cannot run ucp-kms render")?;
    ensure!(rendered.status.success(), "ucp-kms render failed: {}", stderr(&rendered.stderr));
    let yaml = work.join("render.yaml");
    fs::write(&yaml, &rendered.stdout)?;

    let cat_path = crate::read(Command::new("sh").args(["-c", "command -v cat"]))?;
    let mut cat = Command::new(cat_path);
    cat.arg(&yaml);

    let (mut render_times, mut cat_times) = (Vec::new(), Vec::new());
    for run in 0..WARM_UP_RUNS + plan.cli_runs {
        let render_time = time_process(&mut render)?;
        let cat_time = time_process(&mut cat)?;
        if run >= WARM_UP_RUNS {
            render_times.push(render_time);
            cat_times.push(cat_time);
        }
    }

    let (render_p50, cat_p50) = (median(&render_times).unwrap(), median(&cat_times).unwrap());
    Ok(Figure {
        name: "cli_render_vs_cat",
        value: render_p50.as_secs_f64() / cat_p50.as_secs_f64(),
        unit: "ratio",
        reference: format!(
            "median of {} runs: ucp-kms render {:.2} ms, cat of its {}-byte output {:.2} ms",
            plan.cli_runs,
            ms(render_p50),
            rendered.stdout.len(),
            ms(cat_p50)
        ),
        bound: Bound::AtMost,
        limit: 2.0,
        extra: None,
    })
}

/// Spawns `command` with its output discarded and times it until it has been reaped.
fn time_process(command: &mut Command) -> anyhow::Result<Duration> {
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let started = Instant::now();
    let status =
        command.status().with_context(|| format!("cannot run {}", crate::display(command)))?;
    let elapsed = started.elapsed();
    ensure!(status.success(), "{} failed with {status}", crate::display(command));
    Ok(elapsed)
}

/// The server with a development plugin: GET under load against nginx, sequential PUTs against
/// a bare fsync, drift repairs, and its memory afterwards.
fn server_figures(
    bins: &Binaries,
    example: &Path,
    work: &Path,
    plan: Plan,
) -> anyhow::Result<Vec<Figure>> {
    let root = work.join("root");
    let data = work.join("data");
    let socket = root.join(PLUGIN_SOCKET);
    // connect(2) takes at most 107 bytes of path; a deep checkout needs a shorter target dir.
    ensure!(
        socket.as_os_str().len() <= 107,
        "the plugin socket path \"{}\" is longer than the 107 bytes a UNIX socket takes; set \
         CARGO_TARGET_DIR to a shorter directory",
        socket.display()
    );
    let mut plugin_command = Command::new(&bins.cli);
    plugin_command.arg("dev-plugin").arg("--socket").arg(&socket);
    let mut plugin = Service::start("dev-plugin", &mut plugin_command, &work.join("plugin.log"))?;
    plugin.wait_until(Duration::from_secs(20), || socket.exists())?;

    let token = random_token()?;
    let token_file = work.join("tokens");
    private_file(&token_file, format!("bench:{token}\n").as_bytes())?;
    let addr = process::free_port()?;
    let mut server_command = Command::new(&bins.server);
    server_command
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(&data)
        .arg("--token-file")
        .arg(&token_file)
        .arg("--root")
        .arg(&root);
    let mut server =
        Service::start("ucp-kms-server", &mut server_command, &work.join("server.log"))?;
    server.wait_for_port(addr)?;

    let config = fs::read(example).with_context(|| format!("cannot read {}", example.display()))?;
    let mut client = Client::connect(addr, &token)?;
    put(&mut client, &config)?;
    let installed = root.join(INSTALLED);
    server.wait_until(Duration::from_secs(20), || installed.exists())?;
    let served = client.request("GET", ENCRYPTION_CONFIG_PATH, b"")?;
    ensure!(served.status == 200, "GET {ENCRYPTION_CONFIG_PATH} answered {}", served.status);
    ensure!(served.body == fs::read(&installed)?, "the served file is not the installed one");

    let mut rss = Vec::new();
    let get = server_get_vs_nginx(&token, addr, &served.body, work, plan)?;
    rss.push(rss_mib(server.pid())?);
    let put = put_vs_fsync_floor(&mut client, &config, &data.join("revisions"), plan)?;
    rss.push(rss_mib(server.pid())?);
    let drift = drift_repair(&installed, plan)?;
    rss.push(rss_mib(server.pid())?);
    server.check_running()?;
    plugin.check_running()?;

    let peak = rss.iter().copied().fold(0.0, f64::max);
    let memory = Figure {
        name: "server_rss_mib",
        value: peak,
        unit: "MiB",
        reference: format!(
            "VmRSS of ucp-kms-server after the GET load, the PUTs and the repairs: {}",
            rss.iter().map(|mib| format!("{mib:.1}")).collect::<Vec<_>>().join(", ")
        ),
        bound: Bound::AtMost,
        limit: 30.0,
        extra: None,
    };
    Ok(vec![get, put, drift, memory])
}

/// `GET /api/kms/encryption-config` under wrk, against nginx serving the same bytes.
fn server_get_vs_nginx(
    token: &str,
    server: SocketAddr,
    yaml: &[u8],
    work: &Path,
    plan: Plan,
) -> anyhow::Result<Figure> {
    eprintln!("server_get_vs_nginx: wrk, 2 threads, 50 connections, {:?} each", plan.load);
    let server_run = load(server, ENCRYPTION_CONFIG_PATH, token, plan.load)?;

    let dir = work.join("nginx");
    let www = dir.join("www");
    fs::create_dir_all(&www)?;
    fs::write(www.join(NGINX_PATH.trim_start_matches('/')), yaml)?;
    let nginx_addr = process::free_port()?;
    let nginx = nginx::start(&dir, &www, nginx_addr)?;
    let static_file = Client::connect(nginx_addr, token)?.request("GET", NGINX_PATH, b"")?;
    ensure!(static_file.body == yaml, "nginx does not serve the same bytes as the server");
    let nginx_run = load(nginx_addr, NGINX_PATH, token, plan.load)?;
    drop(nginx);

    let describe = |run: &wrk::WrkResult| {
        format!(
            "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
            run.requests_per_sec,
            run.p50_ms,
            run.p99_ms,
            run.errors()
        )
    };
    let clean = server_run.errors() == 0 && nginx_run.errors() == 0;
    Ok(Figure {
        name: "server_get_vs_nginx",
        value: server_run.requests_per_sec / nginx_run.requests_per_sec,
        unit: "ratio",
        reference: format!(
            "server {}; nginx serving the same {} bytes as a static file {}",
            describe(&server_run),
            yaml.len(),
            describe(&nginx_run)
        ),
        bound: Bound::AtLeast,
        limit: 0.5,
        extra: Some(("zero errors", clean)),
    })
}

/// One wrk run with the bearer token, as the API needs and nginx ignores.
fn load(
    addr: SocketAddr,
    path: &str,
    token: &str,
    duration: Duration,
) -> anyhow::Result<wrk::WrkResult> {
    let output = Command::new("wrk")
        .args(["-t2", "-c50", "--latency"])
        .arg(format!("-d{}s", duration.as_secs()))
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("http://{addr}{path}"))
        .stdin(Stdio::null())
        .output()
        .context("cannot run wrk")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "wrk failed: {}{}", stdout, stderr(&output.stderr));
    wrk::parse(&stdout)
}

/// Sequential PUTs over one connection, each a real change of the stored configuration,
/// interleaved with the floor: the same bytes written, fsynced and renamed in the store's own
/// directory.
///
/// The figure alternates `cluster_label`, as most edits of a UCP configuration touch tables
/// other than the kms keys: each PUT is validated, stored durably as a new revision and
/// reconciled (preflight of the plugin included), and the installed file stays as it is. PUTs
/// that change the kms keys also install a new file; they are timed afterwards and reported
/// beside the figure.
fn put_vs_fsync_floor(
    client: &mut Client,
    config: &[u8],
    store_dir: &Path,
    plan: Plan,
) -> anyhow::Result<Figure> {
    eprintln!("put_p50_vs_fsync_floor: {} PUTs, interleaved with the floor", plan.puts);
    let labels = [
        with_value(config, "tracking_configuration", "cluster_label", "bench-a")?,
        with_value(config, "tracking_configuration", "cluster_label", "bench-b")?,
    ];
    let (mut put_times, mut floor_times) = (Vec::new(), Vec::new());
    for index in 0..plan.puts {
        let body = &labels[index % 2];

        let started = Instant::now();
        put(client, body)?;
        put_times.push(started.elapsed());

        let started = Instant::now();
        write_fsync_rename(store_dir, body)?;
        floor_times.push(started.elapsed());
    }
    let _ = fs::remove_file(store_dir.join(FLOOR_FILE));

    let installs = plan.puts / 5;
    eprintln!("put_p50_vs_fsync_floor: {installs} PUTs that install a new file");
    let timeouts = [
        with_value(config, "cluster_config", "kms_timeout", "7s")?,
        with_value(config, "cluster_config", "kms_timeout", "8s")?,
    ];
    let mut install_times = Vec::new();
    for index in 0..installs {
        let started = Instant::now();
        put(client, &timeouts[index % 2])?;
        install_times.push(started.elapsed());
    }

    let (put_p50, floor_p50) = (median(&put_times).unwrap(), median(&floor_times).unwrap());
    Ok(Figure {
        name: "put_p50_vs_fsync_floor",
        value: put_p50.as_secs_f64() / floor_p50.as_secs_f64(),
        unit: "ratio",
        reference: format!(
            "{} PUTs alternating cluster_label: p50 {:.2} ms, p99 {:.2} ms; write+fsync+rename \
             of the same bytes: p50 {:.2} ms, p99 {:.2} ms; {installs} PUTs alternating \
             kms_timeout, each installing a new file (no target): p50 {:.2} ms, p99 {:.2} ms",
            plan.puts,
            ms(put_p50),
            ms(percentile(&put_times, 99.0).unwrap()),
            ms(floor_p50),
            ms(percentile(&floor_times, 99.0).unwrap()),
            ms(median(&install_times).unwrap()),
            ms(percentile(&install_times, 99.0).unwrap()),
        ),
        bound: Bound::AtMost,
        limit: 3.0,
        extra: None,
    })
}

/// Name of the floor's file in the store directory; the store ignores names that are not
/// revision numbers.
const FLOOR_FILE: &str = "bench-floor.toml";

/// The least a durable replace of a file costs: write a temporary file, fsync it, rename it.
fn write_fsync_rename(dir: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temporary = dir.join(".bench-floor.tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temporary, dir.join(FLOOR_FILE))?;
    Ok(())
}

/// `config` with `key` of `table` set to the string `value`, everything else kept as written.
fn with_value(config: &[u8], table: &str, key: &str, value: &str) -> anyhow::Result<Vec<u8>> {
    let text = std::str::from_utf8(config).context("the example configuration is not UTF-8")?;
    let mut document: toml_edit::DocumentMut =
        text.parse().context("the example configuration is not TOML")?;
    let table = document
        .get_mut(table)
        .and_then(toml_edit::Item::as_table_like_mut)
        .with_context(|| format!("the example configuration has no [{table}]"))?;
    table.insert(key, toml_edit::value(value));
    Ok(document.to_string().into_bytes())
}

fn put(client: &mut Client, body: &[u8]) -> anyhow::Result<()> {
    let answer = client.request("PUT", CONFIG_PATH, body)?;
    ensure!(
        answer.status == 200,
        "PUT {CONFIG_PATH} answered {}: {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    let message = String::from_utf8_lossy(&answer.body);
    ensure!(
        !message.contains("not applied") && !message.contains("still running"),
        "the PUT was stored but not applied: {message}"
    );
    Ok(())
}

/// Hand edits of the installed file, each timed until the server has put the file back.
fn drift_repair(installed: &Path, plan: Plan) -> anyhow::Result<Figure> {
    eprintln!("drift_repair_p99_ms: {} hand edits", plan.edits);
    let good = fs::read(installed)?;
    let mut times = Vec::new();
    for index in 0..plan.edits {
        let mut edited = good.clone();
        edited.extend_from_slice(format!("# hand edit {index}\n").as_bytes());
        let started = Instant::now();
        // In place, as `echo >>` or an editor without backup files would write it.
        fs::write(installed, &edited)?;
        loop {
            if fs::read(installed).is_ok_and(|bytes| bytes == good) {
                break;
            }
            ensure!(
                started.elapsed() < Duration::from_secs(10),
                "hand edit {index} of {} was not repaired within 10 s",
                installed.display()
            );
            thread::sleep(Duration::from_millis(1));
        }
        times.push(started.elapsed());
        // The server's own rename also reaches its watcher; let that settle between edits.
        thread::sleep(Duration::from_millis(20));
    }

    let p99 = percentile(&times, 99.0).unwrap();
    Ok(Figure {
        name: "drift_repair_p99_ms",
        value: ms(p99),
        unit: "ms",
        reference: format!(
            "{} in-place edits of the installed file until its bytes are back (polled each \
             ms): p50 {:.2} ms, max {:.2} ms",
            plan.edits,
            ms(median(&times).unwrap()),
            ms(percentile(&times, 100.0).unwrap())
        ),
        bound: Bound::AtMost,
        limit: 100.0,
        extra: None,
    })
}

/// Resident memory of `pid` in MiB, from `/proc/<pid>/status`.
fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/<pid>/status")?;
    Ok(kib / 1024.0)
}

/// 32 hex digits from the kernel's random source.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

fn private_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file =
        fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    Ok(())
}

fn stderr(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variant_changes_one_key_and_keeps_the_rest() {
        let config =
            b"[auth]\nbackend = \"managed\" # kept\n\n[cluster_config]\nkms_enabled = true\n";
        let changed = with_value(config, "cluster_config", "kms_timeout", "7s").unwrap();
        let changed = String::from_utf8(changed).unwrap();
        assert!(changed.contains("kms_timeout = \"7s\""), "{changed}");
        assert!(changed.starts_with("[auth]\nbackend = \"managed\" # kept\n"), "{changed}");

        let again = with_value(changed.as_bytes(), "cluster_config", "kms_timeout", "8s").unwrap();
        let again = String::from_utf8(again).unwrap();
        assert_eq!(again.matches("kms_timeout").count(), 1, "{again}");
        assert!(again.contains("kms_timeout = \"8s\""), "{again}");
        assert!(with_value(b"[auth]\n", "cluster_config", "kms_timeout", "7s").is_err());
    }
}
