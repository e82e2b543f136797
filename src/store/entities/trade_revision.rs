//! The `trade_revisions` table: each account's change marker of its trades.

use sea_orm::entity::prelude::*;

/// A row of `trade_revisions`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "trade_revisions")]
pub struct Model {
    /// Account.
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: String,
    /// Grows by one with every change to the account's trades.
    pub revision: i64,
    /// When the last change was written (`NULL` for rows seeded by the migration).
    pub changed_at: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
