//! One write of the persistence buffer, in one transaction.
//!
//! First as fast as it goes: every kind of row in a few multi-row statements. If the
//! database refuses a row (see [`StoreError::is_refusal`]), the same batch is written
//! again with each statement in a savepoint, bisecting the refused ones out: those go to
//! `dead_letters` with their error, the account's sync report is marked `malformed`
//! naming the field and value, and every other row is written in the same transaction.
//! Nothing here reports to the supervisor: a dead letter is the data's fault, not the
//! account's, and the breaker does not count it.
//!
//! Each transaction first checks the fences of the chunk's items (see
//! `store::check_fences`) and leaves out those of accounts whose lease moved on; they are
//! noted in the chunk and never written.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};

use super::Converge;
use super::chunk::Chunk;
use crate::broker::ErrorClass;
use crate::store::{self, Converged, DeadLetter, StoreError, SyncRollup, SyncRunRecord, Wanted};

/// What a write did: per converge (in the order given), what changed.
pub(super) struct Written {
    /// The divergences opened and resolved, per converge.
    pub changes: Vec<Converged>,
    /// Items that went to `dead_letters`.
    pub dead_letters: usize,
    /// Every sync report of the batch, with its opened/resolved counts: each one counts in
    /// its hour's rollup, whether or not it was also kept as a `sync_runs` row.
    pub runs: Vec<SyncRunRecord>,
}

/// Writes the chunk's converges, reports and audit events in one transaction, leaving out
/// (and noting in the chunk) the fenced ones; isolates refused rows only when the fast
/// attempt was refused; a dead letter is dated `now`. Only the reports
/// [`SyncRunRecord::kept_raw`] become `sync_runs` rows; the others still move `last_seen`
/// of their account's open divergences, and the caller folds them all into rollups once
/// the write is durable. On success the chunk holds exactly what was written.
pub(super) async fn write(
    db: &DatabaseConnection,
    chunk: &mut Chunk,
    now: DateTime<Utc>,
) -> Result<Written, StoreError> {
    match write_fast(db, chunk).await {
        Err(e) if e.is_refusal() => {
            tracing::warn!(error = %e, "the database refused a row; writing the batch around it");
            write_isolating(db, chunk, now).await
        }
        other => other,
    }
}

/// Checks the chunk's fences in `txn` and leaves out the fenced items.
async fn fence(txn: &DatabaseTransaction, chunk: &mut Chunk) -> Result<(), StoreError> {
    let check = store::check_fences(txn, chunk.fences()).await?;
    chunk.drop_fenced(&check);
    Ok(())
}

fn wanted<'a>(converges: &[&'a Converge]) -> Vec<Wanted<'a>> {
    converges
        .iter()
        .map(|c| Wanted {
            account_id: &c.account_id,
            at: c.at,
            desired: &c.desired,
            held: &c.held,
        })
        .collect()
}

/// The converges' reports with their opened/resolved counts, then the other reports.
fn all_reports(
    converges: &[&Converge],
    changes: &[Converged],
    reports: &[SyncRunRecord],
) -> Vec<SyncRunRecord> {
    let mut out = Vec::with_capacity(changes.len() + reports.len());
    for (c, done) in converges.iter().zip(changes) {
        let mut report = c.report.clone();
        report.divergences_opened = done.opened.len();
        report.divergences_resolved = done.resolved.len();
        out.push(report);
    }
    out.extend(reports.iter().cloned());
    out
}

async fn write_fast(db: &DatabaseConnection, chunk: &mut Chunk) -> Result<Written, StoreError> {
    let txn = db.begin().await?;
    fence(&txn, chunk).await?;
    let converges: Vec<&Converge> = chunk.converges.iter().collect();
    let (converges, reports, audits) = (&converges[..], &chunk.reports, &chunk.audits);
    let changes = store::converge_many(&txn, &wanted(converges)).await?;
    let runs = all_reports(converges, &changes, reports);
    store::record_sync_runs(&txn, &raw(&runs)).await?;
    store::record_sightings(&txn, runs.iter().filter(|r| !r.kept_raw())).await?;
    store::append_audits(&txn, audits).await?;
    txn.commit().await?;
    Ok(Written {
        changes,
        dead_letters: 0,
        runs,
    })
}

/// The reports kept as rows (the others only count in rollups and move `last_seen`).
fn raw(runs: &[SyncRunRecord]) -> Vec<SyncRunRecord> {
    runs.iter().filter(|r| r.kept_raw()).cloned().collect()
}

