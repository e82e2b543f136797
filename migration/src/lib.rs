//! Database migrations for mt5-reconciler, run at start-up by `Migrator::up`.
//!
//! Self-contained: depends on nothing of ours. Never edit a migration that has landed;
//! add a new one instead.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_initial;
mod m20261124_000002_alerts;
mod m20261203_000001_u64_tickets;
mod m20261203_000002_dead_letters;
mod m20261203_000010_guard_state;
mod m20261203_000011_service_closes;
mod m20261203_000020_sync_rollups;
mod m20261203_000030_divergence_close;
mod m20261203_000040_trade_versions;
mod m20261204_000010_leases;
mod m20261205_000001_divergence_acks;
mod m20261205_000002_equity_samples;
mod m20261206_000020_close_intents;
mod m20261206_000021_alert_claims;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_initial::Migration),
            Box::new(m20261124_000002_alerts::Migration),
            Box::new(m20261203_000001_u64_tickets::Migration),
            Box::new(m20261203_000002_dead_letters::Migration),
            Box::new(m20261203_000010_guard_state::Migration),
            Box::new(m20261203_000011_service_closes::Migration),
            Box::new(m20261203_000020_sync_rollups::Migration),
            Box::new(m20261203_000030_divergence_close::Migration),
            Box::new(m20261203_000040_trade_versions::Migration),
            Box::new(m20261204_000010_leases::Migration),
            Box::new(m20261205_000001_divergence_acks::Migration),
            Box::new(m20261205_000002_equity_samples::Migration),
            Box::new(m20261206_000020_close_intents::Migration),
            Box::new(m20261206_000021_alert_claims::Migration),
        ]
    }
}
