//! The `close_intents` table: closes and cancels a guard recorded before calling the broker.

use sea_orm::entity::prelude::*;

/// A row of `close_intents`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "close_intents")]
pub struct Model {
    /// Account.
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: String,
    /// Ticket of the position (or order), 20 zero-padded digits.
    #[sea_orm(primary_key, auto_increment = false)]
    pub ticket: String,
    /// The alert the close is made under.
    #[sea_orm(primary_key, auto_increment = false)]
    pub alert_id: String,
    /// `close` or `cancel`.
    pub kind: String,
    /// `pending`, `sent`, `done`, `failed` or `gone`.
    pub state: String,
    /// The instance acting on it (`None` without high availability).
    pub owner: Option<String>,
    /// Its lease epoch (0 without high availability).
    pub epoch: i64,
    /// When recorded.
    pub created_at: DateTimeUtc,
    /// When last changed.
    pub updated_at: DateTimeUtc,
    /// What the broker said last, when the call failed.
    pub last_error: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}
