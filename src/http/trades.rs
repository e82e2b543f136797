//! The bot's trades of one account: replace the open set (`PUT`), upsert a batch
//! (`POST`), close one trade, list the open ones with their versions. Bodies are the
//! trade files' JSON (see `input::parse_trade_writes`) with an optional `version` per
//! trade; every write answers what it did (`written`, `unchanged`, `stale`, `closed`), so
//! a retried request shows that it changed nothing.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::body::json_text;
use super::error::ApiError;
use super::server::AppState;
use crate::input;
use crate::store::{self, TradeWrite, WriteOutcome};

/// What a write did, trade by trade.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct WriteReply {
    /// Account.
    account: String,
    /// Trades inserted, updated or reopened.
    written: usize,
    /// Trades already stored exactly so (a retry).
    unchanged: usize,
    /// Writes whose version was below the stored one: not applied.
    stale: usize,
    /// Open trades marked closed.
    closed: usize,
}

impl WriteReply {
    fn new(account: String, o: WriteOutcome) -> Self {
        Self {
            account,
            written: o.written,
            unchanged: o.unchanged,
            stale: o.stale,
            closed: o.closed,
        }
    }
}

/// The open trades of an account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct TradeList {
    /// Account.
    account: String,
    /// By trade id.
    items: Vec<TradeView>,
}

/// An open trade as listed: decimals as strings, exactly as stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct TradeView {
    id: String,
    symbol: String,
    side: String,
    volume: String,
    entry_price: String,
    sl: Option<String>,
    tp: Option<String>,
    /// Broker ticket, as a string (any `u64`).
    ticket: Option<String>,
    client_id: Option<String>,
    opened_at: Option<DateTime<Utc>>,
    /// The bot's version, as a string (any `u64`).
    version: String,
}

/// `GET /api/accounts/{id}/trades`: the open trades with their versions, by id.
#[utoipa::path(get, path = "/api/accounts/{id}/trades", tag = "trades", params(("id" = String, Path, description = "Account id")),
    responses((status = 200, description = "Open trades with their versions, by id", body = TradeList),
        (status = 503, description = "Database away", body = super::openapi::ErrorBody)))]
pub(super) async fn list(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let db = &state.0.db;
    if let Err(e) = known(&state, &id).await {
        return e.into_response();
    }
    match store::open_trades_versioned(db, &id).await {
        Ok(trades) => {
            let items: Vec<TradeView> = trades
                .into_iter()
                .map(|(t, version)| TradeView {
                    side: t.side.as_str().to_owned(),
                    volume: t.volume.to_string(),
                    entry_price: t.entry_price.to_string(),
                    sl: t.sl.map(|p| p.to_string()),
                    tp: t.tp.map(|p| p.to_string()),
                    ticket: t.ticket.map(|v| v.to_string()),
                    version: version.to_string(),
                    id: t.id,
                    symbol: t.symbol,
                    client_id: t.client_id,
                    opened_at: t.opened_at,
                })
                .collect();
            Json(TradeList { account: id, items }).into_response()
        }
        Err(e) => ApiError::store("cannot read trades", &e).into_response(),
    }
}

/// `PUT /api/accounts/{id}/trades`: the body is the account's whole open set.
#[utoipa::path(put, path = "/api/accounts/{id}/trades", tag = "trades", params(("id" = String, Path, description = "Account id")),
    request_body(content = Vec<super::openapi::TradeInput>, content_type = "application/json", description = "The account's whole open set"),
    responses((status = 200, description = "What the write did", body = WriteReply),
        (status = 503, description = "Database away", body = super::openapi::ErrorBody)))]
pub(super) async fn replace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let writes = match writes(&state, &id, &headers, body).await {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    let done = store::replace_open_trades(&state.0.db, &id, &writes, Utc::now()).await;
    reply(id, done)
}

/// `POST /api/accounts/{id}/trades`: inserts or updates these trades, leaves the others.
#[utoipa::path(post, path = "/api/accounts/{id}/trades", tag = "trades", params(("id" = String, Path, description = "Account id")),
    request_body(content = Vec<super::openapi::TradeInput>, content_type = "application/json", description = "Trades to insert or update"),
    responses((status = 200, description = "What the write did", body = WriteReply),
        (status = 503, description = "Database away", body = super::openapi::ErrorBody)))]
pub(super) async fn upsert(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let writes = match writes(&state, &id, &headers, body).await {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    reply(
        id.clone(),
        store::upsert_trades(&state.0.db, &id, &writes).await,
    )
}

/// `POST /api/accounts/{id}/trades/{trade_id}/close`, optional body `{"version": N}`.
#[utoipa::path(post, path = "/api/accounts/{id}/trades/{trade_id}/close", tag = "trades",
    params(("id" = String, Path, description = "Account id"), ("trade_id" = String, Path, description = "The bot's trade id")),
    request_body(content = Option<super::openapi::CloseBody>, content_type = "application/json", description = "The version of the close (optional)"),
    responses((status = 200, description = "What the close did", body = WriteReply),
        (status = 503, description = "Database away", body = super::openapi::ErrorBody)))]
pub(super) async fn close(
    State(state): State<AppState>,
    Path((id, trade_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let version = match json_text(&headers, body, true)
        .and_then(|text| input::parse_close("body", &text).map_err(ApiError::input))
    {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = known(&state, &id).await {
        return e.into_response();
    }
    match store::close_trade(&state.0.db, &id, &trade_id, version, Utc::now()).await {
        Ok(Some(outcome)) => Json(WriteReply::new(id, outcome)).into_response(),
        Ok(None) => {
            ApiError::not_found(format!("no trade {trade_id:?} in account {id:?}")).into_response()
        }
        Err(e) => ApiError::store("cannot close the trade", &e).into_response(),
    }
}

/// 404 unless the account is in the accounts table.
pub(super) async fn known(state: &AppState, id: &str) -> Result<(), ApiError> {
    match store::find_account(&state.0.db, id).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ApiError::not_found(format!(
            "no account {id:?} in the accounts table: add it first (POST /api/accounts)"
        ))),
        Err(e) => Err(ApiError::store("cannot read the accounts table", &e)),
    }
}

/// The validated trades of a body, for a known account.
async fn writes(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<TradeWrite>, ApiError> {
    let text = json_text(headers, body, false)?;
    let parsed = input::parse_trade_writes("body", &text, id).map_err(ApiError::input)?;
    known(state, id).await?;
    Ok(parsed
        .into_iter()
        .map(|(trade, version)| TradeWrite { trade, version })
        .collect())
}

fn reply(account: String, done: Result<WriteOutcome, store::StoreError>) -> Response {
    match done {
        Ok(outcome) => {
            if outcome.changed() {
                tracing::info!(account = %account, written = outcome.written, closed = outcome.closed, "trades written");
            }
            Json(WriteReply::new(account, outcome)).into_response()
        }
        Err(e) => ApiError::store("cannot write trades", &e).into_response(),
    }
}
