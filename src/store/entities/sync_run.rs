//! The `sync_runs` table: one row per sync of one account.

use sea_orm::entity::prelude::*;

/// A row of `sync_runs`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_runs")]
pub struct Model {
    /// Surrogate key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Account that was synced.
    pub account_id: String,
    /// When the sync started.
    pub started_at: DateTimeUtc,
    /// When the sync finished.
    pub finished_at: DateTimeUtc,
    /// Wall time in milliseconds.
    pub duration_ms: i64,
    /// Positions the broker reported.
    pub positions: i32,
    /// Open bot trades compared.
    pub trades: i32,
    /// Divergences opened by this sync.
    pub divergences_opened: i32,
    /// Divergences resolved by this sync.
    pub divergences_resolved: i32,
    /// Error class when the sync failed.
    pub error_class: Option<String>,
    /// Error message when the sync failed.
    #[sea_orm(column_type = "Text", nullable)]
    pub error_message: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}
