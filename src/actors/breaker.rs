//! The per-account circuit breaker: the restart policy of an account's sync actor.
//!
//! States and transitions (DESIGN.md, "Restart policy = circuit breaker"):
//!
//! | state | leaves when |
//! |---|---|
//! | Running | failure → BackingOff, or → Open when failures within `window` reach `max_failures` |
//! | BackingOff | its timer fires → Running |
//! | Open | after `open_for` (×2 per consecutive trip, capped) → HalfOpen |
//! | HalfOpen | probe succeeds → Running (counters reset); fails → Open |
//! | Disabled | an operator re-enables the account |
//!
//! Pure: time comes in as arguments, jitter from a per-account seeded generator. Every
//! timer carries the generation it was set in; a timer whose generation is not current is
//! stale and does nothing, so removing or re-enabling an account during a backoff wins.
//! The arithmetic saturates: settings start-up validation would refuse (see
//! [`SupervisionConfig::problems`]) give very long delays, never a panic.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

/// Largest `min_backoff_ms` and `max_backoff_ms`: one day.
pub const MAX_BACKOFF_MS: u64 = 86_400_000;

/// Largest `window_secs`, `open_for_secs` and `max_open_for_secs`: one day.
pub const MAX_SUPERVISION_SECS: u64 = 86_400;

/// `[supervision]`: the breaker's settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisionConfig {
    /// First restart delay after a failure, in milliseconds (at most [`MAX_BACKOFF_MS`]).
    pub min_backoff_ms: u64,
    /// Largest restart delay, in milliseconds (at most [`MAX_BACKOFF_MS`]).
    pub max_backoff_ms: u64,
    /// Random extra delay, in percent of the backoff (0 = none).
    pub jitter_pct: u32,
    /// Failures within `window_secs` that trip the breaker open.
    pub max_failures: u32,
    /// The window failures are counted in, in seconds (at most [`MAX_SUPERVISION_SECS`]).
    pub window_secs: u64,
    /// How long the first trip keeps the breaker open, in seconds (at most
    /// [`MAX_SUPERVISION_SECS`]).
    pub open_for_secs: u64,
    /// The cap on `open_for`, which doubles with each consecutive trip (at most
    /// [`MAX_SUPERVISION_SECS`]).
    pub max_open_for_secs: u64,
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        Self {
            min_backoff_ms: 1_000,
            max_backoff_ms: 60_000,
            jitter_pct: 20,
            max_failures: 5,
            window_secs: 120,
            open_for_secs: 60,
            max_open_for_secs: 900,
        }
    }
}

impl SupervisionConfig {
    /// Invalid values, each with its key path.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.min_backoff_ms == 0 || self.min_backoff_ms > self.max_backoff_ms {
            out.push("supervision.min_backoff_ms: must be > 0 and <= max_backoff_ms".into());
        }
        if self.max_failures == 0 {
            out.push("supervision.max_failures: must be at least 1".into());
        }
        if self.open_for_secs == 0 || self.open_for_secs > self.max_open_for_secs {
            out.push("supervision.open_for_secs: must be > 0 and <= max_open_for_secs".into());
        }
        if self.jitter_pct > 100 {
            out.push("supervision.jitter_pct: must be between 0 and 100".into());
        }
        for (key, value, max) in [
            ("min_backoff_ms", self.min_backoff_ms, MAX_BACKOFF_MS),
            ("max_backoff_ms", self.max_backoff_ms, MAX_BACKOFF_MS),
            ("window_secs", self.window_secs, MAX_SUPERVISION_SECS),
            ("open_for_secs", self.open_for_secs, MAX_SUPERVISION_SECS),
            (
                "max_open_for_secs",
                self.max_open_for_secs,
                MAX_SUPERVISION_SECS,
            ),
        ] {
            if value > max {
                out.push(format!(
                    "supervision.{key} = {value}: must be at most {max}"
                ));
            }
        }
        out
    }
}

/// Where an account's breaker stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakerState {
    /// Closed: the actor is alive and gets ticks.
    Running,
    /// The actor is dead; a restart is scheduled.
    BackingOff {
        /// When the restart is due.
        until: Instant,
    },
    /// Tripped: no actor, no ticks until `until`.
    Open {
        /// When a probe is allowed.
        until: Instant,
    },
    /// One probe actor, one sync.
    HalfOpen,
    /// A permanent error: not restarted until an operator re-enables the account.
    Disabled {
        /// Why.
        reason: String,
    },
}

