//! Close intents: every close (or cancel) a guard means to send, recorded before the broker
//! is called, one per (account, ticket, alert).
//!
//! Invariants:
//! - an intent is recorded before its call and never twice: the insert does nothing on a
//!   conflict, and says what was there (owner, epoch, state), so two racing rounds record
//!   one intent;
//! - `state` only moves forward: `pending` → `sent` → `done` | `failed` | `gone`, and
//!   `done` / `gone` are final (no statement here changes them);
//! - under high availability (a [`Fence`]) the insert, the adoption of an earlier owner's
//!   intent and the `sent` mark (which lets a call out) hold only while the account's
//!   lease names this owner and epoch, judged by the database's `now()`; the other marks
//!   hold only while the intent is still this owner's and epoch's, so a stale owner never
//!   overwrites what a newer one adopted. These statements are PostgreSQL's (a fence
//!   never exists on SQLite, which is single-instance); without a fence the conditions
//!   are absent.

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, Statement, Value,
};

use super::convert::{db_time, ticket_to_db};
use super::entities::close_intent;
use super::error::StoreError;
use super::fence::Fence;

/// What an intent is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentKind {
    /// Closing a position.
    Close,
    /// Cancelling a pending order.
    Cancel,
}

impl IntentKind {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Close => "close",
            Self::Cancel => "cancel",
        }
    }
}

/// Where an intent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentState {
    /// Recorded; no call went out yet.
    Pending,
    /// A call may have reached the broker; its answer is not known.
    Sent,
    /// The broker (or a check afterwards) said it is closed.
    Done,
    /// The call failed and a check saw it still open.
    Failed,
    /// Verified closed at the broker without this intent's call being answered.
    Gone,
}

impl IntentState {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Gone => "gone",
        }
    }

    /// Whether nothing is left to do (`done` or `gone`).
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Gone)
    }
}

/// Which intent: its account, ticket and alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntentKey<'a> {
    /// Account.
    pub account: &'a str,
    /// Ticket of the position (or order).
    pub ticket: u64,
    /// The alert the close is made under.
    pub alert: &'a str,
}

/// An intent as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseIntent {
    /// Account.
    pub account_id: String,
    /// Ticket.
    pub ticket: u64,
    /// Alert.
    pub alert_id: String,
    /// Close or cancel.
    pub kind: IntentKind,
    /// Where it stands.
    pub state: IntentState,
    /// The instance acting on it (`None` without high availability).
    pub owner: Option<String>,
    /// Its lease epoch (0 without high availability).
    pub epoch: i64,
    /// What the broker said last, when a call failed.
    pub last_error: Option<String>,
}

impl CloseIntent {
    /// Whether it was recorded (or adopted) under `fence`: always without high
    /// availability; otherwise by this owner under this very epoch.
    pub fn made_under(&self, fence: Option<&Fence>) -> bool {
        fence.is_none_or(|f| {
            self.owner.as_deref() == Some(f.instance_id.as_str()) && self.epoch == f.epoch
        })
    }
}

/// What recording an intent found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded now, `pending`, under the caller's fence.
    New,
    /// It was there already (recorded by this round's retries, by another round, or by an
    /// earlier owner): as stored.
    Existing(CloseIntent),
    /// Nothing recorded: the account's lease no longer names the caller's owner and epoch.
    NotOwner,
}

/// The lease condition of a statement whose parameters `$owner` and `$epoch` are the
/// fence, for the account in parameter `$account`.
fn leased(account: usize, owner: usize, epoch: usize) -> String {
    format!(
        "EXISTS (SELECT 1 FROM account_leases l WHERE l.account_id = ${account} \
         AND l.owner = ${owner} AND l.epoch = ${epoch} AND l.expires_at > now())"
    )
}

