//! `dead_letters`: items of a persistence batch the database refused, kept for an
//! operator instead of blocking every other write.
//!
//! One row per (account, kind, key): the same refused item sent again updates
//! `last_seen`, the error and the payload and adds to `occurrences`, so a poison re-sent
//! on every sync does not grow the table. `account_id` is `''` for an item of no account
//! (a unique index treats `NULL`s as distinct). The payload is JSON text, not `jsonb`:
//! PostgreSQL's `jsonb` refuses `\u0000`, which is exactly what such an item may hold.
//! A new, empty table: nothing to rewrite at start-up.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `dead_letters`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("dead_letters")
                    .col(big_pk_auto("id"))
                    .col(string("account_id"))
                    .col(string("kind"))
                    .col(string("item_key"))
                    .col(text("payload"))
                    .col(text("error"))
                    .col(timestamp_with_time_zone("first_seen"))
                    .col(timestamp_with_time_zone("last_seen"))
                    .col(big_integer("occurrences"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_dead_letters_item")
                    .table("dead_letters")
                    .col("account_id")
                    .col("kind")
                    .col("item_key")
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("dead_letters").to_owned())
            .await
    }
}
