//! The `audit_events` table: an append-only trail of what happened and why.

use sea_orm::entity::prelude::*;

/// A row of `audit_events`. `detail` is JSON text.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    /// Surrogate key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// When it happened.
    pub at: DateTimeUtc,
    /// Account concerned, if any.
    pub account_id: Option<String>,
    /// What happened, e.g. `circuit_opened`.
    pub kind: String,
    /// Details as JSON text.
    #[sea_orm(column_type = "Text")]
    pub detail: String,
}

impl ActiveModelBehavior for ActiveModel {}
