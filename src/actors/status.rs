//! What the supervisor reports about itself: per-account health and scheduler counters.

use std::collections::BTreeMap;
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
    /// NATS counters (events published and dropped, trade events consumed), when NATS is
    /// configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats: Option<crate::nats::NatsStatus>,
    /// High availability: this instance, its leases and lease changes, when enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ha: Option<super::lease::HaStatus>,
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
    /// The longest successful sync of that tick, in ms: the tick's wall time cannot be
    /// shorter, so the two together show what the scheduling adds.
    #[serde(with = "opt_millis")]
    pub last_tick_slowest_sync: Option<Duration>,
    /// Every tick duration so far (the same measure as `last_tick_duration`).
    pub tick_duration: DurationHistogram,
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
    /// Divergences the last sync observed but held: in flight (within the grace window)
    /// or not yet confirmed.
    pub held_divergences: usize,
    /// Positions outside the bot's scope at the last successful sync (listed, never
    /// divergences unless the scope says so).
    pub external_positions: usize,
    /// Pending orders outside the bot's scope at the last successful sync.
    pub external_orders: usize,
    /// Bot trades waiting on a pending order at the last successful sync.
    pub pending_orders: usize,
    /// Equity at the last successful sync.
    pub equity: Option<Decimal>,
    /// The last error, with its class.
    pub last_error: Option<String>,
    /// Whether a sync is running now.
    pub syncing: bool,
    /// Failed syncs by error class (`timeout`, `retryable`, `permanent` …).
    pub failures_by_class: BTreeMap<String, u64>,
    /// Breaker transitions by audit event (`circuit_opened`, `backoff_started` …).
    pub transitions_by_kind: BTreeMap<String, u64>,
    /// Durations of the successful syncs (for metrics; not in the JSON status).
    #[serde(skip)]
    pub sync_duration: DurationHistogram,
}

/// Upper bounds of the duration histograms' buckets, in seconds (Prometheus `le`).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A histogram of durations over [`DURATION_BUCKETS`], plus the last observation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DurationHistogram {
    /// Observations per bucket, not cumulative; those above the last bound are only in
    /// `count`.
    #[serde(skip)]
    pub buckets: [u64; DURATION_BUCKETS.len()],
    /// Observations.
    pub count: u64,
    /// Sum of the observations, in milliseconds.
    #[serde(rename = "sum_ms", with = "fractional_millis")]
    pub sum: Duration,
    /// The last observation, in milliseconds.
    #[serde(rename = "last_ms", with = "opt_fractional_millis")]
    pub last: Option<Duration>,
}

impl DurationHistogram {
    /// Records one duration.
    pub fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = DURATION_BUCKETS.iter().position(|le| secs <= *le) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += d;
        self.last = Some(d);
    }

    /// Adds `other`'s observations to this one (its `last` wins when it has one).
    pub fn merge(&mut self, other: &DurationHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.last = other.last.or(self.last);
    }
}

/// What the persistence actor reports about itself.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PersistenceStats {
    /// Items buffered, not yet durable.
    pub queued: usize,
    /// Whether the last flush failed and a retry is scheduled.
    pub retrying: bool,
    /// Durations of the successful flushes (one transaction each).
    pub flush_duration: DurationHistogram,
    /// Items the database refused since start, kept in `dead_letters`.
    pub dead_letters: u64,
    /// The buffer's parts (`queued` is their total).
    pub buffer: super::persistence::BufferSizes,
    /// Accounts whose latest quiet sync waits to move `last_seen` (one entry each).
    pub pending_sightings: usize,
    /// Account-hours whose sync counts wait to be added to the stored rollups.
    pub pending_rollups: usize,
}

mod fractional_millis {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }
}

mod opt_fractional_millis {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_secs_f64() * 1000.0)),
            None => s.serialize_none(),
        }
    }
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
