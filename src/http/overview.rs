//! The JSON behind the fleet overview (`/`), sized for thousands of accounts: aggregates
//! and one page of accounts, never the whole fleet at once.
//!
//! - `GET /api/overview?offset=&limit=&state=`: accounts by breaker state, what needs
//!   attention (open divergences not acknowledged), the ten accounts with the most, the
//!   alerts whose close is pending (with `close_at` for the countdown), and one page of
//!   accounts (most divergences first);
//! - `GET /api/overview/divergences?range=24h|7d`: divergences opened and resolved per
//!   hour.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{TimeDelta, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{error, open_counts, tree_status};
use super::error::ApiError;
use super::server::AppState;
use super::views::AlertView;
use crate::store;

/// Accounts per page by default, and at most.
const DEFAULT_PAGE: usize = 50;
const MAX_ACCOUNTS_PAGE: usize = 500;
/// Accounts in the "most divergences" list.
const TOP: u64 = 10;
/// Newest alerts read to find the pending ones.
const ALERTS_READ: u64 = 1_000;

/// `GET /api/overview` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OverviewParams {
    offset: Option<String>,
    limit: Option<String>,
    state: Option<String>,
}

impl OverviewParams {
    /// (offset, limit, state); the error names every bad value.
    fn parse(&self) -> Result<(usize, usize, Option<String>), String> {
        let mut problems = Vec::new();
        let offset = match self.offset.as_deref().map(str::trim) {
            None | Some("") => 0,
            Some(o) => o.parse::<usize>().unwrap_or_else(|_| {
                problems.push(format!("offset = {o:?}: expected 0 or more"));
                0
            }),
        };
        let limit = match self.limit.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_PAGE,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=MAX_ACCOUNTS_PAGE).contains(&n) => n,
                _ => {
                    problems.push(format!("limit = {l:?}: expected 1 to {MAX_ACCOUNTS_PAGE}"));
                    DEFAULT_PAGE
                }
            },
        };
        let state = self.state.clone().filter(|s| !s.trim().is_empty());
        if let Some(s) = &state
            && !crate::actors::BreakerState::NAMES.contains(&s.as_str())
        {
            problems.push(format!(
                "state = {s:?}: expected one of {}",
                crate::actors::BreakerState::NAMES.join(", ")
            ));
        }
        if problems.is_empty() {
            Ok((offset, limit, state))
        } else {
            Err(problems.join("; "))
        }
    }
}

/// `GET /api/overview`.
#[utoipa::path(get, path = "/api/overview", tag = "status",
    params(("offset" = Option<String>, Query, description = "Accounts to skip (default 0)"),
        ("limit" = Option<String>, Query, description = "Accounts per page, 1 to 500 (default 50)"),
        ("state" = Option<String>, Query, description = "Only accounts in this breaker state")),
    responses((status = 200, description = "Totals, the accounts most in need, pending alerts, one page of accounts", body = Object),
        (status = 503, description = "The tree did not answer", body = super::openapi::ErrorBody)))]
