//! `sync_rollups`, and the indexes retention deletes by.
//!
//! A sync that neither failed nor changed a divergence leaves no `sync_runs` row: it is
//! counted in its account's rollup of the hour. One row per (account, hour): the syncs,
//! the failures by class, the sum and maximum of the durations and a histogram of them
//! over fixed bounds (`le_1ms` … `le_30000ms`, then `gt_30000ms`), so two rollups of the
//! same hour merge by adding column to column.
//!
//! Retention deletes rows by age in small batches; each table gets an index on the time
//! it is aged by (`sync_runs.started_at`, `divergences.resolved_at`, `alerts.updated_at`,
//! `audit_events.at`, `dead_letters.last_seen`, `sync_rollups.hour`). A new, empty table
//! and new indexes: nothing to rewrite at start-up.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `sync_rollups` and the retention indexes.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// Counters of a rollup, every one added up when two rollups merge.
const COUNTERS: [&str; 23] = [
    "syncs",
    "failed_timeout",
    "failed_retryable",
    "failed_permanent",
    "failed_malformed",
    "failed_crash",
    "failed_other",
    "sum_ms",
    "le_1ms",
    "le_2ms",
    "le_5ms",
    "le_10ms",
    "le_20ms",
    "le_50ms",
    "le_100ms",
    "le_200ms",
    "le_500ms",
    "le_1000ms",
    "le_2000ms",
    "le_5000ms",
    "le_10000ms",
    "le_30000ms",
    "gt_30000ms",
];

/// (index, table, column) of the retention indexes.
const AGE_INDEXES: [(&str, &str, &str); 6] = [
    ("ix_sync_runs_started_at", "sync_runs", "started_at"),
    ("ix_divergences_resolved_at", "divergences", "resolved_at"),
    ("ix_alerts_updated_at", "alerts", "updated_at"),
    ("ix_audit_events_at", "audit_events", "at"),
    ("ix_dead_letters_last_seen", "dead_letters", "last_seen"),
    ("ix_sync_rollups_hour", "sync_rollups", "hour"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut table = Table::create();
        table
            .table("sync_rollups")
            .col(big_pk_auto("id"))
            .col(string("account_id"))
            .col(timestamp_with_time_zone("hour"));
        for counter in COUNTERS {
            table.col(big_integer(counter).default(0));
        }
        table.col(big_integer("max_ms").default(0));
        manager.create_table(table.to_owned()).await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_sync_rollups_account_hour")
                    .table("sync_rollups")
                    .col("account_id")
                    .col("hour")
                    .unique()
                    .to_owned(),
            )
            .await?;
        for (name, table, column) in AGE_INDEXES {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, _) in AGE_INDEXES {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        manager
            .drop_table(Table::drop().table("sync_rollups").to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
