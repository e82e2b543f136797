//! Account leases and instance heartbeats: the statements of high availability.
//!
//! PostgreSQL only (SQLite is single-instance). Every expiry is judged by the database's
//! clock (`now()`), never by an instance's. Invariants:
//!
//! - an account has at most one owner with an unexpired lease: a claim takes only rows
//!   that are free or expired, locked `FOR UPDATE SKIP LOCKED`, so two claimers never wait
//!   on each other nor take the same row;
//! - the epoch (the fencing token) grows by one on every claim and is never reset, so a
//!   later owner always holds a larger epoch than any earlier one;
//! - a renewal extends only the leases still held under the same owner *and* epoch and not
//!   yet expired: a lease that expired, even if nobody took it, is gone and must be claimed
//!   again (under a new epoch).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

use super::error::StoreError;

/// The channel on which an instance that gives up its leases tells the others
/// (`LISTEN`/`NOTIFY`); the payload is its instance id.
pub const LEASE_CHANNEL: &str = "mt5r_leases";

/// A lease held: the account and the epoch it was claimed under.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Lease {
    /// Account.
    pub account_id: String,
    /// The epoch of the claim.
    pub epoch: i64,
}

/// A row of `account_leases` as the database sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// Account.
    pub account_id: String,
    /// Owner, `None` when free.
    pub owner: Option<String>,
    /// Epoch.
    pub epoch: i64,
    /// Expiry, on the database's clock.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether the lease is held and unexpired by the database's clock.
    pub live: bool,
}

fn postgres_only<C: ConnectionTrait>(db: &C) -> Result<(), StoreError> {
    match db.get_database_backend() {
        DbBackend::Postgres => Ok(()),
        _ => Err(StoreError::Database(DbErr::Custom(
            "leases need PostgreSQL: SQLite is single-instance".into(),
        ))),
    }
}

fn stmt(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn leases_json(leases: &[Lease]) -> String {
    let rows: Vec<serde_json::Value> = leases
        .iter()
        .map(|l| serde_json::json!({"a": l.account_id, "e": l.epoch}))
        .collect();
    serde_json::Value::Array(rows).to_string()
}

/// Registers `instance` or renews its heartbeat (both on the database's clock), and
/// returns how many instances are live: heartbeat within `ttl` and not stopping, this one
/// included. Rows of instances silent for a day are deleted.
pub async fn heartbeat<C: ConnectionTrait>(
    db: &C,
    instance: &str,
    ttl: Duration,
) -> Result<u64, StoreError> {
    postgres_only(db)?;
    db.execute_raw(stmt(
        "INSERT INTO instances (id, started_at, heartbeat_at, stopping) \
         VALUES ($1, now(), now(), false) \
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), stopping = false",
        vec![instance.into()],
    ))
    .await?;
    db.execute_raw(stmt(
        "DELETE FROM instances WHERE heartbeat_at < now() - interval '1 day'",
        vec![],
    ))
    .await?;
    let row = db
        .query_one_raw(stmt(
            "SELECT count(*) AS live FROM instances \
             WHERE NOT stopping AND heartbeat_at > now() - $1::bigint * interval '1 millisecond'",
            vec![millis(ttl).into()],
        ))
        .await?;
    let live: i64 = match row {
        Some(r) => r.try_get("", "live")?,
        None => 0,
    };
    Ok(u64::try_from(live).unwrap_or(0))
}

/// Makes sure every account of `accounts` has a lease row (free, epoch 0, when new).
pub async fn ensure_leases<C: ConnectionTrait>(
    db: &C,
    accounts: &[String],
) -> Result<(), StoreError> {
    postgres_only(db)?;
    if accounts.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_string(accounts).unwrap_or_else(|_| "[]".into());
    db.execute_raw(stmt(
        "INSERT INTO account_leases (account_id, owner, epoch, expires_at) \
         SELECT a, NULL, 0, NULL FROM jsonb_array_elements_text($1::jsonb) AS a \
         ON CONFLICT (account_id) DO NOTHING",
        vec![json.into()],
    ))
    .await?;
    Ok(())
}

/// Claims for `instance` up to `max` leases among `accounts` that are free or expired (by
/// the database's clock), in random order, skipping rows another claimer holds locked.
/// Each claimed lease gets the next epoch and expires `ttl` from the database's now.
pub async fn claim<C: ConnectionTrait>(
    db: &C,
    instance: &str,
    accounts: &[String],
    max: u64,
    ttl: Duration,
) -> Result<Vec<Lease>, StoreError> {
    postgres_only(db)?;
    if accounts.is_empty() || max == 0 {
        return Ok(Vec::new());
    }
    let json = serde_json::to_string(accounts).unwrap_or_else(|_| "[]".into());
    let rows = db
        .query_all_raw(stmt(
            "WITH known AS (SELECT jsonb_array_elements_text($2::jsonb) AS account_id), \
             free AS ( \
               SELECT l.account_id FROM account_leases l \
               JOIN known k ON k.account_id = l.account_id \
               WHERE l.owner IS NULL OR l.expires_at IS NULL OR l.expires_at <= now() \
               ORDER BY random() LIMIT $3 \
               FOR UPDATE OF l SKIP LOCKED) \
             UPDATE account_leases l SET owner = $1, epoch = l.epoch + 1, \
               expires_at = now() + $4::bigint * interval '1 millisecond' \
             FROM free WHERE l.account_id = free.account_id \
             RETURNING l.account_id, l.epoch",
            vec![
                instance.into(),
                json.into(),
                i64::try_from(max).unwrap_or(i64::MAX).into(),
                millis(ttl).into(),
            ],
        ))
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(Lease {
            account_id: r.try_get("", "account_id")?,
            epoch: r.try_get("", "epoch")?,
        });
    }
    out.sort();
    Ok(out)
}

