//! Append-only records: one row per sync run, and the audit trail.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{ConnectionTrait, EntityTrait, TransactionTrait};

use super::convert::{count_to_db, db_time};
use super::entities::{audit_event, sync_run};
use super::error::StoreError;
use super::isolate::{Rows, write, write_isolating};
use super::seen::{mark_seen, mark_seen_isolating, sightings};

/// The outcome of one sync of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRunRecord {
    /// Account that was synced.
    pub account_id: String,
    /// When the sync started.
    pub started_at: DateTime<Utc>,
    /// When the sync finished.
    pub finished_at: DateTime<Utc>,
    /// Wall time, measured with a monotonic clock.
    pub duration: Duration,
    /// Positions the broker reported.
    pub positions: usize,
    /// Open bot trades compared.
    pub trades: usize,
    /// Divergences this sync opened.
    pub divergences_opened: usize,
    /// Divergences this sync resolved.
    pub divergences_resolved: usize,
    /// Error class when the sync failed, e.g. `timeout`.
    pub error_class: Option<String>,
    /// Error message when the sync failed.
    pub error_message: Option<String>,
}

impl SyncRunRecord {
    /// The record of a sync of `account_id` that started (and, until told otherwise,
    /// finished) at `started_at`: nothing counted, no error.
    pub fn begun(account_id: &str, started_at: DateTime<Utc>) -> Self {
        Self {
            account_id: account_id.to_owned(),
            started_at,
            finished_at: started_at,
            duration: Duration::ZERO,
            positions: 0,
            trades: 0,
            divergences_opened: 0,
            divergences_resolved: 0,
            error_class: None,
            error_message: None,
        }
    }

    /// Whether an operator needs this sync as a row of its own: it failed, opened or
    /// resolved a divergence, or carries a message (a report that stands for several syncs
    /// folded while the database was away says so in its message). Every other sync is
    /// only counted in its hour's rollup.
    pub fn kept_raw(&self) -> bool {
        self.error_class.is_some()
            || self.error_message.is_some()
            || self.divergences_opened > 0
            || self.divergences_resolved > 0
    }
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Account concerned, if any.
    pub account_id: Option<String>,
    /// What happened, e.g. `circuit_opened`.
    pub kind: String,
    /// Details, stored as JSON text.
    pub detail: serde_json::Value,
}

/// Stores `run`; returns its row id. A successful run also moves `last_seen` of its
/// account's open divergences (see [`super::mark_seen`]). Works inside a caller's
/// transaction.
pub async fn record_sync_run<C: ConnectionTrait>(
    db: &C,
    run: &SyncRunRecord,
) -> Result<i64, StoreError> {
    let result = sync_run::Entity::insert(sync_run_row(run)?)
        .exec(db)
        .await?;
    mark_seen(db, &sightings([run])).await?;
    Ok(result.last_insert_id)
}

/// Stores many runs with one statement per chunk, then moves `last_seen` of the open
/// divergences of the accounts whose sync succeeded, in one more statement (see
/// [`super::mark_seen`]). Works inside a caller's transaction.
pub async fn record_sync_runs<C: ConnectionTrait>(
    db: &C,
    runs: &[SyncRunRecord],
) -> Result<(), StoreError> {
    let rows = runs
        .iter()
        .map(sync_run_row)
        .collect::<Result<Vec<_>, _>>()?;
    write(db, Rows::SyncRuns(&rows)).await?;
    mark_seen(db, &sightings(runs)).await?;
    Ok(())
}

/// Moves `last_seen` of the open divergences of the accounts whose sync in `runs`
/// succeeded (see [`super::mark_seen`]), without storing the runs: for syncs that are
/// only counted in a rollup. Works inside a caller's transaction.
pub async fn record_sightings<'a, C: ConnectionTrait>(
    db: &C,
    runs: impl IntoIterator<Item = &'a SyncRunRecord>,
) -> Result<(), StoreError> {
    mark_seen(db, &sightings(runs)).await?;
    Ok(())
}

/// Like [`record_sightings`] inside a savepoint: a refusal leaves `last_seen` as it was.
pub async fn record_sightings_isolating<'a, C: ConnectionTrait + TransactionTrait>(
    db: &C,
    runs: impl IntoIterator<Item = &'a SyncRunRecord>,
) -> Result<(), StoreError> {
    mark_seen_isolating(db, &sightings(runs)).await
}

