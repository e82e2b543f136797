//! The initial schema: accounts, bot trades, divergences, sync runs and audit events.
//!
//! Decimals (prices, volumes, deltas) are TEXT holding the exact decimal: SQLite reads
//! DECIMAL through `f64`. Broker tickets are BIGINT (the domain's `u64` is checked on the
//! way in). An open divergence is unique per (account, fingerprint) through a partial
//! unique index, so writing the same divergence twice cannot duplicate it.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates the five initial tables and their indexes.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// The partial unique index, in SQL that SQLite and PostgreSQL both accept.
const OPEN_FINGERPRINT_INDEX: &str = "CREATE UNIQUE INDEX ux_divergences_open_fingerprint \
     ON divergences (account_id, fingerprint) WHERE status = 'open'";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(accounts()).await?;
        manager.create_table(bot_trades()).await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_bot_trades_account_status")
                    .table("bot_trades")
                    .col("account_id")
                    .col("status")
                    .to_owned(),
            )
            .await?;
        manager.create_table(divergences()).await?;
        manager
            .get_connection()
            .execute_unprepared(OPEN_FINGERPRINT_INDEX)
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_divergences_account_status")
                    .table("divergences")
                    .col("account_id")
                    .col("status")
                    .to_owned(),
            )
            .await?;
        manager.create_table(sync_runs()).await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_sync_runs_account_started")
                    .table("sync_runs")
                    .col("account_id")
                    .col("started_at")
                    .to_owned(),
            )
            .await?;
        manager.create_table(audit_events()).await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_events_account_at")
                    .table("audit_events")
                    .col("account_id")
                    .col("at")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Dropping a table drops its indexes and the foreign keys it declares.
        for table in [
            "audit_events",
            "sync_runs",
            "divergences",
            "bot_trades",
            "accounts",
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        // All or nothing, on SQLite too.
        Some(true)
    }
}

fn accounts() -> TableCreateStatement {
    Table::create()
        .table("accounts")
        .col(string("id").primary_key())
        .col(string("name"))
        .col(string("broker"))
        .col(boolean("enabled"))
        .col(text_null("disabled_reason"))
        .col(timestamp_with_time_zone("created_at"))
        .col(timestamp_with_time_zone("updated_at"))
        .to_owned()
}

fn bot_trades() -> TableCreateStatement {
    Table::create()
        .table("bot_trades")
        .col(big_pk_auto("pk"))
        .col(string("account_id"))
        .col(string("trade_id"))
        .col(string("symbol"))
        .col(string("side"))
        .col(text("volume"))
        .col(text("entry_price"))
        .col(text_null("sl"))
        .col(text_null("tp"))
        .col(big_integer_null("ticket"))
        .col(string_null("client_id"))
        .col(timestamp_with_time_zone_null("opened_at"))
        .col(string("status"))
        .col(timestamp_with_time_zone_null("closed_at"))
        .foreign_key(
            ForeignKey::create()
                .name("fk_bot_trades_account")
                .from("bot_trades", "account_id")
                .to("accounts", "id"),
        )
        .index(
            Index::create()
                .name("ux_bot_trades_account_trade")
                .col("account_id")
                .col("trade_id")
                .unique(),
        )
        .to_owned()
}

fn divergences() -> TableCreateStatement {
    Table::create()
        .table("divergences")
        .col(big_pk_auto("id"))
        .col(string("account_id"))
        .col(string("fingerprint"))
        .col(string("kind"))
        .col(string("symbol"))
        .col(big_integer_null("ticket"))
        .col(string_null("trade_id"))
        .col(text_null("expected"))
        .col(text_null("actual"))
        .col(text_null("delta"))
        .col(string_null("unit"))
        .col(string("status"))
        .col(timestamp_with_time_zone("first_seen"))
        .col(timestamp_with_time_zone("last_seen"))
        .col(timestamp_with_time_zone_null("resolved_at"))
        .to_owned()
}

fn sync_runs() -> TableCreateStatement {
    Table::create()
        .table("sync_runs")
        .col(big_pk_auto("id"))
        .col(string("account_id"))
        .col(timestamp_with_time_zone("started_at"))
        .col(timestamp_with_time_zone("finished_at"))
        .col(big_integer("duration_ms"))
        .col(integer("positions"))
        .col(integer("trades"))
        .col(integer("divergences_opened"))
        .col(integer("divergences_resolved"))
        .col(string_null("error_class"))
        .col(text_null("error_message"))
        .to_owned()
}

fn audit_events() -> TableCreateStatement {
    Table::create()
        .table("audit_events")
        .col(big_pk_auto("id"))
        .col(timestamp_with_time_zone("at"))
        .col(string_null("account_id"))
        .col(string("kind"))
        .col(text("detail"))
        .to_owned()
}
