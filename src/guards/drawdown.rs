//! DrawdownGuard: equity against loss limits, in the forms prop-trading firms use.
//!
//! - **daily loss**: loss since the start of the trading day, from a reference taken at
//!   the first snapshot of the day with a positive balance (the balance, or the higher of
//!   balance and equity); until then the rule is ok against no reference. The day starts
//!   at a configured local time in a configured time zone, daylight-saving changes
//!   included;
//! - **maximum loss**: loss from the initial balance;
//! - **trailing maximum loss**: loss from the highest end-of-day balance (or equity) seen;
//!   a value of zero or less is never an end-of-day value.
//!
//! Each limit is absolute (account currency) or a percentage of its reference, with a
//! warn level and a breach level. Pure: time comes in with the snapshot.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::Serialize;

/// A loss limit: an amount, or a percentage of the rule's reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// In the account currency.
    Absolute(Decimal),
    /// In percent of the reference.
    Percent(Decimal),
}

impl Limit {
    /// Parses `"500"` (absolute) or `"5%"` (percent); must be positive.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let (number, percent) = match t.strip_suffix('%') {
            Some(n) => (n.trim(), true),
            None => (t, false),
        };
        let value = crate::domain::decimal_serde::parse_decimal(number)?;
        if value <= Decimal::ZERO {
            return Err(format!("{text:?} must be greater than zero"));
        }
        Ok(if percent {
            Limit::Percent(value)
        } else {
            Limit::Absolute(value)
        })
    }

    /// The equity at which a loss from `reference` reaches this limit.
    pub fn equity_at(self, reference: Decimal) -> Decimal {
        match self {
            Limit::Absolute(a) => reference - a,
            Limit::Percent(p) => reference - reference * p / Decimal::ONE_HUNDRED,
        }
    }

    /// Whether `loss` reaches this limit against `reference`.
    fn reached(self, loss: Decimal, reference: Decimal) -> bool {
        match self {
            Limit::Absolute(a) => loss >= a,
            Limit::Percent(p) => {
                reference > Decimal::ZERO && loss * Decimal::ONE_HUNDRED >= p * reference
            }
        }
    }
}

/// What the daily loss is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DailyReference {
    /// The balance at the start of the day.
    Balance,
    /// The higher of balance and equity at the start of the day.
    HigherOfBalanceAndEquity,
}

/// What the trailing maximum follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailingBasis {
    /// End-of-day balance.
    Balance,
    /// End-of-day equity.
    Equity,
}

/// The kind of a drawdown rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleKind {
    /// Loss since the start of the trading day.
    DailyLoss {
        /// The reference taken at the start of the day.
        reference: DailyReference,
        /// Local time the trading day starts.
        reset_at: NaiveTime,
        /// Time zone of `reset_at`.
        zone: Tz,
    },
    /// Loss from the initial balance.
    MaxLoss {
        /// The account's initial balance.
        initial_balance: Decimal,
    },
    /// Loss from the highest end-of-day value.
    TrailingMaxLoss {
        /// The starting high-water mark.
        initial_balance: Decimal,
        /// Balance or equity.
        basis: TrailingBasis,
        /// Local time a day ends (the end-of-day value is read then).
        reset_at: NaiveTime,
        /// Time zone of `reset_at`.
        zone: Tz,
    },
}

/// One rule: a kind, a warn level and a breach level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawdownRule {
    /// A name for alerts and the audit trail (e.g. `daily-5pct`).
    pub name: String,
    /// What is measured.
    pub kind: RuleKind,
    /// Warn at this loss.
    pub warn: Limit,
    /// Breach (and, when enabled, close) at this loss.
    pub breach: Limit,
}

/// How a rule stands after a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Within limits.
    Ok,
    /// Past the warn level.
    Warn,
    /// Past the breach level.
    Breach,
}

