//! One account's guards: its drawdown rules and the market guards of the symbols it
//! holds, evaluated on every snapshot. Remembers each rule's level, so an alert goes out
//! once when a level is crossed, not on every sync.
//!
//! A breach latches: a daily-loss breach holds until the next trading day, a maximum-loss
//! or trailing breach for good (an operator stops its enforcement by cancelling its
//! alert), whatever equity does meanwhile (the realised loss of a close would otherwise
//! end the breach the close enforces).
//!
//! Market checks run on every configured symbol with the pip rules the reconciliation
//! uses (configuration and the broker's specifications). A check that needs a pip size
//! the symbol does not have holds, naming why: it never passes silently.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use super::config::GuardsConfig;
use super::drawdown::{DrawdownRule, Evaluation, Level, RuleKind, RuleState, trading_day};
use super::market::{Hold, MarketRule, MarketState, Quote};
use crate::domain::{AccountSnapshot, ReconcileRules};

/// A rule whose level changed on this snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossing {
    /// The level before.
    pub from: Level,
    /// The evaluation now.
    pub now: Evaluation,
    /// The trading day of the crossing (daily rules), or its UTC date: with the account,
    /// the rule and the level it names one breach, whatever restarts happen.
    pub day: NaiveDate,
}

/// How long a breach holds whatever equity does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Latch {
    /// Until this trading day is over (daily loss).
    Day(NaiveDate),
    /// For good (maximum and trailing loss): an operator stops the enforcement instead.
    Operator,
}

/// One drawdown rule, what it remembers, where it stands and its latch.
#[derive(Debug, Clone)]
struct Drawdown {
    rule: DrawdownRule,
    state: RuleState,
    level: Level,
    latch: Option<Latch>,
    /// The reference of the last evaluation, once there is one (for the equity chart).
    reference: Option<Decimal>,
}

/// What one drawdown rule remembers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct RuleMemory {
    state: RuleState,
    level: Level,
    latch: Option<Latch>,
}

/// What an account's drawdown rules remember, by rule name: stored as JSON so a restart
/// continues the same trading day and the same breach.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GuardMemory {
    rules: std::collections::BTreeMap<String, RuleMemory>,
}

/// Balance and equity of one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reading {
    balance: Decimal,
    equity: Decimal,
}

impl Reading {
    /// Whether `self` follows `prev` without contradicting it: both positive, and equity
    /// within `jump_pct` percent of the previous equity.
    fn follows(self, prev: Reading, jump_pct: Decimal) -> bool {
        let positive = self.balance > Decimal::ZERO && self.equity > Decimal::ZERO;
        let moved = (self.equity - prev.equity).abs();
        let allowed = prev
            .equity
            .abs()
            .checked_mul(jump_pct)
            .map(|a| a / Decimal::ONE_HUNDRED);
        positive && allowed.is_some_and(|a| moved <= a)
    }
}

/// One account's guards and what they remember.
#[derive(Debug, Clone)]
pub struct GuardSet {
    drawdown: Vec<Drawdown>,
    /// The last reading the drawdown rules took, and one waiting for confirmation.
    last: Option<Reading>,
    doubtful: Option<Reading>,
    jump_pct: Decimal,
    market: HashMap<String, (MarketRule, MarketState)>,
    holds: HashMap<String, Vec<Hold>>,
}

impl GuardSet {
    /// The guards `config` gives `account`; market symbols are canonicalised with
    /// `rules` (a guard written with the broker's spelling of an aliased symbol applies).
    pub fn new(config: &GuardsConfig, account: &str, rules: &ReconcileRules) -> Self {
        Self {
            drawdown: config
                .drawdown_rules(account)
                .into_iter()
                .map(|rule| Drawdown {
                    rule,
                    state: RuleState::default(),
                    level: Level::Ok,
                    latch: None,
                    reference: None,
                })
                .collect(),
            market: config
                .market_rules()
                .into_iter()
                .map(|mut r| {
                    r.symbol = rules.canonical(&r.symbol);
                    (r.symbol.clone(), (r, MarketState::default()))
                })
                .collect(),
            holds: HashMap::new(),
            last: None,
            doubtful: None,
            jump_pct: Decimal::from(config.confirm_jump_pct),
        }
    }

