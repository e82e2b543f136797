//! The `service_closes` table: positions this service closed, with their alert.

use sea_orm::entity::prelude::*;

/// A row of `service_closes`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "service_closes")]
pub struct Model {
    /// Account.
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: String,
    /// Ticket, 20 zero-padded digits.
    #[sea_orm(primary_key, auto_increment = false)]
    pub ticket: String,
    /// The alert it was closed under.
    pub alert_id: String,
    /// When the close was confirmed.
    pub closed_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
