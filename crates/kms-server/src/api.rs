//! The HTTP API: UCP's configuration endpoints, the KMS endpoints, health and metrics.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use kms_model::encryption::Secret;
use kms_model::{EncryptionConfiguration, KubeVersion, MAX_DOCUMENT_BYTES};
use kms_mount::status::{Status, StatusOptions};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::auth::{Tokens, bearer};
use crate::error::{AppError, FieldError};
use crate::metrics::{self, Metrics};
use crate::reconcile::{self, Outcome, error_chain};
use crate::store::{Revision, Source, Store};

/// Content type of UCP configuration documents.
const TOML: &str = "application/toml";

/// Everything the handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<Store>,
    tokens: Tokens,
    metrics: Metrics,
    reconciler: reconcile::Handle,
    options: ApiOptions,
}

/// Settings of the API itself.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    /// The Kubernetes version documents are validated for.
    pub kubernetes_version: KubeVersion,
    /// Whether `/metrics` is served without a token.
    pub metrics_public: bool,
    /// Host path of the installed EncryptionConfiguration, for the plan.
    pub encryption_config: PathBuf,
    /// How long a `PUT` waits for the reconcile of the revision it stored, to report it.
    pub reconcile_wait: Duration,
}

impl AppState {
    /// Bundles the parts the handlers need.
    pub fn new(
        store: Arc<Store>,
        tokens: Tokens,
        metrics: Metrics,
        reconciler: reconcile::Handle,
        options: ApiOptions,
    ) -> Self {
        Self { inner: Arc::new(Inner { store, tokens, metrics, reconciler, options }) }
    }
}

/// Who made a request: the name of its token, or `cert:<fingerprint>` for a client certificate.
#[derive(Clone, Debug)]
pub struct Caller(pub String);

/// The router with every route, authentication, metrics, tracing and the body limit.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/ucp/config-toml", get(get_config).put(put_config))
        .route("/api/kms/encryption-config", get(get_encryption_config))
        .route("/api/kms/plan", get(get_plan))
        .route("/api/kms/status", get(get_status))
        .route("/api/kms/history", get(get_history))
        .route("/api/kms/rollback", post(post_rollback))
        .route("/metrics", get(get_metrics))
        .route("/_ping", get(ping))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_DOCUMENT_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let route = route_of(request);
                    // Probes and scrapes come every few seconds, and reads of the API can come
                    // tens of thousands of times a second, where a line each costs a fifth of
                    // the throughput; they stay out of the info log. Changes keep a line each.
                    let probe = matches!(route, "/_ping" | "/healthz" | "/readyz" | "/metrics");
                    let read = matches!(*request.method(), Method::GET | Method::HEAD);
                    if probe || read {
                        tracing::debug_span!(
                            "request",
                            http.method = %request.method(),
                            http.route = route,
                            http.status = tracing::field::Empty,
                            http.latency_ms = tracing::field::Empty,
                        )
                    } else {
                        tracing::info_span!(
                            "request",
                            http.method = %request.method(),
                            http.route = route,
                            http.status = tracing::field::Empty,
                            http.latency_ms = tracing::field::Empty,
                        )
                    }
                })
                .on_request(())
                .on_response(|response: &Response, latency: Duration, span: &Span| {
                    span.record("http.status", response.status().as_u16());
                    // Microseconds are the finest step worth reading; more digits are float noise in logs.
                    let latency_ms = (latency.as_secs_f64() * 1e6).round() / 1e3;
                    span.record("http.latency_ms", latency_ms);
                    // A span the filter disabled has no metadata; its event is quiet too.
                    let quiet = span.is_disabled()
                        || span.metadata().is_some_and(|m| *m.level() == tracing::Level::DEBUG);
                    if quiet {
                        tracing::debug!("answered");
                    } else {
                        tracing::info!("answered");
                    }
                })
                .on_failure(()),
        )
        .with_state(state)
}

/// The route template of a request, `unmatched` for paths no route serves, so that metric
/// labels and log fields never carry arbitrary client input.
fn route_of(request: &Request) -> &str {
    request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str)
}

/// Requests by route and status, with latency.
async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = route_of(&request).to_owned();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    state.inner.metrics.observe_request(&route, &method, status, started.elapsed());
    response
}