/// Like [`record_sync_runs`], but a run the store cannot convert or the database refuses
/// is left out instead of failing the batch (and is no sighting); returns the index and
/// error of each. Run it inside a transaction: each statement gets a savepoint.
pub async fn record_sync_runs_isolating<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    runs: &[SyncRunRecord],
) -> Result<Vec<(usize, StoreError)>, StoreError> {
    let mut refused = Vec::new();
    let mut rows = Vec::with_capacity(runs.len());
    let mut index = Vec::with_capacity(runs.len());
    for (i, run) in runs.iter().enumerate() {
        match sync_run_row(run) {
            Ok(row) => {
                rows.push(row);
                index.push(i);
            }
            Err(e) => refused.push((i, e)),
        }
    }
    for (k, e) in write_isolating(db, Rows::SyncRuns(&rows)).await? {
        refused.push((index[k], e));
    }
    refused.sort_by_key(|(i, _)| *i);
    let written = runs
        .iter()
        .enumerate()
        .filter(|(i, _)| refused.binary_search_by_key(i, |(r, _)| *r).is_err())
        .map(|(_, run)| run);
    mark_seen_isolating(db, &sightings(written)).await?;
    Ok(refused)
}

/// Appends many events with one statement per chunk. Works inside a caller's transaction.
pub async fn append_audits<C: ConnectionTrait>(
    db: &C,
    events: &[AuditEvent],
) -> Result<(), StoreError> {
    let rows: Vec<_> = events.iter().map(audit_row).collect();
    write(db, Rows::Audits(&rows)).await
}

/// Like [`append_audits`], but an event the database refuses is left out instead of
/// failing the batch; returns the index and error of each. Run it inside a transaction:
/// each statement gets a savepoint.
pub async fn append_audits_isolating<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    events: &[AuditEvent],
) -> Result<Vec<(usize, StoreError)>, StoreError> {
    let rows: Vec<_> = events.iter().map(audit_row).collect();
    write_isolating(db, Rows::Audits(&rows)).await
}

fn sync_run_row(run: &SyncRunRecord) -> Result<sync_run::ActiveModel, StoreError> {
    let duration_ms =
        i64::try_from(run.duration.as_millis()).map_err(|_| StoreError::Unstorable {
            field: "sync_runs.duration_ms",
            value: format!("{:?}", run.duration),
            reason: "does not fit in BIGINT milliseconds".to_owned(),
        })?;
    Ok(sync_run::ActiveModel {
        id: NotSet,
        account_id: Set(run.account_id.clone()),
        started_at: Set(db_time(run.started_at)),
        finished_at: Set(db_time(run.finished_at)),
        duration_ms: Set(duration_ms),
        positions: Set(count_to_db("sync_runs.positions", run.positions)?),
        trades: Set(count_to_db("sync_runs.trades", run.trades)?),
        divergences_opened: Set(count_to_db(
            "sync_runs.divergences_opened",
            run.divergences_opened,
        )?),
        divergences_resolved: Set(count_to_db(
            "sync_runs.divergences_resolved",
            run.divergences_resolved,
        )?),
        error_class: Set(run.error_class.clone()),
        error_message: Set(run.error_message.clone()),
    })
}

fn audit_row(event: &AuditEvent) -> audit_event::ActiveModel {
    audit_event::ActiveModel {
        id: NotSet,
        at: Set(db_time(event.at)),
        account_id: Set(event.account_id.clone()),
        kind: Set(event.kind.clone()),
        detail: Set(event.detail.to_string()),
    }
}

/// Appends `event` to the audit trail; returns its row id. Works inside a caller's
/// transaction.
pub async fn append_audit<C: ConnectionTrait>(
    db: &C,
    event: &AuditEvent,
) -> Result<i64, StoreError> {
    let result = audit_event::Entity::insert(audit_row(event))
        .exec(db)
        .await?;
    Ok(result.last_insert_id)
}

/// The audit trail, oldest first; only `account`'s entries when given.
pub async fn list_audit<C: ConnectionTrait>(
    db: &C,
    account: Option<&str>,
) -> Result<Vec<AuditEvent>, StoreError> {
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
    let mut query = audit_event::Entity::find();
    if let Some(account) = account {
        query = query.filter(audit_event::Column::AccountId.eq(account));
    }
    let rows = query
        .order_by_asc(audit_event::Column::At)
        .order_by_asc(audit_event::Column::Id)
        .all(db)
        .await?;
    rows.into_iter()
        .map(|row| {
            let detail = serde_json::from_str(&row.detail).map_err(|e| StoreError::BadData {
                table: "audit_events",
                column: "detail",
                row: row.id.to_string(),
                value: row.detail.clone(),
                reason: e.to_string(),
            })?;
            Ok(AuditEvent {
                at: row.at,
                account_id: row.account_id,
                kind: row.kind,
                detail,
            })
        })
        .collect()
}