/// The result of evaluating a rule on one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    /// Rule name.
    pub rule: String,
    /// Where it stands.
    pub level: Level,
    /// Loss measured (positive = loss; zero while there is no reference).
    pub loss: Decimal,
    /// The reference it is measured from (zero while there is none: a daily rule before
    /// the day's first snapshot with a positive balance).
    pub reference: Decimal,
}

/// What a rule remembers between snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RuleState {
    day: Option<NaiveDate>,
    /// Today's reference, once a snapshot with a positive balance gave one.
    day_reference: Option<Decimal>,
    /// Last positive value seen today, for the trailing end-of-day high.
    last_of_day: Option<Decimal>,
    high_water: Option<Decimal>,
}

/// The trading day `at` belongs to, when days start at `reset_at` local time in `zone`.
///
/// On a day the clocks jump over `reset_at` (spring forward), the day starts at the first
/// local time after the jump: with `reset_at` 02:30 in New York on 2026-03-08, at 03:00
/// EDT. When the clocks go back over it, the first of the two 02:30s starts the day.
pub fn trading_day(at: DateTime<Utc>, reset_at: NaiveTime, zone: Tz) -> NaiveDate {
    let local = at.with_timezone(&zone);
    let date = local.date_naive();
    match first_instant_at_or_after(zone, date.and_time(reset_at)) {
        Some(reset_today) if at >= reset_today => date,
        _ => date.pred_opt().unwrap_or(date),
    }
}

