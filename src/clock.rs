//! The one wall clock of the actor tree. Every decision or record that needs the time of
//! day (a trading day, an alert's `close_at`, an audit event, a sync report) reads it
//! from a [`Clock`] handed down from `SupervisorArgs`, never from `Utc::now()`.
//!
//! [`Clock::real`] is the system clock. [`Clock::following_tokio`] starts at a chosen
//! instant and advances with tokio's clock, so tests on paused tokio time can run a
//! daily reset or a daylight-saving day without sleeping, and the load harness can
//! compress days with a speed factor. An offset skews either (an instance whose clock is
//! off).

use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use tokio::time::Instant;

/// Largest `[clock] offset_secs` either way: a day.
pub const MAX_OFFSET_SECS: i64 = 86_400;

/// `[clock]`: a skew of this instance's wall clock, for testing a node whose clock is off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockConfig {
    /// Seconds added to the system clock (negative: behind), from −[`MAX_OFFSET_SECS`] to
    /// [`MAX_OFFSET_SECS`]; 0 in production.
    pub offset_secs: i64,
}

impl ClockConfig {
    /// Invalid values, each with its key and value.
    pub fn problems(&self) -> Vec<String> {
        if (-MAX_OFFSET_SECS..=MAX_OFFSET_SECS).contains(&self.offset_secs) {
            Vec::new()
        } else {
            vec![format!(
                "clock.offset_secs = {}: must be from -{MAX_OFFSET_SECS} to {MAX_OFFSET_SECS}",
                self.offset_secs
            )]
        }
    }

    /// The real clock shifted by `offset_secs`.
    pub fn clock(&self) -> Clock {
        Clock::real().with_offset(TimeDelta::seconds(self.offset_secs))
    }
}

/// A handle to the wall clock: `Copy`, so cheap to hand to every actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    source: Source,
    /// Added to whatever the source says.
    offset: TimeDelta,
}

/// Where the time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `Utc::now()`.
    Real,
    /// `start + (tokio now − origin) × speed`.
    Following {
        start: DateTime<Utc>,
        origin: Instant,
        speed: u32,
    },
}

impl Default for Clock {
    /// The real clock.
    fn default() -> Self {
        Self::real()
    }
}

impl Clock {
    /// The system clock (`Utc::now()`).
    pub fn real() -> Self {
        Self {
            source: Source::Real,
            offset: TimeDelta::zero(),
        }
    }

    /// A clock that reads `start` now and then advances with tokio's clock (paused or
    /// not): its time is `start + (tokio::time::Instant::now() − the instant of this call)`.
    pub fn following_tokio(start: DateTime<Utc>) -> Self {
        Self {
            source: Source::Following {
                start,
                origin: Instant::now(),
                speed: 1,
            },
            offset: TimeDelta::zero(),
        }
    }

    /// The same clock running `speed` times as fast as tokio's (a simulated day in
    /// `1/speed` of a day). A speed of 0 is taken as 1; the real clock ignores it.
    pub fn with_speed(mut self, speed: u32) -> Self {
        if let Source::Following { speed: s, .. } = &mut self.source {
            *s = speed.max(1);
        }
        self
    }

    /// The same clock shifted by `offset` (an instance whose clock is off).
    pub fn with_offset(mut self, offset: TimeDelta) -> Self {
        self.offset = offset;
        self
    }

    /// The time now.
    pub fn now(&self) -> DateTime<Utc> {
        let base = match self.source {
            Source::Real => Utc::now(),
            Source::Following {
                start,
                origin,
                speed,
            } => {
                let elapsed = Instant::now().saturating_duration_since(origin);
                elapsed
                    .checked_mul(speed)
                    .and_then(|e| TimeDelta::from_std(e).ok())
                    .and_then(|d| start.checked_add_signed(d))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC)
            }
        };
        base.checked_add_signed(self.offset).unwrap_or(base)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("a valid instant")
    }

    #[tokio::test(start_paused = true)]
    async fn a_following_clock_advances_with_paused_tokio_time_only() {
        let clock = Clock::following_tokio(at("2026-03-08T20:50:00Z"));
        assert_eq!(clock.now(), at("2026-03-08T20:50:00Z"));
        tokio::time::advance(Duration::from_secs(15 * 60)).await;
        assert_eq!(clock.now(), at("2026-03-08T21:05:00Z"));
        // A copy is the same clock.
        let copy = clock;
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(copy.now(), at("2026-03-08T21:05:01.500Z"));
        assert_eq!(clock.now(), copy.now());
    }

    #[tokio::test(start_paused = true)]
    async fn speed_compresses_and_offset_shifts() {
        let start = at("2026-03-08T00:00:00Z");
        let fast = Clock::following_tokio(start).with_speed(1_440);
        let skewed = Clock::following_tokio(start).with_offset(TimeDelta::seconds(-90));
        let stopped = Clock::following_tokio(start).with_speed(0);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(fast.now(), at("2026-03-09T00:00:00Z"), "a day a minute");
        assert_eq!(skewed.now(), at("2026-03-07T23:59:30Z"));
        assert_eq!(stopped.now(), at("2026-03-08T00:01:00Z"), "0 is taken as 1");
    }

    #[test]
    fn a_configured_offset_skews_the_real_clock_within_a_day() {
        assert_eq!(ClockConfig::default().clock(), Clock::real());
        let ahead = ClockConfig { offset_secs: 60 };
        assert!(ahead.problems().is_empty());
        let before = Utc::now();
        let now = ahead.clock().now();
        assert!(now >= before + TimeDelta::seconds(60));
        assert!(now <= Utc::now() + TimeDelta::seconds(60));
        for bad in [MAX_OFFSET_SECS + 1, -MAX_OFFSET_SECS - 1] {
            let problems = ClockConfig { offset_secs: bad }.problems();
            assert!(problems[0].starts_with(&format!("clock.offset_secs = {bad}:")));
        }
        assert!(
            ClockConfig {
                offset_secs: -MAX_OFFSET_SECS
            }
            .problems()
            .is_empty()
        );
    }

    #[test]
    fn the_default_is_the_real_clock() {
        let clock = Clock::default();
        assert_eq!(clock, Clock::real());
        assert_ne!(clock.with_offset(TimeDelta::seconds(1)), Clock::real());
        let before = Utc::now();
        let now = clock.now();
        assert!(before <= now && now <= Utc::now());
    }
}
