//! High availability: the lease actor claims, renews and gives up the leases of accounts on
//! PostgreSQL and keeps a monotonic trust deadline per lease; the supervisor only applies
//! what it reports, `Owned` and `Lost`. See DESIGN.md, "High availability".

mod actor;
mod config;
mod listen;
mod ops;
mod rounds;
pub mod share;
mod stats;
pub mod trust;

pub use actor::{LeaseActor, LeaseArgs, LeaseMsg, LeaseSink};
pub use config::{HaConfig, MAX_CLAIM_SECS, MAX_INSTANCE_ID_LEN, MAX_TTL_SECS, MIN_TTL_SECS};
pub use stats::{HaStats, HaStatus};

/// What the lease actor tells the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEvent {
    /// This instance now owns `account` under `epoch`: its actors may run.
    Owned {
        /// Account.
        account: String,
        /// The epoch of the claim (the fencing token).
        epoch: i64,
    },
    /// This instance no longer owns `account`: its actors stop at once.
    Lost {
        /// Account.
        account: String,
    },
    /// The database has been away longer than a lease (`away`: every account stopped), or
    /// answers again (`away` false).
    DatabaseAway {
        /// Whether it is away.
        away: bool,
        /// How long it had been silent when this was said, in milliseconds.
        silent_ms: u64,
    },
}
