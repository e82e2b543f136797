//! The alert endpoints: `GET /api/alerts` lists the risk guards' alerts, newest first;
//! `POST /api/alerts/{id}/cancel` cancels the automatic close an alert scheduled.
//!
//! Same JSON as `mt5-reconciler alerts list`, same outcome as `alerts cancel`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::api::error;
use super::server::AppState;
use super::views::{AlertParams, AlertView};
use crate::store::{self, CancelOutcome};

/// `GET /api/alerts?account=&limit=`: newest first (`limit` 1 to 1000, default 50).
pub(super) async fn list(
    State(state): State<AppState>,
    params: Result<Query<AlertParams>, QueryRejection>,
) -> Response {
    let params = match params {
        Ok(Query(p)) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let (account, limit) = match params.filter() {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    match store::list_alerts(&state.0.db, account.as_deref(), limit).await {
        Ok(rows) => {
            let items: Vec<AlertView> = rows.iter().map(AlertView::from).collect();
            Json(json!({ "items": items })).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot list alerts");
            error(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

/// `POST /api/alerts/{id}/cancel`: 200 `{"cancelled": true}` when the close was pending;
/// 409 with the alert's status when it is not; 404 for an unknown id.
pub(super) async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match store::cancel_pending_close(&state.0.db, &id, Utc::now()).await {
        Ok(CancelOutcome::Cancelled) => {
            tracing::info!(alert = %id, "automatic close cancelled by an operator");
            Json(json!({ "cancelled": true, "id": id })).into_response()
        }
        Ok(CancelOutcome::NotPending(status)) => {
            let reason = store::not_pending_reason(&status);
            let body = json!({
                "cancelled": false,
                "id": id,
                "status": status,
                "error": format!("alert {id} is {status}, not pending a close: {reason}"),
            });
            (StatusCode::CONFLICT, Json(body)).into_response()
        }
        Ok(CancelOutcome::Unknown) => error(StatusCode::NOT_FOUND, &format!("no alert {id:?}")),
        Err(e) => {
            tracing::warn!(alert = %id, error = %e, "cannot cancel an alert");
            error(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}
