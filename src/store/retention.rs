//! Deleting rows past their age, a small batch at a time.
//!
//! Each [`Aged`] table is aged by one time column (indexed for it). One call of
//! [`prune_batch`] is one short statement that removes at most `limit` rows by key,
//!
//! ```sql
//! DELETE FROM t WHERE id IN (SELECT id FROM t WHERE <aged> AND <time> < ? LIMIT n)
//! ```
//!
//! so it holds its locks briefly and never stalls the writers of the same table; the
//! caller pauses between batches. Rows that still matter are never aged: an open
//! divergence (only `resolved` ones, by `resolved_at`), an alert that may still close
//! positions (only those not [`AlertStatus::enforcing`], by `updated_at`).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, EntityName, IdenStatic};

use super::convert::{RESOLVED, db_time};
use super::entities::{
    alert, audit_event, dead_letter, divergence, equity_sample, sync_rollup, sync_run,
};
use super::error::StoreError;
use crate::guards::AlertStatus;

/// A table whose old rows are deleted, and what makes a row old.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aged {
    /// `sync_runs` by `started_at`.
    SyncRuns,
    /// `sync_rollups` by `hour`.
    SyncRollups,
    /// `divergences` with status `resolved`, by `resolved_at`.
    ResolvedDivergences,
    /// `alerts` that no longer enforce (`alerted`, `cancelled`, `ended`), by `updated_at`.
    Alerts,
    /// `audit_events` by `at`.
    AuditEvents,
    /// `dead_letters` by `last_seen`.
    DeadLetters,
    /// `equity_samples` by `at`.
    EquitySamples,
}

impl Aged {
    /// Every aged table.
    pub const ALL: [Aged; 7] = [
        Self::SyncRuns,
        Self::SyncRollups,
        Self::ResolvedDivergences,
        Self::Alerts,
        Self::AuditEvents,
        Self::DeadLetters,
        Self::EquitySamples,
    ];

    /// The table's name.
    pub fn table(self) -> &'static str {
        match self {
            Self::SyncRuns => sync_run::Entity.table_name(),
            Self::SyncRollups => sync_rollup::Entity.table_name(),
            Self::ResolvedDivergences => divergence::Entity.table_name(),
            Self::Alerts => alert::Entity.table_name(),
            Self::AuditEvents => audit_event::Entity.table_name(),
            Self::DeadLetters => dead_letter::Entity.table_name(),
            Self::EquitySamples => equity_sample::Entity.table_name(),
        }
    }

    /// The key column and the condition of a row older than `before`.
    fn key_and_condition(self, before: DateTime<Utc>) -> (&'static str, SimpleExpr) {
        let before = db_time(before);
        let older = |column: &'static str| Expr::col(column).lt(before);
        match self {
            Self::SyncRuns => ("id", older(sync_run::Column::StartedAt.as_str())),
            Self::SyncRollups => ("id", older(sync_rollup::Column::Hour.as_str())),
            Self::ResolvedDivergences => (
                "id",
                Expr::col(divergence::Column::Status.as_str())
                    .eq(RESOLVED)
                    .and(older(divergence::Column::ResolvedAt.as_str())),
            ),
            Self::Alerts => {
                let done = AlertStatus::ALL
                    .into_iter()
                    .filter(|s| !s.enforcing())
                    .map(|s| s.as_str());
                (
                    "id",
                    Expr::col(alert::Column::Status.as_str())
                        .is_in(done)
                        .and(older(alert::Column::UpdatedAt.as_str())),
                )
            }
            Self::AuditEvents => ("id", older(audit_event::Column::At.as_str())),
            Self::DeadLetters => ("id", older(dead_letter::Column::LastSeen.as_str())),
            Self::EquitySamples => ("id", older(equity_sample::Column::At.as_str())),
        }
    }
}

/// Deletes at most `limit` rows of `what` older than `before`, in one statement; returns
/// how many it deleted (fewer than `limit`: nothing older is left).
pub async fn prune_batch<C: ConnectionTrait>(
    db: &C,
    what: Aged,
    before: DateTime<Utc>,
    limit: u64,
) -> Result<u64, StoreError> {
    let table = what.table();
    let (key, condition) = what.key_and_condition(before);
    let keys = Query::select()
        .column(key)
        .from(table)
        .and_where(condition)
        .limit(limit)
        .to_owned();
    let delete = Query::delete()
        .from_table(table)
        .and_where(Expr::col(key).in_subquery(keys))
        .to_owned();
    Ok(db.execute(&delete).await?.rows_affected())
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};

    use super::*;

    #[test]
    fn a_batch_deletes_by_key_under_a_limit_and_spares_enforcing_alerts() {
        let before = DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        let (key, condition) = Aged::Alerts.key_and_condition(before);
        let keys = Query::select()
            .column(key)
            .from("alerts")
            .and_where(condition)
            .limit(500)
            .to_owned();
        let delete = Query::delete()
            .from_table("alerts")
            .and_where(Expr::col("id").in_subquery(keys))
            .to_owned();
        let (sql, values) = delete.build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"DELETE FROM "alerts" WHERE "id" IN (SELECT "id" FROM "alerts" WHERE "status" IN ($1, $2, $3) AND "updated_at" < $4 LIMIT $5)"#
        );
        let statuses: Vec<String> = values.0[..3].iter().map(|v| format!("{v:?}")).collect();
        for s in ["alerted", "cancelled", "ended"] {
            assert!(statuses.iter().any(|v| v.contains(s)), "{statuses:?}");
        }
        let (sql, _) = delete.build(SqliteQueryBuilder);
        assert!(sql.contains("LIMIT ?"), "{sql}");
    }
}
