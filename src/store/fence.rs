//! Fenced writes: under high availability, a side effect of an account is written only
//! while this instance still holds the account's lease under the epoch the side effect
//! was produced in.
//!
//! The check is the first statement of the writing transaction: it takes a `FOR SHARE`
//! lock on the lease rows still held (owner and epoch as given, not expired by the
//! database's clock), so another instance's claim of one of them (`FOR UPDATE SKIP
//! LOCKED`) skips it and a renewal waits: the answer stays true until the commit. Items
//! whose fence is not in the answer are left out; the rest of the batch commits. Epochs
//! only grow and an expired lease is never renewed, so a refusal is final: a fenced item
//! is dropped, never retried.
//!
//! Items without a fence (no high availability, and always on SQLite) are never checked
//! and cost no statement.

use std::collections::{BTreeMap, HashSet};

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement,
    TransactionTrait,
};

use super::error::StoreError;

/// Who may write for an account, and under which epoch: the instance that owns the
/// account's lease and the epoch it claimed it under. A side effect carries its account's
/// fence (or none without high availability, and always on SQLite), and is written only
/// while the lease row still names this owner and epoch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fence {
    /// This instance's id (the lease's `owner`).
    pub instance_id: String,
    /// The lease's epoch when this instance claimed it.
    pub epoch: i64,
}

/// A write refused by the fence: the account, the epoch it was produced under, and the
/// lease as the database showed it then (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencedOut {
    /// Account.
    pub account_id: String,
    /// The epoch the refused items were produced under.
    pub epoch: i64,
    /// The lease's owner now (`None`: free, or no row).
    pub lease_owner: Option<String>,
    /// The lease's epoch now (`None`: no row).
    pub lease_epoch: Option<i64>,
}

/// The lease rows a transaction found still held, locked until it ends.
#[derive(Debug, Default)]
pub struct FenceCheck {
    held: HashSet<(String, String, i64)>,
    refused: BTreeMap<(String, i64), FencedOut>,
}

impl FenceCheck {
    /// Whether an item of `account` produced under `fence` may be written: always without
    /// a fence.
    pub fn allows(&self, account: &str, fence: Option<&Fence>) -> bool {
        fence.is_none_or(|f| {
            self.held
                .contains(&(account.to_owned(), f.instance_id.clone(), f.epoch))
        })
    }

    /// The fences refused, one per account and epoch.
    pub fn refused(&self) -> Vec<FencedOut> {
        self.refused.values().cloned().collect()
    }
}

fn stmt(sql: &str, values: Vec<sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// Checks, in transaction `txn` and as its first statement, which of `items` (account and
/// fence) still hold, locking their lease rows `FOR SHARE` until the transaction ends.
/// Without any fence, nothing is asked. Fences need PostgreSQL.
pub async fn check_fences<'a, C: ConnectionTrait>(
    txn: &C,
    items: impl IntoIterator<Item = (&'a str, &'a Fence)>,
) -> Result<FenceCheck, StoreError> {
    let mut wanted: BTreeMap<&str, Vec<(&str, i64)>> = BTreeMap::new();
    for (account, fence) in items {
        let of = wanted.entry(fence.instance_id.as_str()).or_default();
        if !of.contains(&(account, fence.epoch)) {
            of.push((account, fence.epoch));
        }
    }
    let mut check = FenceCheck::default();
    if wanted.is_empty() {
        return Ok(check);
    }
    if txn.get_database_backend() != DbBackend::Postgres {
        return Err(StoreError::Database(DbErr::Custom(
            "fenced writes need PostgreSQL: SQLite is single-instance".into(),
        )));
    }
    for (instance, items) in &wanted {
        let mut accounts: Vec<&str> = items.iter().map(|(a, _)| *a).collect();
        accounts.sort_unstable();
        accounts.dedup();
        let json = serde_json::to_string(&accounts).unwrap_or_else(|_| "[]".into());
        let rows = txn
            .query_all_raw(stmt(
                "SELECT account_id, epoch FROM account_leases \
                 WHERE account_id = ANY(SELECT jsonb_array_elements_text($1::jsonb)) \
                   AND owner = $2 AND expires_at > now() \
                 FOR SHARE",
                vec![json.into(), (*instance).into()],
            ))
            .await?;
        for r in rows {
            let account: String = r.try_get("", "account_id")?;
            let epoch: i64 = r.try_get("", "epoch")?;
            check.held.insert((account, (*instance).to_owned(), epoch));
        }
    }
    let mut refused = Vec::new();
    for (instance, items) in &wanted {
        for (account, epoch) in items {
            let key = ((*account).to_owned(), (*instance).to_owned(), *epoch);
            if !check.held.contains(&key) {
                refused.push(((*account).to_owned(), *epoch));
            }
        }
    }
    if !refused.is_empty() {
        check.refused = describe(txn, refused).await?;
    }
    Ok(check)
}