    /// Whether the last snapshot was set aside until the next one confirms it.
    pub fn doubting(&self) -> bool {
        self.doubtful.is_some()
    }

    /// Whether there is anything to evaluate.
    pub fn is_empty(&self) -> bool {
        self.drawdown.is_empty() && self.market.is_empty()
    }

    /// Evaluates a snapshot taken at `now`; returns the rules whose level changed.
    pub fn observe(
        &mut self,
        snapshot: &AccountSnapshot,
        rules: &ReconcileRules,
        now: DateTime<Utc>,
    ) -> Vec<Crossing> {
        let mut crossings = Vec::new();
        let now_reading = Reading {
            balance: snapshot.balance,
            equity: snapshot.equity,
        };
        // A reading that contradicts the last one counts only when the next one follows it
        // (the move was real) — a reconnecting terminal's zeros never breach on their own.
        let trusted = match (self.last, self.doubtful) {
            (None, None) => {
                now_reading.balance > Decimal::ZERO && now_reading.equity > Decimal::ZERO
            }
            (last, doubtful) => {
                [last, doubtful]
                    .into_iter()
                    .flatten()
                    .any(|prev| now_reading.follows(prev, self.jump_pct))
                    || doubtful.is_some_and(|d| d == now_reading)
            }
        };
        if trusted {
            self.last = Some(now_reading);
            self.doubtful = None;
        } else {
            self.doubtful = Some(now_reading);
        }
        for d in self.drawdown.iter_mut().filter(|_| trusted) {
            let at = snapshot.taken_at;
            let mut e = d
                .rule
                .evaluate(&mut d.state, snapshot.balance, snapshot.equity, at);
            d.reference = (e.reference > Decimal::ZERO).then_some(e.reference);
            d.latch = match d.latch {
                Some(Latch::Day(day)) if trading_day_of(&d.rule, at) != Some(day) => None,
                latch => latch,
            };
            if e.level == Level::Breach && d.latch.is_none() {
                d.latch = Some(match trading_day_of(&d.rule, at) {
                    Some(day) => Latch::Day(day),
                    None => Latch::Operator,
                });
            }
            if d.latch.is_some() {
                e.level = Level::Breach;
            }
            if e.level != d.level {
                crossings.push(Crossing {
                    from: d.level,
                    now: e.clone(),
                    day: trading_day_of(&d.rule, at).unwrap_or(at.date_naive()),
                });
                d.level = e.level;
            }
        }
        self.holds.clear();
        for (symbol, (full, state)) in &mut self.market {
            let (quote, from_broker) = match broker_quote(snapshot, rules, symbol) {
                Some(q) => (Some(q), true),
                None => (position_price(snapshot, rules, symbol), false),
            };
            // A position's price says nothing about the spread or the quote's age: without
            // the broker's quote those checks cannot be made, and hold.
            let stripped;
            let rule = if from_broker {
                &*full
            } else {
                stripped = MarketRule {
                    max_spread_pips: None,
                    stale_secs: None,
                    ..full.clone()
                };
                &stripped
            };
            let mut holds = match rules.pip_size(symbol) {
                Ok(pip) => rule.evaluate(state, quote.as_ref(), pip, now),
                Err(e) => {
                    // Sessions and stale quotes need no pip size: they still count.
                    let without = MarketRule {
                        max_gap_pips: None,
                        max_spread_pips: None,
                        ..rule.clone()
                    };
                    let mut holds = without.evaluate(state, quote.as_ref(), Decimal::ONE, now);
                    if rule.max_gap_pips.is_some() || rule.max_spread_pips.is_some() {
                        holds.push(Hold::Unchecked { why: e.to_string() });
                    }
                    holds
                }
            };
            if !from_broker && (full.max_spread_pips.is_some() || full.stale_secs.is_some()) {
                holds.push(Hold::Unchecked {
                    why: "no quote from the broker for the spread and age checks".into(),
                });
            }
            if !holds.is_empty() {
                self.holds.insert(symbol.clone(), holds);
            }
        }
        crossings
    }

    /// Why automatic closes on `symbol` must wait now (empty: they may go ahead).
    pub fn holds(&self, symbol: &str) -> &[Hold] {
        self.holds.get(symbol).map_or(&[], Vec::as_slice)
    }

