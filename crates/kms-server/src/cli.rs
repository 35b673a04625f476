//! The command line of `ucp-kms-server`, as clap definitions.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use humantime::parse_duration;
use kms_model::KubeVersion;

/// The version line of `--version`: the crate version and the commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("UCP_KMS_COMMIT"), ")");

/// Serve UCP's configuration API (`/api/ucp/config-toml`) and keep this host's Kubernetes
/// EncryptionConfiguration installed, healthy and free of drift.
#[derive(Clone, Debug, Parser)]
#[command(name = "ucp-kms-server", version = VERSION)]
pub struct Cli {
    /// Address and port to listen on; port 0 picks a free port (the bound address is logged).
    /// An address other than loopback needs TLS or --insecure-http.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,

    /// Directory of the stored configuration revisions and the generated token.
    #[arg(long, value_name = "DIR", default_value = "ucp-kms-data")]
    pub data_dir: PathBuf,

    /// File of API tokens, lines "name:token" ('#' comments allowed). Without it, a token is
    /// generated once into the file "token" in --data-dir.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// PEM certificate chain to serve HTTPS with.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM certificate authorities whose client certificates are required on every
    /// connection, as with UCP client bundles; such a certificate authenticates without a token.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,

    /// Allow plain HTTP on an address other than loopback; tokens then cross the network in
    /// clear text.
    #[arg(long)]
    pub insecure_http: bool,

    /// Serve /metrics without a token.
    #[arg(long)]
    pub metrics_public: bool,

    /// Directory that host paths are interpreted under, for a sandbox or a mounted host root.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// Host path of the installed EncryptionConfiguration.
    #[arg(long, value_name = "PATH", default_value = kms_mount::install::DEFAULT_ENCRYPTION_CONFIG)]
    pub encryption_config: PathBuf,

    /// Kubernetes version of the API servers (1.14 to 1.36); it decides which rules apply.
    #[arg(long, value_name = "X.Y", default_value_t = KubeVersion::DEFAULT)]
    pub kubernetes_version: KubeVersion,

    /// How often the reconciler checks the host even when nothing changed.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub resync: Duration,

    /// Command run (by `sh -c`) after the installed file changed, for example a restart of the
    /// API server container.
    #[arg(long, value_name = "CMD")]
    pub on_change: Option<String>,

    /// How long --on-change may run before it is killed.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub on_change_timeout: Duration,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// More detail in the log (-v: debug, -vv: trace); UCP_KMS_LOG or RUST_LOG take precedence.
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}