impl BreakerState {
    /// Every state's name, as [`Self::name`] gives it.
    pub const NAMES: [&'static str; 5] =
        ["running", "backing_off", "open", "half_open", "disabled"];

    /// The snake_case name used in status output, audit events and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::BackingOff { .. } => "backing_off",
            Self::Open { .. } => "open",
            Self::HalfOpen => "half_open",
            Self::Disabled { .. } => "disabled",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the owner of the breaker must do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing (a stale timer, or a success while running).
    None,
    /// Stop the actor and call [`Breaker::on_timer`] with `generation` after `delay`.
    Schedule {
        /// How long to wait.
        delay: Duration,
        /// The generation the timer belongs to.
        generation: u64,
    },
    /// Start an actor that gets ticks.
    Start,
    /// Start a probe actor and sync it once.
    Probe,
    /// Stop the actor for good (until re-enabled).
    Stop,
}

/// A state change, for the audit trail and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: &'static str,
    /// The state after.
    pub to: &'static str,
    /// The audit event kind (`circuit_opened`, `backoff_started` …).
    pub event: &'static str,
}

/// One account's breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    config: SupervisionConfig,
    state: BreakerState,
    failures: VecDeque<Instant>,
    consecutive_failures: u32,
    consecutive_trips: u32,
    generation: u64,
    rng: u64,
}

impl Breaker {
    /// A running breaker; `seed` makes the jitter reproducible (e.g. a hash of the account).
    pub fn new(config: SupervisionConfig, seed: u64) -> Self {
        Self {
            config,
            state: BreakerState::Running,
            failures: VecDeque::new(),
            consecutive_failures: 0,
            consecutive_trips: 0,
            generation: 0,
            rng: seed | 1,
        }
    }

    /// The current state.
    pub fn state(&self) -> &BreakerState {
        &self.state
    }

    /// The current timer generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Failures since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Whether the account's actor should receive ticks now.
    pub fn takes_ticks(&self) -> bool {
        self.state == BreakerState::Running
    }

    fn go(&mut self, to: BreakerState, event: &'static str) -> Transition {
        let from = self.state.name();
        self.state = to;
        self.generation = self.generation.wrapping_add(1);
        Transition {
            from,
            to: self.state.name(),
            event,
        }
    }

    fn jitter(&mut self, d: Duration) -> Duration {
        // xorshift64: cheap, seeded, good enough to spread restarts.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let pct = u64::from(self.config.jitter_pct.min(100));
        if pct == 0 {
            return d;
        }
        let extra_per_mille = self.rng % (pct * 10 + 1);
        let extra = Duration::try_from_secs_f64(d.as_secs_f64() * extra_per_mille as f64 / 1000.0)
            .unwrap_or(Duration::MAX);
        d.saturating_add(extra)
    }

    /// A successful sync. Closes a half-open breaker and resets every counter.
    pub fn on_success(&mut self) -> (Action, Option<Transition>) {
        self.consecutive_failures = 0;
        match self.state {
            BreakerState::HalfOpen => {
                self.failures.clear();
                self.consecutive_trips = 0;
                (
                    Action::None,
                    Some(self.go(BreakerState::Running, "circuit_closed")),
                )
            }
            _ => (Action::None, None),
        }
    }