pub(super) async fn overview(
    State(state): State<AppState>,
    q: Result<Query<OverviewParams>, QueryRejection>,
) -> Response {
    let params = match q {
        Ok(Query(p)) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let (offset, limit, only) = match params.parse() {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let s = &state.0;
    let status = match tree_status(s).await {
        Ok(st) => st,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &format!("supervisor: {e}")),
    };
    let counts = open_counts(s).await;
    let top = match store::top_open_accounts(&s.db, TOP).await {
        Ok(t) => t,
        Err(e) => return ApiError::store("cannot count open divergences", &e).into_response(),
    };
    let alerts = match store::list_alerts(&s.db, None, ALERTS_READ).await {
        Ok(a) => a,
        Err(e) => return ApiError::store("cannot read the alerts", &e).into_response(),
    };
    let mut open: HashMap<&str, u64> = HashMap::new();
    for c in counts.iter().flatten() {
        *open.entry(c.account_id.as_str()).or_default() += c.count;
    }
    let mut by_state: BTreeMap<&str, u64> = BTreeMap::new();
    for a in &status.accounts {
        *by_state.entry(a.state.as_str()).or_default() += 1;
    }
    let mut rows: Vec<_> = status
        .accounts
        .iter()
        .filter(|a| only.as_deref().is_none_or(|st| a.state == st))
        .map(|a| (open.get(a.id.as_str()).copied().unwrap_or(0), a))
        .collect();
    rows.sort_by(|(na, a), (nb, b)| nb.cmp(na).then_with(|| a.id.cmp(&b.id)));
    let total = rows.len();
    let page: Vec<Value> = rows
        .iter()
        .skip(offset)
        .take(limit)
        .map(|(n, a)| {
            json!({
                "id": a.id, "broker": a.broker, "state": a.state, "open": n,
                "positions": a.positions, "external_positions": a.external_positions,
                "equity": a.equity.map(|e| e.to_string()), "last_sync_at": a.last_sync_at,
                "syncs_ok": a.syncs_ok, "syncs_failed": a.syncs_failed,
                "consecutive_failures": a.consecutive_failures,
                "last_error": a.disabled_reason.as_ref().or(a.last_error.as_ref()),
            })
        })
        .collect();
    let pending: Vec<AlertView> = alerts
        .iter()
        .filter(|a| a.status.enforcing())
        .map(AlertView::from)
        .collect();
    // With high availability: this instance's leases and every instance's share.
    let ha = match &status.ha {
        Some(this) => {
            let instances = store::list_instances(&s.db).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read the instances");
                Vec::new()
            });
            json!({ "this": this, "instances": instances })
        }
        None => Value::Null,
    };
    let top: Vec<Value> = top
        .iter()
        .map(|t| json!({ "account_id": t.account_id, "open": t.open }))
        .collect();
    Json(json!({
        "generated_at": Utc::now(),
        "totals": {
            "accounts": status.accounts.len(),
            "by_state": by_state,
            "needs_attention": open.values().sum::<u64>(),
            "syncs_in_flight": status.scheduler.syncs_in_flight,
        },
        "top_open": top,
        "pending_alerts": pending,
        "accounts": { "offset": offset, "limit": limit, "total": total, "items": page },
        "database_ok": counts.is_some(),
        "ha": ha,
    }))
    .into_response()
}

/// `?range=24h|7d`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RangeParams {
    range: Option<String>,
}

/// `GET /api/overview/divergences?range=24h|7d`: one entry per hour, oldest first.
#[utoipa::path(get, path = "/api/overview/divergences", tag = "status",
    params(("range" = Option<String>, Query, description = "`24h` (default) or `7d`")),
    responses((status = 200, description = "Divergences opened and resolved per hour", body = Object),
        (status = 503, description = "Database away", body = super::openapi::ErrorBody)))]
pub(super) async fn per_hour(
    State(state): State<AppState>,
    q: Result<Query<RangeParams>, QueryRejection>,
) -> Response {
    let range = match q {
        Ok(Query(p)) => p.range.unwrap_or_default(),
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let hours = match range.trim() {
        "" | "24h" => 24,
        "7d" => 24 * 7,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("range = {other:?}: expected 24h or 7d"),
            );
        }
    };
    let now = Utc::now();
    // The current hour is the last of the range.
    let since = now - TimeDelta::hours(hours - 1);
    match store::divergences_per_hour(&state.0.db, since, now).await {
        Ok(h) => {
            let items: Vec<Value> = h
                .iter()
                .map(|h| json!({ "hour": h.hour, "opened": h.opened, "resolved": h.resolved }))
                .collect();
            Json(json!({ "range": if hours == 24 { "24h" } else { "7d" }, "hours": items }))
                .into_response()
        }
        Err(e) => ApiError::store("cannot count divergences per hour", &e).into_response(),
    }
}
