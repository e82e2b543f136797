//! Versioned trade writes: a `version` on every `bot_trades` row and a per-account change
//! marker, `trade_revisions`.
//!
//! # `bot_trades.version`
//!
//! The bot's version of a trade is a `u64`. It is stored the way broker tickets are (see
//! `m20261203_000001_u64_tickets`): exactly, as 20 zero-padded decimal digits in
//! `version_u64` (`varchar(20) COLLATE "C"` on PostgreSQL, `TEXT` on SQLite, text order is
//! numeric order), which the store reads and compares; and as `BIGINT` in `version` for
//! SQL readers, saturated at 2^63 − 1 (a `NOT NULL` column cannot leave the larger ones
//! out). Both are `NOT NULL DEFAULT 0`, so every existing row reads as version 0.
//!
//! # `trade_revisions`
//!
//! One row per account whose trades were written through the store: `revision` grows by
//! one in the same transaction as any change to the account's trades, `changed_at` is the
//! time of the last one. A table of its own rather than a column of `accounts`: trades may
//! be written for an account before it is added, and the frequent breaker-state updates of
//! `accounts` never contend with the row lock a trade write takes here. The trade source
//! reads this one row per sync and re-reads the open trades only when it moved.
//! Accounts that already have trades get revision 1 (`changed_at` left `NULL`).
//!
//! # Large tables
//!
//! Adding a column with a constant default is a catalogue change on PostgreSQL (11 and
//! later) and on SQLite; the PostgreSQL check is `NOT VALID` (every existing row holds the
//! default, which passes). The seed reads each account id of `bot_trades` once.
//!
//! `down` drops the table and the columns (on SQLite that copies `bot_trades`).

use sea_orm_migration::sea_orm::DbBackend;
use sea_orm_migration::{prelude::*, schema::*};

/// Adds `bot_trades.version`, `bot_trades.version_u64` and `trade_revisions`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        manager
            .alter_table(
                Table::alter()
                    .table("bot_trades")
                    .add_column(big_integer("version").default(0))
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(
                "ALTER TABLE bot_trades ADD COLUMN version_u64 varchar(20) COLLATE \"C\" \
                 NOT NULL DEFAULT '00000000000000000000'",
            )
            .await?;
            db.execute_unprepared(
                "ALTER TABLE bot_trades ADD CONSTRAINT ck_bot_trades_version_u64 \
                 CHECK (version_u64 ~ '^[0-9]{20}$') NOT VALID",
            )
            .await?;
        } else {
            db.execute_unprepared(
                "ALTER TABLE bot_trades ADD COLUMN version_u64 TEXT \
                 NOT NULL DEFAULT '00000000000000000000'",
            )
            .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("trade_revisions")
                    .col(string("account_id").primary_key())
                    .col(big_integer("revision"))
                    .col(timestamp_with_time_zone_null("changed_at"))
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared(
            "INSERT INTO trade_revisions (account_id, revision) \
             SELECT DISTINCT account_id, 1 FROM bot_trades",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("trade_revisions").to_owned())
            .await?;
        // Dropping the column drops its check too.
        for column in ["version_u64", "version"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("bot_trades")
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