/// Renews, in one statement, every lease of `held` still owned by `instance` under the
/// same epoch and not yet expired: each then expires `ttl` from the database's now.
/// Returns the accounts renewed; a lease missing from the answer is lost.
pub async fn renew<C: ConnectionTrait>(
    db: &C,
    instance: &str,
    held: &[Lease],
    ttl: Duration,
) -> Result<Vec<String>, StoreError> {
    postgres_only(db)?;
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let rows = db
        .query_all_raw(stmt(
            "UPDATE account_leases l \
             SET expires_at = now() + $3::bigint * interval '1 millisecond' \
             FROM (SELECT x->>'a' AS account_id, (x->>'e')::bigint AS epoch \
                   FROM jsonb_array_elements($2::jsonb) AS x) h \
             WHERE l.account_id = h.account_id AND l.owner = $1 AND l.epoch = h.epoch \
               AND l.expires_at > now() \
             RETURNING l.account_id",
            vec![
                instance.into(),
                leases_json(held).into(),
                millis(ttl).into(),
            ],
        ))
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(r.try_get("", "account_id")?);
    }
    Ok(out)
}

/// Frees the leases of `leases` that `instance` still holds under the same epoch (the
/// epoch stays: the next claim increments it). Returns how many were freed.
pub async fn release<C: ConnectionTrait>(
    db: &C,
    instance: &str,
    leases: &[Lease],
) -> Result<u64, StoreError> {
    postgres_only(db)?;
    if leases.is_empty() {
        return Ok(0);
    }
    let done = db
        .execute_raw(stmt(
            "UPDATE account_leases l SET owner = NULL, expires_at = NULL \
             FROM (SELECT x->>'a' AS account_id, (x->>'e')::bigint AS epoch \
                   FROM jsonb_array_elements($2::jsonb) AS x) h \
             WHERE l.account_id = h.account_id AND l.owner = $1 AND l.epoch = h.epoch",
            vec![instance.into(), leases_json(leases).into()],
        ))
        .await?;
    Ok(done.rows_affected())
}

/// Shutdown: frees every lease of `instance`, marks it stopping (it no longer counts as
/// live) and notifies the other instances on [`LEASE_CHANNEL`]. Returns the leases freed.
pub async fn release_all<C: ConnectionTrait>(db: &C, instance: &str) -> Result<u64, StoreError> {
    postgres_only(db)?;
    let done = db
        .execute_raw(stmt(
            "UPDATE account_leases SET owner = NULL, expires_at = NULL WHERE owner = $1",
            vec![instance.into()],
        ))
        .await?;
    db.execute_raw(stmt(
        "UPDATE instances SET stopping = true WHERE id = $1",
        vec![instance.into()],
    ))
    .await?;
    notify(db, instance).await?;
    Ok(done.rows_affected())
}

/// Tells the other instances (on [`LEASE_CHANNEL`]) that leases were freed.
pub async fn notify<C: ConnectionTrait>(db: &C, instance: &str) -> Result<(), StoreError> {
    postgres_only(db)?;
    db.execute_raw(stmt(
        "SELECT pg_notify($1, $2)",
        vec![LEASE_CHANNEL.into(), instance.into()],
    ))
    .await?;
    Ok(())
}

/// Every lease row, by account, with whether it is live by the database's clock.
pub async fn list_leases<C: ConnectionTrait>(db: &C) -> Result<Vec<LeaseRow>, StoreError> {
    postgres_only(db)?;
    let rows = db
        .query_all_raw(stmt(
            "SELECT account_id, owner, epoch, expires_at, \
               (owner IS NOT NULL AND expires_at IS NOT NULL AND expires_at > now()) AS live \
             FROM account_leases ORDER BY account_id",
            vec![],
        ))
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(LeaseRow {
            account_id: r.try_get("", "account_id")?,
            owner: r.try_get("", "owner")?,
            epoch: r.try_get("", "epoch")?,
            expires_at: r.try_get("", "expires_at")?,
            live: r.try_get("", "live")?,
        });
    }
    Ok(out)
}

/// An instance as the `instances` table and the leases see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InstanceRow {
    /// Instance id.
    pub id: String,
    /// When it registered.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat, on the database's clock.
    pub heartbeat_at: DateTime<Utc>,
    /// Seconds since that heartbeat, by the database's clock.
    pub heartbeat_age_secs: f64,
    /// Whether it is shutting down.
    pub stopping: bool,
    /// Accounts whose lease it holds, unexpired.
    pub owned_accounts: i64,
}

/// Every registered instance with the accounts it owns now, by id.
pub async fn list_instances<C: ConnectionTrait>(db: &C) -> Result<Vec<InstanceRow>, StoreError> {
    postgres_only(db)?;
    let rows = db
        .query_all_raw(stmt(
            "SELECT i.id, i.started_at, i.heartbeat_at, i.stopping, \
               EXTRACT(EPOCH FROM now() - i.heartbeat_at)::float8 AS age, \
               (SELECT count(*) FROM account_leases l \
                 WHERE l.owner = i.id AND l.expires_at > now()) AS owned \
             FROM instances i ORDER BY i.id",
            vec![],
        ))
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(InstanceRow {
            id: r.try_get("", "id")?,
            started_at: r.try_get("", "started_at")?,
            heartbeat_at: r.try_get("", "heartbeat_at")?,
            heartbeat_age_secs: r.try_get("", "age")?,
            stopping: r.try_get("", "stopping")?,
            owned_accounts: r.try_get("", "owned")?,
        });
    }
    Ok(out)
}
