//! Divergence lifecycle: open once per fingerprint, resolve when gone, reopen as a new row.
//!
//! Invariants kept here and by the schema: at most one open row per (account, fingerprint)
//! (a partial unique index); applying the same [`DivergenceDiff`] twice changes nothing.
//! Opening sets `first_seen` and `last_seen`; resolving sets `resolved_at` and leaves
//! `last_seen` alone; later sightings move `last_seen` (see `seen`).

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, TransactionSession,
    TransactionTrait,
};

use super::batch::divergence_row_bytes;
use super::chunks::{row_bytes, statement_chunks};
use super::convert::{self, OPEN, RESOLVED, db_time};
use super::entities::divergence;
use super::error::StoreError;
use super::seen::{Sighting, mark_seen};
use crate::domain::Divergence;

/// Lifecycle state of a stored divergence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DivergenceStatus {
    /// Still observed.
    Open,
    /// No longer observed.
    Resolved,
}

impl DivergenceStatus {
    /// The text stored in `divergences.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            DivergenceStatus::Open => OPEN,
            DivergenceStatus::Resolved => RESOLVED,
        }
    }
}

impl fmt::Display for DivergenceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DivergenceStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            OPEN => Ok(DivergenceStatus::Open),
            RESOLVED => Ok(DivergenceStatus::Resolved),
            _ => Err(format!(
                "unknown divergence status {s:?} (expected open or resolved)"
            )),
        }
    }
}

/// A divergence as stored: the domain value plus its row id and lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDivergence {
    /// Row id.
    pub id: i64,
    /// Account the divergence was found on.
    pub account_id: String,
    /// The divergence, with the fingerprint it was stored under.
    pub divergence: Divergence,
    /// Open or resolved.
    pub status: DivergenceStatus,
    /// When it was first seen.
    pub first_seen: DateTime<Utc>,
    /// When a sync last observed it, to [`super::LAST_SEEN_PRECISION`]; kept as it was when
    /// the divergence resolves.
    pub last_seen: DateTime<Utc>,
    /// When it went away, if it did.
    pub resolved_at: Option<DateTime<Utc>>,
    /// An operator's acknowledgement, if any (it then needs no attention).
    pub acknowledgement: Option<super::Acknowledgement>,
}

/// The changes one sync makes to an account's open divergences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DivergenceDiff {
    /// Account the diff applies to.
    pub account_id: String,
    /// When the sync observed the changes.
    pub at: DateTime<Utc>,
    /// Divergences seen now and not open before.
    pub opened: Vec<Divergence>,
    /// Fingerprints of open divergences no longer seen.
    pub resolved: Vec<String>,
}

/// What applying a diff actually changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffOutcome {
    /// Rows inserted as open.
    pub opened: usize,
    /// Open rows marked resolved.
    pub resolved: usize,
}

/// The account's open divergences, oldest first.
pub async fn open_divergences<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
) -> Result<Vec<StoredDivergence>, StoreError> {
    list_divergences(db, account_id, Some(DivergenceStatus::Open)).await
}

/// The account's divergences, optionally only those in `status`, oldest first.
pub async fn list_divergences<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
    status: Option<DivergenceStatus>,
) -> Result<Vec<StoredDivergence>, StoreError> {
    let mut query = divergence::Entity::find().filter(divergence::Column::AccountId.eq(account_id));
    if let Some(status) = status {
        query = query.filter(divergence::Column::Status.eq(status.as_str()));
    }
    let rows = query
        .order_by_asc(divergence::Column::FirstSeen)
        .order_by_asc(divergence::Column::Id)
        .all(db)
        .await?;
    rows.iter().map(stored_from_row).collect()
}

