//! One JSON error shape for every 4xx and 5xx answer:
//! `{"error": "<code>", "message": "…", "field"?, "index"?, "value"?}`.
//!
//! Handlers return [`ApiError`]; [`json_errors`] rewrites whatever else answers with an
//! error in plain text (axum's rejections: 405, 413, a bad path …) into the same shape.

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::input::InputError;
use crate::store::StoreError;

/// The error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub(super) struct ApiError {
    #[serde(skip)]
    #[schema(ignore)]
    pub(super) status: StatusCode,
    /// A stable code: `bad_request`, `unauthorized`, `forbidden`, `forbidden_host`,
    /// `not_found`, `method_not_allowed`, `payload_too_large`, `unsupported_media_type`,
    /// `invalid_input`, `unavailable`, `internal`.
    pub(super) error: &'static str,
    /// What is wrong, for a person.
    pub(super) message: String,
    /// The field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) field: Option<String>,
    /// The index of the array element at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) index: Option<usize>,
    /// The offending value, shortened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) value: Option<String>,
}

impl ApiError {
    /// An error of `status` with its usual code.
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            error: code_for(status),
            message: message.into(),
            field: None,
            index: None,
            value: None,
        }
    }

    /// 404.
    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 422 for a body that failed validation, naming index, field and value.
    pub(super) fn input(e: InputError) -> Self {
        Self {
            field: e.field.clone(),
            index: e.index,
            value: e.value.clone(),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
    }

    /// 503 when the database is away, 422 when it refuses the data, 500 otherwise.
    pub(super) fn store(what: &str, e: &StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "{what}: database unavailable");
            Self::new(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        } else if e.is_bad_data() || e.is_refusal() {
            Self::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{what}: {e}"))
        } else {
            tracing::error!(error = %e, "{what}");
            Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{what}: database error"),
            )
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}

/// The usual code of an error status.
pub(super) fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "invalid_input",
        503 => "unavailable",
        500..=599 => "internal",
        _ => "error",
    }
}

/// Longest plain-text error body that is carried over into `message`.
const MAX_PLAIN: usize = 4096;

/// Rewrites a plain-text (or empty) error answer into the JSON error shape, keeping its
/// status and headers (`Allow`, `WWW-Authenticate` …).
pub(super) async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.as_u16() < 400 || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = to_bytes(body, MAX_PLAIN)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let body = serde_json::to_vec(&ApiError::new(status, message)).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}
