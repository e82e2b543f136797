//! The JSON endpoints, the probes and the dashboard page.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use serde_json::{Value, json};

use super::server::{AppState, Shared};
use super::views::{DivergenceParams, DivergenceView};
use crate::actors::status::PersistenceStats;
use crate::actors::{Status, SupervisorMsg};
use crate::store::{self, OpenCount};

/// How long a handler waits for the actor tree.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The dashboard: one static page that reads the JSON API.
const DASHBOARD: &str = include_str!("dashboard.html");

/// `GET /healthz`: the process is alive and serving.
#[utoipa::path(get, path = "/healthz", tag = "status", security(()),
    responses((status = 200, description = "The process is alive", body = String, content_type = "text/plain")))]
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /`: the dashboard page.
#[utoipa::path(get, path = "/", tag = "status", security(()),
    responses((status = 200, description = "The dashboard page", body = String, content_type = "text/html")))]
pub(super) async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD)
}

/// The tree's status, or why it could not be had.
pub(super) async fn tree_status(s: &Shared) -> Result<Status, String> {
    ractor::call_t!(
        s.supervisor,
        SupervisorMsg::GetStatus,
        CALL_TIMEOUT.as_millis() as u64
    )
    .map_err(|e| e.to_string())
}

/// `POST /api/accounts/{id}/enable`: re-enables an account the breaker disabled (or
/// resets a tripped breaker) in the running service. 200 when done, 404 for an account the
/// service does not supervise, 503 when the tree does not answer.
#[utoipa::path(post, path = "/api/accounts/{id}/enable", tag = "accounts", params(("id" = String, Path, description = "Account id")),
    responses((status = 200, description = "Enabled in the running service", body = super::openapi::Enabled),
        (status = 503, description = "The tree did not answer", body = super::openapi::ErrorBody)))]
pub(super) async fn enable_account(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let s = &state.0;
    let known = ractor::call_t!(
        s.supervisor,
        SupervisorMsg::EnableAccountReply,
        CALL_TIMEOUT.as_millis() as u64,
        id.clone()
    );
    match known {
        Ok(true) => {
            tracing::info!(account = %id, "account enabled by an operator");
            Json(json!({ "enabled": true, "id": id })).into_response()
        }
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            &format!("no account {id:?} is supervised"),
        ),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the tree did not answer: {e}"),
        ),
    }
}

/// The persistence actor's figures, or why they could not be had.
pub(super) async fn persistence_stats(s: &Shared) -> Result<PersistenceStats, String> {
    ractor::call_t!(
        s.supervisor,
        SupervisorMsg::PersistenceStats,
        CALL_TIMEOUT.as_millis() as u64
    )
    .map_err(|e| e.to_string())
}

/// Open divergences per account and kind, from the database.
pub(super) async fn open_counts(s: &Shared) -> Option<Vec<OpenCount>> {
    match store::open_divergence_counts(&s.db).await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "cannot count open divergences");
            None
        }
    }
}

/// Whether every account has been synced (or given up on) once, over at least one full
/// interval of ticks. Latched: once true, stays true.
fn first_round_done(s: &Shared, status: &Status) -> bool {
    if s.first_round_done.load(Ordering::Relaxed) {
        return true;
    }
    let done = status.scheduler.ticks >= u64::from(s.slots)
        && status
            .accounts
            .iter()
            .all(|a| a.syncs_ok + a.syncs_failed > 0 || a.state != "running");
    if done {
        s.first_round_done.store(true, Ordering::Relaxed);
    }
    done
}

/// `GET /readyz`: 200 when the database answers, the supervisor answers and the first
/// sync round is done; 503 otherwise, saying which check failed.
#[utoipa::path(get, path = "/readyz", tag = "status",
    responses((status = 200, description = "Ready", body = super::openapi::Readiness),
        (status = 503, description = "Not ready yet (first round pending) or database away", body = super::openapi::Readiness)))]
pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let s = &state.0;
    let database = match s.db.ping().await {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            "unreachable"
        }
    };
    let status = tree_status(s).await;
    let supervisor = if status.is_ok() {
        "ok"
    } else {
        "not answering"
    };
    let first_round = match &status {
        Ok(st) if first_round_done(s, st) => "done",
        _ => "pending",
    };
    let ready = database == "ok" && supervisor == "ok" && first_round == "done";
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": ready,
        "database": database,
        "supervisor": supervisor,
        "first_round": first_round,
    });
    (code, Json(body)).into_response()
}

/// `GET /api/status`: every account's health with its open divergences by kind, the
/// scheduler, persistence, totals, and (with high availability) this instance's leases.
#[utoipa::path(get, path = "/api/status", tag = "status",
    responses((status = 200, description = "Accounts, scheduler, persistence and totals", body = Object),
        (status = 503, description = "The tree did not answer", body = super::openapi::ErrorBody)))]
pub(super) async fn status(State(state): State<AppState>) -> Response {
    let s = &state.0;
    let status = match tree_status(s).await {
        Ok(st) => st,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &format!("supervisor: {e}")),
    };
    let persistence = persistence_stats(s).await.ok();
    let counts = open_counts(s).await;
    let mut by_account: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
    for c in counts.iter().flatten() {
        *by_account
            .entry(&c.account_id)
            .or_default()
            .entry(&c.kind)
            .or_default() += c.count;
        *by_kind.entry(&c.kind).or_default() += c.count;
    }
    let mut by_state: BTreeMap<&str, u64> = BTreeMap::new();
    let accounts: Vec<Value> = status
        .accounts
        .iter()
        .map(|a| {
            *by_state.entry(&a.state).or_default() += 1;
            let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut v {
                let kinds = by_account.get(a.id.as_str()).cloned().unwrap_or_default();
                map.insert("open_by_kind".into(), json!(kinds));
            }
            v
        })
        .collect();
    let mut body = json!({
        "generated_at": Utc::now(),
        "totals": {
            "accounts": status.accounts.len(),
            "by_state": by_state,
            "open_divergences": by_kind.values().sum::<u64>(),
            "open_by_kind": by_kind,
        },
        "accounts": accounts,
        "scheduler": status.scheduler,
        "persistence": persistence,
        "database_ok": counts.is_some(),
    });
    // High availability: this instance, the accounts it owns and its lease changes.
    if let (Some(ha), Value::Object(map)) = (&status.ha, &mut body) {
        map.insert("ha".into(), json!(ha));
    }
    Json(body).into_response()
}

/// `GET /api/divergences?account=&status=&kind=&since=&before=&limit=`: newest first;
/// `next_before` is the cursor of the next page (`null` on the last one).
#[utoipa::path(get, path = "/api/divergences", tag = "status",
    params(("account" = Option<String>, Query, description = "Account id"),
        ("status" = Option<String>, Query, description = "`open` or `resolved`"),
        ("kind" = Option<String>, Query, description = "A divergence kind, e.g. `entry_slippage`"),
        ("since" = Option<String>, Query, description = "First seen at or after: RFC 3339, a date, or an age (`90s`, `15m`, `24h`, `7d`)"),
        ("before" = Option<String>, Query, description = "Cursor: `next_before` of the previous page"),
        ("limit" = Option<String>, Query, description = "Rows per page, 1 to 1000 (default 100)")),
    responses((status = 200, description = "Newest first", body = super::openapi::DivergencePage),
        (status = 503, description = "Database away", body = super::openapi::ErrorBody)))]
pub(super) async fn divergences(
    State(state): State<AppState>,
    params: Result<Query<DivergenceParams>, QueryRejection>,
) -> Response {
    let params = match params {
        Ok(Query(p)) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let filter = match params.filter(Utc::now()) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    match store::query_divergences(&state.0.db, &filter).await {
        Ok(page) => {
            let items: Vec<DivergenceView> = page.items.iter().map(DivergenceView::from).collect();
            Json(json!({ "items": items, "next_before": page.next_before })).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot list divergences");
            error(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

/// A JSON error answer: `{"error": "<code>", "message": message}`.
pub(super) fn error(code: StatusCode, message: &str) -> Response {
    super::error::ApiError::new(code, message).into_response()
}
