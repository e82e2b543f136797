//! Alerts raised by the risk guards, with the state of the close they may schedule.
//!
//! `status` moves `alerted` (detect-only, nothing to do) or `pending_close` → `cancelled`
//! (an operator), or → `closing` (claimed by the account's actor at the due time) →
//! `closed` / `failed`. The claim is a compare-and-set on `status`, so a cancel and a close
//! can never both win.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates the `alerts` table.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("alerts")
                    .col(string("id").primary_key())
                    .col(string("account_id"))
                    .col(string("kind"))
                    .col(string("rule"))
                    .col(text_null("loss"))
                    .col(text_null("reference"))
                    .col(text("message"))
                    .col(timestamp_with_time_zone_null("close_at"))
                    .col(string("status"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_alerts_account_created")
                    .table("alerts")
                    .col("account_id")
                    .col("created_at")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("alerts").to_owned())
            .await
    }
}
