//! Many accounts at once, for the bulk set-up commands: accounts upserted in multi-row
//! statements, and trades written account by account inside a few large transactions.
//!
//! Each account's trades are written as [`super::upsert_trades`] or
//! [`super::replace_open_trades`] write them, in a savepoint of a transaction that holds
//! [`ACCOUNTS_PER_TRANSACTION`] accounts: an account whose write fails leaves nothing
//! behind and does not stop the others, and the database commits a few times instead of
//! once per account. When a whole transaction fails (the database went away), every
//! account in it is reported failed and nothing of them is kept.

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, EntityTrait, TransactionSession, TransactionTrait};

use super::Account;
use super::chunks::{row_bytes, statement_chunks, text};
use super::convert::db_time;
use super::entities::account;
use super::error::StoreError;
use super::trade_writes::{TradeWrite, WriteOutcome, replace_open_trades, upsert_trades};

/// Accounts whose trades share one transaction (each in its own savepoint).
pub const ACCOUNTS_PER_TRANSACTION: usize = 500;

/// Inserts or updates every account of `accounts` (every field; `at` becomes
/// `updated_at`, and `created_at` of new ones), in one transaction.
pub async fn upsert_accounts<C: TransactionTrait>(
    db: &C,
    accounts: &[Account],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let at = db_time(at);
    let rows: Vec<account::ActiveModel> = accounts
        .iter()
        .map(|a| account::ActiveModel {
            id: Set(a.id.clone()),
            name: Set(a.name.clone()),
            broker: Set(a.broker.clone()),
            enabled: Set(a.enabled),
            disabled_reason: Set(a.disabled_reason.clone()),
            created_at: Set(at),
            updated_at: Set(at),
        })
        .collect();
    let txn = db.begin().await?;
    let bytes = |r: &account::ActiveModel| {
        row_bytes(
            7,
            text(&r.id) + text(&r.name) + text(&r.broker) + text(&r.disabled_reason),
        )
    };
    for chunk in statement_chunks(txn.get_database_backend(), &rows, bytes) {
        account::Entity::insert_many(chunk.iter().cloned())
            .on_conflict(
                OnConflict::column(account::Column::Id)
                    .update_columns([
                        account::Column::Name,
                        account::Column::Broker,
                        account::Column::Enabled,
                        account::Column::DisabledReason,
                        account::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Writes the trades of many accounts: `(account, writes)` each, upserted, or with
/// `replace` replacing the account's open set (trades absent from it are closed at `at`).
/// One result per account, in order; an error is the database's message.
pub async fn write_many_accounts<C: TransactionTrait>(
    db: &C,
    accounts: &[(String, Vec<TradeWrite>)],
    replace: bool,
    at: DateTime<Utc>,
) -> Vec<Result<WriteOutcome, String>> {
    let mut out = Vec::with_capacity(accounts.len());
    for batch in accounts.chunks(ACCOUNTS_PER_TRANSACTION) {
        let done = write_batch(db, batch, replace, at).await;
        out.extend(done);
    }
    out
}

/// One transaction of accounts; every result an error when the transaction itself fails.
async fn write_batch<C: TransactionTrait>(
    db: &C,
    batch: &[(String, Vec<TradeWrite>)],
    replace: bool,
    at: DateTime<Utc>,
) -> Vec<Result<WriteOutcome, String>> {
    let failed_all = |e: &dyn std::fmt::Display| {
        let why = format!("not committed with its batch: {e}");
        batch.iter().map(|_| Err(why.clone())).collect()
    };
    let txn = match db.begin().await {
        Ok(t) => t,
        Err(e) => return failed_all(&StoreError::from(e)),
    };
    let mut results = Vec::with_capacity(batch.len());
    for (account, writes) in batch {
        let r = if replace {
            replace_open_trades(&txn, account, writes, at).await
        } else {
            upsert_trades(&txn, account, writes).await
        };
        results.push(r.map_err(|e| e.to_string()));
    }
    match txn.commit().await {
        Ok(()) => results,
        Err(e) => failed_all(&StoreError::from(e)),
    }
}
