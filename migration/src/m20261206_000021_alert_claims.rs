//! `alerts.claimed_by` and `alerts.claimed_epoch`: which instance claimed an alert's
//! close, under which lease epoch. Under high availability a new owner of the account
//! (a larger epoch) may take over a close left `closing` by an earlier owner; without it
//! both stay `NULL` and nothing changes.

use sea_orm_migration::{prelude::*, schema::*};

/// Adds the claim's owner and epoch to `alerts`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table("alerts")
                    .add_column(string_null("claimed_by"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("alerts")
                    .add_column(big_integer_null("claimed_epoch"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["claimed_epoch", "claimed_by"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("alerts")
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
