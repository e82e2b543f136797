//! MarketGuard: whether the market for a symbol is fit for an automatic close.
//!
//! A guard holds (postpones automatic closes on its symbol) while any of these is true:
//! the price gapped between two consecutive snapshots by more than `max_gap_pips`; the
//! spread is wider than `max_spread_pips`; the quote is older than `stale_secs`; the time
//! is outside the symbol's trading sessions. Pure: time comes in as an argument.

use chrono::{DateTime, Datelike, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::Serialize;

pub use crate::domain::Quote;

/// A weekly trading session: days and a local time range (may cross midnight).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// First day (inclusive).
    pub from: Weekday,
    /// Last day (inclusive).
    pub to: Weekday,
    /// Opening time.
    pub open: NaiveTime,
    /// Closing time.
    pub close: NaiveTime,
}

impl Session {
    /// Parses `"Mon-Fri 00:05-23:55"` or `"Sun 22:00-23:59"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?}: expected e.g. \"Mon-Fri 00:05-23:55\"");
        let (days, hours) = text.trim().split_once(' ').ok_or_else(bad)?;
        let (from, to) = days.split_once('-').unwrap_or((days, days));
        let (open, close) = hours.trim().split_once('-').ok_or_else(bad)?;
        let day = |d: &str| d.trim().parse::<Weekday>().map_err(|_| bad());
        let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| bad());
        Ok(Session {
            from: day(from)?,
            to: day(to)?,
            open: time(open)?,
            close: time(close)?,
        })
    }

    fn contains(&self, day: Weekday, time: NaiveTime) -> bool {
        let (from, to, d) = (
            self.from.num_days_from_monday(),
            self.to.num_days_from_monday(),
            day.num_days_from_monday(),
        );
        let day_ok = if from <= to {
            from <= d && d <= to
        } else {
            d >= from || d <= to
        };
        let time_ok = if self.open <= self.close {
            self.open <= time && time <= self.close
        } else {
            time >= self.open || time <= self.close
        };
        day_ok && time_ok
    }
}

/// The guard's settings for one symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketRule {
    /// Canonical symbol.
    pub symbol: String,
    /// Largest move between two snapshots, in pips.
    pub max_gap_pips: Option<Decimal>,
    /// Calm snapshots after a gap before the guard clears.
    pub gap_clear_after: u32,
    /// Widest spread, in pips.
    pub max_spread_pips: Option<Decimal>,
    /// Oldest acceptable quote, in seconds.
    pub stale_secs: Option<u64>,
    /// Trading sessions (empty: always open).
    pub sessions: Vec<Session>,
    /// Time zone of the sessions.
    pub zone: Tz,
}

/// Why the guard holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Hold {
    /// The price moved this many pips since the previous snapshot.
    Gap {
        /// Pips moved.
        pips: Decimal,
    },
    /// The spread is this many pips.
    Spread {
        /// Pips.
        pips: Decimal,
    },
    /// The quote is this many seconds old (or there is none).
    Stale {
        /// Age in seconds, `None` without a quote.
        age_secs: Option<i64>,
    },
    /// Outside every trading session.
    OutsideSession,
    /// A configured gap or spread check could not be made (the symbol has no pip size).
    Unchecked {
        /// Why.
        why: String,
    },
}

/// What the guard remembers between snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarketState {
    last_mid: Option<Decimal>,
    /// The last gap, and the calm snapshots seen since.
    gap: Option<(Decimal, u32)>,
}