fn pg(sql: String, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

fn key_values(key: IntentKey<'_>) -> Vec<Value> {
    vec![
        key.account.into(),
        ticket_to_db(key.ticket).0.into(),
        key.alert.into(),
    ]
}

/// Records the intent to close (or cancel) `key` as `pending` before any broker call;
/// says whether it existed, and as what.
pub async fn record_intent<C: ConnectionTrait>(
    db: &C,
    key: IntentKey<'_>,
    kind: IntentKind,
    fence: Option<&Fence>,
    at: DateTime<Utc>,
) -> Result<Recorded, StoreError> {
    let inserted = match fence {
        None => {
            let row = close_intent::ActiveModel {
                account_id: Set(key.account.to_owned()),
                ticket: Set(ticket_to_db(key.ticket).0),
                alert_id: Set(key.alert.to_owned()),
                kind: Set(kind.as_str().to_owned()),
                state: Set(IntentState::Pending.as_str().to_owned()),
                owner: Set(None),
                epoch: Set(0),
                created_at: Set(db_time(at)),
                updated_at: Set(db_time(at)),
                last_error: Set(None),
            };
            close_intent::Entity::insert(row)
                .on_conflict(
                    OnConflict::columns([
                        close_intent::Column::AccountId,
                        close_intent::Column::Ticket,
                        close_intent::Column::AlertId,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .exec_without_returning(db)
                .await?
        }
        Some(f) => {
            let sql = format!(
                "INSERT INTO close_intents \
                 (account_id, ticket, alert_id, kind, state, owner, epoch, created_at, updated_at) \
                 SELECT $1, $2, $3, $4, 'pending', $5, $6, $7, $7 WHERE {} \
                 ON CONFLICT (account_id, ticket, alert_id) DO NOTHING",
                leased(1, 5, 6)
            );
            let mut values = key_values(key);
            values.extend([
                kind.as_str().into(),
                f.instance_id.clone().into(),
                f.epoch.into(),
                db_time(at).into(),
            ]);
            db.execute_raw(pg(sql, values)).await?.rows_affected()
        }
    };
    if inserted == 1 {
        return Ok(Recorded::New);
    }
    Ok(match find_intent(db, key).await? {
        Some(existing) => Recorded::Existing(existing),
        None if fence.is_some() => Recorded::NotOwner,
        None => {
            return Err(StoreError::Database(sea_orm::DbErr::Custom(format!(
                "close intent {}/{}/{} neither inserted nor found",
                key.account, key.ticket, key.alert
            ))));
        }
    })
}

/// Takes over `intent`, recorded by an earlier owner (or epoch), for `fence`: true when
/// this call did (the intent was still as read, not final, and the lease is the
/// caller's). Its state is kept: the caller verifies and marks it.
pub async fn adopt_intent<C: ConnectionTrait>(
    db: &C,
    intent: &CloseIntent,
    fence: &Fence,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let sql = format!(
        "UPDATE close_intents SET owner = $4, epoch = $5, updated_at = $6 \
         WHERE account_id = $1 AND ticket = $2 AND alert_id = $3 \
         AND state NOT IN ('done', 'gone') \
         AND owner IS NOT DISTINCT FROM $7 AND epoch = $8 AND {}",
        leased(1, 4, 5)
    );
    let key = IntentKey {
        account: &intent.account_id,
        ticket: intent.ticket,
        alert: &intent.alert_id,
    };
    let mut values = key_values(key);
    values.extend([
        fence.instance_id.clone().into(),
        fence.epoch.into(),
        db_time(at).into(),
        intent.owner.clone().into(),
        intent.epoch.into(),
    ]);
    Ok(db.execute_raw(pg(sql, values)).await?.rows_affected() == 1)
}

/// Moves intent `key` to `to` (with `error` as its last error, when given): true when
/// this call did. A final intent is never changed; under a fence, only an intent of
/// that owner and epoch is, and `sent` (a call is about to go out) only while the lease
/// is still the caller's.
pub async fn mark_intent<C: ConnectionTrait>(
    db: &C,
    key: IntentKey<'_>,
    fence: Option<&Fence>,
    to: IntentState,
    error: Option<&str>,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let finals = [IntentState::Done.as_str(), IntentState::Gone.as_str()];
    let changed = match fence {
        None => {
            let mut update = close_intent::Entity::update_many()
                .col_expr(close_intent::Column::State, Expr::value(to.as_str()))
                .col_expr(close_intent::Column::UpdatedAt, Expr::value(db_time(at)));
            if let Some(error) = error {
                update = update.col_expr(close_intent::Column::LastError, Expr::value(error));
            }
            update
                .filter(close_intent::Column::AccountId.eq(key.account))
                .filter(close_intent::Column::Ticket.eq(ticket_to_db(key.ticket).0))
                .filter(close_intent::Column::AlertId.eq(key.alert))
                .filter(close_intent::Column::State.is_not_in(finals))
                .exec(db)
                .await?
                .rows_affected
        }
        Some(f) => {
            let lease = if to == IntentState::Sent {
                format!(" AND {}", leased(1, 5, 6))
            } else {
                String::new()
            };
            let sql = format!(
                "UPDATE close_intents SET state = $4, updated_at = $7, \
                 last_error = COALESCE($8, last_error) \
                 WHERE account_id = $1 AND ticket = $2 AND alert_id = $3 \
                 AND state NOT IN ('done', 'gone') AND owner = $5 AND epoch = $6{lease}"
            );
            let mut values = key_values(key);
            values.extend([
                to.as_str().into(),
                f.instance_id.clone().into(),
                f.epoch.into(),
                db_time(at).into(),
                error.map(str::to_owned).into(),
            ]);
            db.execute_raw(pg(sql, values)).await?.rows_affected()
        }
    };
    Ok(changed == 1)
}

/// Intent `key`, if recorded.
pub async fn find_intent<C: ConnectionTrait>(
    db: &C,
    key: IntentKey<'_>,
) -> Result<Option<CloseIntent>, StoreError> {
    close_intent::Entity::find_by_id((
        key.account.to_owned(),
        ticket_to_db(key.ticket).0,
        key.alert.to_owned(),
    ))
    .one(db)
    .await?
    .map(intent)
    .transpose()
}

/// `account`'s intents under `alert` that are not final (`done` or `gone`), by ticket.
pub async fn open_intents<C: ConnectionTrait>(
    db: &C,
    account: &str,
    alert: &str,
) -> Result<Vec<CloseIntent>, StoreError> {
    let finals = [IntentState::Done.as_str(), IntentState::Gone.as_str()];
    let rows = close_intent::Entity::find()
        .filter(close_intent::Column::AccountId.eq(account))
        .filter(close_intent::Column::AlertId.eq(alert))
        .filter(close_intent::Column::State.is_not_in(finals))
        .order_by_asc(close_intent::Column::Ticket)
        .all(db)
        .await?;
    rows.into_iter().map(intent).collect()
}

fn intent(r: close_intent::Model) -> Result<CloseIntent, StoreError> {
    let bad = |column: &'static str, value: &str, reason: String| StoreError::BadData {
        table: "close_intents",
        column,
        row: format!("{}/{}/{}", r.account_id, r.ticket, r.alert_id),
        value: value.to_owned(),
        reason,
    };
    let ticket = r
        .ticket
        .parse::<u64>()
        .map_err(|e| bad("ticket", &r.ticket, e.to_string()))?;
    let kind = match r.kind.as_str() {
        "close" => IntentKind::Close,
        "cancel" => IntentKind::Cancel,
        other => return Err(bad("kind", other, "not close or cancel".into())),
    };
    let state = [
        IntentState::Pending,
        IntentState::Sent,
        IntentState::Done,
        IntentState::Failed,
        IntentState::Gone,
    ]
    .into_iter()
    .find(|s| s.as_str() == r.state)
    .ok_or_else(|| bad("state", &r.state, "not a close intent state".into()))?;
    Ok(CloseIntent {
        account_id: r.account_id,
        ticket,
        alert_id: r.alert_id,
        kind,
        state,
        owner: r.owner,
        epoch: r.epoch,
        last_error: r.last_error,
    })
}
