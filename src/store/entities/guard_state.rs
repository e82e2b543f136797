//! The `guard_state` table: what an account's guards remember, as JSON text.

use sea_orm::entity::prelude::*;

/// A row of `guard_state`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "guard_state")]
pub struct Model {
    /// Account.
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: String,
    /// The guards' memory, JSON.
    #[sea_orm(column_type = "Text")]
    pub state: String,
    /// Last write.
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