/// Requires a valid bearer token or a verified client certificate on `/api/*`, and on
/// `/metrics` unless it is public.
async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, AppError> {
    let path = request.uri().path();
    let guarded = path.starts_with("/api/")
        || path == "/api"
        || (path == "/metrics" && !state.inner.options.metrics_public);
    if !guarded {
        return Ok(next.run(request).await);
    }
    let presented = request.headers().get(header::AUTHORIZATION).and_then(|v| bearer(v.as_bytes()));
    let name = presented
        .and_then(|token| state.inner.tokens.check(token))
        .map(str::to_owned)
        .or_else(|| client_certificate(&request));
    let Some(name) = name else { return Err(AppError::Unauthorized) };
    request.extensions_mut().insert(Caller(name));
    Ok(next.run(request).await)
}

/// `cert:<fingerprint prefix>` of the client certificate the TLS layer verified, as UCP accepts
/// an admin client bundle instead of a token. Certificates are only requested, and so only
/// present here, when `--client-ca` names the CA that must have signed them.
fn client_certificate(request: &Request) -> Option<String> {
    let info = request.extensions().get::<Arc<axum_server::tls::TlsInfo>>()?;
    let leaf = info.peer_certificates.first()?;
    let fingerprint = kms_render::config_hash(leaf);
    let hex = fingerprint.trim_start_matches("sha256:");
    Some(format!("cert:{}", &hex[..16]))
}

async fn not_found() -> AppError {
    AppError::NotFound("no such route".to_owned())
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

fn no_config() -> AppError {
    AppError::NotFound(
        "no configuration has been stored yet; PUT one to /api/ucp/config-toml".to_owned(),
    )
}

/// `GET /api/ucp/config-toml`: the current document as it was stored.
async fn get_config(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let current = state.inner.store.lock().await.current().cloned().ok_or_else(no_config)?;
    let etag = current.etag();
    if if_none_match(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let headers = [(header::CONTENT_TYPE, TOML.to_owned()), (header::ETAG, etag)];
    Ok((headers, current.document.to_string()).into_response())
}

/// The answer of an accepted `PUT` or rollback.
#[derive(Serialize)]
struct Accepted {
    message: String,
    revision: u64,
    warnings: Vec<String>,
}

/// `PUT /api/ucp/config-toml`: validate, store as a new revision, reconcile.
async fn put_config(
    State(state): State<AppState>,
    Extension(Caller(caller)): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let body = body.map_err(body_error)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(AppError::bad_request(
            "the request body is empty; expected a UCP configuration in TOML",
        ));
    }
    let text = std::str::from_utf8(&body).map_err(|err| {
        AppError::bad_request(format!(
            "the request body is not UTF-8 text (invalid byte at offset {}); expected a UCP \
             configuration in TOML",
            err.valid_up_to()
        ))
    })?;
    let warnings = check_document(&state, text)?;
    store_and_reconcile(&state, &headers, text, &caller, Source::Put, warnings).await
}

/// Validates a document and its transition from the installed file; the warnings on success.
fn check_document(state: &AppState, text: &str) -> Result<Vec<String>, AppError> {
    let version = state.inner.options.kubernetes_version;
    let validated =
        kms_model::load_settings(text, version).map_err(|invalid| AppError::BadRequest {
            message: format!(
                "the configuration is invalid for Kubernetes {version}: {} problem(s); nothing \
                 was stored",
                invalid.errors.len()
            ),
            errors: invalid.errors.iter().map(FieldError::from).collect(),
        })?;
    let rendered = state.inner.reconciler.preview(&validated.settings).map_err(|message| {
        AppError::BadRequest {
            message: "the configuration cannot replace the installed EncryptionConfiguration \
                      safely; nothing was stored"
                .to_owned(),
            errors: vec![FieldError {
                field: "cluster_config".to_owned(),
                message,
                line: None,
                column: None,
            }],
        }
    })?;
    let mut warnings: Vec<String> = validated.warnings.iter().map(ToString::to_string).collect();
    warnings.extend(rendered.into_iter().flat_map(|rendered| rendered.warnings));
    Ok(warnings)
}

/// Stores `text` as a new revision unless `If-Match` is stale, then reports the reconcile.
async fn store_and_reconcile(
    state: &AppState,
    headers: &HeaderMap,
    text: &str,
    caller: &str,
    source: Source,
    warnings: Vec<String>,
) -> Result<Response, AppError> {
    let store = &state.inner.store;
    let stored = {
        // The lock covers the precondition and the write, so of two writers holding the same
        // ETag exactly one wins, and writers without one are serialized.
        let mut guard = store.lock().await;
        check_if_match(headers, guard.current())?;
        blocking(|| store.append(&mut guard, text, caller, source)).map_err(AppError::internal)?
    };
    let revision = stored.meta.revision;
    state.inner.metrics.config_revision.set(revision as i64);
    tracing::info!(
        config.revision = revision,
        config.hash = %stored.meta.config_hash,
        auth.token = caller,
        "stored a new configuration revision"
    );

    let reconciler = &state.inner.reconciler;
    reconciler.changed();
    let outcome = match reconciler.wait_for(revision, state.inner.options.reconcile_wait).await {
        Some(report) => report_sentence(&report),
        None => "the reconcile is still running; see /api/kms/status".to_owned(),
    };
    let message = format!("configuration saved as revision {revision}; {outcome}");
    let body = Accepted { message, revision, warnings };
    Ok(([(header::ETAG, stored.etag())], Json(body)).into_response())
}

/// Runs `work`, which waits on the disk (fsync), without stalling the other tasks of this worker
/// thread where the runtime can hand them to another one.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

fn report_sentence(report: &reconcile::Report) -> String {
    match report.outcome {
        Outcome::Installed | Outcome::Unchanged | Outcome::NothingToInstall => {
            report.message.clone()
        }
        _ => format!("not applied to this host: {}", report.message),
    }
}

fn body_error(rejection: BytesRejection) -> AppError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge { limit: MAX_DOCUMENT_BYTES }
    } else {
        AppError::bad_request(format!("cannot read the request body: {}", rejection.body_text()))
    }
}

