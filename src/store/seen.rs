//! `last_seen` of open divergences: when a sync last observed them, to a minute.
//!
//! A sync that finds an account's divergences unchanged writes no divergence row; only its
//! report reaches the store. So each successful sync report, and each single-account
//! [`super::converge`], is a *sighting*: the account's open divergences were all observed
//! then. [`mark_seen`] moves their `last_seen` forward to the sighting, but only where the
//! stored time is more than [`LAST_SEEN_PRECISION`] older. A row is therefore written at
//! most once a minute, however often the account syncs, and a batch of reports costs one
//! UPDATE per statement chunk of accounts (one for any usual batch), which in the steady
//! state changes almost no row.
//!
//! Invariants: while a divergence is open, its last sighting lies in
//! `[last_seen, last_seen + LAST_SEEN_PRECISION]`; `last_seen` never moves back, never
//! precedes `first_seen`, and resolving a divergence leaves it as it was (`resolved_at`
//! says when it went away).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, IntoIden, Query, TableRef, UpdateStatement, ValueTuple};
use sea_orm::{ConnectionTrait, EntityName, IdenStatic, TransactionTrait};

use super::chunks::{row_bytes, statement_chunks};
use super::convert::{OPEN, db_time};
use super::entities::divergence;
use super::error::StoreError;
use super::journal::SyncRunRecord;

/// How far `last_seen` may lag behind the last sync that observed an open divergence.
pub const LAST_SEEN_PRECISION: TimeDelta = TimeDelta::seconds(60);

/// One observation of all of an account's open divergences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting<'a> {
    /// Account.
    pub account_id: &'a str,
    /// When its divergences were observed.
    pub at: DateTime<Utc>,
}

/// The sightings in sync reports: a successful sync observed its account's open set (one
/// that found the set changed has it converged before its report, in the same batch or an
/// earlier one). A failed sync observed nothing. The report's `finished_at` is the time.
pub(super) fn sightings<'a>(
    runs: impl IntoIterator<Item = &'a SyncRunRecord>,
) -> Vec<Sighting<'a>> {
    runs.into_iter()
        .filter(|r| r.error_class.is_none())
        .map(|r| Sighting {
            account_id: &r.account_id,
            at: r.finished_at,
        })
        .collect()
}

/// Moves `last_seen` of the listed accounts' open divergences forward to their latest
/// sighting, where it is more than [`LAST_SEEN_PRECISION`] older; returns the rows
/// changed. Works inside a caller's transaction.
///
/// One statement per chunk of accounts, joined to the divergences through the
/// `(account_id, status)` index, so its cost follows the open rows of those accounts and
/// not their product with the chunk:
///
/// ```sql
/// UPDATE divergences SET last_seen = seen.column2
/// FROM (VALUES (account, at, at - precision), …) AS seen
/// WHERE divergences.account_id = seen.column1 AND divergences.status = 'open'
///   AND divergences.last_seen < seen.column3
/// ```
pub async fn mark_seen<C: ConnectionTrait>(
    db: &C,
    seen: &[Sighting<'_>],
) -> Result<u64, StoreError> {
    let mut latest: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    for s in seen {
        let at = latest.entry(s.account_id).or_insert(s.at);
        *at = Ord::max(*at, s.at);
    }
    let latest: Vec<(&str, DateTime<Utc>)> = latest.into_iter().collect();
    let backend = db.get_database_backend();
    let mut changed = 0;
    let bytes = |(account, _): &(&str, DateTime<Utc>)| row_bytes(3, account.len());
    for chunk in statement_chunks(backend, &latest, bytes) {
        changed += db.execute(&statement(chunk)).await?.rows_affected();
    }
    Ok(changed)
}

/// The UPDATE for one chunk of (account, latest sighting).
fn statement(chunk: &[(&str, DateTime<Utc>)]) -> UpdateStatement {
    let tuples = chunk
        .iter()
        .map(|(account, at)| {
            let due = at
                .checked_sub_signed(LAST_SEEN_PRECISION)
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            ValueTuple::Three((*account).into(), db_time(*at).into(), db_time(due).into())
        })
        .collect();
    let table = divergence::Entity.table_name();
    let column = |c: divergence::Column| Expr::col((table, c.as_str()));
    Query::update()
        .table(divergence::Entity)
        .value(divergence::Column::LastSeen, Expr::col((SEEN, "column2")))
        .from(TableRef::ValuesList(tuples, SEEN.into_iden()))
        .and_where(column(divergence::Column::AccountId).eq(Expr::col((SEEN, "column1"))))
        .and_where(column(divergence::Column::Status).eq(OPEN))
        .and_where(column(divergence::Column::LastSeen).lt(Expr::col((SEEN, "column3"))))
        .to_owned()
}

/// The alias of the sightings' `VALUES` list (its columns are `column1` … `column3` on
/// SQLite and PostgreSQL alike).
const SEEN: &str = "seen";

/// Like [`mark_seen`] inside a savepoint, for a batch being written around refused rows:
/// a refusal leaves `last_seen` as it was (logged), any other error is returned.
pub(super) async fn mark_seen_isolating<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    seen: &[Sighting<'_>],
) -> Result<(), StoreError> {
    use sea_orm::TransactionSession;

    let savepoint = db.begin().await?;
    match mark_seen(&savepoint, seen).await {
        Ok(_) => savepoint.commit().await?,
        Err(e) if e.is_refusal() => {
            savepoint.rollback().await?;
            tracing::warn!(error = %e, "last_seen not moved: the database refused the update");
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};

    #[test]
    fn one_update_joins_the_sightings_to_the_open_rows() {
        let at = DateTime::from_timestamp(1_795_000_120, 0).unwrap_or_default();
        let update = statement(&[("acc-a", at), ("acc-b", at)]);
        let (sql, values) = update.build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"UPDATE "divergences" SET "last_seen" = "seen"."column2" FROM (VALUES ($1, $2, $3), ($4, $5, $6)) AS "seen" WHERE "divergences"."account_id" = "seen"."column1" AND "divergences"."status" = $7 AND "divergences"."last_seen" < "seen"."column3""#
        );
        let due = at - LAST_SEEN_PRECISION;
        assert_eq!(values.0[2], due.into());
        let (sql, _) = update.build(SqliteQueryBuilder);
        assert!(
            sql.contains(r#"FROM (VALUES (?, ?, ?), (?, ?, ?)) AS "seen""#),
            "{sql}"
        );
    }
}
