//! The alert endpoints: `GET /api/alerts` lists the risk guards' alerts, newest first;
//! `POST /api/alerts/{id}/cancel` stops the enforcement of an alert: its pending close,
//! or the closes of a breach that still holds. The cancel is audited at once, with the
//! optional `{"by": …, "reason": …}` of the request body.
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
#[utoipa::path(get, path = "/api/alerts", tag = "alerts",
    params(("account" = Option<String>, Query, description = "Account id"),
        ("limit" = Option<String>, Query, description = "Rows, newest first, 1 to 1000 (default 50)")),
    responses((status = 200, description = "The guards' alerts", body = super::openapi::Items),
        (status = 503, description = "Database away", body = super::openapi::ErrorBody)))]
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

/// Who cancels and why (both optional).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    by: Option<String>,
    reason: Option<String>,
}

/// Who (default `api`) and why (default empty) from a request body that may be empty.
fn who(body: &[u8]) -> Result<(String, String), Box<Response>> {
    let parsed: CancelBody = if body.iter().all(u8::is_ascii_whitespace) {
        CancelBody::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            Box::new(error(
                StatusCode::BAD_REQUEST,
                &format!("request body: {e}"),
            ))
        })?
    };
    Ok((
        parsed.by.unwrap_or_else(|| "api".into()),
        parsed.reason.unwrap_or_default(),
    ))
}

/// `POST /api/accounts/{id}/enforcement/cancel`: stops every enforcement of the account
/// (optional body `{"by": …, "reason": …}`); 200 with the cancelled alert ids (409 when
/// there was none).
#[utoipa::path(post, path = "/api/accounts/{id}/enforcement/cancel", tag = "alerts", params(("id" = String, Path, description = "Account id")),
    request_body(content = Option<super::openapi::CancelBody>, description = "Who and why (optional)"),
    responses((status = 200, description = "Cancelled", body = Object),
        (status = 503, description = "Database away", body = super::openapi::ErrorBody)))]
pub(super) async fn cancel_account(
    State(state): State<AppState>,
    Path(account): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let (by, reason) = match who(&body) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    match store::cancel_account_enforcement(&state.0.db, &account, Utc::now(), &by, &reason).await {
        Ok(ids) if ids.is_empty() => {
            let body = json!({
                "cancelled": ids,
                "account": account,
                "error": format!("account {account} has no alert that still closes positions"),
            });
            (StatusCode::CONFLICT, Json(body)).into_response()
        }
        Ok(ids) => {
            tracing::info!(account = %account, by = %by, "enforcement of the account cancelled by an operator");
            Json(json!({ "cancelled": ids, "account": account })).into_response()
        }
        Err(e) => {
            tracing::warn!(account = %account, error = %e, "cannot cancel an account's enforcement");
            error(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

/// `POST /api/alerts/{id}/cancel`: 200 `{"cancelled": true}` when the enforcement was
/// stopped; 409 with the alert's status when there was nothing to stop; 404 for an
/// unknown id; 400 for a body that is not `{"by": "…", "reason": "…"}`.
#[utoipa::path(post, path = "/api/alerts/{id}/cancel", tag = "alerts",
    params(("id" = String, Path, description = "Alert id")),
    request_body(content = Option<super::openapi::CancelBody>, description = "Who and why (optional)"),
    responses((status = 200, description = "Cancelled", body = Object),
        (status = 503, description = "Database away", body = super::openapi::ErrorBody)))]
pub(super) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let (by, reason) = match who(&body) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    match store::cancel_enforcement(&state.0.db, &id, Utc::now(), &by, &reason).await {
        Ok(CancelOutcome::Cancelled) => {
            tracing::info!(alert = %id, by = %by, "enforcement cancelled by an operator");
            Json(json!({ "cancelled": true, "id": id })).into_response()
        }
        Ok(CancelOutcome::NotCancellable(status)) => {
            let reason = status.not_cancellable_reason();
            let body = json!({
                "cancelled": false,
                "id": id,
                "status": status,
                "error": format!("alert {id} is {status}, nothing to cancel: {reason}"),
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
