//! The JSON behind the account page (`/accounts/{id}`):
//!
//! - `GET /api/accounts/{id}/live`: the last reconciled sync, from memory (kept while the
//!   page reads it): the broker's positions, the bot's trades, the pairs with their match
//!   method, the external positions (the page puts the account's divergences on the pairs
//!   they concern);
//! - `GET /api/accounts/{id}/history`: the sync rollups per hour (syncs, failures by class,
//!   duration p50 and p99) and the breaker transitions of the last `hours`;
//! - `GET /api/accounts/{id}/equity`: equity samples since the start of the window, with
//!   the reference and the warn and breach levels, the guards' alerts and closes on the
//!   same time axis, and what the guards remember (each rule's level, reference, latch).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{CALL_TIMEOUT, error};
use super::error::ApiError;
use super::server::AppState;
use super::views::AlertView;
use crate::actors::SupervisorMsg;
use crate::store::{self, FAILURE_CLASSES};

/// Breaker transitions, as the supervisor audits them.
const BREAKER_EVENTS: [&str; 7] = [
    "backoff_started",
    "circuit_opened",
    "circuit_half_open",
    "circuit_closed",
    "account_disabled",
    "account_enabled",
    "account_added",
];

/// The guards' close steps, as the guard audits them (with a close taken over from an
/// earlier owner of the account, and a close it had sent verified done).
const CLOSE_EVENTS: [&str; 6] = [
    "close_scheduled",
    "close_confirmed",
    "close_failed",
    "close_cancelled",
    "close_claim_taken_over",
    "close_verified_gone",
];

/// Longest window, in hours (the retention of rollups is longer; the page needs a week).
const MAX_HOURS: i64 = 24 * 31;

/// `?hours=`: the window, 1 to [`MAX_HOURS`] (default 24).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Window {
    hours: Option<String>,
}

impl Window {
    /// The start of the window before `now`; the error names the value.
    fn since(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
        let hours = match self.hours.as_deref().map(str::trim) {
            None | Some("") => 24,
            Some(h) => match h.parse::<i64>() {
                Ok(n) if (1..=MAX_HOURS).contains(&n) => n,
                _ => return Err(format!("hours = {h:?}: expected 1 to {MAX_HOURS}")),
            },
        };
        Ok(now - TimeDelta::hours(hours))
    }
}

/// The window of the query, or the 400 answer.
fn window(q: Result<Query<Window>, QueryRejection>) -> Result<DateTime<Utc>, Box<Response>> {
    let Query(w) = q.map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, &e.body_text())))?;
    w.since(Utc::now())
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, &e)))
}

/// `GET /api/accounts/{id}/live`: the account's status and its last reconciled sync.
/// Views are kept only while read: `live` is `null` until the first sync after the first
/// read (then kept for a minute after each read); 404 for an account not supervised here.
#[utoipa::path(get, path = "/api/accounts/{id}/live", tag = "accounts", params(("id" = String, Path, description = "Account id")),
    responses((status = 200, description = "The status, and positions, trades, pairs and external positions at the last reconciled sync", body = Object),
        (status = 503, description = "The tree did not answer", body = super::openapi::ErrorBody)))]
pub(super) async fn live(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let view = ractor::call_t!(
        state.0.supervisor,
        SupervisorMsg::LiveView,
        CALL_TIMEOUT.as_millis() as u64,
        id.clone()
    );
    match view {
        Ok(Some((status, v))) => Json(json!({
            "account_id": id, "status": status, "live": v.as_deref(),
        }))
        .into_response(),
        Ok(None) => {
            ApiError::not_found(format!("account {id:?} is not supervised here")).into_response()
        }
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the tree did not answer: {e}"),
        ),
    }
}

/// `GET /api/accounts/{id}/history?hours=24`: rollups per hour and breaker transitions.
#[utoipa::path(get, path = "/api/accounts/{id}/history", tag = "accounts",
    params(("id" = String, Path, description = "Account id"),
        ("hours" = Option<String>, Query, description = "Window in hours, 1 to 744 (default 24)")),
    responses((status = 200, description = "Syncs per hour and breaker transitions", body = Object),
        (status = 503, description = "Database away", body = super::openapi::ErrorBody)))]
