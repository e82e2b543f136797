//! Broker tickets as any `u64`: a `ticket_u64` column beside the `BIGINT` `ticket` of
//! `divergences` and `bot_trades`.
//!
//! # Representation
//!
//! MT5 tickets and position ids are `u64`; `BIGINT` (and SQLite's `INTEGER`) stop at
//! 2^63 − 1. The new column holds the ticket as exactly 20 decimal digits, zero-padded
//! (`00000000000000000042`), on both backends:
//!
//! - exact for every `u64`, with no arithmetic anywhere (SQLite would turn a larger
//!   integer into a lossy `REAL`, and its `NUMERIC` affinity does the same);
//! - fixed width, so byte order is numeric order: `=`, `<`, `ORDER BY` and a B-tree index
//!   on the column all behave as on numbers. On PostgreSQL the column is `COLLATE "C"` so
//!   that holds whatever the database's locale; SQLite compares text bytewise already;
//! - one Rust type (`Option<String>`) for both backends. PostgreSQL `NUMERIC(20,0)` would
//!   read naturally in SQL, but sqlx binds it only as a decimal, which SQLite stores
//!   through `f64`, so the entity would need a per-backend type;
//! - readable as the number it is (`ticket_u64::numeric` on PostgreSQL), unlike an `i64`
//!   holding the same bits, where a ticket above 2^63 − 1 reads as negative and sorts
//!   before 0.
//!
//! The store writes both columns: `ticket_u64` always, `ticket` too when the value fits
//! (so a binary of the previous release, or `down`, still reads it), and reads
//! `ticket_u64` first, `ticket` otherwise. Rows written before this migration therefore
//! need no backfill to be read correctly.
//!
//! # Large tables
//!
//! Nothing here rewrites or scans a table, so it takes the same short time on ten rows
//! as on tens of millions, and holds its locks only for that time:
//!
//! - adding a nullable column without a default is a catalogue change on PostgreSQL
//!   (11 and later) and on SQLite;
//! - the PostgreSQL check is added `NOT VALID`: enforced for every new or updated row at
//!   once, never validated against the old rows (all of which hold `NULL`, which passes);
//! - SQLite gets no check: it would test every existing row when the column is added.
//!   The store is its only writer and writes the column through one function.
//!
//! An in-place type change of `ticket` would instead rewrite every row under an exclusive
//! lock at start-up. Copying old tickets into the new column, when wanted for SQL readers,
//! can run later in small batches by key (`WHERE id BETWEEN …`), one short transaction
//! each, while the service runs; a later migration may then drop `ticket`.
//!
//! `down` drops the new columns. A ticket above 2^63 − 1 was never written to `ticket`,
//! so it is lost then: the previous release cannot hold it anyway.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// Adds `ticket_u64` to `divergences` and `bot_trades`.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables that hold a broker ticket.
const TABLES: [&str; 2] = ["divergences", "bot_trades"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let postgres = manager.get_database_backend() == DbBackend::Postgres;
        for table in TABLES {
            if postgres {
                db.execute_unprepared(&format!(
                    "ALTER TABLE {table} ADD COLUMN ticket_u64 varchar(20) COLLATE \"C\""
                ))
                .await?;
                db.execute_unprepared(&format!(
                    "ALTER TABLE {table} ADD CONSTRAINT ck_{table}_ticket_u64 \
                     CHECK (ticket_u64 ~ '^[0-9]{{20}}$') NOT VALID"
                ))
                .await?;
            } else {
                db.execute_unprepared(&format!("ALTER TABLE {table} ADD COLUMN ticket_u64 TEXT"))
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Dropping the column drops its check too. On SQLite this copies the table; `down`
        // is an operator's decision, never part of a start-up.
        for table in TABLES {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .drop_column("ticket_u64")
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
