//! `POST /api/divergences/{id}/acknowledge`: an operator acknowledges an open divergence
//! with a note. It stays in the record (listed with its acknowledgement, filterable with
//! `acknowledged=yes|no`) and no longer counts as needing attention. Audited at once
//! (`divergence_acknowledged`, with who and the note). A write: the write token, or a
//! loopback request when no token is set.
//!
//! Same outcome as `mt5-reconciler acknowledge`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::body::json_text;
use super::error::ApiError;
use super::server::AppState;
use crate::store::{self, AckOutcome};

/// The request body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    note: String,
    by: Option<String>,
}

/// The divergence id of the path; 400 naming the value otherwise.
pub(super) fn divergence_id(text: &str) -> Result<i64, ApiError> {
    text.trim().parse::<i64>().map_err(|_| {
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("id = {text:?}: expected a divergence id (an integer)"),
        );
        e.field = Some("id".into());
        e.value = Some(text.chars().take(64).collect());
        e
    })
}

/// `POST /api/divergences/{id}/acknowledge` with `{"note": "…", "by"?: "…"}`: 200 when
/// acknowledged; 409 when it was acknowledged before or is resolved; 404 for an unknown
/// id; 422 for a missing or too long note.
#[utoipa::path(post, path = "/api/divergences/{id}/acknowledge", tag = "status",
    params(("id" = i64, Path, description = "Divergence id (as the list shows it)")),
    request_body(content = super::openapi::AckBody, content_type = "application/json"),
    responses((status = 200, description = "Acknowledged (and audited)", body = super::openapi::Acknowledged),
        (status = 409, description = "Acknowledged before, or resolved", body = Object),
        (status = 503, description = "Database away", body = super::openapi::ErrorBody)))]
pub(super) async fn acknowledge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let id = match divergence_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let parsed = json_text(&headers, body, false).and_then(|text| {
        serde_json::from_str::<AckBody>(&text).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("body: {e} (expected {{\"note\": \"…\", \"by\": \"…\"}})"),
            )
        })
    });
    let body = match parsed {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let by = body.by.unwrap_or_else(|| "api".into());
    let (by, note) = match store::check_ack(&by, &body.note) {
        Ok(v) => v,
        Err(message) => {
            let mut e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message.clone());
            // The message starts with the field it names: `note = …` or `by = …`.
            e.field = message.split(" = ").next().map(str::to_owned);
            return e.into_response();
        }
    };
    match store::acknowledge_divergence(&state.0.db, id, &by, &note, Utc::now()).await {
        Ok(AckOutcome::Acknowledged) => {
            tracing::info!(divergence = id, by = %by, "divergence acknowledged by an operator");
            Json(json!({ "acknowledged": true, "id": id, "by": by, "note": note })).into_response()
        }
        Ok(AckOutcome::Already(a)) => conflict(
            id,
            format!(
                "divergence {id} was acknowledged by {} at {}: {}",
                a.by,
                a.at.to_rfc3339(),
                a.note
            ),
        ),
        Ok(AckOutcome::Resolved) => conflict(
            id,
            format!("divergence {id} is resolved: nothing to acknowledge"),
        ),
        Ok(AckOutcome::Unknown) => {
            ApiError::not_found(format!("no divergence {id}")).into_response()
        }
        Err(e) => ApiError::store("cannot acknowledge a divergence", &e).into_response(),
    }
}

fn conflict(id: i64, message: String) -> Response {
    let body = json!({ "acknowledged": false, "id": id, "error": message });
    (StatusCode::CONFLICT, Json(body)).into_response()
}
