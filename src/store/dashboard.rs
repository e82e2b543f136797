//! What the dashboard's overview and account page read besides the listings: divergences
//! opened and resolved per hour, the accounts with the most divergences needing attention,
//! and an account's audit trail since a time (its breaker timeline, its guards' alerts and
//! closes).
//!
//! Hours are grouped in the database (one grouped query per direction), so the answer is
//! as small as the range, whatever the number of rows.

use chrono::{DateTime, NaiveDateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};

use super::convert::{OPEN, db_time};
use super::entities::{audit_event, divergence};
use super::error::StoreError;
use super::journal::AuditEvent;

/// Divergences opened and resolved in one hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourCount {
    /// Start of the hour (UTC).
    pub hour: DateTime<Utc>,
    /// Divergences first seen in it.
    pub opened: u64,
    /// Divergences resolved in it.
    pub resolved: u64,
}

/// An account and how many of its divergences need attention (open, not acknowledged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountOpen {
    /// Account.
    pub account_id: String,
    /// Open, unacknowledged divergences.
    pub open: u64,
}

/// The hour of `column` as `YYYY-MM-DD HH` text, in the backend's SQL.
fn hour_expr(backend: DatabaseBackend, column: &str) -> String {
    match backend {
        DatabaseBackend::Postgres => {
            format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24')")
        }
        _ => format!("strftime('%Y-%m-%d %H', {column})"),
    }
}

/// `(hour text, rows)` of `divergences` whose `column` is at or after `since`.
async fn per_hour<C: ConnectionTrait>(
    db: &C,
    column: &str,
    since: DateTime<Utc>,
) -> Result<Vec<(String, i64)>, StoreError> {
    let backend = db.get_database_backend();
    let hour = hour_expr(backend, column);
    let placeholder = if backend == DatabaseBackend::Postgres {
        "$1"
    } else {
        "?"
    };
    let sql = format!(
        "SELECT {hour} AS h, COUNT(*) AS n FROM divergences \
         WHERE {column} >= {placeholder} GROUP BY h ORDER BY h"
    );
    let statement = Statement::from_sql_and_values(backend, sql, [db_time(since).into()]);
    let rows = db.query_all_raw(statement).await?;
    rows.iter()
        .map(|r| Ok((r.try_get::<String>("", "h")?, r.try_get::<i64>("", "n")?)))
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()
        .map_err(StoreError::from)
}

/// Divergences opened (by `first_seen`) and resolved (by `resolved_at`) per hour since
/// `since`, oldest first; every hour of the range is there, with zeros where nothing
/// happened.
pub async fn divergences_per_hour<C: ConnectionTrait>(
    db: &C,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<HourCount>, StoreError> {
    let since = super::hour_of(since);
    let mut hours: Vec<HourCount> = Vec::new();
    let mut at = since;
    while at <= now {
        hours.push(HourCount {
            hour: at,
            opened: 0,
            resolved: 0,
        });
        at += chrono::Duration::hours(1);
    }
    let slot = |text: &str| {
        NaiveDateTime::parse_from_str(&format!("{text}:00:00"), "%Y-%m-%d %H:%M:%S")
            .ok()
            .and_then(|t| {
                let h = t.and_utc();
                usize::try_from((h - since).num_hours()).ok()
            })
    };
    for (text, n) in per_hour(db, "first_seen", since).await? {
        if let Some(h) = slot(&text).and_then(|i| hours.get_mut(i)) {
            h.opened += u64::try_from(n).unwrap_or(0);
        }
    }
    for (text, n) in per_hour(db, "resolved_at", since).await? {
        if let Some(h) = slot(&text).and_then(|i| hours.get_mut(i)) {
            h.resolved += u64::try_from(n).unwrap_or(0);
        }
    }
    Ok(hours)
}

/// The `limit` accounts with the most open, unacknowledged divergences, most first (ties
/// by account id).
pub async fn top_open_accounts<C: ConnectionTrait>(
    db: &C,
    limit: u64,
) -> Result<Vec<AccountOpen>, StoreError> {
    let n = Expr::col(divergence::Column::Id).count();
    let rows: Vec<(String, i64)> = divergence::Entity::find()
        .select_only()
        .column(divergence::Column::AccountId)
        .column_as(n.clone(), "n")
        .filter(divergence::Column::Status.eq(OPEN))
        .filter(divergence::Column::AcknowledgedAt.is_null())
        .group_by(divergence::Column::AccountId)
        .order_by_desc(n)
        .order_by_asc(divergence::Column::AccountId)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(account_id, n)| AccountOpen {
            account_id,
            open: u64::try_from(n).unwrap_or(0),
        })
        .collect())
}

/// `account`'s audit events at or after `since`, oldest first, of the given kinds (every
/// kind when `kinds` is empty).
pub async fn audit_since<C: ConnectionTrait>(
    db: &C,
    account: &str,
    since: DateTime<Utc>,
    kinds: &[&str],
) -> Result<Vec<AuditEvent>, StoreError> {
    let mut query = audit_event::Entity::find()
        .filter(audit_event::Column::AccountId.eq(account))
        .filter(audit_event::Column::At.gte(db_time(since)));
    if !kinds.is_empty() {
        query = query.filter(audit_event::Column::Kind.is_in(kinds.iter().copied()));
    }
    let rows = query
        .order_by_asc(audit_event::Column::At)
        .order_by_asc(audit_event::Column::Id)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| AuditEvent {
            at: row.at,
            account_id: row.account_id,
            kind: row.kind,
            detail: serde_json::from_str(&row.detail).unwrap_or(serde_json::Value::Null),
        })
        .collect())
}

/// `account`'s hourly rollups from the hour of `since` on, oldest first.
pub async fn rollups_since<C: ConnectionTrait>(
    db: &C,
    account: &str,
    since: DateTime<Utc>,
) -> Result<Vec<super::SyncRollup>, StoreError> {
    use super::entities::sync_rollup;
    let rows = sync_rollup::Entity::find()
        .filter(sync_rollup::Column::AccountId.eq(account))
        .filter(sync_rollup::Column::Hour.gte(db_time(super::hour_of(since))))
        .order_by_asc(sync_rollup::Column::Hour)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(super::rollups::from_row).collect())
}
