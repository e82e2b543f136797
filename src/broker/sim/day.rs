//! A simulated trading day with known truth: accounts whose prices walk while a bot opens,
//! modifies and closes trades, the broker fills them a little later, stops are hit,
//! limit orders wait, another advisor trades beside the bot, tickets change, netting
//! accounts net — and, at random times, real faults are planted. The day records every
//! planted fault as the divergence it must produce ([`Planted`]); the ordinary events
//! leave no trace in the truth, so a divergence raised about them is a false alarm, or
//! one the reconciliation cannot yet tell apart ([`Context`]).
//!
//! [`TradingDay`] is the broker ([`Broker`]: snapshot, close, cancel, deals by position)
//! and the bot's trade source ([`TradeSource`]) of its accounts. It is driven by a
//! [`Clock`]: every call first brings its account's world up to `clock.now()`, handling
//! what happened since in time order (1-second price steps; events at their millisecond).
//! The result depends only on the seed and the time asked, never on how often or in
//! which steps it was asked: the same seed gives the same day.
//!
//! Per account (rates in [`DayConfig`]):
//!
//! - **the bot** acts every `bot_every_secs` on average: it opens a market trade,
//!   places a limit order, moves a stop loss or take profit, or closes a trade. It records
//!   its trade at once (with the order's ticket); the broker shows the change
//!   `latency_ms` later (50–800 ms). Fills are within 2 pips of the bot's price.
//! - **stops**: a position whose stop loss or take profit the price walk reaches is
//!   closed by the broker (a deal of reason `stop_loss` / `take_profit`); the bot learns it
//!   `learn_ms` later (1–3 s) and marks its trade closed. A **stop-out** (every
//!   `stop_out_every_secs`) closes the account's worst bot position the same way.
//! - **limit orders** wait in `snapshot.orders` until the price reaches them (a position
//!   whose identifier is the order ticket) or the bot cancels them after `order_ttl_secs`.
//! - **another advisor** (on `other_advisor_pct` of the hedging accounts) opens and
//!   closes its own positions under [`OTHER_MAGIC`]; the bot's scope is [`BOT_MAGIC`].
//! - **ticket changes**: a position reopened under a new ticket, keeping its identifier.
//! - **netting** (`netting_pct` of the accounts): one position per symbol; the bot's
//!   trades add to it and it closes a symbol's trades together.
//! - **deals** for every open, partial close and close, visible in the history after a
//!   lag of `history_lag_ms`, served by [`Broker::position_deals`] and, for the last
//!   `deals_window_secs`, in `snapshot.deals`.
//! - **faults** on hedging accounts, every `fault_every_secs` (until `faults_until`): see
//!   [`PlantedFault`]. A trade or position carrying a fault is left alone afterwards (the
//!   bot neither changes nor closes it, its stops are not hit, its ticket stays), so every
//!   fault lasts until the end of the day.

mod book;
mod bot;
mod config;
mod faults;
mod model;
mod truth;
mod venue;
mod view;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};

use self::book::Book;
use crate::broker::{BoxFuture, Broker, BrokerError, TradeSource};
use crate::clock::Clock;
use crate::domain::{
    AccountSnapshot, BotTrade, BrokerPosition, DealLookup, Divergence, MarginMode, PendingOrder,
};

pub use config::DayConfig;
pub use truth::{Context, DayStats, Finding, Planted, PlantedFault};

/// Magic number of the bot's orders: the bot's scope.
pub const BOT_MAGIC: i64 = 20_240_601;
/// Magic number of the other advisor trading on some accounts.
pub const OTHER_MAGIC: i64 = 7_700_001;

/// A simulated trading day of a few accounts: see the module documentation.
/// `Send + Sync`: share it as `Arc<TradingDay>` and hand clones out as the broker and the
/// trade source of a [`crate::broker::Connector`].
#[derive(Debug)]
pub struct TradingDay {
    clock: Clock,
    accounts: BTreeMap<String, Mutex<Book>>,
}

fn unknown(account: &str) -> BrokerError {
    BrokerError::Permanent(format!(
        "unknown account {account:?} in the simulated trading day"
    ))
}

impl TradingDay {
    /// The day of `config`, driven by `clock` (which should read `config.start` or later:
    /// nothing happens before it).
    pub fn new(config: &DayConfig, clock: Clock) -> Self {
        let shared = std::sync::Arc::new(config.clone());
        let accounts = (1..=config.accounts)
            .map(|n| {
                let book = Book::new(shared.clone(), n, account_id(n));
                (account_id(n), Mutex::new(book))
            })
            .collect();
        Self { clock, accounts }
    }

