//! What the fake counts (connections accepted, requests by endpoint, closes) and the
//! latency it adds to every answer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// `GET` this path for the counters as JSON (no token needed).
pub const STATS_PATH: &str = "/fake/stats";

/// Endpoints counted apart; anything else counts as `other`.
const ENDPOINTS: [&str; 7] = [
    "positions",
    "account-information",
    "orders",
    "current-price",
    "specification",
    "history-deals",
    "trade",
];

/// Live counters, updated without a lock.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    connections: AtomicU64,
    requests: [AtomicU64; ENDPOINTS.len() + 1],
    closes: AtomicU64,
    repeated_closes: AtomicU64,
}

impl Counters {
    pub(crate) fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request to `endpoint` (`current-price/EURUSD` counts as `current-price`).
    pub(crate) fn request(&self, endpoint: &str) {
        let head = endpoint.split('/').next().unwrap_or_default();
        let i = ENDPOINTS
            .iter()
            .position(|e| *e == head)
            .unwrap_or(ENDPOINTS.len());
        self.requests[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a close request that closed a position (`repeated`: the position was
    /// already closed).
    pub(crate) fn close(&self, repeated: bool) {
        let c = if repeated {
            &self.repeated_closes
        } else {
            &self.closes
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn read(&self) -> Stats {
        let requests: BTreeMap<String, u64> = ENDPOINTS
            .iter()
            .map(|e| (*e).to_owned())
            .chain(["other".to_owned()])
            .zip(self.requests.iter().map(|r| r.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        Stats {
            connections: self.connections.load(Ordering::Relaxed),
            requests,
            closes: self.closes.load(Ordering::Relaxed),
            repeated_closes: self.repeated_closes.load(Ordering::Relaxed),
        }
    }
}

/// A reading of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// TCP connections accepted.
    pub connections: u64,
    /// Requests by endpoint (only those with at least one).
    pub requests: BTreeMap<String, u64>,
    /// Close requests that closed an open position of a generated account.
    pub closes: u64,
    /// Close requests for a generated account's position that was already closed.
    pub repeated_closes: u64,
}

impl Stats {
    /// Requests of every endpoint.
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    /// Requests to `endpoint`.
    pub fn requests_to(&self, endpoint: &str) -> u64 {
        self.requests.get(endpoint).copied().unwrap_or(0)
    }

    /// As served on [`STATS_PATH`].
    pub fn to_json(&self) -> String {
        let requests: serde_json::Map<String, serde_json::Value> = self
            .requests
            .iter()
            .map(|(e, n)| (e.clone(), (*n).into()))
            .collect();
        serde_json::json!({
            "connections": self.connections,
            "requests": requests,
            "closes": self.closes,
            "repeated_closes": self.repeated_closes,
        })
        .to_string()
    }

    /// Reads what [`Stats::to_json`] wrote.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("fake stats: {e}"))?;
        let n = |key: &str| v[key].as_u64().ok_or(format!("fake stats: no {key}"));
        let requests = v["requests"]
            .as_object()
            .ok_or("fake stats: no requests")?
            .iter()
            .map(|(e, n)| (e.clone(), n.as_u64().unwrap_or(0)))
            .collect();
        Ok(Self {
            connections: n("connections")?,
            requests,
            closes: n("closes")?,
            repeated_closes: n("repeated_closes")?,
        })
    }
}

/// How long each answer waits before it is sent: uniform between two bounds.
#[derive(Debug, Default)]
pub struct Latency {
    min_ms: u64,
    max_ms: u64,
    draws: AtomicU64,
}

impl Clone for Latency {
    fn clone(&self) -> Self {
        Self::between(self.min_ms, self.max_ms)
    }
}

impl Latency {
    /// Between `min_ms` and `max_ms` milliseconds (swapped if given the wrong way round).
    pub fn between(min_ms: u64, max_ms: u64) -> Self {
        Self {
            min_ms: min_ms.min(max_ms),
            max_ms: max_ms.max(min_ms),
            draws: AtomicU64::new(0),
        }
    }

    /// Reads `A-B` or `A` (milliseconds).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("latency {text:?}: expected MIN-MAX or MS, in milliseconds");
        let (a, b) = text.split_once('-').unwrap_or((text, text));
        let a = a.trim().parse().map_err(|_| bad())?;
        let b = b.trim().parse().map_err(|_| bad())?;
        Ok(Self::between(a, b))
    }

    /// The next wait, or `None` for no latency.
    pub(crate) fn draw(&self) -> Option<Duration> {
        if self.max_ms == 0 {
            return None;
        }
        // splitmix64 over a counter: spread evenly, no generator to lock.
        let mut z = self
            .draws
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let span = self.max_ms - self.min_ms + 1;
        Some(Duration::from_millis(self.min_ms + z % span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_round_trip_through_json() {
        let c = Counters::default();
        c.connection();
        c.request("positions");
        c.request("current-price/EURUSD");
        c.request("nothing-known");
        c.close(false);
        c.close(true);
        let s = c.read();
        assert_eq!(Stats::from_json(&s.to_json()), Ok(s.clone()));
        assert_eq!(s.requests_to("current-price"), 1);
        assert_eq!(s.requests_to("other"), 1);
        assert_eq!(s.total_requests(), 3);
    }

    #[test]
    fn latency_stays_within_its_bounds_and_parses_both_forms() {
        let l = Latency::parse("100-200").unwrap();
        let draws: Vec<u64> = (0..1000)
            .map(|_| l.draw().unwrap().as_millis() as u64)
            .collect();
        assert!(draws.iter().all(|d| (100..=200).contains(d)));
        assert!(draws.iter().any(|d| *d < 120) && draws.iter().any(|d| *d > 180));
        assert_eq!(Latency::parse("0").unwrap().draw(), None);
        assert!(Latency::parse("fast").unwrap_err().contains("\"fast\""));
    }
}
