//! How busy a simulated trading day is: accounts, rates of the bot, the broker's events and
//! the planted faults, and the delays between them.

use chrono::{DateTime, TimeDelta, Utc};

/// Configuration of a [`super::TradingDay`]. Mean intervals are drawn uniformly between a
/// quarter and seven quarters of the mean; ranges `(lo, hi)` uniformly within, both
/// inclusive (`lo` when `hi < lo`). An interval of 0 turns the event off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayConfig {
    /// Seed of every random choice: the same seed gives the same day.
    pub seed: u64,
    /// Accounts, named `day-0001`, `day-0002`, …
    pub accounts: usize,
    /// When the day begins: the world at this instant is the accounts' opening book.
    pub start: DateTime<Utc>,
    /// Symbols each account trades (1 to 8 FX pairs).
    pub symbols_per_account: usize,
    /// Share of accounts that book positions by netting, in percent.
    pub netting_pct: u32,
    /// Share of hedging accounts where another advisor trades beside the bot, in percent.
    pub other_advisor_pct: u32,
    /// Mean seconds between two actions of the bot on an account.
    pub bot_every_secs: u64,
    /// Mean seconds between two actions of the other advisor.
    pub other_every_secs: u64,
    /// Mean seconds between two planted faults on a hedging account.
    pub fault_every_secs: u64,
    /// No fault is planted later than this after the start (`None`: all day), so a run
    /// can end with time for the last ones to be confirmed.
    pub faults_until: Option<TimeDelta>,
    /// Mean seconds between two ticket changes on a hedging account.
    pub ticket_change_every_secs: u64,
    /// Mean seconds between two stop-outs on a hedging account.
    pub stop_out_every_secs: u64,
    /// Milliseconds from the bot's record to the broker showing it.
    pub latency_ms: (u64, u64),
    /// Milliseconds from a stop (or a fill the bot tried to cancel) to the bot knowing.
    pub learn_ms: (u64, u64),
    /// Milliseconds from a deal to its appearance in the broker's history.
    pub history_lag_ms: (u64, u64),
    /// Seconds the bot waits for a limit order to fill before it cancels it.
    pub order_ttl_secs: (u64, u64),
    /// Stop-loss distance from the entry, in pips.
    pub sl_pips: (u64, u64),
    /// Take-profit distance from the entry, in pips.
    pub tp_pips: (u64, u64),
    /// Seconds of history offered with each snapshot (`snapshot.deals`).
    pub deals_window_secs: u64,
}

impl Default for DayConfig {
    /// Ten accounts from 08:00 UTC on 2026-03-09: a bot action every 30 s, a fault every
    /// 15 minutes, a ticket change every 30 minutes and a stop-out every 2 hours per
    /// account; a tenth of the accounts netting, a third of the others shared with
    /// another advisor.
    fn default() -> Self {
        Self {
            seed: 1,
            accounts: 10,
            start: DateTime::from_timestamp(1_773_043_200, 0).unwrap_or(DateTime::UNIX_EPOCH),
            symbols_per_account: 3,
            netting_pct: 10,
            other_advisor_pct: 30,
            bot_every_secs: 30,
            other_every_secs: 60,
            fault_every_secs: 900,
            faults_until: None,
            ticket_change_every_secs: 1_800,
            stop_out_every_secs: 7_200,
            latency_ms: (50, 800),
            learn_ms: (1_000, 3_000),
            history_lag_ms: (0, 1_000),
            order_ttl_secs: (120, 900),
            sl_pips: (8, 30),
            tp_pips: (8, 40),
            deals_window_secs: 600,
        }
    }
}

impl DayConfig {
    /// Milliseconds after the start past which no fault is planted.
    pub(super) fn faults_until_ms(&self) -> i64 {
        self.faults_until
            .map_or(i64::MAX, |d| d.num_milliseconds().max(0))
    }
}