/// Applies `diff` atomically: inserts each opened divergence unless one with the same
/// fingerprint is already open, and resolves the open rows whose fingerprint is listed.
///
/// Runs in its own transaction, or in a savepoint when `db` is already a transaction, so
/// a persistence batch can group several writes. A fingerprint listed both as opened and
/// resolved is contradictory; it is treated as open. Idempotent: a second application of
/// the same diff returns `DiffOutcome { opened: 0, resolved: 0 }`.
pub async fn apply_diff<C: TransactionTrait>(
    db: &C,
    diff: &DivergenceDiff,
) -> Result<DiffOutcome, StoreError> {
    let rows: Vec<_> = diff
        .opened
        .iter()
        .map(|d| convert::divergence_row(&diff.account_id, d, diff.at))
        .collect();
    let opened_fps: HashSet<&str> = diff.opened.iter().map(|d| d.fingerprint.as_str()).collect();
    let resolved_fps: Vec<&str> = diff
        .resolved
        .iter()
        .map(String::as_str)
        .filter(|fp| !opened_fps.contains(fp))
        .collect();

    let txn = db.begin().await?;
    let mut outcome = DiffOutcome::default();
    let backend = txn.get_database_backend();
    for chunk in statement_chunks(backend, &rows, divergence_row_bytes) {
        let inserted = divergence::Entity::insert_many(chunk.iter().cloned())
            .on_conflict(open_fingerprint_conflict())
            .exec_without_returning(&txn)
            .await?;
        outcome.opened += usize::try_from(inserted).unwrap_or(usize::MAX);
    }
    let at = db_time(diff.at);
    for chunk in statement_chunks(backend, &resolved_fps, |fp| row_bytes(1, fp.len())) {
        let result = divergence::Entity::update_many()
            .col_expr(divergence::Column::Status, Expr::value(RESOLVED))
            .col_expr(divergence::Column::ResolvedAt, Expr::value(at))
            .filter(divergence::Column::AccountId.eq(diff.account_id.as_str()))
            .filter(divergence::Column::Status.eq(OPEN))
            .filter(divergence::Column::Fingerprint.is_in(chunk.iter().copied()))
            .exec(&txn)
            .await?;
        outcome.resolved += usize::try_from(result.rows_affected).unwrap_or(usize::MAX);
    }
    txn.commit().await?;
    Ok(outcome)
}

/// What [`converge`] changed: the divergences it opened and the fingerprints it resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Converged {
    /// Newly opened divergences.
    pub opened: Vec<Divergence>,
    /// Fingerprints of divergences resolved.
    pub resolved: Vec<String>,
}

/// Brings the account's open divergences to exactly `desired`, observed at `at`: opens what
/// is new, resolves what is gone, and marks the rest seen at `at` (a write only when their
/// `last_seen` is more than [`super::LAST_SEEN_PRECISION`] older, see [`super::mark_seen`]).
///
/// Idempotent by construction, so a sender may re-send its latest state after a crash or a
/// lost acknowledgement without duplicating or losing anything. Pass a transaction to make
/// it part of a batch.
pub async fn converge<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    account_id: &str,
    at: DateTime<Utc>,
    desired: &[Divergence],
) -> Result<Converged, StoreError> {
    let open: HashSet<String> = divergence::Entity::find()
        .filter(divergence::Column::AccountId.eq(account_id))
        .filter(divergence::Column::Status.eq(OPEN))
        .all(db)
        .await?
        .into_iter()
        .map(|row| row.fingerprint)
        .collect();
    let mut wanted: HashSet<&str> = HashSet::with_capacity(desired.len());
    let opened: Vec<Divergence> = desired
        .iter()
        .filter(|d| wanted.insert(d.fingerprint.as_str()) && !open.contains(&d.fingerprint))
        .cloned()
        .collect();
    let mut resolved: Vec<String> = open
        .into_iter()
        .filter(|fp| !wanted.contains(fp.as_str()))
        .collect();
    resolved.sort();
    let sighting = Sighting { account_id, at };
    if opened.is_empty() && resolved.is_empty() {
        mark_seen(db, &[sighting]).await?;
        return Ok(Converged::default());
    }
    let diff = DivergenceDiff {
        account_id: account_id.to_owned(),
        at,
        opened,
        resolved,
    };
    apply_diff(db, &diff).await?;
    mark_seen(db, &[sighting]).await?;
    Ok(Converged {
        opened: diff.opened,
        resolved: diff.resolved,
    })
}

/// `ON CONFLICT (account_id, fingerprint) WHERE status = 'open' DO NOTHING`: targets the
/// partial unique index, on SQLite and PostgreSQL alike. The literal must be inline SQL,
/// not a bound parameter, or neither database can match the index's predicate.
pub(super) fn open_fingerprint_conflict() -> OnConflict {
    OnConflict::columns([
        divergence::Column::AccountId,
        divergence::Column::Fingerprint,
    ])
    .target_and_where(Expr::cust("status = 'open'"))
    .do_nothing()
    .to_owned()
}

pub(super) fn stored_from_row(row: &divergence::Model) -> Result<StoredDivergence, StoreError> {
    let status = row.status.parse().map_err(|reason| StoreError::BadData {
        table: "divergences",
        column: "status",
        row: row.id.to_string(),
        value: row.status.clone(),
        reason,
    })?;
    Ok(StoredDivergence {
        id: row.id,
        account_id: row.account_id.clone(),
        divergence: convert::divergence_from_row(row)?,
        status,
        first_seen: row.first_seen,
        last_seen: row.last_seen,
        resolved_at: row.resolved_at,
        acknowledgement: super::acks::acknowledgement(row),
    })
}
