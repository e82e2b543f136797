//! Versioned writes of the bot's trades, and each account's change marker.
//!
//! Every write of an account's trades runs in one transaction that first takes the
//! account's row of `trade_revisions` (an upsert that changes nothing: a row lock on
//! PostgreSQL, the write lock on SQLite), so writes of one account are serialised and
//! each one compares against what the one before it left. Then, per trade:
//!
//! - a write with version `v` applies only when `v` ≥ the stored version; a lower one is
//!   `stale` (counted, not applied); a write without a version applies and keeps the
//!   stored version;
//! - a write that leaves the row as it is (same values, same version, still open) is
//!   `unchanged`: a retried request changes nothing;
//! - a closed trade written as open is reopened; trades are never deleted.
//!
//! Any change moves the account's `revision` by one in the same transaction; a write that
//! changes nothing rolls back and leaves the marker (and a never-written account's missing
//! row) as they were. The trade source re-reads an account's open trades only when its
//! marker moved.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QuerySelect, TransactionSession, TransactionTrait, TryIntoModel,
};

use super::chunks::{MAX_ROWS, row_bytes, statement_chunks, text};
use super::convert::{self, CLOSED, OPEN};
use super::entities::{account, bot_trade, trade_revision};
use super::error::StoreError;
use crate::domain::BotTrade;

/// One trade to write, with the bot's version of it (`None`: keep the stored version).
#[derive(Debug, Clone, PartialEq)]
pub struct TradeWrite {
    /// The trade, open.
    pub trade: BotTrade,
    /// The bot's version of the trade; a write below the stored version is stale.
    pub version: Option<u64>,
}

/// What a write did, trade by trade.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WriteOutcome {
    /// Trades inserted, updated or reopened.
    pub written: usize,
    /// Trades already stored exactly so (a retry).
    pub unchanged: usize,
    /// Writes whose version was below the stored one: not applied.
    pub stale: usize,
    /// Open trades marked closed.
    pub closed: usize,
}

impl WriteOutcome {
    /// Did anything change?
    pub fn changed(&self) -> bool {
        self.written + self.closed > 0
    }
}

/// Upserts open trades of one account in one transaction.
pub async fn upsert_trades<C: TransactionTrait>(
    db: &C,
    account_id: &str,
    writes: &[TradeWrite],
) -> Result<WriteOutcome, StoreError> {
    write(db, account_id, writes, None, Utc::now()).await
}

/// Replaces the account's open set: upserts `writes`, marks every open trade absent from
/// them closed (never deletes). One transaction.
pub async fn replace_open_trades<C: TransactionTrait>(
    db: &C,
    account_id: &str,
    writes: &[TradeWrite],
    at: DateTime<Utc>,
) -> Result<WriteOutcome, StoreError> {
    write(db, account_id, writes, Some(at), at).await
}

/// Marks one trade closed (idempotent; `Ok(None)` when the trade does not exist).
pub async fn close_trade<C: TransactionTrait>(
    db: &C,
    account_id: &str,
    trade_id: &str,
    version: Option<u64>,
    at: DateTime<Utc>,
) -> Result<Option<WriteOutcome>, StoreError> {
    let txn = db.begin().await?;
    lock_account(&txn, account_id).await?;
    let mut stored = stored_rows(&txn, account_id, &[trade_id]).await?;
    let Some(row) = stored.remove(trade_id) else {
        return Ok(None);
    };
    let stored_version = convert::version_from_row(&row)?;
    let mut outcome = WriteOutcome::default();
    let version = version.unwrap_or(stored_version);
    if version < stored_version {
        outcome.stale = 1;
        return Ok(Some(outcome));
    }
    let mut next = row.clone();
    let (version_u64, version_i64) = convert::version_to_db(version);
    (next.version_u64, next.version) = (version_u64, version_i64);
    if next.status == OPEN {
        next.status = CLOSED.to_owned();
        next.closed_at = Some(convert::db_time(at));
        outcome.closed = 1;
    } else if next != row {
        outcome.written = 1;
    } else {
        outcome.unchanged = 1;
        return Ok(Some(outcome));
    }
    store_rows(&txn, vec![next]).await?;
    bump(&txn, account_id, at).await?;
    txn.commit().await?;
    Ok(Some(outcome))
}

