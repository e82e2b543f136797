//! Dead letters: items of a batch the database refused, kept with the error for an
//! operator, so that one bad item never blocks the others.
//!
//! De-duplicated by (account, kind, key): recording the same item again moves
//! `last_seen`, keeps the latest error and payload and counts the occurrence. Every text
//! is stored without U+0000 (as `\0`), since that may be why the item was refused.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder};

use super::chunks::{row_bytes, statement_chunks, text};
use super::convert::db_time;
use super::entities::dead_letter;
use super::error::StoreError;
use super::journal::{AuditEvent, SyncRunRecord};
use super::rollups::SyncRollup;
use crate::domain::Divergence;

/// An item the database refused.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Account of the item, if it has one.
    pub account_id: Option<String>,
    /// What the item is: `divergence`, `divergence_resolution`, `sync_run`, `sync_rollup`,
    /// `audit_event`.
    pub kind: String,
    /// Identity of the item within its account and kind: the same item has the same key
    /// each time it is sent (a divergence's fingerprint, a hash of a report's content).
    pub key: String,
    /// The item.
    pub payload: serde_json::Value,
    /// Why it was refused (the last time).
    pub error: String,
    /// First refusal.
    pub first_seen: DateTime<Utc>,
    /// Last refusal.
    pub last_seen: DateTime<Utc>,
    /// Refusals so far.
    pub count: u64,
}

/// Text as stored here: U+0000 spelled `\0`.
pub(crate) fn printable(text: &str) -> String {
    text.replace('\0', "\\0")
}

/// A stable 64-bit hash (FNV-1a) of `text` in hex: a key for items without an identity.
pub(crate) fn content_key(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

impl DeadLetter {
    fn new(
        account_id: Option<&str>,
        kind: &str,
        key: String,
        payload: serde_json::Value,
        error: &str,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            account_id: account_id.map(printable),
            kind: kind.to_owned(),
            key: printable(&key),
            payload,
            error: printable(error),
            first_seen: at,
            last_seen: at,
            count: 1,
        }
    }

    /// A divergence of `account_id` observed `seen` that could not be opened.
    pub fn divergence(
        account_id: &str,
        seen: DateTime<Utc>,
        divergence: &Divergence,
        error: &str,
        at: DateTime<Utc>,
    ) -> Self {
        let payload = serde_json::json!({
            "account_id": account_id,
            "at": seen,
            "divergence": divergence,
        });
        let key = divergence.fingerprint.clone();
        Self::new(Some(account_id), "divergence", key, payload, error, at)
    }

    /// The resolution of an open divergence (by fingerprint) that could not be written.
    pub fn resolution(
        account_id: &str,
        seen: DateTime<Utc>,
        fingerprint: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> Self {
        let payload = serde_json::json!({
            "account_id": account_id,
            "at": seen,
            "fingerprint": fingerprint,
        });
        let key = fingerprint.to_owned();
        Self::new(
            Some(account_id),
            "divergence_resolution",
            key,
            payload,
            error,
            at,
        )
    }

    /// A sync report that could not be stored. Keyed by its content without its times, so
    /// the same refusal on every sync is one row.
    pub fn sync_run(run: &SyncRunRecord, error: &str, at: DateTime<Utc>) -> Self {
        let content = serde_json::json!({
            "account_id": run.account_id,
            "positions": run.positions,
            "trades": run.trades,
            "divergences_opened": run.divergences_opened,
            "divergences_resolved": run.divergences_resolved,
            "error_class": run.error_class,
            "error_message": run.error_message,
        });
        let key = content_key(&content.to_string());
        let mut payload = content;
        payload["started_at"] = serde_json::json!(run.started_at);
        payload["finished_at"] = serde_json::json!(run.finished_at);
        payload["duration_ms"] = serde_json::json!(run.duration.as_millis());
        Self::new(Some(&run.account_id), "sync_run", key, payload, error, at)
    }

    /// An hourly rollup that could not be added. Keyed by its hour.
    pub fn rollup(rollup: &SyncRollup, error: &str, at: DateTime<Utc>) -> Self {
        let payload = serde_json::json!({
            "account_id": rollup.account_id,
            "hour": rollup.hour,
            "syncs": rollup.syncs,
            "failures": rollup.failures,
            "sum_ms": rollup.sum_ms,
            "max_ms": rollup.max_ms,
            "buckets": rollup.buckets,
        });
        let key = rollup.hour.to_rfc3339();
        Self::new(
            Some(&rollup.account_id),
            "sync_rollup",
            key,
            payload,
            error,
            at,
        )
    }

    /// An audit event that could not be appended. Keyed by its kind and detail.
    pub fn audit(event: &AuditEvent, error: &str, at: DateTime<Utc>) -> Self {
        let key = content_key(&format!("{}\n{}", event.kind, event.detail));
        let payload = serde_json::json!({
            "at": event.at,
            "account_id": event.account_id,
            "kind": event.kind,
            "detail": event.detail,
        });
        let account = event.account_id.as_deref();
        Self::new(account, "audit_event", key, payload, error, at)
    }
}

/// The first of `fields` (column, value) holding U+0000, which PostgreSQL refuses in text.
fn suspect<'a>(fields: &[(&'static str, Option<&'a str>)]) -> Option<(&'static str, &'a str)> {
    fields
        .iter()
        .find_map(|(column, value)| value.filter(|v| v.contains('\0')).map(|v| (*column, v)))
}

