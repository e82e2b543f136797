//! `[persistence]`: batching and retry settings, and their limits.

use serde::Deserialize;

/// Largest `flush_interval_ms`, `retry_min_ms` and `retry_max_ms`: one hour.
pub const MAX_PERSISTENCE_DELAY_MS: u64 = 3_600_000;

/// `[persistence]`: batching and retry settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PersistenceConfig {
    /// Flush as soon as this many items are buffered.
    pub batch_size: usize,
    /// Otherwise flush this long after the first buffered item, in milliseconds (at most
    /// [`MAX_PERSISTENCE_DELAY_MS`]).
    pub flush_interval_ms: u64,
    /// First retry delay while the database is away, in milliseconds (doubles; greater
    /// than 0 and at most `retry_max_ms`).
    pub retry_min_ms: u64,
    /// Largest retry delay, in milliseconds (at most [`MAX_PERSISTENCE_DELAY_MS`]).
    pub retry_max_ms: u64,
    /// Sync reports kept one by one while the database is away; past this, reports fold
    /// into one counter per account and error class (see `buffer`).
    pub max_buffered_reports: usize,
    /// Audit events kept one by one while the database is away; past this, the circuit
    /// breaker's transitions fold per account and kind. No audit event is dropped.
    pub max_buffered_audits: usize,
}

impl PersistenceConfig {
    /// Invalid values, each with its key path.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.batch_size == 0 {
            out.push("persistence.batch_size: must be at least 1".into());
        }
        if self.retry_min_ms == 0 || self.retry_min_ms > self.retry_max_ms {
            out.push(format!(
                "persistence.retry_min_ms = {}: must be > 0 and <= retry_max_ms",
                self.retry_min_ms
            ));
        }
        for (key, value) in [
            ("flush_interval_ms", self.flush_interval_ms),
            ("retry_max_ms", self.retry_max_ms),
        ] {
            if value > MAX_PERSISTENCE_DELAY_MS {
                out.push(format!(
                    "persistence.{key} = {value}: must be at most {MAX_PERSISTENCE_DELAY_MS}"
                ));
            }
        }
        out
    }
}

impl Default for PersistenceConfig {
    fn default() -> Self {
        Self {
            batch_size: 1_000,
            flush_interval_ms: 50,
            retry_min_ms: 100,
            retry_max_ms: 5_000,
            max_buffered_reports: 100_000,
            max_buffered_audits: 100_000,
        }
    }
}