/// Marks `report` failed as malformed with `message` (the first refusal of its sync).
fn mark_malformed(report: &mut SyncRunRecord, message: String) {
    if report.error_class.as_deref() != Some(ErrorClass::Malformed.as_str()) {
        report.error_class = Some(ErrorClass::Malformed.as_str().to_owned());
        report.error_message = Some(message);
    }
}

async fn write_isolating(
    db: &DatabaseConnection,
    chunk: &mut Chunk,
    now: DateTime<Utc>,
) -> Result<Written, StoreError> {
    let txn = db.begin().await?;
    fence(&txn, chunk).await?;
    let converges: Vec<&Converge> = chunk.converges.iter().collect();
    let (converges, reports, audits) = (&converges[..], &chunk.reports, &chunk.audits);
    let mut letters = Vec::new();

    let (changes, refusals) = store::converge_many_isolating(&txn, &wanted(converges)).await?;
    let mut runs = all_reports(converges, &changes, reports);
    for r in refusals {
        let c = converges[r.wanted];
        let (message, letter) = match &r.divergence {
            Some(d) => {
                let message = store::divergence_refusal(&c.account_id, d, &r.error);
                let letter = DeadLetter::divergence(&c.account_id, c.at, d, &message, now);
                (message, letter)
            }
            None => {
                let message = format!("cannot resolve divergence {}: {}", r.fingerprint, r.error);
                let letter =
                    DeadLetter::resolution(&c.account_id, c.at, &r.fingerprint, &message, now);
                (message, letter)
            }
        };
        mark_malformed(&mut runs[r.wanted], letter.error.clone());
        tracing::warn!(account = %c.account_id, kind = %letter.kind, error = %message, "row refused, kept as a dead letter");
        letters.push(letter);
    }

    // A refused report is replaced by a bare one that says why, so the sync still shows.
    let raw = raw(&runs);
    store::record_sightings_isolating(&txn, runs.iter().filter(|r| !r.kept_raw())).await?;
    let mut substitutes = Vec::new();
    for (i, error) in store::record_sync_runs_isolating(&txn, &raw).await? {
        let run = &raw[i];
        let message = store::sync_run_refusal(run, &error);
        let letter = DeadLetter::sync_run(run, &message, now);
        tracing::warn!(account = %run.account_id, kind = %letter.kind, error = %message, "row refused, kept as a dead letter");
        let account = letter.account_id.clone().unwrap_or_default();
        substitutes.push(SyncRunRecord {
            finished_at: run.finished_at,
            error_class: Some(ErrorClass::Malformed.as_str().to_owned()),
            error_message: Some(letter.error.clone()),
            ..SyncRunRecord::begun(&account, run.started_at)
        });
        letters.push(letter);
    }
    for (i, error) in store::record_sync_runs_isolating(&txn, &substitutes).await? {
        // Its dead letter is already there.
        tracing::warn!(account = %substitutes[i].account_id, error = %error, "even a bare sync report was refused");
    }

    for (i, error) in store::append_audits_isolating(&txn, audits).await? {
        let event = &audits[i];
        let message = store::audit_refusal(event, &error);
        let letter = DeadLetter::audit(event, &message, now);
        tracing::warn!(kind = %letter.kind, error = %message, "row refused, kept as a dead letter");
        letters.push(letter);
    }

    store::record_dead_letters(&txn, &letters).await?;
    txn.commit().await?;
    Ok(Written {
        changes,
        dead_letters: letters.len(),
        runs,
    })
}

/// Adds `rollups` to the stored ones in one transaction. A rollup the database refuses
/// goes to `dead_letters` (dated `now`) and the others are written; returns how many went
/// there.
pub(super) async fn write_rollups(
    db: &DatabaseConnection,
    rollups: &[SyncRollup],
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let txn = db.begin().await?;
    match store::add_rollups(&txn, rollups).await {
        Ok(()) => {
            txn.commit().await?;
            return Ok(0);
        }
        Err(e) if e.is_refusal() => {
            tracing::warn!(error = %e, "the database refused a rollup; writing the others");
            txn.rollback().await?;
        }
        Err(e) => return Err(e),
    }
    let txn = db.begin().await?;
    let mut letters = Vec::new();
    for (rollup, error) in store::add_rollups_isolating(&txn, rollups).await? {
        let letter = DeadLetter::rollup(&rollup, &error.to_string(), now);
        tracing::warn!(account = %rollup.account_id, kind = %letter.kind, error = %error, "row refused, kept as a dead letter");
        letters.push(letter);
    }
    store::record_dead_letters(&txn, &letters).await?;
    txn.commit().await?;
    Ok(letters.len())
}
