//! Request bodies: JSON text, checked for its content type, limited in size.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};

use super::error::ApiError;

/// Largest request body, in bytes (an open set of tens of thousands of trades).
pub(super) const MAX_BODY: usize = 16 * 1024 * 1024;

/// The body as UTF-8 JSON text: 415 unless it is `application/json` (an empty body may
/// come without a content type when `optional`), 413 beyond [`MAX_BODY`].
pub(super) fn json_text(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    optional: bool,
) -> Result<String, ApiError> {
    let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    if optional && body.iter().all(u8::is_ascii_whitespace) {
        return Ok(String::new());
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON: Content-Type: application/json",
        ));
    }
    String::from_utf8(body.to_vec())
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("body: not UTF-8: {e}")))
}
