//! `close_intents`: every close (or cancel) a guard means to send, recorded before the
//! broker is called, so an instance that takes an account over knows what the previous
//! owner may already have sent.
//!
//! One row per (account, ticket, alert); the ticket as 20 zero-padded digits, like
//! `service_closes`. `kind` is `close` or `cancel`; `state` moves `pending` → `sent` →
//! `done` | `failed` | `gone` (verified closed without this intent's call). `owner` and
//! `epoch` are the lease of the instance acting on it (`NULL` and 0 without high
//! availability). A new, empty table: nothing to rewrite at start-up.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `close_intents`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("close_intents")
                    .col(string("account_id"))
                    .col(string_len("ticket", 20))
                    .col(string("alert_id"))
                    .col(string("kind"))
                    .col(string("state"))
                    .col(string_null("owner"))
                    .col(big_integer("epoch").default(0))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(text_null("last_error"))
                    .primary_key(
                        Index::create()
                            .col("account_id")
                            .col("ticket")
                            .col("alert_id"),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("close_intents").to_owned())
            .await
    }
}
