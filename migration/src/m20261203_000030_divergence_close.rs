//! How the broker closed a position, on `divergences`: the reason, the close price, the
//! realised profit, the closed volume and the broker's close time of `closed_at_broker`
//! and `partially_closed` rows (from their closing deals). `NULL` on every other row.
//!
//! Decimals are TEXT holding the exact decimal, like `expected`, `actual` and `delta`
//! (SQLite reads DECIMAL through `f64`); the reason is the deal reason's snake_case name.
//!
//! Only nullable columns without a default are added: a catalogue change on PostgreSQL
//! and SQLite, as short on ten million rows as on ten, with no backfill. `down` drops
//! them (on SQLite that copies the table; `down` is an operator's decision, never part of
//! a start-up).

use sea_orm_migration::{prelude::*, schema::*};

/// Adds the close columns to `divergences`.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// The decimal and text columns, in the order they are added.
const TEXT_COLUMNS: [&str; 4] = [
    "close_reason",
    "close_price",
    "close_profit",
    "closed_volume",
];
/// The broker's time of the last closing deal.
const TIME_COLUMN: &str = "close_time";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for column in TEXT_COLUMNS {
            manager
                .alter_table(
                    Table::alter()
                        .table("divergences")
                        .add_column(text_null(column))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table("divergences")
                    .add_column(timestamp_with_time_zone_null(TIME_COLUMN))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in TEXT_COLUMNS.into_iter().chain([TIME_COLUMN]).rev() {
            manager
                .alter_table(
                    Table::alter()
                        .table("divergences")
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
