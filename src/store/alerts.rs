//! Alerts of the risk guards: stored before they are sent, claimed by one closer at a
//! time, cancelled by an operator. A claim and a cancel are both compare-and-set on
//! `status` ([`AlertStatus`] says which moves exist); a cancel is audited in the same
//! transaction, with who asked and why.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionSession, TransactionTrait,
};

use super::convert::db_time;
use super::entities::alert;
use super::error::StoreError;
use super::journal::{AuditEvent, append_audit};
pub use crate::guards::AlertStatus;

/// An alert as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRecord {
    /// Alert id.
    pub id: String,
    /// Account.
    pub account_id: String,
    /// `warn` or `breach`.
    pub kind: String,
    /// Rule name.
    pub rule: String,
    /// Loss measured.
    pub loss: Option<Decimal>,
    /// Its reference.
    pub reference: Option<Decimal>,
    /// A sentence for people.
    pub message: String,
    /// When positions will be closed.
    pub close_at: Option<DateTime<Utc>>,
    /// Current status.
    pub status: AlertStatus,
    /// When raised.
    pub created_at: DateTime<Utc>,
}

/// Stores `a`; false when a row with its id already exists (which is then left as it is).
/// Works inside a caller's transaction.
pub async fn insert_alert<C: ConnectionTrait>(db: &C, a: &AlertRecord) -> Result<bool, StoreError> {
    let row = alert::ActiveModel {
        id: Set(a.id.clone()),
        account_id: Set(a.account_id.clone()),
        kind: Set(a.kind.clone()),
        rule: Set(a.rule.clone()),
        loss: Set(a.loss.map(|d| d.to_string())),
        reference: Set(a.reference.map(|d| d.to_string())),
        message: Set(a.message.clone()),
        close_at: Set(a.close_at.map(db_time)),
        status: Set(a.status.as_str().to_owned()),
        created_at: Set(db_time(a.created_at)),
        updated_at: Set(db_time(a.created_at)),
    };
    let inserted = alert::Entity::insert(row)
        .on_conflict(
            OnConflict::column(alert::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(inserted == 1)
}

/// Moves alert `id` to `to` if its status is one of `from`; true when this call made the
/// change.
pub async fn transition_alert<C: ConnectionTrait>(
    db: &C,
    id: &str,
    from: &[AlertStatus],
    to: AlertStatus,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let r = alert::Entity::update_many()
        .col_expr(alert::Column::Status, Expr::value(to.as_str()))
        .col_expr(alert::Column::UpdatedAt, Expr::value(db_time(at)))
        .filter(alert::Column::Id.eq(id))
        .filter(alert::Column::Status.is_in(from.iter().map(|s| s.as_str())))
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

/// What a closer's claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This caller holds the claim now (the status is `closing`).
    Won,
    /// Someone else holds it, or the alert cannot be closed any more: its status.
    Lost(AlertStatus),
    /// No alert has that id.
    Missing,
}

/// Claims the close of alert `id` for the caller: one claimant at a time.
pub async fn claim_close<C: ConnectionTrait>(
    db: &C,
    id: &str,
    at: DateTime<Utc>,
) -> Result<Claim, StoreError> {
    if transition_alert(db, id, &AlertStatus::CLAIMABLE, AlertStatus::Closing, at).await? {
        return Ok(Claim::Won);
    }
    Ok(match alert_status(db, id).await? {
        Some(status) => Claim::Lost(status),
        None => Claim::Missing,
    })
}

/// What an operator's cancel did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The enforcement was stopped (and audited).
    Cancelled,
    /// The alert exists but has nothing to cancel; its status.
    NotCancellable(AlertStatus),
    /// No alert has that id.
    Unknown,
}

/// Stops the enforcement of alert `id` (its pending close, or the closes of a breach that
/// still holds) and audits it in the same transaction with `by` and `reason`.
pub async fn cancel_enforcement<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    id: &str,
    at: DateTime<Utc>,
    by: &str,
    reason: &str,
) -> Result<CancelOutcome, StoreError> {
    let txn = db.begin().await?;
    let Some(row) = alert::Entity::find_by_id(id.to_owned()).one(&txn).await? else {
        return Ok(CancelOutcome::Unknown);
    };
    let from = parse_status(&row)?;
    if !transition_alert(
        &txn,
        id,
        &AlertStatus::CANCELLABLE,
        AlertStatus::Cancelled,
        at,
    )
    .await?
    {
        return Ok(CancelOutcome::NotCancellable(from));
    }
    let event = AuditEvent {
        at,
        account_id: Some(row.account_id.clone()),
        kind: "close_cancelled".into(),
        detail: serde_json::json!({"alert": id, "from": from, "by": by, "reason": reason}),
    };
    append_audit(&txn, &event).await?;
    txn.commit().await?;
    Ok(CancelOutcome::Cancelled)
}

