//! The actor tree: a supervisor that owns one circuit breaker per account, a scheduler,
//! one sync actor per account, one guard actor per guarded account and a persistence
//! actor. See DESIGN.md, "Shape".

pub mod breaker;
mod close_lookups;
pub mod fencing;
pub mod guard;
pub mod handle;
pub mod lease;
pub mod live;
pub mod persistence;
pub mod retention;
pub mod scheduler;
pub mod status;
pub mod supervisor;
pub mod user_sync;

pub use breaker::{Breaker, BreakerState, SupervisionConfig};
pub use fencing::{FenceSink, FencedWrites};
pub use lease::{HaConfig, HaStatus, LeaseEvent};
pub use live::{LiveSlot, LiveView};
pub use persistence::{PersistMsg, PersistenceConfig, PersistenceHandle, ReconcilerEvent};
pub use retention::{RetentionConfig, RetentionMsg};
pub use scheduler::SchedulerConfig;
pub use status::{AccountStatus, SchedulerStatus, Status};
pub use supervisor::{
    AccountSpec, HaArgs, ReconcilerSupervisor, SupervisorArgs, SupervisorMsg, SyncOutcome,
    SyncStats, TreeConfig,
};
pub use user_sync::UserSyncMsg;

#[cfg(feature = "cluster")]
impl ractor::Message for ReconcilerEvent {}
