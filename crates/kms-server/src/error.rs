//! `AppError`: what a handler can fail with, and the stable JSON body the client gets for it.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One problem of a rejected document, in the shape of `ucp-kms validate --output json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The key path, such as `cluster_config.kms_endpoint`; empty for the whole document.
    pub field: String,
    /// What is wrong and what would be accepted.
    pub message: String,
    /// 1-based line, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl From<&kms_model::Diagnostic> for FieldError {
    fn from(diagnostic: &kms_model::Diagnostic) -> Self {
        Self {
            field: diagnostic.field.clone(),
            message: diagnostic.message.clone(),
            line: diagnostic.line,
            column: diagnostic.column,
        }
    }
}

/// Why a request failed. The client sees `{"message": ...}` (and `errors` for a rejected
/// document); an internal failure's detail goes to the log once, inside the request's span.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No token, or a wrong one.
    #[error("authorization required: send \"Authorization: Bearer <token>\"")]
    Unauthorized,
    /// The request is malformed or its document is invalid.
    #[error("{message}")]
    BadRequest {
        /// What is wrong, in one line.
        message: String,
        /// Every problem of the document; empty when the request itself is malformed.
        errors: Vec<FieldError>,
    },
    /// The body is larger than any document the server accepts.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The largest accepted body.
        limit: usize,
    },
    /// Nothing lives here (yet).
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this method.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// `If-Match` names a revision that is no longer current.
    #[error("{0}")]
    PreconditionFailed(String),
    /// The server cannot do what was asked right now.
    #[error("{0}")]
    Unavailable(String),
    /// A failure of the server itself; the client never sees the detail.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    /// A malformed request, without document problems.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest { message: message.into(), errors: Vec::new() }
    }

    /// A failure of the server itself.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The body of every error answer.
#[derive(Serialize)]
struct ErrorBody<'a> {
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Internal(err) => tracing::error!(error = format!("{err:#}"), "request failed"),
            Self::Unauthorized => tracing::debug!("request without a valid token"),
            other => tracing::debug!(error = %other, "request refused"),
        }
        let errors = match &self {
            Self::BadRequest { errors, .. } => Some(errors.as_slice()),
            _ => None,
        };
        let body = ErrorBody { message: self.to_string(), errors };
        let mut response = (status, Json(body)).into_response();
        if matches!(self, Self::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