/// Stops every enforcement of `account` (see [`cancel_enforcement`]); returns the ids of
/// the alerts it cancelled.
pub async fn cancel_account_enforcement<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    account: &str,
    at: DateTime<Utc>,
    by: &str,
    reason: &str,
) -> Result<Vec<String>, StoreError> {
    let mut cancelled = Vec::new();
    for alert in enforcing_alerts(db, account).await? {
        if cancel_enforcement(db, &alert.id, at, by, reason).await? == CancelOutcome::Cancelled {
            cancelled.push(alert.id);
        }
    }
    Ok(cancelled)
}

/// The status of alert `id`, if it is stored.
pub async fn alert_status<C: ConnectionTrait>(
    db: &C,
    id: &str,
) -> Result<Option<AlertStatus>, StoreError> {
    alert::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .map(|r| parse_status(&r))
        .transpose()
}

fn parse_status(r: &alert::Model) -> Result<AlertStatus, StoreError> {
    r.status.parse().map_err(|reason| StoreError::BadData {
        table: "alerts",
        column: "status",
        row: r.id.clone(),
        value: r.status.clone(),
        reason,
    })
}

/// Alerts, newest first, optionally of one account.
pub async fn list_alerts<C: ConnectionTrait>(
    db: &C,
    account: Option<&str>,
    limit: u64,
) -> Result<Vec<AlertRecord>, StoreError> {
    let mut q = alert::Entity::find();
    if let Some(a) = account {
        q = q.filter(alert::Column::AccountId.eq(a));
    }
    let rows = q
        .order_by_desc(alert::Column::CreatedAt)
        .limit(limit)
        .all(db)
        .await?;
    rows.into_iter().map(record).collect()
}

/// `account`'s alerts that may still close positions, oldest first: what a guard resumes
/// after a restart.
pub async fn enforcing_alerts<C: ConnectionTrait>(
    db: &C,
    account: &str,
) -> Result<Vec<AlertRecord>, StoreError> {
    let rows = alert::Entity::find()
        .filter(alert::Column::AccountId.eq(account))
        .filter(alert::Column::Status.is_in(AlertStatus::CANCELLABLE.iter().map(|s| s.as_str())))
        .order_by_asc(alert::Column::CreatedAt)
        .all(db)
        .await?;
    rows.into_iter().map(record).collect()
}

fn record(r: alert::Model) -> Result<AlertRecord, StoreError> {
    let dec = |col: &'static str, v: &Option<String>| -> Result<Option<Decimal>, StoreError> {
        v.as_deref()
            .map(|t| {
                t.parse::<Decimal>().map_err(|e| StoreError::BadData {
                    table: "alerts",
                    column: col,
                    row: r.id.clone(),
                    value: t.to_owned(),
                    reason: e.to_string(),
                })
            })
            .transpose()
    };
    Ok(AlertRecord {
        loss: dec("loss", &r.loss)?,
        reference: dec("reference", &r.reference)?,
        status: parse_status(&r)?,
        id: r.id,
        account_id: r.account_id,
        kind: r.kind,
        rule: r.rule,
        message: r.message,
        close_at: r.close_at,
        created_at: r.created_at,
    })
}