    /// What the drawdown rules remember (references, high-water marks, levels, latches),
    /// to be stored and restored after a restart.
    pub fn memory(&self) -> GuardMemory {
        GuardMemory {
            rules: self
                .drawdown
                .iter()
                .map(|d| {
                    let m = RuleMemory {
                        state: d.state.clone(),
                        level: d.level,
                        latch: d.latch,
                    };
                    (d.rule.name.clone(), m)
                })
                .collect(),
        }
    }

    /// Takes back what [`GuardSet::memory`] gave; rules no longer configured are ignored,
    /// new ones start afresh.
    pub fn restore(&mut self, memory: GuardMemory) {
        for d in &mut self.drawdown {
            if let Some(m) = memory.rules.get(&d.rule.name) {
                d.state = m.state.clone();
                d.level = m.level;
                d.latch = m.latch;
            }
        }
    }

    /// Every symbol's holds now (symbols without one are absent).
    pub fn holds_all(&self) -> HashMap<String, Vec<Hold>> {
        self.holds.clone()
    }

    /// The first drawdown rule's reference and the equity at which it warns and breaches,
    /// once it has a reference (what the dashboard's equity chart draws).
    pub fn chart_levels(&self) -> Option<(Decimal, Decimal, Decimal)> {
        let d = self.drawdown.first()?;
        let reference = d.reference?;
        Some((
            reference,
            d.rule.warn.equity_at(reference),
            d.rule.breach.equity_at(reference),
        ))
    }

    /// Whether any drawdown rule is in breach now.
    pub fn breached(&self) -> bool {
        self.drawdown.iter().any(|d| d.level == Level::Breach)
    }

    /// The names of the rules in breach now.
    pub fn breached_rules(&self) -> Vec<&str> {
        self.drawdown
            .iter()
            .filter(|d| d.level == Level::Breach)
            .map(|d| d.rule.name.as_str())
            .collect()
    }
}

/// The trading day of a daily-loss rule at `at`; `None` for rules without one.
fn trading_day_of(rule: &DrawdownRule, at: DateTime<Utc>) -> Option<NaiveDate> {
    match &rule.kind {
        RuleKind::DailyLoss { reset_at, zone, .. } => Some(trading_day(at, *reset_at, *zone)),
        RuleKind::MaxLoss { .. } | RuleKind::TrailingMaxLoss { .. } => None,
    }
}

/// The broker's quote of a canonical symbol.
fn broker_quote(snapshot: &AccountSnapshot, rules: &ReconcileRules, symbol: &str) -> Option<Quote> {
    snapshot
        .quotes
        .iter()
        .find(|q| rules.canonical(&q.symbol) == symbol)
        .cloned()
}

/// A position's current price as a stand-in quote: good for the gap check only.
fn position_price(
    snapshot: &AccountSnapshot,
    rules: &ReconcileRules,
    symbol: &str,
) -> Option<Quote> {
    let p = snapshot
        .positions
        .iter()
        .find(|p| rules.canonical(&p.symbol) == symbol && p.current_price.is_some())?;
    let price: Decimal = p.current_price?.get();
    Some(Quote {
        symbol: p.symbol.clone(),
        bid: price,
        ask: price,
        time: snapshot.taken_at,
    })
}

#[cfg(test)]
mod tests {
    use rust_decimal::dec;

    use super::*;
    use crate::guards::config::DrawdownConfig;

    fn config(kind: &str) -> GuardsConfig {
        GuardsConfig {
            drawdown: vec![DrawdownConfig {
                name: "rule".into(),
                accounts: vec!["*".into()],
                kind: kind.into(),
                reference: None,
                reset_at: Some("00:00".into()),
                time_zone: None,
                initial_balance: Some(dec!(10000)),
                basis: None,
                warn: "4%".into(),
                breach: "5%".into(),
            }],
            ..GuardsConfig::default()
        }
    }

    fn snapshot(balance: Decimal, equity: Decimal, at: &str) -> AccountSnapshot {
        AccountSnapshot {
            balance,
            equity,
            margin: Decimal::ZERO,
            free_margin: equity,
            positions: Vec::new(),
            quotes: Vec::new(),
            taken_at: DateTime::parse_from_rfc3339(at).unwrap().to_utc(),
            margin_mode: None,
            orders: None,
            deals: Vec::new(),
        }
    }

