//! One account's guards: its drawdown rules and the market guards of the symbols it
//! holds, evaluated on every snapshot. Remembers each rule's level, so an alert goes out
//! once when a level is crossed, not on every sync.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::config::GuardsConfig;
use super::drawdown::{DrawdownRule, Evaluation, Level, RuleState};
use super::market::{Hold, MarketRule, MarketState, Quote};
use crate::domain::{AccountSnapshot, ReconcileRules};

/// A rule whose level changed on this snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossing {
    /// The level before.
    pub from: Level,
    /// The evaluation now.
    pub now: Evaluation,
}

/// One account's guards and what they remember.
#[derive(Debug, Clone)]
pub struct GuardSet {
    drawdown: Vec<(DrawdownRule, RuleState, Level)>,
    market: HashMap<String, (MarketRule, MarketState)>,
    holds: HashMap<String, Vec<Hold>>,
}

impl GuardSet {
    /// The guards `config` gives `account`.
    pub fn new(config: &GuardsConfig, account: &str) -> Self {
        Self {
            drawdown: config
                .drawdown_rules(account)
                .into_iter()
                .map(|r| (r, RuleState::default(), Level::Ok))
                .collect(),
            market: config
                .market_rules()
                .into_iter()
                .map(|r| (r.symbol.clone(), (r, MarketState::default())))
                .collect(),
            holds: HashMap::new(),
        }
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
        for (rule, state, level) in &mut self.drawdown {
            let e = rule.evaluate(state, snapshot.balance, snapshot.equity, snapshot.taken_at);
            if e.level != *level {
                crossings.push(Crossing {
                    from: *level,
                    now: e.clone(),
                });
                *level = e.level;
            }
        }
        self.holds.clear();
        for (symbol, (rule, state)) in &mut self.market {
            let quote = quote_for(snapshot, rules, symbol);
            let Ok(pip) = rules.pip_size(symbol) else {
                continue;
            };
            let holds = rule.evaluate(state, quote.as_ref(), pip, now);
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

    /// Whether any drawdown rule is in breach now.
    pub fn breached(&self) -> bool {
        self.drawdown
            .iter()
            .any(|(_, _, level)| *level == Level::Breach)
    }
}

/// The quote of a canonical symbol: the broker's, or else a position's current price
/// (a zero spread, timed at the snapshot).
fn quote_for(snapshot: &AccountSnapshot, rules: &ReconcileRules, symbol: &str) -> Option<Quote> {
    snapshot
        .quotes
        .iter()
        .find(|q| rules.canonical(&q.symbol) == symbol)
        .cloned()
        .or_else(|| {
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
        })
}
