//! The `account_leases` table: which instance owns each account, under which epoch.

use sea_orm::entity::prelude::*;

/// A row of `account_leases`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "account_leases")]
pub struct Model {
    /// Account.
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: String,
    /// The owning instance; `None` when free.
    pub owner: Option<String>,
    /// The fencing token: incremented on every change of owner, never reset.
    pub epoch: i64,
    /// When the lease expires, on the database's clock; `None` when free.
    pub expires_at: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
