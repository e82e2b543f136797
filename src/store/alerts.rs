//! Alerts of the risk guards: stored when raised, claimed at the close's due time,
//! cancelled by an operator. A claim and a cancel are both compare-and-set on `status`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::convert::db_time;
use super::entities::alert;
use super::error::StoreError;

/// Status of an alert that will close positions unless cancelled.
pub const PENDING_CLOSE: &str = "pending_close";
/// Status of an alert that closes nothing (detect-only, or a warning).
pub const ALERTED: &str = "alerted";
/// Status after an operator cancelled the close.
pub const CANCELLED: &str = "cancelled";
/// Status while the account's actor closes positions.
pub const CLOSING: &str = "closing";

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
    pub status: String,
    /// When raised.
    pub created_at: DateTime<Utc>,
}

/// Stores `a` (an existing id keeps its row). Works inside a caller's transaction.
pub async fn insert_alert<C: ConnectionTrait>(db: &C, a: &AlertRecord) -> Result<(), StoreError> {
    let row = alert::ActiveModel {
        id: Set(a.id.clone()),
        account_id: Set(a.account_id.clone()),
        kind: Set(a.kind.clone()),
        rule: Set(a.rule.clone()),
        loss: Set(a.loss.map(|d| d.to_string())),
        reference: Set(a.reference.map(|d| d.to_string())),
        message: Set(a.message.clone()),
        close_at: Set(a.close_at.map(db_time)),
        status: Set(a.status.clone()),
        created_at: Set(db_time(a.created_at)),
        updated_at: Set(db_time(a.created_at)),
    };
    alert::Entity::insert(row)
        .on_conflict(
            OnConflict::column(alert::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Moves alert `id` from `from` to `to`; true when this call made the change.
pub async fn transition_alert<C: ConnectionTrait>(
    db: &C,
    id: &str,
    from: &str,
    to: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let r = alert::Entity::update_many()
        .col_expr(alert::Column::Status, Expr::value(to))
        .col_expr(alert::Column::UpdatedAt, Expr::value(db_time(at)))
        .filter(alert::Column::Id.eq(id))
        .filter(alert::Column::Status.eq(from))
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

/// Cancels the pending close of alert `id`; true when it was pending and is now cancelled.
pub async fn cancel_alert<C: ConnectionTrait>(
    db: &C,
    id: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    transition_alert(db, id, PENDING_CLOSE, CANCELLED, at).await
}

/// What an operator's cancel did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The close was pending and is now cancelled.
    Cancelled,
    /// The alert exists but has no pending close; its status.
    NotPending(String),
    /// No alert has that id.
    Unknown,
}

/// Cancels the pending close of alert `id`, and says why not when it was not pending.
pub async fn cancel_pending_close<C: ConnectionTrait>(
    db: &C,
    id: &str,
    at: DateTime<Utc>,
) -> Result<CancelOutcome, StoreError> {
    if cancel_alert(db, id, at).await? {
        return Ok(CancelOutcome::Cancelled);
    }
    Ok(match alert_status(db, id).await? {
        Some(status) => CancelOutcome::NotPending(status),
        None => CancelOutcome::Unknown,
    })
}

/// Why an alert in `status` has no close to cancel, for people.
pub fn not_pending_reason(status: &str) -> &'static str {
    match status {
        ALERTED => "it closes nothing (detect-only account, or a warning)",
        CANCELLED => "its close is already cancelled",
        CLOSING => "its close is under way",
        "closed" => "its close already ran",
        "failed" => "its close already ran and failed",
        _ => "it has no pending close",
    }
}

/// The status of alert `id`, if it is stored.
pub async fn alert_status<C: ConnectionTrait>(
    db: &C,
    id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(alert::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .map(|r| r.status))
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
    rows.into_iter()
        .map(|r| {
            let dec =
                |col: &'static str, v: &Option<String>| -> Result<Option<Decimal>, StoreError> {
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
                id: r.id,
                account_id: r.account_id,
                kind: r.kind,
                rule: r.rule,
                message: r.message,
                close_at: r.close_at,
                status: r.status,
                created_at: r.created_at,
            })
        })
        .collect()
}
