//! `instances` and `account_leases`: several instances on one PostgreSQL database share the
//! accounts through per-account leases.
//!
//! `instances` holds one row per running instance with its heartbeat, so each instance can
//! count the live ones and take about its share. `account_leases` holds one row per account:
//! its owner (`NULL` when free), its epoch (the fencing token, incremented on every change of
//! owner and never reset) and when the lease expires, judged by the database's clock. New,
//! empty tables: nothing to rewrite at start-up. SQLite gets them too (one schema for both
//! backends) but never uses them: SQLite is single-instance.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `instances` and `account_leases`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("instances")
                    .col(string("id").primary_key())
                    .col(timestamp_with_time_zone("started_at"))
                    .col(timestamp_with_time_zone("heartbeat_at"))
                    .col(boolean("stopping").default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("account_leases")
                    .col(string("account_id").primary_key())
                    .col(string_null("owner"))
                    .col(big_integer("epoch").default(0))
                    .col(timestamp_with_time_zone_null("expires_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_account_leases_owner")
                    .table("account_leases")
                    .col("owner")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("account_leases").to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table("instances").to_owned())
            .await
    }
}
