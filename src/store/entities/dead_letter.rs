//! The `dead_letters` table: items the database refused, one row per distinct item.

use sea_orm::entity::prelude::*;

/// A row of `dead_letters`. Unique per (account, kind, key).
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "dead_letters")]
pub struct Model {
    /// Surrogate key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Account of the item; `''` when it has none.
    pub account_id: String,
    /// What the item is: `divergence`, `divergence_resolution`, `sync_run`, `audit_event`.
    pub kind: String,
    /// Identity of the item within its account and kind (a fingerprint or a hash).
    pub item_key: String,
    /// The item as JSON text.
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    /// Why it was refused, the last time.
    #[sea_orm(column_type = "Text")]
    pub error: String,
    /// When it was first refused.
    pub first_seen: DateTimeUtc,
    /// When it was last refused.
    pub last_seen: DateTimeUtc,
    /// How many times it was refused.
    pub occurrences: i64,
}

impl ActiveModelBehavior for ActiveModel {}