    /// Every account id (`day-0001`, …), sorted.
    pub fn account_ids(&self) -> Vec<String> {
        self.accounts.keys().cloned().collect()
    }

    /// The clock the day follows.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Runs `f` on `account` brought up to the clock's time, with that time.
    fn at_now<R>(
        &self,
        account: &str,
        f: impl FnOnce(&mut Book, DateTime<Utc>) -> R,
    ) -> Result<R, BrokerError> {
        let book = self.accounts.get(account).ok_or_else(|| unknown(account))?;
        let mut book = lock(book);
        let now = self.clock.now();
        book.advance_to(now);
        Ok(f(&mut book, now))
    }

    /// Brings every account up to the clock's time (before reading the truth of a run).
    pub fn catch_up(&self) {
        for id in self.accounts.keys() {
            let _ = self.at_now(id, |_, _| ());
        }
    }

    /// The faults planted on `account` so far (empty when unknown), in the order planted.
    pub fn truth(&self, account: &str) -> Vec<Planted> {
        self.at_now(account, |b, _| b.planted().to_vec())
            .unwrap_or_default()
    }

    /// What a divergence raised on `account` at `raised_at` is by the day's truth.
    pub fn classify(
        &self,
        account: &str,
        divergence: &Divergence,
        raised_at: DateTime<Utc>,
    ) -> Finding {
        self.at_now(account, |b, _| b.classify(divergence, raised_at))
            .unwrap_or(Finding::False)
    }

    /// How `account` books positions (`None` when unknown).
    pub fn margin_mode(&self, account: &str) -> Option<MarginMode> {
        self.at_now(account, |b, _| b.mode()).ok()
    }

    /// The broker's positions of `account` now (empty when unknown).
    pub fn positions(&self, account: &str) -> Vec<BrokerPosition> {
        self.at_now(account, |b, _| b.broker_positions())
            .unwrap_or_default()
    }

    /// The pending orders of `account` now (empty when unknown).
    pub fn orders(&self, account: &str) -> Vec<PendingOrder> {
        self.at_now(account, |b, _| b.pending_orders())
            .unwrap_or_default()
    }

    /// The bot's open trades of `account` now (empty when unknown).
    pub fn trades(&self, account: &str) -> Vec<BotTrade> {
        self.at_now(account, |b, _| b.bot_trades())
            .unwrap_or_default()
    }

    /// What happened so far on every account, added up.
    pub fn stats(&self) -> DayStats {
        let mut total = DayStats::default();
        for id in self.accounts.keys() {
            if let Ok(s) = self.at_now(id, |b, _| b.stats().clone()) {
                total += s;
            }
        }
        total
    }
}

/// The id of account `n` (1-based).
fn account_id(n: usize) -> String {
    format!("day-{n:04}")
}

fn lock(book: &Mutex<Book>) -> MutexGuard<'_, Book> {
    // A panic never happens while the lock is held, but stay usable if one did.
    book.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Broker for TradingDay {
    fn snapshot<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<AccountSnapshot, BrokerError>> {
        Box::pin(async move { self.at_now(account, |b, now| b.snapshot(now)) })
    }

    fn close_position<'a>(
        &'a self,
        account: &'a str,
        ticket: u64,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            if self.at_now(account, |b, _| b.close_by_service(ticket))? {
                Ok(())
            } else {
                Err(BrokerError::Permanent(format!(
                    "position {ticket} not found on account {account}"
                )))
            }
        })
    }

    fn cancel_order<'a>(
        &'a self,
        account: &'a str,
        ticket: u64,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            self.at_now(account, |b, _| b.cancel_by_service(ticket))?;
            Ok(())
        })
    }

    fn position_deals<'a>(
        &'a self,
        account: &'a str,
        position_id: u64,
    ) -> BoxFuture<'a, Result<DealLookup, BrokerError>> {
        Box::pin(async move {
            self.at_now(account, |b, _| {
                DealLookup::Found(b.position_deals(position_id))
            })
        })
    }

    /// Every snapshot carries a quote of each of the account's symbols.
    fn quotes_available(&self) -> bool {
        true
    }
}

impl TradeSource for TradingDay {
    fn open_trades<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<Vec<BotTrade>, BrokerError>> {
        Box::pin(async move { self.at_now(account, |b, _| b.bot_trades()) })
    }
}
