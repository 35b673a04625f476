//! `ucp-kms-server`: UCP's configuration API (`/api/ucp/config-toml`) over an embedded store of
//! revisions, and a reconciler that keeps this host's EncryptionConfiguration installed.
//!
//! Layer: the top, beside `kms-cli`. Every decision about KMS (validation, rendering,
//! transitions, preflight, install) belongs to the library crates below; this crate holds the
//! HTTP surface, authentication, the store and the schedule of the reconciler. The clap
//! definition is public so that release tooling can generate completions and man pages.

pub mod api;
pub mod auth;
pub mod cli;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod reconcile;
pub mod store;
pub mod tls;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;

pub use cli::Cli;

use crate::api::{ApiOptions, AppState};
use crate::auth::Tokens;
use crate::metrics::Metrics;
use crate::reconcile::{ReconcileOptions, Reconciler};
use crate::store::Store;

/// How long a `PUT` waits for the reconcile of its revision before it answers anyway.
const RECONCILE_WAIT: Duration = Duration::from_secs(10);
/// How long a new connection may take to send its first request; hyper bounds the headers of
/// later ones (30s), the body limit bounds what follows.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open connections may finish their requests after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A server assembled from its command line, not yet serving.
#[derive(Debug)]
pub struct App {
    /// What the handlers share.
    pub state: AppState,
    /// The reconciler, to be run beside the HTTP server.
    pub reconciler: Reconciler,
}

impl App {
    /// Opens the store, loads the tokens and prepares the reconciler.
    ///
    /// # Errors
    ///
    /// When the store holds a corrupt revision (naming its file), the token file is malformed
    /// (naming the line), or the EncryptionConfiguration path is unusable.
    pub fn new(cli: &Cli) -> anyhow::Result<Self> {
        let store = Arc::new(Store::open(&cli.data_dir).context("cannot open the store")?);
        let tokens = match &cli.token_file {
            Some(path) => Tokens::read(path)?,
            None => Tokens::read_or_generate(&cli.data_dir)?,
        };
        tracing::info!(auth.tokens = ?tokens.names().collect::<Vec<_>>(), "tokens loaded");

        let metrics = Metrics::new();
        let options = ReconcileOptions {
            root: cli.root.clone(),
            encryption_config: cli.encryption_config.clone(),
            kubernetes_version: cli.kubernetes_version,
            resync: cli.resync.max(Duration::from_millis(100)),
            on_change: cli.on_change.clone(),
            on_change_timeout: cli.on_change_timeout,
        };
        let (reconciler, handle) = Reconciler::new(options, store.clone(), metrics.clone())
            .context("cannot set up the reconciler")?;
        let options = ApiOptions {
            kubernetes_version: cli.kubernetes_version,
            metrics_public: cli.metrics_public,
            encryption_config: cli.encryption_config.clone(),
            reconcile_wait: RECONCILE_WAIT,
        };
        let state = AppState::new(store, tokens, metrics, handle, options);
        Ok(Self { state, reconciler })
    }

    /// The HTTP routes.
    pub fn router(&self) -> axum::Router {
        api::router(self.state.clone())
    }
}

/// Runs the server until SIGTERM or Ctrl-C.
///
/// # Errors
///
/// When the configuration is refused (plain HTTP on a network address, unusable TLS files), the
/// store or tokens cannot be loaded, or the address cannot be bound.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    logging::init(cli.log_format, cli.verbose);
    let tls = tls_files(&cli)?;
    check_listen(cli.listen, tls.is_some(), cli.insecure_http)?;

    let app = App::new(&cli)?;
    let router = app.router();
    let listener = TcpListener::bind(cli.listen)
        .with_context(|| format!("cannot listen on \"{}\"", cli.listen))?;
    listener.set_nonblocking(true).context("cannot configure the listener")?;
    let addr = listener.local_addr().context("cannot read the bound address")?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        http.addr = %addr,
        http.url = format!("{scheme}://{addr}"),
        version = cli::VERSION,
        "listening"
    );

    let (stop, stopped) = watch::channel(false);
    let reconciler = tokio::spawn(app.reconciler.run(wait_for(stopped)));

    let handle = axum_server::Handle::new();
    tokio::spawn({
        let handle = handle.clone();
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            let _ = stop.send(true);
            handle.graceful_shutdown(Some(DRAIN_TIMEOUT));
        }
    });

    let service = router.into_make_service();
    let served = match tls {
        Some(files) => {
            let config = tls::server_config(&files)?;
            let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config));
            axum_server::from_tcp_rustls(listener, config)?
                .handle(handle)
                .first_request_timeout(FIRST_REQUEST_TIMEOUT)
                .serve(service)
                .await
        }
        None => {
            axum_server::from_tcp(listener)?
                .handle(handle)
                .first_request_timeout(FIRST_REQUEST_TIMEOUT)
                .serve(service)
                .await
        }
    };
    let _ = stop.send(true);
    let _ = reconciler.await;
    served.context("the HTTP server failed")?;
    tracing::info!("stopped");
    Ok(())
}

fn tls_files(cli: &Cli) -> anyhow::Result<Option<tls::TlsFiles>> {
    match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => {
            let files = tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: cli.client_ca.clone(),
            };
            // Read the files now, so a bad one stops the start with its path.
            tls::server_config(&files)?;
            Ok(Some(files))
        }
        _ => Ok(None),
    }
}

/// Refuses plain HTTP on anything but loopback unless the operator asked for it.
fn check_listen(addr: SocketAddr, tls: bool, insecure_http: bool) -> anyhow::Result<()> {
    if tls || insecure_http || addr.ip().is_loopback() {
        return Ok(());
    }
    anyhow::bail!(
        "refusing plain HTTP on \"{addr}\", which is not a loopback address: tokens would cross \
         the network in clear text; give --tls-cert and --tls-key, listen on 127.0.0.1, or pass \
         --insecure-http"
    )
}

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stopped| *stopped).await;
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback_unless_allowed() {
        let lan: SocketAddr = "0.0.0.0:8443".parse().unwrap();
        let err = check_listen(lan, false, false).unwrap_err().to_string();
        assert!(err.contains("0.0.0.0:8443") && err.contains("--insecure-http"), "{err}");
        assert!(check_listen(lan, true, false).is_ok());
        assert!(check_listen(lan, false, true).is_ok());
        assert!(check_listen("127.0.0.1:0".parse().unwrap(), false, false).is_ok());
        assert!(check_listen("[::1]:0".parse().unwrap(), false, false).is_ok());
    }
}