/// The account's change marker (None: never written / no such account).
pub async fn trades_revision<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(trade_revision::Entity::find_by_id(account_id.to_owned())
        .select_only()
        .column(trade_revision::Column::Revision)
        .into_tuple::<i64>()
        .one(db)
        .await?)
}

/// Every account's change marker, or (with `since`) those of the accounts whose trades
/// changed at or after `since` by the writer's clock.
pub async fn trade_revisions_since<C: ConnectionTrait>(
    db: &C,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<(String, i64)>, StoreError> {
    let mut q = trade_revision::Entity::find()
        .select_only()
        .column(trade_revision::Column::AccountId)
        .column(trade_revision::Column::Revision);
    if let Some(since) = since {
        q = match db.get_database_backend() {
            // SQLite keeps times as text, and a writer's plain SQL may spell them otherwise
            // (CURRENT_TIMESTAMP: a space, no zone): compared as times, not as text.
            DbBackend::Sqlite => q.filter(Expr::cust_with_values(
                "datetime(changed_at) >= datetime(?)",
                [since.to_rfc3339_opts(SecondsFormat::Millis, true)],
            )),
            _ => q.filter(trade_revision::Column::ChangedAt.gte(since)),
        };
    }
    Ok(q.into_tuple::<(String, i64)>().all(db).await?)
}

/// Upserts `writes`; with `close_absent`, also closes every open trade not among them.
async fn write<C: TransactionTrait>(
    db: &C,
    account_id: &str,
    writes: &[TradeWrite],
    close_absent: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> Result<WriteOutcome, StoreError> {
    // Refuse a trade of another account before touching the database.
    for w in writes {
        convert::trade_row(account_id, &w.trade, 0)?;
    }
    let txn = db.begin().await?;
    lock_account(&txn, account_id).await?;
    let ids: Vec<&str> = writes.iter().map(|w| w.trade.id.as_str()).collect();
    let mut current = stored_rows(&txn, account_id, &ids).await?;
    if close_absent.is_some() {
        for row in open_rows(&txn, account_id).await? {
            current.entry(row.trade_id.clone()).or_insert(row);
        }
    }
    let mut outcome = WriteOutcome::default();
    let mut changed: HashMap<String, bot_trade::Model> = HashMap::new();
    for w in writes {
        let stored = current.get(&w.trade.id);
        let Some(next) = next_row(account_id, w, stored, &mut outcome)? else {
            continue;
        };
        changed.insert(next.trade_id.clone(), next.clone());
        current.insert(next.trade_id.clone(), next);
    }
    if let Some(closed_at) = close_absent {
        let sent: HashSet<&str> = ids.iter().copied().collect();
        for row in current.values() {
            if row.status == OPEN && !sent.contains(row.trade_id.as_str()) {
                let mut next = row.clone();
                next.status = CLOSED.to_owned();
                next.closed_at = Some(convert::db_time(closed_at));
                changed.insert(next.trade_id.clone(), next);
                outcome.closed += 1;
            }
        }
    }
    if !outcome.changed() {
        // Nothing to write: the lock row (if it was new) goes away with the rollback.
        return Ok(outcome);
    }
    if outcome.written > 0 {
        known_account(&txn, account_id).await?;
    }
    let mut rows: Vec<bot_trade::Model> = changed.into_values().collect();
    rows.sort_by(|a, b| a.trade_id.cmp(&b.trade_id));
    store_rows(&txn, rows).await?;
    bump(&txn, account_id, at).await?;
    txn.commit().await?;
    Ok(outcome)
}

/// The row `w` leaves, counted in `outcome`; `None` when it is stale or changes nothing.
fn next_row(
    account_id: &str,
    w: &TradeWrite,
    stored: Option<&bot_trade::Model>,
    outcome: &mut WriteOutcome,
) -> Result<Option<bot_trade::Model>, StoreError> {
    let stored_version = stored.map(convert::version_from_row).transpose()?;
    if let (Some(v), Some(s)) = (w.version, stored_version)
        && v < s
    {
        outcome.stale += 1;
        return Ok(None);
    }
    let version = w.version.or(stored_version).unwrap_or(0);
    let mut row = convert::trade_row(account_id, &w.trade, version)?;
    row.pk = Set(stored.map_or(0, |s| s.pk));
    let next = row.try_into_model()?;
    if stored == Some(&next) {
        outcome.unchanged += 1;
        return Ok(None);
    }
    outcome.written += 1;
    Ok(Some(next))
}

/// Takes the account's marker row for this transaction, creating it at revision 0 (which
/// only a committed change moves on): an upsert that changes nothing.
async fn lock_account<T: ConnectionTrait>(txn: &T, account_id: &str) -> Result<(), StoreError> {
    use trade_revision::Column as C;
    let row = trade_revision::ActiveModel {
        account_id: Set(account_id.to_owned()),
        revision: Set(0),
        changed_at: Set(None),
    };
    trade_revision::Entity::insert(row)
        .on_conflict(
            OnConflict::column(C::AccountId)
                .value(
                    C::Revision,
                    Expr::col((trade_revision::Entity, C::Revision)),
                )
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Refuses trades of an account that is not in `accounts`, naming it.
async fn known_account<T: ConnectionTrait>(txn: &T, account_id: &str) -> Result<(), StoreError> {
    let found = account::Entity::find_by_id(account_id.to_owned())
        .count(txn)
        .await?;
    if found == 0 {
        return Err(StoreError::Unstorable {
            field: "bot_trades.account_id",
            value: account_id.to_owned(),
            reason: "no such account in the accounts table".to_owned(),
        });
    }
    Ok(())
}

/// Moves the account's marker by one.
async fn bump<T: ConnectionTrait>(
    txn: &T,
    account_id: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    use trade_revision::Column as C;
    trade_revision::Entity::update_many()
        .col_expr(C::Revision, Expr::col(C::Revision).add(1))
        .col_expr(C::ChangedAt, Expr::value(convert::db_time(at)))
        .filter(C::AccountId.eq(account_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// The account's stored rows of `ids`, by trade id.
async fn stored_rows<T: ConnectionTrait>(
    txn: &T,
    account_id: &str,
    ids: &[&str],
) -> Result<HashMap<String, bot_trade::Model>, StoreError> {
    let mut rows = HashMap::new();
    for chunk in ids.chunks(MAX_ROWS) {
        let found = bot_trade::Entity::find()
            .filter(bot_trade::Column::AccountId.eq(account_id))
            .filter(bot_trade::Column::TradeId.is_in(chunk.iter().copied()))
            .all(txn)
            .await?;
        rows.extend(found.into_iter().map(|r| (r.trade_id.clone(), r)));
    }
    Ok(rows)
}

/// The account's open rows.
async fn open_rows<T: ConnectionTrait>(
    txn: &T,
    account_id: &str,
) -> Result<Vec<bot_trade::Model>, StoreError> {
    Ok(bot_trade::Entity::find()
        .filter(bot_trade::Column::AccountId.eq(account_id))
        .filter(bot_trade::Column::Status.eq(OPEN))
        .all(txn)
        .await?)
}

/// Writes `rows` by (account, trade id), inserting the new ones.
async fn store_rows<T: ConnectionTrait>(
    txn: &T,
    rows: Vec<bot_trade::Model>,
) -> Result<(), StoreError> {
    let rows: Vec<bot_trade::ActiveModel> = rows
        .into_iter()
        .map(|r| {
            let mut row = r.into_active_model().reset_all();
            row.pk = NotSet;
            row
        })
        .collect();
    let bytes = |r: &bot_trade::ActiveModel| {
        let text = text(&r.account_id)
            + text(&r.trade_id)
            + text(&r.symbol)
            + text(&r.side)
            + text(&r.volume)
            + text(&r.entry_price)
            + text(&r.sl)
            + text(&r.tp)
            + text(&r.client_id)
            + text(&r.status)
            + text(&r.ticket_u64)
            + text(&r.version_u64);
        row_bytes(16, text)
    };
    for chunk in statement_chunks(txn.get_database_backend(), &rows, bytes) {
        bot_trade::Entity::insert_many(chunk.iter().cloned())
            .on_conflict(upsert_by_trade_id())
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// `ON CONFLICT (account_id, trade_id) DO UPDATE` every column but the key.
fn upsert_by_trade_id() -> OnConflict {
    use bot_trade::Column as C;
    OnConflict::columns([C::AccountId, C::TradeId])
        .update_columns([
            C::Symbol,
            C::Side,
            C::Volume,
            C::EntryPrice,
            C::Sl,
            C::Tp,
            C::Ticket,
            C::TicketU64,
            C::ClientId,
            C::OpenedAt,
            C::Status,
            C::ClosedAt,
            C::Version,
            C::VersionU64,
        ])
        .to_owned()
}
