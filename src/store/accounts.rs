//! Accounts the service reconciles: registered, renamed, enabled and disabled here.

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use super::convert::db_time;
use super::entities::account;
use super::error::StoreError;

/// What the service knows about an account, as written by [`upsert_account`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Account id, e.g. `acc-1`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Broker adapter name, e.g. `sim`.
    pub broker: String,
    /// Whether the account is reconciled.
    pub enabled: bool,
    /// Why the account was disabled, when it was.
    pub disabled_reason: Option<String>,
}

/// An account as stored, with its timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAccount {
    /// The account.
    pub account: Account,
    /// When the account was first stored.
    pub created_at: DateTime<Utc>,
    /// When the account was last changed.
    pub updated_at: DateTime<Utc>,
}

/// Inserts `account`, or updates every field of an existing one; `at` becomes
/// `updated_at` (and `created_at` for a new account).
pub async fn upsert_account<C: ConnectionTrait>(
    db: &C,
    account: &Account,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let at = db_time(at);
    let row = account::ActiveModel {
        id: Set(account.id.clone()),
        name: Set(account.name.clone()),
        broker: Set(account.broker.clone()),
        enabled: Set(account.enabled),
        disabled_reason: Set(account.disabled_reason.clone()),
        created_at: Set(at),
        updated_at: Set(at),
    };
    let on_conflict = OnConflict::column(account::Column::Id)
        .update_columns([
            account::Column::Name,
            account::Column::Broker,
            account::Column::Enabled,
            account::Column::DisabledReason,
            account::Column::UpdatedAt,
        ])
        .to_owned();
    account::Entity::insert(row)
        .on_conflict(on_conflict)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// The prefix of a `disabled_reason` the service wrote because its breaker disabled an
/// account that stays enabled in the table: an operator's `accounts enable` clears it,
/// and the running service then re-enables the account.
pub const BREAKER_DISABLED: &str = "disabled by the breaker: ";

/// Writes the breaker's verdict on enabled account `id`: `Some(reason)` when the breaker
/// disabled it, `None` when it runs again. False when no enabled row has that id (an
/// account from the configuration file).
pub async fn record_breaker_state<C: ConnectionTrait>(
    db: &C,
    id: &str,
    disabled: Option<&str>,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let reason = disabled.map(|r| format!("{BREAKER_DISABLED}{r}"));
    let r = account::Entity::update_many()
        .col_expr(account::Column::DisabledReason, Expr::value(reason))
        .col_expr(account::Column::UpdatedAt, Expr::value(db_time(at)))
        .filter(account::Column::Id.eq(id))
        .filter(account::Column::Enabled.eq(true))
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

/// Every account, by id.
pub async fn list_accounts<C: ConnectionTrait>(db: &C) -> Result<Vec<StoredAccount>, StoreError> {
    let rows = account::Entity::find()
        .order_by_asc(account::Column::Id)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(stored).collect())
}

/// One account, if there is one with that id.
pub async fn find_account<C: ConnectionTrait>(
    db: &C,
    id: &str,
) -> Result<Option<StoredAccount>, StoreError> {
    Ok(account::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .map(stored))
}

/// The `disabled_reason` of an account an operator removed (`accounts remove`,
/// `DELETE /api/accounts/{id}`).
pub const REMOVED_BY_OPERATOR: &str = "removed by an operator";

fn stored(row: account::Model) -> StoredAccount {
    StoredAccount {
        account: Account {
            id: row.id,
            name: row.name,
            broker: row.broker,
            enabled: row.enabled,
            disabled_reason: row.disabled_reason,
        },
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}
