//! Accounts: list, add or update (one object or an array, in one transaction), remove
//! (disable, keeping every row of history), as `mt5-reconciler accounts …` does. A running
//! service follows the table within `scheduler.accounts_refresh_secs`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use sea_orm::TransactionTrait;
use serde::Serialize;
use serde_json::json;

use super::body::json_text;
use super::error::ApiError;
use super::server::AppState;
use crate::input;
use crate::store::{self, Account, StoredAccount};

/// What `POST /api/accounts` did.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub(super) struct AccountsReply {
    /// Accounts added.
    added: usize,
    /// Accounts updated (renamed, moved to another broker, or enabled again).
    updated: usize,
    /// Accounts already so.
    unchanged: usize,
}

fn view(r: &StoredAccount) -> serde_json::Value {
    let a = &r.account;
    json!({
        "id": a.id, "name": a.name, "broker": a.broker, "enabled": a.enabled,
        "disabled_reason": a.disabled_reason,
        "created_at": r.created_at, "updated_at": r.updated_at,
    })
}

/// `GET /api/accounts`: every account, by id.
#[utoipa::path(get, path = "/api/accounts", tag = "accounts",
    responses((status = 200, description = "Every account, by id", body = super::openapi::AccountList),
        (status = 503, description = "Database away", body = super::openapi::ErrorBody)))]
pub(super) async fn list(State(state): State<AppState>) -> Response {
    match store::list_accounts(&state.0.db).await {
        Ok(rows) => {
            Json(json!({ "items": rows.iter().map(view).collect::<Vec<_>>() })).into_response()
        }
        Err(e) => ApiError::store("cannot read the accounts table", &e).into_response(),
    }
}

/// `POST /api/accounts`: `{"id", "broker", "name"?}` or an array of them; each is added,
/// or updated and enabled. One that is already so is left alone.
#[utoipa::path(post, path = "/api/accounts", tag = "accounts",
    request_body(content = super::openapi::AccountsBody, content_type = "application/json"),
    responses((status = 200, description = "What was added, updated, left alone", body = AccountsReply),
        (status = 503, description = "Database away", body = super::openapi::ErrorBody)))]
pub(super) async fn add(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let inputs = match json_text(&headers, body, false)
        .and_then(|t| input::parse_accounts("body", &t).map_err(ApiError::input))
    {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    match add_all(&state, inputs).await {
        Ok(reply) => Json(reply).into_response(),
        Err(e) => ApiError::store("cannot write the accounts table", &e).into_response(),
    }
}

async fn add_all(
    state: &AppState,
    inputs: Vec<input::AccountInput>,
) -> Result<AccountsReply, store::StoreError> {
    let txn = state.0.db.begin().await?;
    let mut reply = AccountsReply::default();
    let now = Utc::now();
    for a in inputs {
        let existing = store::find_account(&txn, &a.id).await?;
        let account = Account {
            name: a.name.unwrap_or_else(|| a.id.clone()),
            id: a.id,
            broker: a.broker,
            enabled: true,
            disabled_reason: None,
        };
        match existing {
            Some(s) if s.account == account => {
                reply.unchanged += 1;
                continue;
            }
            Some(_) => reply.updated += 1,
            None => reply.added += 1,
        }
        store::upsert_account(&txn, &account, now).await?;
    }
    txn.commit().await?;
    Ok(reply)
}

/// `DELETE /api/accounts/{id}`: disables the account; its trades, divergences and audit
/// stay. Repeating it changes nothing.
#[utoipa::path(delete, path = "/api/accounts/{id}", tag = "accounts", params(("id" = String, Path, description = "Account id")),
    responses((status = 200, description = "Disabled (history kept)", body = super::openapi::Removed),
        (status = 503, description = "Database away", body = super::openapi::ErrorBody)))]
pub(super) async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let db = &state.0.db;
    let stored = match store::find_account(db, &id).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return ApiError::not_found(format!("no account {id:?} in the accounts table"))
                .into_response();
        }
        Err(e) => return ApiError::store("cannot read the accounts table", &e).into_response(),
    };
    let account = Account {
        enabled: false,
        disabled_reason: Some(store::REMOVED_BY_OPERATOR.to_owned()),
        ..stored.account.clone()
    };
    let changed = account != stored.account;
    if changed && let Err(e) = store::upsert_account(db, &account, Utc::now()).await {
        return ApiError::store("cannot write the accounts table", &e).into_response();
    }
    if changed {
        tracing::info!(account = %id, "account removed by an operator");
    }
    Json(json!({ "id": id, "enabled": false, "changed": changed })).into_response()
}