    fn observe(set: &mut GuardSet, balance: i64, equity: i64, at: &str) -> Vec<Crossing> {
        let s = snapshot(Decimal::from(balance), Decimal::from(equity), at);
        set.observe(&s, &ReconcileRules::default(), s.taken_at)
    }

    #[test]
    fn a_daily_breach_holds_until_the_next_trading_day_whatever_equity_does() {
        let mut set = GuardSet::new(&config("daily_loss"), "a", &ReconcileRules::default());
        observe(&mut set, 10_000, 10_000, "2026-03-02T10:00:00Z");
        observe(&mut set, 10_000, 9_400, "2026-03-02T11:00:00Z");
        assert!(set.breached());
        // The close realised the loss; equity is back at the balance: still breached.
        assert!(observe(&mut set, 9_400, 9_400, "2026-03-02T12:00:00Z").is_empty());
        assert!(set.breached());
        // A new trading day: the breach is over.
        let c = observe(&mut set, 9_400, 9_400, "2026-03-03T00:30:00Z");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].now.level, Level::Ok);
        assert!(!set.breached());
    }

    #[test]
    fn a_max_loss_breach_holds_whatever_equity_and_the_days_do() {
        let mut set = GuardSet::new(&config("max_loss"), "a", &ReconcileRules::default());
        observe(&mut set, 10_000, 9_400, "2026-03-02T11:00:00Z");
        assert!(set.breached());
        observe(&mut set, 10_000, 10_000, "2026-03-09T11:00:00Z");
        assert!(set.breached(), "days later, still breached");
    }

    #[test]
    fn a_restored_memory_continues_the_same_day_and_the_same_breach() {
        let rules = ReconcileRules::default();
        let mut set = GuardSet::new(&config("daily_loss"), "a", &rules);
        observe(&mut set, 10_000, 10_000, "2026-03-02T10:00:00Z");
        observe(&mut set, 10_000, 9_400, "2026-03-02T11:00:00Z");
        let json = serde_json::to_string(&set.memory()).unwrap();
        let mut again = GuardSet::new(&config("daily_loss"), "a", &rules);
        again.restore(serde_json::from_str(&json).unwrap());
        // Measured from the day's first balance, not from the reduced one; no new crossing.
        assert!(observe(&mut again, 9_400, 9_400, "2026-03-02T12:00:00Z").is_empty());
        assert!(again.breached());
        let fresh = observe(
            &mut GuardSet::new(&config("daily_loss"), "a", &rules),
            9_400,
            9_400,
            "2026-03-02T12:00:00Z",
        );
        assert!(
            fresh.is_empty(),
            "without the memory the breach is forgotten"
        );
    }

    #[test]
    fn a_reading_that_contradicts_the_last_waits_for_the_next_to_confirm_it() {
        let rules = ReconcileRules::default();
        let mut set = GuardSet::new(&config("max_loss"), "a", &rules);
        observe(&mut set, 10_000, 10_000, "2026-03-02T10:00:00Z");
        // A terminal reconnecting reports zero equity: set aside, no breach.
        assert!(observe(&mut set, 10_000, 0, "2026-03-02T10:00:10Z").is_empty());
        assert!(set.doubting() && !set.breached());
        // The next reading follows the one before the glitch: the glitch is forgotten.
        assert!(observe(&mut set, 10_000, 10_000, "2026-03-02T10:00:20Z").is_empty());
        assert!(!set.doubting() && !set.breached());
        // A real crash shows on two readings in a row: the second breaches.
        assert!(observe(&mut set, 10_000, 4_000, "2026-03-02T10:00:30Z").is_empty());
        let c = observe(&mut set, 10_000, 4_000, "2026-03-02T10:00:40Z");
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(set.breached());
    }

    #[test]
    fn a_first_reading_without_money_needs_a_second() {
        let rules = ReconcileRules::default();
        let mut set = GuardSet::new(&config("max_loss"), "a", &rules);
        assert!(observe(&mut set, 0, 0, "2026-03-02T10:00:00Z").is_empty());
        assert!(!set.breached());
        observe(&mut set, 0, 0, "2026-03-02T10:00:10Z");
        assert!(set.breached(), "confirmed: the account is blown");
    }
}