pub(super) async fn history(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<Window>, QueryRejection>,
) -> Response {
    let since = match window(q) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let db = &state.0.db;
    let rollups = match store::rollups_since(db, &id, since).await {
        Ok(r) => r,
        Err(e) => return ApiError::store("cannot read the rollups", &e).into_response(),
    };
    let breaker = match store::audit_since(db, &id, since, &BREAKER_EVENTS).await {
        Ok(r) => r,
        Err(e) => return ApiError::store("cannot read the audit trail", &e).into_response(),
    };
    let hours: Vec<Value> = rollups
        .iter()
        .map(|r| {
            let failures: serde_json::Map<String, Value> = FAILURE_CLASSES
                .iter()
                .map(|c| ((*c).to_owned(), json!(r.failed(c))))
                .collect();
            json!({
                "hour": r.hour, "syncs": r.syncs, "failed": r.failed_total(),
                "failures": failures, "p50_ms": r.p50(), "p99_ms": r.p99(), "max_ms": r.max_ms,
            })
        })
        .collect();
    let transitions: Vec<Value> = breaker
        .iter()
        .map(|e| {
            json!({
                "at": e.at, "event": e.kind,
                "from": e.detail.get("from"), "to": e.detail.get("to"),
                "reason": e.detail.get("reason"),
            })
        })
        .collect();
    Json(json!({
        "account_id": id, "since": since, "now": Utc::now(),
        "hours": hours, "breaker": transitions,
    }))
    .into_response()
}

/// `GET /api/accounts/{id}/equity?hours=24`: equity samples with levels, alerts, closes.
#[utoipa::path(get, path = "/api/accounts/{id}/equity", tag = "accounts",
    params(("id" = String, Path, description = "Account id"),
        ("hours" = Option<String>, Query, description = "Window in hours, 1 to 744 (default 24)")),
    responses((status = 200, description = "Equity samples, alerts and closes on one time axis", body = Object),
        (status = 503, description = "Database away", body = super::openapi::ErrorBody)))]
pub(super) async fn equity(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<Window>, QueryRejection>,
) -> Response {
    let since = match window(q) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let db = &state.0.db;
    let samples = match store::list_equity_samples(db, &id, since).await {
        Ok(s) => s,
        Err(e) => return ApiError::store("cannot read the equity samples", &e).into_response(),
    };
    let alerts = match store::list_alerts(db, Some(&id), store::MAX_PAGE).await {
        Ok(a) => a,
        Err(e) => return ApiError::store("cannot read the alerts", &e).into_response(),
    };
    let closes = match store::audit_since(db, &id, since, &CLOSE_EVENTS).await {
        Ok(c) => c,
        Err(e) => return ApiError::store("cannot read the audit trail", &e).into_response(),
    };
    let guards = match store::load_guard_state(db, &id).await {
        Ok(g) => g.and_then(|json| serde_json::from_str::<Value>(&json).ok()),
        Err(e) => return ApiError::store("cannot read the guard state", &e).into_response(),
    };
    let text = |d: Option<rust_decimal::Decimal>| d.map(|d| d.to_string());
    let samples: Vec<Value> = samples
        .iter()
        .map(|s| {
            json!({
                "at": s.at, "equity": s.equity.to_string(), "balance": s.balance.to_string(),
                "reference": text(s.reference), "warn_equity": text(s.warn_equity),
                "breach_equity": text(s.breach_equity),
            })
        })
        .collect();
    let alerts: Vec<AlertView> = alerts
        .iter()
        .filter(|a| a.created_at >= since)
        .map(AlertView::from)
        .collect();
    let closes: Vec<Value> = closes
        .iter()
        .map(|e| json!({ "at": e.at, "event": e.kind, "detail": e.detail }))
        .collect();
    Json(json!({
        "account_id": id, "since": since, "now": Utc::now(),
        "samples": samples, "alerts": alerts, "closes": closes, "guard_state": guards,
    }))
    .into_response()
}
