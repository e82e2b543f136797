//! Measuring tools: broker wrappers that time snapshots and closes, process CPU time and
//! resident memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mt5_reconciler::broker::{BoxFuture, Broker, BrokerError};
use mt5_reconciler::domain::AccountSnapshot;
use rust_decimal::Decimal;

/// Wraps a broker and records how long each snapshot took.
pub struct Timed {
    inner: Arc<dyn Broker>,
    stats: Mutex<FetchStats>,
}

/// Snapshot durations seen so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct FetchStats {
    /// Calls.
    pub count: u64,
    /// Sum of durations.
    pub total: Duration,
    /// Longest.
    pub max: Duration,
}

impl FetchStats {
    /// Mean duration.
    pub fn mean(&self) -> Duration {
        if self.count == 0 {
            Duration::ZERO
        } else {
            self.total / self.count as u32
        }
    }
}

impl Timed {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Broker>) -> Self {
        Self {
            inner,
            stats: Mutex::new(FetchStats::default()),
        }
    }

    /// The durations so far, and resets them.
    pub fn take(&self) -> FetchStats {
        std::mem::take(&mut *self.stats.lock().expect("stats"))
    }
}

impl Broker for Timed {
    fn snapshot<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<AccountSnapshot, BrokerError>> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.inner.snapshot(account).await;
            let d = t.elapsed();
            let mut s = self.stats.lock().expect("stats");
            s.count += 1;
            s.total += d;
            s.max = s.max.max(d);
            r
        })
    }
}

/// CPU time (user + system) this process has used so far.
pub fn cpu_time() -> Duration {
    cpu_time_of("self")
}

/// CPU time (user + system) process `pid` (or `self`) has used so far.
pub fn cpu_time_of(pid: &str) -> Duration {
    // /proc/<pid>/stat fields 14 and 15 (utime, stime) in clock ticks; the command name
    // (field 2) may hold spaces, so count from its closing parenthesis.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After ')' the fields start at number 3: utime is 14 → index 11, stime 15 → index 12.
    let hz = 100; // USER_HZ on Linux
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / hz)
}

/// Resident set size of this process, in bytes.
pub fn rss_bytes() -> u64 {
    rss_bytes_of("self")
}

/// Resident memory of process `pid` (or `self`), in bytes.
pub fn rss_bytes_of(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A one-line description of the machine.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{cores} cores, {cpu}, {}",
        if cfg!(debug_assertions) {
            "DEBUG build"
        } else {
            "release build"
        }
    )
}

/// The `q` quantile of `samples` (sorted in place).
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[i.min(samples.len() - 1)]
}

/// `ok` or `MISS`.
pub fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISS" }
}

/// What [`CloseClock`] saw of one account.
#[derive(Debug, Clone, Default)]
pub struct CloseStamps {
    /// When the first snapshot showing the breach was answered.
    pub breach_seen: Option<Instant>,
    /// When the first close call for the account arrived.
    pub first_close: Option<Instant>,
    /// When each close answered "closed", in order.
    pub closed: Vec<Instant>,
}

/// Wraps a broker, forwards snapshots and closes, and timestamps per account the first
/// snapshot whose equity is at or below `breach_equity`, the first close call and every
/// successful close.
pub struct CloseClock {
    inner: Arc<dyn Broker>,
    breach_equity: Decimal,
    stamps: Mutex<HashMap<String, CloseStamps>>,
}

impl CloseClock {
    /// Wraps `inner`; a snapshot with equity at or below `breach_equity` shows the breach.
    pub fn new(inner: Arc<dyn Broker>, breach_equity: Decimal) -> Self {
        Self {
            inner,
            breach_equity,
            stamps: Mutex::new(HashMap::new()),
        }
    }

    /// What was seen so far, by account.
    pub fn stamps(&self) -> HashMap<String, CloseStamps> {
        self.stamps.lock().expect("stamps").clone()
    }

    fn stamp(&self, account: &str, f: impl FnOnce(&mut CloseStamps)) {
        let mut stamps = self.stamps.lock().expect("stamps");
        match stamps.get_mut(account) {
            Some(s) => f(s),
            None => f(stamps.entry(account.to_owned()).or_default()),
        }
    }
}

impl Broker for CloseClock {
    fn snapshot<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<AccountSnapshot, BrokerError>> {
        Box::pin(async move {
            let r = self.inner.snapshot(account).await;
            if let Ok(s) = &r
                && s.equity <= self.breach_equity
            {
                let now = Instant::now();
                self.stamp(account, |a| {
                    a.breach_seen.get_or_insert(now);
                });
            }
            r
        })
    }

    fn close_position<'a>(
        &'a self,
        account: &'a str,
        ticket: u64,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            let asked = Instant::now();
            self.stamp(account, |a| {
                a.first_close.get_or_insert(asked);
            });
            let r = self.inner.close_position(account, ticket).await;
            if r.is_ok() {
                let now = Instant::now();
                self.stamp(account, |a| a.closed.push(now));
            }
            r
        })
    }
}