    /// A failed sync or a dead actor (anything but a permanent error). `at_least` is a
    /// delay the broker asked for (HTTP 429 `Retry-After`): the restart never comes sooner.
    pub fn on_failure(
        &mut self,
        now: Instant,
        at_least: Option<Duration>,
    ) -> (Action, Option<Transition>) {
        match self.state {
            BreakerState::Running | BreakerState::HalfOpen => {}
            // Already handled (e.g. a late report from an actor being replaced).
            _ => return (Action::None, None),
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.failures.push_back(now);
        let window = Duration::from_secs(self.config.window_secs);
        while self
            .failures
            .front()
            .is_some_and(|&t| now.duration_since(t) > window)
        {
            self.failures.pop_front();
        }
        let tripped = self.state == BreakerState::HalfOpen
            || self.failures.len() >= self.config.max_failures as usize;
        if tripped {
            let base = Duration::from_secs(self.config.open_for_secs);
            let factor = 2u32.saturating_pow(self.consecutive_trips.min(20));
            let open_for = base
                .saturating_mul(factor)
                .min(Duration::from_secs(self.config.max_open_for_secs))
                .max(at_least.unwrap_or_default());
            self.consecutive_trips = self.consecutive_trips.saturating_add(1);
            let t = self.go(
                BreakerState::Open {
                    until: deadline(now, open_for),
                },
                "circuit_opened",
            );
            let action = Action::Schedule {
                delay: open_for,
                generation: self.generation,
            };
            return (action, Some(t));
        }
        let exp = self.consecutive_failures.saturating_sub(1).min(30);
        let backoff = Duration::from_millis(self.config.min_backoff_ms)
            .saturating_mul(2u32.saturating_pow(exp))
            .min(Duration::from_millis(self.config.max_backoff_ms));
        let delay = self.jitter(backoff).max(at_least.unwrap_or_default());
        let t = self.go(
            BreakerState::BackingOff {
                until: deadline(now, delay),
            },
            "backoff_started",
        );
        (
            Action::Schedule {
                delay,
                generation: self.generation,
            },
            Some(t),
        )
    }

    /// A permanent error: the account is disabled and not restarted.
    pub fn on_permanent(&mut self, reason: String) -> (Action, Option<Transition>) {
        if matches!(self.state, BreakerState::Disabled { .. }) {
            return (Action::None, None);
        }
        (
            Action::Stop,
            Some(self.go(BreakerState::Disabled { reason }, "account_disabled")),
        )
    }

    /// A timer set in `generation` fired.
    pub fn on_timer(&mut self, generation: u64) -> (Action, Option<Transition>) {
        if generation != self.generation {
            return (Action::None, None);
        }
        match self.state {
            BreakerState::BackingOff { .. } => (
                Action::Start,
                Some(self.go(BreakerState::Running, "actor_restarted")),
            ),
            BreakerState::Open { .. } => (
                Action::Probe,
                Some(self.go(BreakerState::HalfOpen, "circuit_half_open")),
            ),
            _ => (Action::None, None),
        }
    }

    /// An operator re-enables the account (or resets a tripped breaker): back to Running.
    pub fn enable(&mut self) -> (Action, Option<Transition>) {
        if self.state == BreakerState::Running {
            return (Action::None, None);
        }
        self.failures.clear();
        self.consecutive_failures = 0;
        self.consecutive_trips = 0;
        (
            Action::Start,
            Some(self.go(BreakerState::Running, "account_enabled")),
        )
    }
}

/// `now + delay`, or, when that would overflow the clock, an instant about as far ahead as
/// the clock reaches.
fn deadline(now: Instant, delay: Duration) -> Instant {
    let mut d = delay;
    loop {
        if let Some(t) = now.checked_add(d) {
            return t;
        }
        d /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SupervisionConfig {
        SupervisionConfig {
            min_backoff_ms: 100,
            max_backoff_ms: 1_000,
            jitter_pct: 0,
            max_failures: 3,
            window_secs: 60,
            open_for_secs: 10,
            max_open_for_secs: 25,
        }
    }

    fn delay(a: &Action) -> Duration {
        match a {
            Action::Schedule { delay, .. } => *delay,
            other => panic!("expected a schedule, got {other:?}"),
        }
    }

    #[test]
    fn backoff_grows_exponentially_then_trips_open() {
        let now = Instant::now();
        let mut b = Breaker::new(config(), 7);
        let (a, t) = b.on_failure(now, None);
        assert_eq!(delay(&a), Duration::from_millis(100));
        assert_eq!(t.unwrap().event, "backoff_started");
        assert_eq!(b.on_timer(b.generation()).0, Action::Start);
        let (a, _) = b.on_failure(now, None);
        assert_eq!(delay(&a), Duration::from_millis(200));
        b.on_timer(b.generation());
        let (a, t) = b.on_failure(now, None);
        assert_eq!(t.unwrap().event, "circuit_opened");
        assert_eq!(delay(&a), Duration::from_secs(10));
        assert!(matches!(b.state(), BreakerState::Open { .. }));
    }

    #[test]
    fn open_for_doubles_per_consecutive_trip_up_to_the_cap_and_a_good_probe_resets() {
        let now = Instant::now();
        let mut b = Breaker::new(config(), 7);
        for _ in 0..2 {
            b.on_failure(now, None);
            b.on_timer(b.generation());
        }
        assert_eq!(delay(&b.on_failure(now, None).0), Duration::from_secs(10));
        let mut expected = [20, 25, 25].into_iter();
        for _ in 0..3 {
            assert_eq!(b.on_timer(b.generation()).0, Action::Probe);
            let (a, t) = b.on_failure(now, None);
            assert_eq!(t.unwrap().from, "half_open");
            assert_eq!(delay(&a), Duration::from_secs(expected.next().unwrap()));
        }
        assert_eq!(b.on_timer(b.generation()).0, Action::Probe);
        let (_, t) = b.on_success();
        assert_eq!(t.unwrap().event, "circuit_closed");
        // Counters reset: the next failure is a first backoff again.
        assert_eq!(
            delay(&b.on_failure(now, None).0),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let start = Instant::now();
        let mut b = Breaker::new(config(), 7);
        for i in 0..5u64 {
            let (_, t) = b.on_failure(start + Duration::from_secs(61 * i), None);
            assert_eq!(t.unwrap().event, "backoff_started", "failure {i}");
            b.on_timer(b.generation());
        }
    }

    #[test]
    fn stale_timers_do_nothing() {
        let now = Instant::now();
        let mut b = Breaker::new(config(), 7);
        b.on_failure(now, None);
        let stale = b.generation();
        b.on_permanent("gone".into());
        assert_eq!(b.on_timer(stale), (Action::None, None));
        assert!(matches!(b.state(), BreakerState::Disabled { .. }));
        let (a, t) = b.enable();
        assert_eq!(a, Action::Start);
        assert_eq!(t.unwrap().event, "account_enabled");
        assert_eq!(b.on_timer(stale), (Action::None, None));
    }

    #[test]
    fn a_delay_the_broker_asked_for_is_respected() {
        let mut b = Breaker::new(config(), 7);
        let (a, _) = b.on_failure(Instant::now(), Some(Duration::from_secs(42)));
        assert_eq!(delay(&a), Duration::from_secs(42));
        b.on_timer(b.generation());
        // A shorter request does not shorten the backoff.
        let (a, _) = b.on_failure(Instant::now(), Some(Duration::from_millis(1)));
        assert_eq!(delay(&a), Duration::from_millis(200));
    }

    #[test]
    fn permanent_errors_disable_without_restart() {
        let mut b = Breaker::new(config(), 7);
        let (a, t) = b.on_permanent("401 unauthorized".into());
        assert_eq!(a, Action::Stop);
        assert_eq!(t.unwrap().to, "disabled");
        assert_eq!(b.on_failure(Instant::now(), None), (Action::None, None));
    }

    #[test]
    fn absurd_settings_never_overflow_the_clock() {
        // Values start-up validation refuses, given directly: nothing may panic.
        let huge = SupervisionConfig {
            min_backoff_ms: u64::MAX,
            max_backoff_ms: u64::MAX,
            jitter_pct: u32::MAX,
            max_failures: 2,
            window_secs: u64::MAX,
            open_for_secs: u64::MAX,
            max_open_for_secs: u64::MAX,
        };
        let now = Instant::now();
        let mut b = Breaker::new(huge, 7);
        let (a, _) = b.on_failure(now, Some(Duration::MAX));
        assert!(matches!(b.state(), BreakerState::BackingOff { .. }));
        assert!(delay(&a) > Duration::ZERO);
        b.on_timer(b.generation());
        let (a, t) = b.on_failure(now, None);
        assert_eq!(t.unwrap().event, "circuit_opened");
        assert!(delay(&a) > Duration::ZERO);
        for _ in 0..40 {
            assert_eq!(b.on_timer(b.generation()).0, Action::Probe);
            let (a, _) = b.on_failure(now, Some(Duration::MAX));
            assert!(matches!(b.state(), BreakerState::Open { .. }));
            assert!(delay(&a) > Duration::ZERO);
        }
    }

    #[test]
    fn jitter_stays_within_its_percentage_and_is_reproducible() {
        let cfg = SupervisionConfig {
            jitter_pct: 20,
            ..config()
        };
        let mut a = Breaker::new(cfg.clone(), 99);
        let mut b = Breaker::new(cfg, 99);
        let now = Instant::now();
        let (da, db) = (
            delay(&a.on_failure(now, None).0),
            delay(&b.on_failure(now, None).0),
        );
        assert_eq!(da, db);
        assert!(
            da >= Duration::from_millis(100) && da <= Duration::from_millis(120),
            "{da:?}"
        );
    }
}
