//! Writing a batch so that the rows the database refuses cannot take the others down.
//!
//! A [`Rows`] is one kind of row a persistence batch writes. [`write`] sends it in
//! statement chunks, all or nothing, as fast as it goes. [`write_isolating`] sends each
//! chunk inside a savepoint; a chunk the database refuses is rolled back to its savepoint
//! and split in halves until each refused row stands alone, and the others are written.
//! That costs a few statements per refused row, and nothing when no row is refused, so a
//! caller tries [`write`] first and isolates only after a refusal.

use std::ops::Range;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IdenStatic, Iterable, QueryFilter,
    TransactionSession, TransactionTrait,
};

use super::batch::divergence_row_bytes;
use super::chunks::{row_bytes, statement_chunks, text};
use super::convert::{OPEN, RESOLVED, db_time};
use super::divergences::open_fingerprint_conflict;
use super::entities::{audit_event, divergence, sync_rollup, sync_run};
use super::error::StoreError;

/// Rows of one kind to write.
#[derive(Clone, Copy)]
pub(super) enum Rows<'a> {
    /// New open divergences (an open one with the same fingerprint wins).
    Divergences(&'a [divergence::ActiveModel]),
    /// Open divergences, by id, to resolve at a time.
    Resolve(DateTime<Utc>, &'a [i64]),
    /// Sync reports.
    SyncRuns(&'a [sync_run::ActiveModel]),
    /// Audit events.
    Audits(&'a [audit_event::ActiveModel]),
    /// Hourly sync rollups, added to the stored ones of the same account and hour (at
    /// most one row per key).
    Rollups(&'a [sync_rollup::ActiveModel]),
}

impl Rows<'_> {
    fn slice(&self, range: Range<usize>) -> Self {
        match *self {
            Rows::Divergences(r) => Rows::Divergences(&r[range]),
            Rows::Resolve(at, r) => Rows::Resolve(at, &r[range]),
            Rows::SyncRuns(r) => Rows::SyncRuns(&r[range]),
            Rows::Audits(r) => Rows::Audits(&r[range]),
            Rows::Rollups(r) => Rows::Rollups(&r[range]),
        }
    }

    /// The ranges of rows that go into one statement each (see `chunks`).
    fn statements(&self, backend: DbBackend) -> Vec<Range<usize>> {
        let lens: Vec<usize> = match self {
            Rows::Divergences(r) => lens(statement_chunks(backend, r, divergence_row_bytes)),
            Rows::Resolve(_, r) => lens(statement_chunks(backend, r, |_| row_bytes(1, 0))),
            Rows::SyncRuns(r) => lens(statement_chunks(backend, r, sync_run_bytes)),
            Rows::Audits(r) => lens(statement_chunks(backend, r, audit_bytes)),
            Rows::Rollups(r) => lens(statement_chunks(backend, r, |r| {
                row_bytes(27, text(&r.account_id))
            })),
        };
        let mut start = 0;
        lens.into_iter()
            .map(|n| {
                start += n;
                start - n..start
            })
            .collect()
    }

    /// One statement with every row.
    async fn execute<C: ConnectionTrait>(&self, db: &C) -> Result<(), StoreError> {
        match *self {
            Rows::Divergences(rows) => {
                divergence::Entity::insert_many(rows.iter().cloned())
                    .on_conflict(open_fingerprint_conflict())
                    .exec_without_returning(db)
                    .await?;
            }
            Rows::Resolve(at, ids) => {
                let at = db_time(at);
                divergence::Entity::update_many()
                    .col_expr(divergence::Column::Status, Expr::value(RESOLVED))
                    .col_expr(divergence::Column::ResolvedAt, Expr::value(at))
                    .filter(divergence::Column::Id.is_in(ids.iter().copied()))
                    .filter(divergence::Column::Status.eq(OPEN))
                    .exec(db)
                    .await?;
            }
            Rows::SyncRuns(rows) => {
                sync_run::Entity::insert_many(rows.iter().cloned())
                    .exec_without_returning(db)
                    .await?;
            }
            Rows::Audits(rows) => {
                audit_event::Entity::insert_many(rows.iter().cloned())
                    .exec_without_returning(db)
                    .await?;
            }
            Rows::Rollups(rows) => {
                sync_rollup::Entity::insert_many(rows.iter().cloned())
                    .on_conflict(same_hour(db.get_database_backend()))
                    .exec_without_returning(db)
                    .await?;
            }
        }
        Ok(())
    }
}

/// `ON CONFLICT (account_id, hour) DO UPDATE`: every counter added, the larger maximum.
fn same_hour(backend: DbBackend) -> OnConflict {
    use sync_rollup::Column as C;
    let mut on = OnConflict::columns([C::AccountId, C::Hour]);
    for c in C::iter().filter(|c| !matches!(c, C::Id | C::AccountId | C::Hour | C::MaxMs)) {
        let name = c.as_str();
        on.value(
            c,
            Expr::cust(format!("sync_rollups.{name} + excluded.{name}")),
        );
    }
    let larger = match backend {
        DbBackend::Postgres => "GREATEST(sync_rollups.max_ms, excluded.max_ms)",
        _ => "max(sync_rollups.max_ms, excluded.max_ms)",
    };
    on.value(C::MaxMs, Expr::cust(larger));
    on.to_owned()
}

fn lens<T>(chunks: Vec<&[T]>) -> Vec<usize> {
    chunks.iter().map(|c| c.len()).collect()
}

fn sync_run_bytes(r: &sync_run::ActiveModel) -> usize {
    row_bytes(
        10,
        text(&r.account_id) + text(&r.error_class) + text(&r.error_message),
    )
}

fn audit_bytes(r: &audit_event::ActiveModel) -> usize {
    row_bytes(4, text(&r.account_id) + text(&r.kind) + text(&r.detail))
}

/// Writes every row, one statement per chunk; the first error ends it. Run it inside a
/// transaction to make it all or nothing.
pub(super) async fn write<C: ConnectionTrait>(db: &C, rows: Rows<'_>) -> Result<(), StoreError> {
    for range in rows.statements(db.get_database_backend()) {
        rows.slice(range).execute(db).await?;
    }
    Ok(())
}

/// Writes every row the database accepts; returns the index and error of each row it
/// refused (see [`StoreError::is_refusal`]). Any other error (the database is away) ends
/// it: then the caller's transaction must be rolled back.
pub(super) async fn write_isolating<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    rows: Rows<'_>,
) -> Result<Vec<(usize, StoreError)>, StoreError> {
    let mut refused = Vec::new();
    let mut todo: Vec<Range<usize>> = rows.statements(db.get_database_backend());
    todo.reverse();
    while let Some(range) = todo.pop() {
        let savepoint = db.begin().await?;
        match rows.slice(range.clone()).execute(&savepoint).await {
            Ok(()) => savepoint.commit().await?,
            Err(e) if e.is_refusal() => {
                savepoint.rollback().await?;
                if range.len() == 1 {
                    refused.push((range.start, e));
                } else {
                    // The first half first: rows keep their order.
                    let mid = range.start + range.len() / 2;
                    todo.push(mid..range.end);
                    todo.push(range.start..mid);
                }
            }
            Err(e) => return Err(e),
        }
    }
    refused.sort_by_key(|(i, _)| *i);
    Ok(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_cover_every_row_once_in_order() {
        let ids: Vec<i64> = (0..1_234).collect();
        let rows = Rows::Resolve(Utc::now(), &ids);
        for backend in [DbBackend::Sqlite, DbBackend::Postgres] {
            let ranges = rows.statements(backend);
            assert_eq!(ranges.first().map(|r| r.start), Some(0));
            assert_eq!(ranges.last().map(|r| r.end), Some(1_234));
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        }
    }
}
