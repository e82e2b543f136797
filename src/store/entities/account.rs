//! The `accounts` table: one row per broker account the service reconciles.

use sea_orm::entity::prelude::*;

/// A row of `accounts`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "accounts")]
pub struct Model {
    /// Account id, e.g. `acc-1`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Display name.
    pub name: String,
    /// Broker adapter name, e.g. `sim`.
    pub broker: String,
    /// Whether the account is reconciled.
    pub enabled: bool,
    /// Why the account was disabled, when it was.
    #[sea_orm(column_type = "Text", nullable)]
    pub disabled_reason: Option<String>,
    /// When the row was created.
    pub created_at: DateTimeUtc,
    /// When the row was last changed.
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
