//! What the supervisor reports about itself: per-account health and scheduler counters.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

/// The whole tree's status, as answered to `GetStatus`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// One entry per account, sorted by id.
    pub accounts: Vec<AccountStatus>,
    /// Scheduler counters.
    pub scheduler: SchedulerStatus,
}

/// Scheduler counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SchedulerStatus {
    /// Tick interval.
    #[serde(with = "millis")]
    pub interval: Duration,
    /// Ticks received (one per slot).
    pub ticks: u64,
    /// Account ticks skipped because the previous sync was still running.
    pub skipped_ticks: u64,
    /// Syncs running now.
    pub syncs_in_flight: usize,
    /// Broker calls running now (bounded by `max_in_flight`).
    pub broker_calls_in_flight: usize,
    /// Whether ticks are being dispatched (false while shutting down).
    pub ticking: bool,
    /// From the last completed tick to the end of the last sync it started, in ms.
    #[serde(with = "opt_millis")]
    pub last_tick_duration: Option<Duration>,
}

/// One account's health.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AccountStatus {
    /// Account id.
    pub id: String,
    /// Connector name (`sim`, `metaapi` …).
    pub broker: String,
    /// Breaker state: running, backing_off, open, half_open, disabled.
    pub state: String,
    /// Why it is disabled, if it is.
    pub disabled_reason: Option<String>,
    /// Failures since the last successful sync.
    pub consecutive_failures: u32,
    /// Successful syncs.
    pub syncs_ok: u64,
    /// Failed syncs (including crashes).
    pub syncs_failed: u64,
    /// Ticks skipped because a sync was still running.
    pub skipped_ticks: u64,
    /// Breaker transitions so far.
    pub transitions: u64,
    /// Restarts of the account's actor.
    pub restarts: u64,
    /// End of the last successful sync.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// Duration of the last sync, in milliseconds.
    #[serde(with = "opt_millis")]
    pub last_sync_duration: Option<Duration>,
    /// Positions at the last successful sync.
    pub positions: usize,
    /// Divergences open after the last successful sync.
    pub open_divergences: usize,
    /// Equity at the last successful sync.
    pub equity: Option<Decimal>,
    /// The last error, with its class.
    pub last_error: Option<String>,
    /// Whether a sync is running now.
    pub syncing: bool,
}

mod millis {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

mod opt_millis {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }
}
