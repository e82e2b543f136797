//! Acknowledgements on `divergences`: when an operator acknowledged the divergence, who,
//! and the note they gave (a known manual hedge, a partial fill accepted). `NULL` on a
//! divergence nobody acknowledged. An acknowledged divergence stays in the record; it is
//! only left out of the figures of what needs attention.
//!
//! Only nullable columns without a default are added: a catalogue change on PostgreSQL
//! and SQLite, with no backfill. `down` drops them.

use sea_orm_migration::{prelude::*, schema::*};

/// Adds the acknowledgement columns to `divergences`.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// Who acknowledged, and the note.
const TEXT_COLUMNS: [&str; 2] = ["acknowledged_by", "acknowledged_note"];
/// When.
const TIME_COLUMN: &str = "acknowledged_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        manager
            .alter_table(
                Table::alter()
                    .table("divergences")
                    .add_column(timestamp_with_time_zone_null(TIME_COLUMN))
                    .to_owned(),
            )
            .await?;
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
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [TIME_COLUMN].into_iter().chain(TEXT_COLUMNS).rev() {
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