/// The first instant whose local time in `zone` is `local` or later: `local` itself when
/// it exists, else the instant the clocks jump over it.
fn first_instant_at_or_after(zone: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    if let Some(t) = zone.from_local_datetime(&local).earliest() {
        return Some(t.with_timezone(&Utc));
    }
    // Offsets are within a day of UTC, so `local` read as UTC ± 1 day brackets the jump:
    // the local time is before `local` at `lo` and after it at `hi`. Transitions fall on
    // whole seconds.
    let local_as_utc = local.and_utc().timestamp();
    let (mut lo, mut hi) = (local_as_utc - 86_400, local_as_utc + 86_400);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let reached = DateTime::from_timestamp(mid, 0)
            .is_some_and(|t| t.with_timezone(&zone).naive_local() >= local);
        if reached {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}

impl DrawdownRule {
    /// Evaluates the rule on a snapshot (`balance`, `equity` at `at`), updating `state`.
    pub fn evaluate(
        &self,
        state: &mut RuleState,
        balance: Decimal,
        equity: Decimal,
        at: DateTime<Utc>,
    ) -> Evaluation {
        let (loss, reference) = match &self.kind {
            RuleKind::DailyLoss {
                reference,
                reset_at,
                zone,
            } => {
                let day = trading_day(at, *reset_at, *zone);
                if state.day != Some(day) {
                    state.day = Some(day);
                    state.day_reference = None;
                }
                // A snapshot without a positive balance (a terminal that has just
                // connected) is not the day's reference: wait for the first sane one.
                if state.day_reference.is_none() && balance > Decimal::ZERO {
                    state.day_reference = Some(match reference {
                        DailyReference::Balance => balance,
                        DailyReference::HigherOfBalanceAndEquity => balance.max(equity),
                    });
                }
                let Some(reference) = state.day_reference else {
                    return Evaluation {
                        rule: self.name.clone(),
                        level: Level::Ok,
                        loss: Decimal::ZERO,
                        reference: Decimal::ZERO,
                    };
                };
                (reference - equity, reference)
            }
            RuleKind::MaxLoss { initial_balance } => (*initial_balance - equity, *initial_balance),
            RuleKind::TrailingMaxLoss {
                initial_balance,
                basis,
                reset_at,
                zone,
            } => {
                let day = trading_day(at, *reset_at, *zone);
                let mut high = state.high_water.unwrap_or(*initial_balance);
                if state.day.is_some_and(|d| d != day)
                    && let Some(end_of_day) = state.last_of_day
                {
                    high = high.max(end_of_day);
                }
                if state.day != Some(day) {
                    state.last_of_day = None;
                }
                state.day = Some(day);
                state.high_water = Some(high);
                // A value of zero or less (a terminal reporting zeros) never ends a day.
                let value = match basis {
                    TrailingBasis::Balance => balance,
                    TrailingBasis::Equity => equity,
                };
                if value > Decimal::ZERO {
                    state.last_of_day = Some(value);
                }
                (high - equity, high)
            }
        };
        let level = if self.breach.reached(loss, reference) {
            Level::Breach
        } else if self.warn.reached(loss, reference) {
            Level::Warn
        } else {
            Level::Ok
        };
        Evaluation {
            rule: self.name.clone(),
            level,
            loss,
            reference,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[rstest::rstest]
    #[case("400", dec!(10000), dec!(9600))]
    #[case("4%", dec!(10000), dec!(9600))]
    #[case("5%", dec!(12500), dec!(11875))]
    fn a_limit_is_reached_at_the_equity_it_names(
        #[case] limit: &str,
        #[case] reference: Decimal,
        #[case] equity: Decimal,
    ) {
        let limit = Limit::parse(limit).unwrap();
        assert_eq!(limit.equity_at(reference), equity);
        assert!(limit.reached(reference - equity, reference));
        assert!(!limit.reached(reference - equity - dec!(0.01), reference));
    }

    fn daily(reference: DailyReference) -> DrawdownRule {
        DrawdownRule {
            name: "daily".into(),
            kind: RuleKind::DailyLoss {
                reference,
                reset_at: NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
                zone: chrono_tz::America::New_York,
            },
            warn: Limit::Percent(dec!(4)),
            breach: Limit::Percent(dec!(5)),
        }
    }

    #[test]
    fn limits_parse_and_refuse_nonsense() {
        assert_eq!(Limit::parse("5%"), Ok(Limit::Percent(dec!(5))));
        assert_eq!(Limit::parse(" 500 "), Ok(Limit::Absolute(dec!(500))));
        assert!(Limit::parse("-1").is_err());
        assert!(Limit::parse("NaN%").is_err());
    }

    #[test]
    fn daily_loss_warns_then_breaches_at_the_configured_percentages() {
        let rule = daily(DailyReference::Balance);
        let mut s = RuleState::default();
        let at = utc("2026-03-02T15:00:00Z");
        assert_eq!(
            rule.evaluate(&mut s, dec!(10000), dec!(10000), at).level,
            Level::Ok
        );
        assert_eq!(
            rule.evaluate(&mut s, dec!(10000), dec!(9601), at).level,
            Level::Ok
        );
        assert_eq!(
            rule.evaluate(&mut s, dec!(10000), dec!(9600), at).level,
            Level::Warn
        );
        let e = rule.evaluate(&mut s, dec!(10000), dec!(9500), at);
        assert_eq!(
            (e.level, e.loss, e.reference),
            (Level::Breach, dec!(500), dec!(10000))
        );
    }

    #[test]
    fn the_higher_of_balance_and_equity_is_the_stricter_reference() {
        let rule = daily(DailyReference::HigherOfBalanceAndEquity);
        let mut s = RuleState::default();
        let at = utc("2026-03-02T15:00:00Z");
        // Day starts with 400 of floating profit: the reference is 10 400.
        rule.evaluate(&mut s, dec!(10000), dec!(10400), at);
        assert_eq!(
            rule.evaluate(&mut s, dec!(10000), dec!(9880), at).level,
            Level::Breach
        );
    }

    #[test]
    fn the_day_resets_at_17_00_new_york_in_winter_and_summer_time() {
        let zone = chrono_tz::America::New_York;
        let five = NaiveTime::from_hms_opt(17, 0, 0).unwrap();
        // Winter (EST, UTC−5): 17:00 local = 22:00 UTC.
        assert_eq!(
            trading_day(utc("2026-03-06T21:59:59Z"), five, zone).to_string(),
            "2026-03-05"
        );
        assert_eq!(
            trading_day(utc("2026-03-06T22:00:00Z"), five, zone).to_string(),
            "2026-03-06"
        );
        // Sunday 2026-03-08 clocks go forward: from then 17:00 local = 21:00 UTC (EDT).
        assert_eq!(
            trading_day(utc("2026-03-08T20:59:59Z"), five, zone).to_string(),
            "2026-03-07"
        );
        assert_eq!(
            trading_day(utc("2026-03-08T21:00:00Z"), five, zone).to_string(),
            "2026-03-08"
        );
        // Autumn: 2026-11-01 clocks go back; 17:00 local = 22:00 UTC again.
        assert_eq!(
            trading_day(utc("2026-11-01T21:30:00Z"), five, zone).to_string(),
            "2026-10-31"
        );
        assert_eq!(
            trading_day(utc("2026-11-01T22:00:00Z"), five, zone).to_string(),
            "2026-11-01"
        );
    }

    #[rstest::rstest]
    // New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC); 02:30 never happens,
    // so the day starts at 03:00 local, the first time after the jump.
    #[case("America/New_York", "02:30", "2026-03-08T06:59:59Z", "2026-03-07")]
    #[case("America/New_York", "02:30", "2026-03-08T07:00:00Z", "2026-03-08")]
    #[case("America/New_York", "02:00", "2026-03-08T07:00:00Z", "2026-03-08")]
    #[case("America/New_York", "02:00", "2026-03-08T06:59:59Z", "2026-03-07")]
    // The next day is an ordinary one again: 02:30 EDT = 06:30 UTC.
    #[case("America/New_York", "02:30", "2026-03-09T06:29:59Z", "2026-03-08")]
    #[case("America/New_York", "02:30", "2026-03-09T06:30:00Z", "2026-03-09")]
    // Lord Howe Island, 2026-10-04: 02:00 jumps to 02:30 (+10:30 to +11, 15:30 UTC).
    #[case("Australia/Lord_Howe", "02:15", "2026-10-03T15:29:59Z", "2026-10-03")]
    #[case("Australia/Lord_Howe", "02:15", "2026-10-03T15:30:00Z", "2026-10-04")]
    fn a_reset_inside_a_clock_jump_starts_the_day_when_the_clocks_land(
        #[case] zone: Tz,
        #[case] reset_at: &str,
        #[case] at: &str,
        #[case] day: &str,
    ) {
        let reset_at = NaiveTime::parse_from_str(reset_at, "%H:%M").unwrap();
        assert_eq!(
            trading_day(utc(at), reset_at, zone).to_string(),
            day,
            "{at}"
        );
    }

    #[test]
    fn a_new_day_takes_a_new_reference_on_the_day_the_clocks_change() {
        let rule = daily(DailyReference::Balance);
        let mut s = RuleState::default();
        // Saturday evening: 4.5 % down, a warning.
        let e = rule.evaluate(&mut s, dec!(10000), dec!(9550), utc("2026-03-08T20:30:00Z"));
        assert_eq!(e.level, Level::Warn);
        // 21:00 UTC on the DST day is 17:00 EDT: a new day, the loss is measured afresh.
        let e = rule.evaluate(&mut s, dec!(9550), dec!(9550), utc("2026-03-08T21:00:00Z"));
        assert_eq!((e.level, e.reference), (Level::Ok, dec!(9550)));
    }

    #[rstest::rstest]
    #[case::zero_balance(DailyReference::Balance, dec!(0), dec!(0))]
    #[case::negative_balance(DailyReference::Balance, dec!(-5), dec!(10000))]
    #[case::zero_higher_of(DailyReference::HigherOfBalanceAndEquity, dec!(0), dec!(0))]
    #[case::negative_higher_of(DailyReference::HigherOfBalanceAndEquity, dec!(-5), dec!(-3))]
    fn a_first_snapshot_without_a_positive_balance_is_not_the_days_reference(
        #[case] reference: DailyReference,
        #[case] balance: Decimal,
        #[case] equity: Decimal,
    ) {
        let rule = daily(reference);
        let mut s = RuleState::default();
        let at = utc("2026-03-02T15:00:00Z");
        // No reference yet: nothing to measure against.
        let e = rule.evaluate(&mut s, balance, equity, at);
        assert_eq!(
            (e.level, e.loss, e.reference),
            (Level::Ok, dec!(0), dec!(0))
        );
        // The first sane snapshot of the day becomes the reference.
        let e = rule.evaluate(&mut s, dec!(10000), dec!(9500), at);
        assert_eq!(
            (e.level, e.loss, e.reference),
            (Level::Breach, dec!(500), dec!(10000))
        );
    }

    #[test]
    fn an_end_of_day_value_of_zero_or_less_does_not_replace_the_days_last() {
        let rule = DrawdownRule {
            name: "trailing".into(),
            kind: RuleKind::TrailingMaxLoss {
                initial_balance: dec!(10000),
                basis: TrailingBasis::Equity,
                reset_at: NaiveTime::from_hms_opt(0, 0, 0).unwrap(),
                zone: chrono_tz::UTC,
            },
            warn: Limit::Absolute(dec!(400)),
            breach: Limit::Absolute(dec!(500)),
        };
        let mut s = RuleState::default();
        rule.evaluate(
            &mut s,
            dec!(11000),
            dec!(11000),
            utc("2026-03-02T22:00:00Z"),
        );
        // The day's last snapshot is a terminal that reports zeros.
        rule.evaluate(&mut s, dec!(0), dec!(0), utc("2026-03-02T23:59:00Z"));
        let e = rule.evaluate(
            &mut s,
            dec!(11000),
            dec!(11000),
            utc("2026-03-03T01:00:00Z"),
        );
        assert_eq!(e.reference, dec!(11000));
    }

    #[test]
    fn max_loss_is_from_the_initial_balance() {
        let rule = DrawdownRule {
            name: "max".into(),
            kind: RuleKind::MaxLoss {
                initial_balance: dec!(100000),
            },
            warn: Limit::Absolute(dec!(8000)),
            breach: Limit::Absolute(dec!(10000)),
        };
        let mut s = RuleState::default();
        let at = utc("2026-03-02T15:00:00Z");
        assert_eq!(
            rule.evaluate(&mut s, dec!(95000), dec!(92001), at).level,
            Level::Ok
        );
        assert_eq!(
            rule.evaluate(&mut s, dec!(95000), dec!(92000), at).level,
            Level::Warn
        );
        assert_eq!(
            rule.evaluate(&mut s, dec!(95000), dec!(90000), at).level,
            Level::Breach
        );
    }

    #[test]
    fn trailing_max_loss_follows_the_highest_end_of_day_balance() {
        let rule = DrawdownRule {
            name: "trailing".into(),
            kind: RuleKind::TrailingMaxLoss {
                initial_balance: dec!(10000),
                basis: TrailingBasis::Balance,
                reset_at: NaiveTime::from_hms_opt(0, 0, 0).unwrap(),
                zone: chrono_tz::UTC,
            },
            warn: Limit::Absolute(dec!(400)),
            breach: Limit::Absolute(dec!(500)),
        };
        let mut s = RuleState::default();
        // Day 1 ends at a balance of 11 000: the high-water mark moves up the next day.
        rule.evaluate(
            &mut s,
            dec!(11000),
            dec!(11000),
            utc("2026-03-02T23:00:00Z"),
        );
        let e = rule.evaluate(
            &mut s,
            dec!(11000),
            dec!(10550),
            utc("2026-03-03T01:00:00Z"),
        );
        assert_eq!((e.reference, e.level), (dec!(11000), Level::Warn));
        let e = rule.evaluate(
            &mut s,
            dec!(11000),
            dec!(10500),
            utc("2026-03-03T02:00:00Z"),
        );
        assert_eq!(e.level, Level::Breach);
        // An intraday high does not move the mark.
        let e = rule.evaluate(
            &mut s,
            dec!(12000),
            dec!(12000),
            utc("2026-03-03T03:00:00Z"),
        );
        assert_eq!(e.reference, dec!(11000));
    }
}