/// 412 unless `If-Match` is absent, `*` with a current revision, or names the current one.
fn check_if_match(headers: &HeaderMap, current: Option<&Revision>) -> Result<(), AppError> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(()) };
    let value = value.to_str().unwrap_or_default();
    let matched = match current {
        None => false,
        Some(current) => {
            let etag = current.etag();
            value.split(',').map(str::trim).any(|tag| tag == "*" || tag == etag)
        }
    };
    if matched {
        return Ok(());
    }
    let now = current.map_or_else(|| "no configuration".to_owned(), Revision::etag);
    Err(AppError::PreconditionFailed(format!(
        "If-Match does not name the current configuration (now {now}); GET it again, reapply \
         your change and retry"
    )))
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    let Some(value) = headers.get(header::IF_NONE_MATCH) else { return false };
    let value = value.to_str().unwrap_or_default();
    value.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

/// `GET /api/kms/encryption-config`: the file the current configuration renders to.
async fn get_encryption_config(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let report = state.inner.reconciler.report();
    let (Some(yaml), Some(hash)) = (&report.desired, &report.desired_hash) else {
        return Err(AppError::NotFound(format!(
            "no EncryptionConfiguration to show: {}",
            report.message
        )));
    };
    let etag = format!("\"{hash}\"");
    if if_none_match(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let headers = [(header::CONTENT_TYPE, "application/yaml".to_owned()), (header::ETAG, etag)];
    let body = match report.desired_config.as_deref().and_then(redacted) {
        Some(redacted) => kms_render::to_yaml(&redacted),
        None => yaml.to_vec(),
    };
    Ok((headers, body).into_response())
}

/// `config` with every local key's secret replaced by `REDACTED`, or `None` when it holds no
/// key material. Providers kept for reads may carry aescbc, aesgcm or secretbox keys, which
/// never leave the host through the API; the ETag still names the real file.
fn redacted(config: &EncryptionConfiguration) -> Option<EncryptionConfiguration> {
    let mut copy = config.clone();
    let mut found = false;
    for provider in copy.resources.iter_mut().flat_map(|resource| &mut resource.providers) {
        let aes = [provider.aescbc.as_mut(), provider.aesgcm.as_mut()];
        let keys = aes.into_iter().flatten().flat_map(|aes| &mut aes.keys);
        let keys = keys.chain(provider.secretbox.iter_mut().flat_map(|boxed| &mut boxed.keys));
        for key in keys {
            key.secret = Secret::new("REDACTED");
            found = true;
        }
    }
    found.then_some(copy)
}

/// The current revision's settings, validated for the target version.
async fn current_settings(state: &AppState) -> Result<kms_model::KmsSettings, AppError> {
    let current = state.inner.store.lock().await.current().cloned().ok_or_else(no_config)?;
    let version = state.inner.options.kubernetes_version;
    kms_model::load_settings(&current.document, version)
        .map(|validated| validated.settings)
        .map_err(|invalid| {
            AppError::Unavailable(format!(
                "revision {} is not valid for Kubernetes {version}: {}",
                current.meta.revision,
                invalid.errors.first().map(ToString::to_string).unwrap_or_default()
            ))
        })
}

/// `GET /api/kms/plan`: the API server's mounts and flags, as `ucp-kms plan --format json`.
async fn get_plan(State(state): State<AppState>) -> Result<Response, AppError> {
    let settings = current_settings(&state).await?;
    let version = state.inner.options.kubernetes_version;
    let mut options = kms_mount::plan::PlanOptions {
        encryption_config: state.inner.options.encryption_config.clone(),
        ..kms_mount::plan::PlanOptions::default()
    };
    let rendered = state.inner.reconciler.preview(&settings).map_err(AppError::Unavailable)?;
    if let Some(rendered) = &rendered {
        options = options.with_installed(&rendered.config);
    }
    let plan = kms_mount::plan::plan(&settings, version, &options)
        .map_err(|err| AppError::Unavailable(err.to_string()))?;
    Ok(Json(plan).into_response())
}

/// `GET /api/kms/status`: the host compared with the configuration, and the last reconcile.
async fn get_status(State(state): State<AppState>) -> Result<Response, AppError> {
    let report = state.inner.reconciler.report();
    let file = state.inner.reconciler.file().clone();
    let installed = tokio::task::spawn_blocking(move || file.read())
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)?;
    let options = StatusOptions {
        encryption_config: state.inner.reconciler.file().host_path().to_path_buf(),
        ..StatusOptions::default()
    };
    // The shape of `ucp-kms status --output json`, with the revision and the last reconcile.
    let mut status = Status::measure(
        report.kms_enabled,
        installed.as_deref(),
        report.desired.as_deref(),
        &options,
    );
    status.warnings.clone_from(&report.warnings);
    if let Some(checked) = &report.preflight {
        status.add_preflight(checked);
    }
    if matches!(report.outcome, Outcome::Failed) {
        status.problems.push(report.message.clone());
    }
    let mut body = serde_json::to_value(&status).map_err(AppError::internal)?;
    if let Some(fields) = body.as_object_mut() {
        fields.insert("path".to_owned(), json!(options.encryption_config));
        fields.insert("revision".to_owned(), json!(report.revision));
        fields.insert(
            "reconcile".to_owned(),
            json!({
                "time": report.time,
                "revision": report.revision,
                "outcome": report.outcome,
                "message": report.message,
            }),
        );
    }
    Ok(Json(body).into_response())
}

