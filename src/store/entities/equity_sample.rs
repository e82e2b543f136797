//! The `equity_samples` table: an account's equity over time, with its first drawdown
//! rule's reference and warn and breach levels, for the dashboard's chart.

use sea_orm::entity::prelude::*;

/// A row of `equity_samples`. Decimals are exact decimal text.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "equity_samples")]
pub struct Model {
    /// Surrogate key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Account.
    pub account_id: String,
    /// When the snapshot was evaluated.
    pub at: DateTimeUtc,
    /// Equity.
    #[sea_orm(column_type = "Text")]
    pub equity: String,
    /// Balance.
    #[sea_orm(column_type = "Text")]
    pub balance: String,
    /// The first drawdown rule's reference, once it has one.
    #[sea_orm(column_type = "Text", nullable)]
    pub reference: Option<String>,
    /// The equity at which that rule warns.
    #[sea_orm(column_type = "Text", nullable)]
    pub warn_equity: Option<String>,
    /// The equity at which that rule breaches.
    #[sea_orm(column_type = "Text", nullable)]
    pub breach_equity: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}