/// The lease rows of refused items as they are now (not locked: only for the log).
async fn describe<C: ConnectionTrait>(
    txn: &C,
    refused: Vec<(String, i64)>,
) -> Result<BTreeMap<(String, i64), FencedOut>, StoreError> {
    let accounts: Vec<&str> = refused.iter().map(|(a, _)| a.as_str()).collect();
    let json = serde_json::to_string(&accounts).unwrap_or_else(|_| "[]".into());
    let rows = txn
        .query_all_raw(stmt(
            "SELECT account_id, owner, epoch FROM account_leases \
             WHERE account_id = ANY(SELECT jsonb_array_elements_text($1::jsonb))",
            vec![json.into()],
        ))
        .await?;
    let mut now: BTreeMap<String, (Option<String>, i64)> = BTreeMap::new();
    for r in rows {
        now.insert(
            r.try_get("", "account_id")?,
            (r.try_get("", "owner")?, r.try_get("", "epoch")?),
        );
    }
    Ok(refused
        .into_iter()
        .map(|(account, epoch)| {
            let lease = now.get(&account);
            let out = FencedOut {
                account_id: account.clone(),
                epoch,
                lease_owner: lease.and_then(|l| l.0.clone()),
                lease_epoch: lease.map(|l| l.1),
            };
            ((account, epoch), out)
        })
        .collect())
}

/// Runs `write` in a transaction of its own that first checks `account`'s `fence`: the
/// write's answer when it holds (or without a fence), `Err(FencedOut)` when the lease
/// moved on (nothing written).
pub async fn write_fenced<T>(
    db: &DatabaseConnection,
    account: &str,
    fence: Option<&Fence>,
    write: impl AsyncFnOnce(&DatabaseTransaction) -> Result<T, StoreError>,
) -> Result<Result<T, FencedOut>, StoreError> {
    let txn = db.begin().await?;
    let check = check_fences(&txn, fence.map(|f| (account, f))).await?;
    if let Some(out) = check.refused().into_iter().next() {
        txn.rollback().await?;
        return Ok(Err(out));
    }
    let answer = write(&txn).await?;
    txn.commit().await?;
    Ok(Ok(answer))
}

#[cfg(test)]
impl FenceCheck {
    /// A check that found `held` still held and every other fence of `refused` refused.
    pub(crate) fn of(held: &[(&str, &Fence)], refused: &[(&str, &Fence)]) -> Self {
        let key = |(a, f): &(&str, &Fence)| ((*a).to_owned(), f.instance_id.clone(), f.epoch);
        let out = |(a, f): &(&str, &Fence)| FencedOut {
            account_id: (*a).to_owned(),
            epoch: f.epoch,
            lease_owner: None,
            lease_epoch: None,
        };
        Self {
            held: held.iter().map(key).collect(),
            refused: refused
                .iter()
                .map(|r| (((*r.0).to_owned(), r.1.epoch), out(r)))
                .collect(),
        }
    }
}