/// Why a refused row was refused, naming the column and value when they can be told.
fn refusal(
    table: &str,
    fields: &[(&'static str, Option<&str>)],
    what: impl FnOnce() -> String,
    error: &StoreError,
) -> String {
    let text = match (error, suspect(fields)) {
        // The store's own refusal already names the field and value.
        (StoreError::Unstorable { .. }, _) => error.to_string(),
        (_, Some((column, value))) => format!("cannot store {table}.{column} = {value:?}: {error}"),
        (_, None) => format!("cannot store {table} row {}: {error}", what()),
    };
    printable(&text)
}

/// Why the row of `divergence` in `account_id` was refused.
pub fn divergence_refusal(account_id: &str, divergence: &Divergence, error: &StoreError) -> String {
    let fields = [
        ("account_id", Some(account_id)),
        ("symbol", Some(divergence.symbol.as_str())),
        ("trade_id", divergence.trade_id.as_deref()),
        ("fingerprint", Some(divergence.fingerprint.as_str())),
    ];
    let what = || {
        format!(
            "{} (kind {}, ticket {:?})",
            divergence.fingerprint, divergence.kind, divergence.ticket
        )
    };
    refusal("divergences", &fields, what, error)
}

/// Why the row of `run` was refused.
pub fn sync_run_refusal(run: &SyncRunRecord, error: &StoreError) -> String {
    let fields = [
        ("account_id", Some(run.account_id.as_str())),
        ("error_class", run.error_class.as_deref()),
        ("error_message", run.error_message.as_deref()),
    ];
    let what = || format!("of {:?} started {}", run.account_id, run.started_at);
    refusal("sync_runs", &fields, what, error)
}

/// Why the row of `event` was refused.
pub fn audit_refusal(event: &AuditEvent, error: &StoreError) -> String {
    let fields = [
        ("account_id", event.account_id.as_deref()),
        ("kind", Some(event.kind.as_str())),
    ];
    let what = || format!("{:?} at {}", event.kind, event.at);
    refusal("audit_events", &fields, what, error)
}

/// Records `letters`, de-duplicated by (account, kind, key) among themselves and against
/// the table. Works inside a caller's transaction.
pub async fn record_dead_letters<C: ConnectionTrait>(
    db: &C,
    letters: &[DeadLetter],
) -> Result<(), StoreError> {
    // One statement cannot update the same row twice: merge duplicates first.
    let mut merged: HashMap<(String, String, String), dead_letter::ActiveModel> = HashMap::new();
    let mut order = Vec::new();
    for l in letters {
        let key = (
            printable(l.account_id.as_deref().unwrap_or("")),
            printable(&l.kind),
            printable(&l.key),
        );
        let count = i64::try_from(l.count).unwrap_or(i64::MAX);
        match merged.get_mut(&key) {
            Some(row) => {
                let before = match &row.occurrences {
                    Set(n) => *n,
                    _ => 0,
                };
                row.occurrences = Set(before.saturating_add(count));
                row.last_seen = Set(db_time(l.last_seen));
                row.error = Set(printable(&l.error));
                row.payload = Set(l.payload.to_string());
            }
            None => {
                order.push(key.clone());
                merged.insert(
                    key.clone(),
                    dead_letter::ActiveModel {
                        id: NotSet,
                        account_id: Set(key.0),
                        kind: Set(key.1),
                        item_key: Set(key.2),
                        payload: Set(l.payload.to_string()),
                        error: Set(printable(&l.error)),
                        first_seen: Set(db_time(l.first_seen)),
                        last_seen: Set(db_time(l.last_seen)),
                        occurrences: Set(count),
                    },
                );
            }
        }
    }
    let rows: Vec<dead_letter::ActiveModel> =
        order.iter().filter_map(|k| merged.remove(k)).collect();
    let bytes = |r: &dead_letter::ActiveModel| {
        row_bytes(
            8,
            text(&r.account_id)
                + text(&r.kind)
                + text(&r.item_key)
                + text(&r.payload)
                + text(&r.error),
        )
    };
    for chunk in statement_chunks(db.get_database_backend(), &rows, bytes) {
        dead_letter::Entity::insert_many(chunk.iter().cloned())
            .on_conflict(same_item())
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// `ON CONFLICT (account_id, kind, item_key) DO UPDATE`: the latest error and payload, the
/// later `last_seen`, and the occurrences added up.
fn same_item() -> OnConflict {
    use dead_letter::Column as C;
    OnConflict::columns([C::AccountId, C::Kind, C::ItemKey])
        .update_columns([C::Payload, C::Error, C::LastSeen])
        .value(
            C::Occurrences,
            Expr::cust("dead_letters.occurrences + excluded.occurrences"),
        )
        .to_owned()
}

/// Every dead letter, oldest first.
pub async fn list_dead_letters<C: ConnectionTrait>(db: &C) -> Result<Vec<DeadLetter>, StoreError> {
    let rows = dead_letter::Entity::find()
        .order_by_asc(dead_letter::Column::FirstSeen)
        .order_by_asc(dead_letter::Column::Id)
        .all(db)
        .await?;
    rows.into_iter()
        .map(|row| {
            let bad = |column, value: String, reason: String| StoreError::BadData {
                table: "dead_letters",
                column,
                row: row.id.to_string(),
                value,
                reason,
            };
            let payload = serde_json::from_str(&row.payload)
                .map_err(|e| bad("payload", row.payload.clone(), e.to_string()))?;
            let count = u64::try_from(row.occurrences).map_err(|_| {
                bad(
                    "occurrences",
                    row.occurrences.to_string(),
                    "negative count".to_owned(),
                )
            })?;
            Ok(DeadLetter {
                account_id: (!row.account_id.is_empty()).then_some(row.account_id),
                kind: row.kind,
                key: row.item_key,
                payload,
                error: row.error,
                first_seen: row.first_seen,
                last_seen: row.last_seen,
                count,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_nul_is_spelled_out() {
        assert_eq!(content_key(""), "cbf29ce484222325");
        assert_ne!(content_key("a"), content_key("b"));
        assert_eq!(printable("EUR\0USD"), "EUR\\0USD");
    }

    #[test]
    fn a_refusal_names_the_column_and_the_value() {
        let d = Divergence::new(
            crate::domain::DivergenceKind::UnexpectedAtBroker,
            "EUR\0USD".to_owned(),
            Some(7),
            None,
            None,
            None,
            None,
        );
        let error = StoreError::Unstorable {
            field: "x",
            value: "y".to_owned(),
            reason: "z".to_owned(),
        };
        let text = divergence_refusal("acc-1", &d, &error);
        assert_eq!(text, "cannot store x = y: z");
        let busy = StoreError::Migration(sea_orm::DbErr::Custom("refused".to_owned()));
        let text = divergence_refusal("acc-1", &d, &busy);
        assert!(
            text.starts_with(r#"cannot store divergences.symbol = "EUR\0USD": "#),
            "{text}"
        );
        assert!(!text.contains('\0'), "{text}");
    }
}
