//! `guard_state`: what each account's guards remember (the trading day's reference,
//! trailing high-water marks, breach latches), so a restart continues the same trading
//! day and the same breach instead of measuring from an already-reduced balance.
//!
//! One row per account, the state as JSON text (it is read and written whole, by the
//! account's guard only). A new, empty table: nothing to rewrite at start-up.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `guard_state`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("guard_state")
                    .col(string("account_id").primary_key())
                    .col(text("state"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("guard_state").to_owned())
            .await
    }
}
