//! The `alerts` table: alerts of the risk guards and the state of their close.

use sea_orm::entity::prelude::*;

/// A row of `alerts`. Decimals are exact text.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "alerts")]
pub struct Model {
    /// Alert id (`al-…`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Account.
    pub account_id: String,
    /// `warn` or `breach`.
    pub kind: String,
    /// The rule that fired.
    pub rule: String,
    /// Loss measured.
    #[sea_orm(column_type = "Text", nullable)]
    pub loss: Option<String>,
    /// Its reference.
    #[sea_orm(column_type = "Text", nullable)]
    pub reference: Option<String>,
    /// A sentence for people.
    #[sea_orm(column_type = "Text")]
    pub message: String,
    /// When positions will be closed, if they will.
    pub close_at: Option<DateTimeUtc>,
    /// alerted, pending_close, cancelled, closing, closed, failed.
    pub status: String,
    /// When it was raised.
    pub created_at: DateTimeUtc,
    /// Last status change.
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
