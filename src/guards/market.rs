//! MarketGuard: whether the market for a symbol is fit for an automatic close.
//!
//! A guard holds (postpones automatic closes on its symbol) while any of these is true:
//! the price gapped between two consecutive snapshots by more than `max_gap_pips`; the
//! spread is wider than `max_spread_pips`; the quote is older than `stale_secs`; the time
//! is outside the symbol's trading sessions. A session belongs to the day it opens (see
//! [`Session`]). Gaps and spreads are compared in exact pips, never rounded first; pips
//! too large to compute hold ([`Hold::Unmeasurable`]). Pure: time comes in as an argument.

use chrono::{DateTime, Datelike, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::Serialize;

pub use crate::domain::Quote;

/// A weekly trading session: days and a local time range.
///
/// A session belongs to the day it opens. When `open` is later than `close` the session
/// crosses midnight and closes on the following day, so the days listed are the opening
/// days: the FX week, open from Sunday 22:00 to Friday 21:00, is `"Sun-Thu 22:00-21:00"`
/// (each of Sunday to Thursday opens at 22:00 and closes at 21:00 the next day). Written
/// `"Sun-Fri 22:00-21:00"` it would also open on Friday night and close on Saturday.
/// A day range may wrap past Sunday (`"Fri-Sun"`). Both ends of the time range are
/// inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// First opening day (inclusive).
    pub from: Weekday,
    /// Last opening day (inclusive).
    pub to: Weekday,
    /// Opening time.
    pub open: NaiveTime,
    /// Closing time; earlier than `open`: on the day after the opening day.
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

    /// Whether `day` is one of the opening days.
    fn opens_on(&self, day: Weekday) -> bool {
        let (from, to, d) = (
            self.from.num_days_from_monday(),
            self.to.num_days_from_monday(),
            day.num_days_from_monday(),
        );
        if from <= to {
            from <= d && d <= to
        } else {
            d >= from || d <= to
        }
    }

    /// Whether local `time` on `day` is inside the session (opened that day, or opened
    /// the day before and crossing midnight).
    fn contains(&self, day: Weekday, time: NaiveTime) -> bool {
        if self.open <= self.close {
            self.opens_on(day) && self.open <= time && time <= self.close
        } else {
            (self.opens_on(day) && time >= self.open)
                || (self.opens_on(day.pred()) && time <= self.close)
        }
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
    /// A configured gap or spread check could not be made (the symbol has no pip size,
    /// or the broker gives no quote for the spread and age checks).
    Unchecked {
        /// Why.
        why: String,
    },
    /// A check whose pips cannot be computed (prices or a pip size so extreme that the
    /// arithmetic would overflow): it holds rather than pass unchecked.
    Unmeasurable {
        /// The check: `gap` or `spread`.
        check: &'static str,
    },
}

/// What the guard remembers between snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarketState {
    last_mid: Option<Decimal>,
    /// The last gap in pips (`None`: too large to compute), and the calm snapshots seen
    /// since.
    gap: Option<(Option<Decimal>, u32)>,
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
            // Exact pips are compared with the limits (no rounding); arithmetic that would
            // overflow gives `None`, which holds.
            let mid = q.bid.checked_add(q.ask).map(|sum| sum / Decimal::TWO);
            if let (Some(max), Some(prev)) = (self.max_gap_pips, state.last_mid) {
                let pips = mid
                    .and_then(|mid| mid.checked_sub(prev))
                    .and_then(|moved| moved.checked_div(pip))
                    .map(|pips| pips.abs());
                state.gap = match pips {
                    Some(pips) if pips <= max => state
                        .gap
                        .map(|(p, calm)| (p, calm + 1))
                        .filter(|(_, calm)| *calm < self.gap_clear_after),
                    gap => Some((gap, 0)),
                };
            }
            match state.gap {
                Some((Some(pips), _)) => holds.push(Hold::Gap { pips }),
                Some((None, _)) => holds.push(Hold::Unmeasurable { check: "gap" }),
                None => {}
            }
            state.last_mid = mid;
            if let Some(max) = self.max_spread_pips {
                match q.ask.checked_sub(q.bid).and_then(|s| s.checked_div(pip)) {
                    Some(pips) if pips <= max => {}
                    Some(pips) => holds.push(Hold::Spread { pips }),
                    None => holds.push(Hold::Unmeasurable { check: "spread" }),
                }
            }
            if let Some(max) = self.stale_secs {
                let age = (now - q.time).num_seconds();
                if i64::try_from(max).is_ok_and(|max| age > max) {
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
    fn a_gap_or_spread_just_past_its_limit_holds() {
        let r = rule();
        let mut s = MarketState::default();
        let pip = dec!(0.0001);
        let now = utc("2026-03-04T10:00:05Z");
        let at = "2026-03-04T10:00:04Z";
        r.evaluate(
            &mut s,
            Some(&quote(dec!(1.08000), dec!(1.08000), at)),
            pip,
            now,
        );
        // 30.05 pips against a limit of 30: a hold, whatever rounding would show.
        let holds = r.evaluate(
            &mut s,
            Some(&quote(dec!(1.083005), dec!(1.083005), at)),
            pip,
            now,
        );
        assert_eq!(holds, vec![Hold::Gap { pips: dec!(30.05) }]);
        let mut s = MarketState::default();
        let holds = r.evaluate(
            &mut s,
            Some(&quote(dec!(1.08000), dec!(1.080305), at)),
            pip,
            now,
        );
        assert_eq!(holds, vec![Hold::Spread { pips: dec!(3.05) }]);
    }

    #[test]
    fn pips_too_large_to_compute_hold_instead_of_panicking() {
        let r = rule();
        let pip = dec!(0.0000000000000000000000000001);
        let now = utc("2026-03-04T10:00:05Z");
        let at = "2026-03-04T10:00:04Z";
        let mut s = MarketState::default();
        r.evaluate(&mut s, Some(&quote(dec!(1), dec!(1), at)), pip, now);
        let q = quote(dec!(1000000000000), dec!(1000000000010), at);
        let holds = r.evaluate(&mut s, Some(&q), pip, now);
        let reasons = serde_json::to_value(&holds).unwrap();
        assert_eq!(
            reasons,
            serde_json::json!([
                {"reason": "unmeasurable", "check": "gap"},
                {"reason": "unmeasurable", "check": "spread"},
            ])
        );
        // A price so large that bid + ask overflows: the gap cannot be measured either.
        let q = quote(Decimal::MAX, Decimal::MAX, at);
        let holds = r.evaluate(&mut s, Some(&q), dec!(0.0001), now);
        let reasons = serde_json::to_value(&holds).unwrap();
        assert_eq!(
            reasons,
            serde_json::json!([{"reason": "unmeasurable", "check": "gap"}])
        );
    }

    #[test]
    fn sessions_parse_and_may_cross_midnight() {
        let s = Session::parse("Sun-Thu 22:00-21:00").unwrap();
        assert!(s.contains(Weekday::Sun, NaiveTime::from_hms_opt(23, 0, 0).unwrap()));
        assert!(!s.contains(Weekday::Sat, NaiveTime::from_hms_opt(23, 0, 0).unwrap()));
        assert!(!s.contains(Weekday::Mon, NaiveTime::from_hms_opt(21, 30, 0).unwrap()));
        assert!(Session::parse("Mon to Fri").is_err());
    }

    /// A session belongs to the day it opens; one that crosses midnight ends on the next
    /// day, also across the end of the week.
    #[rstest::rstest]
    // The FX week: Sunday evening to Friday evening.
    #[case("Sun-Thu 22:00-21:00", Weekday::Sun, "21:59", false)]
    #[case("Sun-Thu 22:00-21:00", Weekday::Sun, "22:00", true)]
    #[case("Sun-Thu 22:00-21:00", Weekday::Mon, "10:00", true)]
    #[case("Sun-Thu 22:00-21:00", Weekday::Mon, "21:30", false)]
    #[case("Sun-Thu 22:00-21:00", Weekday::Fri, "21:00", true)]
    #[case("Sun-Thu 22:00-21:00", Weekday::Fri, "21:01", false)]
    #[case("Sun-Thu 22:00-21:00", Weekday::Fri, "23:00", false)]
    #[case("Sun-Thu 22:00-21:00", Weekday::Sat, "10:00", false)]
    // Written with the closing day instead, the week opens on Friday night and Sunday
    // morning counts as open on no day.
    #[case("Sun-Fri 22:00-21:00", Weekday::Sun, "10:00", false)]
    #[case("Sun-Fri 22:00-21:00", Weekday::Fri, "23:00", true)]
    #[case("Sun-Fri 22:00-21:00", Weekday::Sat, "20:59", true)]
    // The part after midnight belongs to the previous day's session.
    #[case("Fri 22:00-02:00", Weekday::Sat, "01:00", true)]
    #[case("Fri 22:00-02:00", Weekday::Sat, "02:01", false)]
    #[case("Fri 22:00-02:00", Weekday::Fri, "01:00", false)]
    #[case("Mon-Fri 22:00-02:00", Weekday::Mon, "01:00", false)]
    #[case("Mon-Fri 22:00-02:00", Weekday::Tue, "01:00", true)]
    #[case("Mon-Fri 22:00-02:00", Weekday::Sat, "01:00", true)]
    #[case("Mon-Fri 22:00-02:00", Weekday::Sun, "01:00", false)]
    // Day ranges that wrap past Sunday.
    #[case("Fri-Sun 09:00-17:00", Weekday::Sat, "12:00", true)]
    #[case("Fri-Sun 09:00-17:00", Weekday::Sun, "17:00", true)]
    #[case("Fri-Sun 09:00-17:00", Weekday::Mon, "12:00", false)]
    #[case("Fri-Sun 09:00-17:00", Weekday::Thu, "12:00", false)]
    #[case("Sat-Sun 22:00-02:00", Weekday::Sun, "01:00", true)]
    #[case("Sat-Sun 22:00-02:00", Weekday::Mon, "01:00", true)]
    #[case("Sat-Sun 22:00-02:00", Weekday::Sat, "01:00", false)]
    #[case("Sat-Sun 22:00-02:00", Weekday::Mon, "22:00", false)]
    // Sessions within one day.
    #[case("Mon-Fri 00:05-23:55", Weekday::Mon, "00:05", true)]
    #[case("Mon-Fri 00:05-23:55", Weekday::Fri, "23:55", true)]
    #[case("Mon-Fri 00:05-23:55", Weekday::Fri, "23:56", false)]
    #[case("Mon-Fri 00:05-23:55", Weekday::Sat, "00:01", false)]
    fn a_session_belongs_to_the_day_it_opens(
        #[case] session: &str,
        #[case] day: Weekday,
        #[case] time: &str,
        #[case] open: bool,
    ) {
        let s = Session::parse(session).unwrap();
        let t = NaiveTime::parse_from_str(time, "%H:%M").unwrap();
        assert_eq!(s.contains(day, t), open, "{session} on {day} {time}");
    }
}
