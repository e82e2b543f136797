//! The claim of an alert's close under high availability: the claim names its owner and
//! lease epoch, and a newer owner of the account takes over a close an earlier one left
//! `closing` (it died, or lost the account, mid-round).
//!
//! Invariants:
//! - a claim holds only while the account's lease names the claimer's owner and epoch,
//!   judged by the database's `now()`;
//! - a `closing` alert is taken over only by a larger epoch than the one that claimed it
//!   (or when no epoch was recorded: a claim made without high availability); the same
//!   owner and epoch claim it again (a retry of its own round); a smaller epoch never;
//! - without high availability the plain [`claim_close`](super::claim_close) applies,
//!   and these columns stay empty.
//!
//! PostgreSQL only, like the leases.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use super::convert::db_time;
use super::error::StoreError;
use super::fence::Fence;
use crate::guards::AlertStatus;

/// Who had claimed a close taken over.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Claimant {
    /// The claiming instance, when recorded.
    pub owner: Option<String>,
    /// Its lease epoch, when recorded.
    pub epoch: Option<i64>,
}

/// What a fenced claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FencedClaim {
    /// The caller holds the claim now; `from` is the earlier owner's claim it took over,
    /// `None` when the alert was claimable or already the caller's.
    Won {
        /// The claim taken over.
        from: Option<Claimant>,
    },
    /// A newer owner holds it, or the alert cannot be closed any more: its status.
    Lost(AlertStatus),
    /// No alert has that id.
    Missing,
    /// The account's lease no longer names the caller's owner and epoch.
    NotOwner,
}

/// Claims the close of alert `id` for `fence`'s owner and epoch (see the module's
/// invariants).
pub async fn claim_close_fenced<C: ConnectionTrait>(
    db: &C,
    id: &str,
    fence: &Fence,
    at: DateTime<Utc>,
) -> Result<FencedClaim, StoreError> {
    let claimable = AlertStatus::CLAIMABLE
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let leased = |owner: usize, epoch: usize| {
        format!(
            "EXISTS (SELECT 1 FROM account_leases l WHERE l.account_id = a.account_id \
             AND l.owner = ${owner} AND l.epoch = ${epoch} AND l.expires_at > now())"
        )
    };
    let sql = format!(
        "WITH before AS (SELECT id, status, claimed_by, claimed_epoch FROM alerts \
                         WHERE id = $1 FOR UPDATE) \
         UPDATE alerts a SET status = 'closing', updated_at = $2, claimed_by = $3, \
                             claimed_epoch = $4 \
         FROM before b \
         WHERE a.id = b.id AND {} AND (b.status IN ({claimable}) \
           OR (b.status = 'closing' AND (b.claimed_epoch IS NULL OR b.claimed_epoch < $4 \
               OR (b.claimed_epoch = $4 AND b.claimed_by = $3)))) \
         RETURNING b.status AS was, b.claimed_by AS was_by, b.claimed_epoch AS was_epoch",
        leased(3, 4)
    );
    let values: Vec<Value> = vec![
        id.into(),
        db_time(at).into(),
        fence.instance_id.clone().into(),
        fence.epoch.into(),
    ];
    let stmt = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    if let Some(row) = db.query_one_raw(stmt).await? {
        let was: String = row.try_get("", "was")?;
        let owner: Option<String> = row.try_get("", "was_by")?;
        let epoch: Option<i64> = row.try_get("", "was_epoch")?;
        let ours =
            owner.as_deref() == Some(fence.instance_id.as_str()) && epoch == Some(fence.epoch);
        let from =
            (was == AlertStatus::Closing.as_str() && !ours).then_some(Claimant { owner, epoch });
        return Ok(FencedClaim::Won { from });
    }
    let sql = format!(
        "SELECT a.status, {} AS owned FROM alerts a WHERE a.id = $1",
        leased(2, 3)
    );
    let values: Vec<Value> = vec![
        id.into(),
        fence.instance_id.clone().into(),
        fence.epoch.into(),
    ];
    let stmt = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    let Some(row) = db.query_one_raw(stmt).await? else {
        return Ok(FencedClaim::Missing);
    };
    let owned: bool = row.try_get("", "owned")?;
    if !owned {
        return Ok(FencedClaim::NotOwner);
    }
    let status: String = row.try_get("", "status")?;
    status
        .parse()
        .map(FencedClaim::Lost)
        .map_err(|reason| StoreError::BadData {
            table: "alerts",
            column: "status",
            row: id.to_owned(),
            value: status,
            reason,
        })
}
