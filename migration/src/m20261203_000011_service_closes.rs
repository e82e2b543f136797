//! `service_closes`: positions this service closed itself (a guard enforcing a breach),
//! with the alert they were closed under, so the bot's trades they belonged to are
//! reported as closed by the service, not as missing at the broker, across restarts.
//!
//! One row per (account, ticket); the ticket as 20 zero-padded digits, like
//! `ticket_u64` elsewhere (exact for every `u64`, byte order = numeric order). A new,
//! empty table: nothing to rewrite at start-up.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `service_closes`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("service_closes")
                    .col(string("account_id"))
                    .col(string_len("ticket", 20))
                    .col(string("alert_id"))
                    .col(timestamp_with_time_zone("closed_at"))
                    .primary_key(Index::create().col("account_id").col("ticket"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("service_closes").to_owned())
            .await
    }
}
