//! `equity_samples`: an account's equity over time, as its guards saw it, with the
//! reference of its first drawdown rule and the equity at which that rule warns and
//! breaches (the dashboard draws them on one chart). At most one sample a minute per
//! account; retention deletes them by `at` (`[retention] equity_samples_days`).
//!
//! Decimals are TEXT holding the exact decimal (SQLite reads DECIMAL through `f64`).
//! A new, empty table: nothing to rewrite at start-up. `down` drops it.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `equity_samples` and its indexes.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("equity_samples")
                    .col(big_pk_auto("id"))
                    .col(string("account_id"))
                    .col(timestamp_with_time_zone("at"))
                    .col(text("equity"))
                    .col(text("balance"))
                    .col(text_null("reference"))
                    .col(text_null("warn_equity"))
                    .col(text_null("breach_equity"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_equity_samples_account_at")
                    .table("equity_samples")
                    .col("account_id")
                    .col("at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_equity_samples_at")
                    .table("equity_samples")
                    .col("at")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("equity_samples").to_owned())
            .await
    }
}
