//! `ucp-kms dev-plugin`: a local KMS plugin for tests and demos, never for production.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use kms_model::{Endpoint, KmsApiVersion};
use kms_mount::plugin::dev::{self, DevPluginConfig, Misbehaviour};

use super::probe::{ApiVersion, parse_endpoint, parse_timeout};
use crate::Outcome;
use crate::cli::GlobalArgs;

/// Arguments of `ucp-kms dev-plugin`.
#[derive(Debug, Args)]
#[command(after_help = "The plugin encrypts with AES-256-GCM under a key held in memory. It is \
    for tests and demos only: never point a production cluster at it.")]
pub(crate) struct DevPluginArgs {
    /// Where to listen: a socket path (a missing directory is created with mode 0700; a stale
    /// socket is replaced, a live one refused), unix:///path, @name or unix:///@name.
    #[arg(long, value_name = "P", value_parser = parse_endpoint)]
    socket: Endpoint,

    /// The KMS plugin API to serve.
    #[arg(long, value_name = "V", value_enum, default_value_t = ApiVersion::V2)]
    api_version: ApiVersion,

    /// The key ID to report; by default one derived from the key, so a key keeps its ID.
    #[arg(long, value_name = "ID")]
    key_id: Option<String>,

    /// A file holding the AES-256 key, as 32 raw bytes or their base64; by default a random
    /// key that is lost when the plugin stops, and with it everything encrypted under it.
    #[arg(long, value_name = "F")]
    key_file: Option<PathBuf>,

    /// TESTING ONLY: report healthz "kms unavailable" and fail every other call.
    #[arg(long, help_heading = "Misbehaviour, for testing clients")]
    unhealthy: bool,

    /// TESTING ONLY: wait this long (a Go duration, "5s") before each answer.
    #[arg(long, value_name = "D", value_parser = parse_timeout,
          help_heading = "Misbehaviour, for testing clients")]
    delay: Option<Duration>,

    /// TESTING ONLY: answer Encrypt with this key ID instead of the one Status reports (KMS v2).
    #[arg(long, value_name = "ID", help_heading = "Misbehaviour, for testing clients")]
    encrypt_key_id: Option<String>,

    /// TESTING ONLY: report this API version string from Version or Status.
    #[arg(long, value_name = "S", help_heading = "Misbehaviour, for testing clients")]
    report_version: Option<String>,
}

pub(crate) fn run(args: &DevPluginArgs, _global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let key = match &args.key_file {
        Some(path) => dev::read_key_file(path)?,
        None => dev::random_key()?,
    };
    let api_version = KmsApiVersion::from(args.api_version);
    let mut config = DevPluginConfig::new(args.socket.clone(), api_version, key);
    if let Some(key_id) = &args.key_id {
        config.key_id.clone_from(key_id);
    }
    config.misbehaviour = Misbehaviour {
        unhealthy: args.unhealthy,
        delay: args.delay.unwrap_or_default(),
        encrypt_key_id: args.encrypt_key_id.clone(),
        report_version: args.report_version.clone(),
    };

    eprintln!(
        "warning: the development KMS plugin is for tests and demos only; its key lives in \
         memory{}, so never point a production cluster at it",
        if args.key_file.is_some() { " and in a plain file" } else { " and dies with it" }
    );
    if config.misbehaviour != Misbehaviour::default() {
        eprintln!("warning: misbehaviour switches are on: {:?}", config.misbehaviour);
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))?;
    Ok(Outcome::Yes)
}

async fn serve(config: DevPluginConfig) -> anyhow::Result<()> {
    let socket = config.socket.clone();
    let api_version = config.api_version;
    let key_id = config.key_id.clone();
    // Install the handlers before binding, so a signal right after start-up is not lost.
    let stop = stop_signal().context("cannot install signal handlers")?;

    let plugin = dev::bind(config).await?;
    tracing::info!(kms.socket = %socket, kms.api_version = %api_version, kms.key_id = %key_id,
        "development kms plugin serving");
    eprintln!("serving KMS {api_version} on {socket} (key ID {key_id:?}); stop with Ctrl-C");

    plugin.serve(stop).await?;
    tracing::info!(kms.socket = %socket, "development kms plugin stopped");
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
fn stop_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