/// `GET /api/kms/history`: every revision, oldest first.
async fn get_history(State(state): State<AppState>) -> Json<serde_json::Value> {
    let guard = state.inner.store.lock().await;
    Json(json!({
        "current": guard.current().map(|current| current.meta.revision),
        "revisions": guard.history(),
    }))
}

/// The body of `POST /api/kms/rollback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    revision: u64,
}

/// `POST /api/kms/rollback`: makes an earlier revision current again, as a new revision.
async fn post_rollback(
    State(state): State<AppState>,
    Extension(Caller(caller)): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Json<RollbackRequest>, JsonRejection>,
) -> Result<Response, AppError> {
    let Json(request) = body.map_err(|rejection| {
        AppError::bad_request(format!(
            "expected a JSON body like {{\"revision\": 3}}: {}",
            rejection.body_text()
        ))
    })?;
    let old = {
        let guard = state.inner.store.lock().await;
        state.inner.store.read(&guard, request.revision).map_err(|err| match err {
            crate::store::StoreError::NoSuchRevision(_) => AppError::NotFound(err.to_string()),
            other => AppError::internal(other),
        })?
    };
    let warnings = check_document(&state, &old.document)?;
    let source = Source::Rollback { from: request.revision };
    store_and_reconcile(&state, &headers, &old.document, &caller, source, warnings).await
}

