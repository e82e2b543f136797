//! The `instances` table: running instances and their heartbeats (high availability).

use sea_orm::entity::prelude::*;

/// A row of `instances`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "instances")]
pub struct Model {
    /// The instance's id (`[ha] instance_id`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// When it registered, on the database's clock.
    pub started_at: DateTimeUtc,
    /// Its last heartbeat, on the database's clock.
    pub heartbeat_at: DateTimeUtc,
    /// Whether it is shutting down (it no longer counts as live).
    pub stopping: bool,
}

impl ActiveModelBehavior for ActiveModel {}