impl MarketRule {
    /// Evaluates one snapshot's quote (if any) at `now`; an empty list means clear.
    pub fn evaluate(
        &self,
        state: &mut MarketState,
        quote: Option<&Quote>,
        pip: Decimal,
        now: DateTime<Utc>,
    ) -> Vec<Hold> {
        let mut holds = Vec::new();
        if let Some(q) = quote {
            let mid = (q.bid + q.ask) / Decimal::TWO;
            if let (Some(max), Some(prev)) = (self.max_gap_pips, state.last_mid) {
                let pips = ((mid - prev) / pip).abs().round_dp(1);
                state.gap = if pips > max {
                    Some((pips, 0))
                } else {
                    state
                        .gap
                        .map(|(p, calm)| (p, calm + 1))
                        .filter(|(_, calm)| *calm < self.gap_clear_after)
                };
            }
            if let Some((pips, _)) = state.gap {
                holds.push(Hold::Gap { pips });
            }
            state.last_mid = Some(mid);
            if let Some(max) = self.max_spread_pips {
                let pips = ((q.ask - q.bid) / pip).round_dp(1);
                if pips > max {
                    holds.push(Hold::Spread { pips });
                }
            }
            if let Some(max) = self.stale_secs {
                let age = (now - q.time).num_seconds();
                if age > max as i64 {
                    holds.push(Hold::Stale {
                        age_secs: Some(age),
                    });
                }
            }
        } else if self.stale_secs.is_some() {
            holds.push(Hold::Stale { age_secs: None });
        }
        if !self.sessions.is_empty() {
            let local = now.with_timezone(&self.zone);
            if !self
                .sessions
                .iter()
                .any(|s| s.contains(local.weekday(), local.time()))
            {
                holds.push(Hold::OutsideSession);
            }
        }
        holds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn rule() -> MarketRule {
        MarketRule {
            symbol: "EURUSD".into(),
            max_gap_pips: Some(dec!(30)),
            gap_clear_after: 1,
            max_spread_pips: Some(dec!(3)),
            stale_secs: Some(60),
            sessions: vec![Session::parse("Mon-Fri 00:05-23:55").unwrap()],
            zone: chrono_tz::UTC,
        }
    }

    fn quote(bid: Decimal, ask: Decimal, time: &str) -> Quote {
        Quote {
            symbol: "EURUSD".into(),
            bid,
            ask,
            time: utc(time),
        }
    }

    #[test]
    fn a_calm_market_is_clear() {
        let mut s = MarketState::default();
        let q = quote(dec!(1.08000), dec!(1.08010), "2026-03-04T10:00:00Z");
        assert!(
            rule()
                .evaluate(&mut s, Some(&q), dec!(0.0001), utc("2026-03-04T10:00:05Z"))
                .is_empty()
        );
    }

    #[test]
    fn gaps_spreads_stale_quotes_and_closed_sessions_hold() {
        let r = rule();
        let mut s = MarketState::default();
        let pip = dec!(0.0001);
        let now = utc("2026-03-04T10:00:05Z");
        r.evaluate(
            &mut s,
            Some(&quote(dec!(1.08000), dec!(1.08010), "2026-03-04T10:00:00Z")),
            pip,
            now,
        );
        let holds = r.evaluate(
            &mut s,
            Some(&quote(dec!(1.08400), dec!(1.08410), "2026-03-04T10:00:04Z")),
            pip,
            now,
        );
        assert_eq!(holds, vec![Hold::Gap { pips: dec!(40) }]);
        let holds = r.evaluate(
            &mut s,
            Some(&quote(dec!(1.08400), dec!(1.08450), "2026-03-04T10:00:04Z")),
            pip,
            now,
        );
        assert_eq!(holds, vec![Hold::Spread { pips: dec!(5) }]);
        let holds = r.evaluate(
            &mut s,
            Some(&quote(dec!(1.08420), dec!(1.08430), "2026-03-04T09:58:00Z")),
            pip,
            now,
        );
        assert_eq!(
            holds,
            vec![Hold::Stale {
                age_secs: Some(125)
            }]
        );
        let saturday = utc("2026-03-07T10:00:00Z");
        let holds = r.evaluate(
            &mut s,
            Some(&quote(dec!(1.08420), dec!(1.08430), "2026-03-07T09:59:59Z")),
            pip,
            saturday,
        );
        assert_eq!(holds, vec![Hold::OutsideSession]);
    }

    #[test]
    fn sessions_parse_and_may_cross_midnight() {
        let s = Session::parse("Sun-Fri 22:00-21:00").unwrap();
        assert!(s.contains(Weekday::Sun, NaiveTime::from_hms_opt(23, 0, 0).unwrap()));
        assert!(!s.contains(Weekday::Sat, NaiveTime::from_hms_opt(23, 0, 0).unwrap()));
        assert!(!s.contains(Weekday::Mon, NaiveTime::from_hms_opt(21, 30, 0).unwrap()));
        assert!(Session::parse("Mon to Fri").is_err());
    }
}