/// `GET /metrics`: Prometheus text.
async fn get_metrics(State(state): State<AppState>) -> Response {
    let text = state.inner.metrics.encode();
    ([(header::CONTENT_TYPE, HeaderValue::from_static(metrics::CONTENT_TYPE))], text)
        .into_response()
}

/// Why the server is not ready, or `Ok` when it is: the store is readable and, with KMS
/// enabled, the plugin passed the last preflight.
async fn readiness(state: &AppState) -> Result<(), String> {
    {
        let store = &state.inner.store;
        let guard = store.lock().await;
        if let Some(current) = guard.current() {
            store
                .read(&guard, current.meta.revision)
                .map_err(|err| format!("the store is not readable: {}", error_chain(&err)))?;
        }
    }
    let report = state.inner.reconciler.report();
    // A pass that enables KMS only succeeds after the plugin passed preflight.
    if report.outcome.is_good() { Ok(()) } else { Err(report.message.clone()) }
}

/// `GET /_ping`: `OK` when healthy, 500 with the reason otherwise, as UCP's.
async fn ping(State(state): State<AppState>) -> Response {
    match readiness(&state).await {
        Ok(()) => (StatusCode::OK, "OK").into_response(),
        Err(reason) => (StatusCode::INTERNAL_SERVER_ERROR, reason).into_response(),
    }
}

/// `GET /healthz`: the process answers.
async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 when ready, 503 with the reason otherwise.
async fn readyz(State(state): State<AppState>) -> Response {
    match readiness(&state).await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use kms_model::encryption::{
        AesConfiguration, IdentityConfiguration, Key, ProviderConfiguration, ResourceConfiguration,
        SecretboxConfiguration,
    };

    use super::*;

    fn key(name: &str, secret: &str) -> Key {
        Key { name: name.to_owned(), secret: Secret::new(secret) }
    }

    #[test]
    fn every_kind_of_local_key_is_redacted_and_nothing_else_changes() {
        let providers = vec![
            ProviderConfiguration {
                aesgcm: Some(AesConfiguration { keys: vec![key("gcm", "Z2NtLXNlY3JldA==")] }),
                ..ProviderConfiguration::default()
            },
            ProviderConfiguration {
                aescbc: Some(AesConfiguration { keys: vec![key("cbc", "Y2JjLXNlY3JldA==")] }),
                ..ProviderConfiguration::default()
            },
            ProviderConfiguration {
                secretbox: Some(SecretboxConfiguration {
                    keys: vec![key("box", "Ym94LXNlY3JldA==")],
                }),
                ..ProviderConfiguration::default()
            },
            ProviderConfiguration {
                identity: Some(IdentityConfiguration {}),
                ..ProviderConfiguration::default()
            },
        ];
        let config = EncryptionConfiguration::new(vec![ResourceConfiguration {
            resources: vec!["secrets".to_owned()],
            providers,
        }]);
        let yaml = String::from_utf8(kms_render::to_yaml(&redacted(&config).unwrap())).unwrap();
        for secret in ["Z2NtLXNlY3JldA==", "Y2JjLXNlY3JldA==", "Ym94LXNlY3JldA=="] {
            assert!(!yaml.contains(secret), "{yaml}");
        }
        assert_eq!(yaml.matches("REDACTED").count(), 3, "{yaml}");
        for name in ["gcm", "cbc", "box"] {
            assert!(yaml.contains(&format!("name: {name}")), "{yaml}");
        }

        let plain = EncryptionConfiguration::new(vec![ResourceConfiguration {
            resources: vec!["secrets".to_owned()],
            providers: vec![ProviderConfiguration {
                identity: Some(IdentityConfiguration {}),
                ..ProviderConfiguration::default()
            }],
        }]);
        assert!(redacted(&plain).is_none());
    }
}
