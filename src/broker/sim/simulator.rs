//! The simulated broker: generated accounts, a scripting API for tests, and the
//! [`Broker`] / [`TradeSource`] implementations with latency and faults.
//!
//! All state sits behind one `std::sync::Mutex` that is only ever held by synchronous
//! code, never across an `.await`. Latency is slept with `tokio::time::sleep`, so tests
//! with paused tokio time run instantly.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::TimeDelta;
use rust_decimal::Decimal;

use super::config::{MAX_ACCOUNTS, SimConfig};
use super::generate::{Injected, account_id, generate};
use super::history::{DealReport, History};
use super::market;
use super::rng::SplitMix64;
use crate::broker::{BoxFuture, Broker, BrokerError, TradeSource};
use crate::clock::Clock;
use crate::domain::{
    AccountSnapshot, BotTrade, BrokerPosition, DealLookup, DealReason, MarginMode, PendingOrder,
    Quote,
};

/// How long a [`Fault::Timeout`] call sleeps: far longer than any sync timeout.
pub const NEVER_ANSWERS: Duration = Duration::from_secs(3600);

/// A scripted failure of one snapshot call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Never answers in practice: sleeps [`NEVER_ANSWERS`], so the caller's timeout fires.
    Timeout,
    /// Answers with this error after the usual latency.
    Error(BrokerError),
    /// Answers with `BrokerError::Malformed` naming a field, after the usual latency.
    Malformed,
    /// Panics inside `snapshot`, after the usual latency.
    Panic,
    /// Answers normally, but after this latency instead of the usual one.
    Latency(Duration),
}

/// One account at the simulated broker.
#[derive(Debug, Clone, Default)]
pub(super) struct Account {
    balance: Decimal,
    trades: Vec<BotTrade>,
    pub(super) positions: Vec<BrokerPosition>,
    injected: Vec<Injected>,
    latency: Option<Duration>,
    faults: VecDeque<Fault>,
    fault: Option<Fault>,
    calls: u64,
    quotes: Vec<Quote>,
    close_faults: VecDeque<Fault>,
    closes: u64,
    pub(super) margin_mode: MarginMode,
    pub(super) orders: Vec<PendingOrder>,
    pub(super) history: History,
    pub(super) deal_report: DealReport,
    /// The next order or position ticket to try (see [`Account::new_ticket`]).
    next_ticket: u64,
    pub(super) cancels: u64,
}

/// The first ticket of the orders and positions the simulator opens itself: far above
/// the generated ones (below 10^13).
pub const FIRST_SIM_TICKET: u64 = 100_000_000_000_000;

impl Account {
    /// A ticket no position (ticket or identifier) or pending order of the account uses,
    /// counting up from [`FIRST_SIM_TICKET`].
    pub(super) fn new_ticket(&mut self) -> u64 {
        let mut t = self.next_ticket.max(FIRST_SIM_TICKET);
        while self.uses_ticket(t) {
            t += 1;
        }
        self.next_ticket = t + 1;
        t
    }

    /// Whether a position (ticket or identifier) or a pending order uses `ticket`.
    pub(super) fn uses_ticket(&self, ticket: u64) -> bool {
        self.positions
            .iter()
            .any(|p| p.ticket == ticket || p.identifier == ticket)
            || self.orders.iter().any(|o| o.ticket == ticket)
    }
}

#[derive(Debug)]
struct Inner {
    accounts: BTreeMap<String, Account>,
    /// Draws the per-call latency.
    rng: SplitMix64,
    /// Random faults for calls with no scripted fault ([`SimBroker::set_random_faults`]).
    random: RandomFaults,
}

/// Faults drawn at random: each snapshot call with no queued or persistent fault fails
/// with chance `per_mille` / 1000, with one of `mix` chosen uniformly.
#[derive(Debug)]
struct RandomFaults {
    per_mille: u32,
    mix: Vec<Fault>,
    /// How many times each fault of `mix` was drawn.
    drawn: Vec<u64>,
    /// Its own stream, so drawing faults leaves the latency draws as they were.
    rng: SplitMix64,
}

/// A deterministic, scriptable broker for the demo, integration tests and benchmarks.
/// `Send + Sync`: share it as `Arc<SimBroker>` and hand clones out as `Arc<dyn Broker>`.
#[derive(Debug)]
pub struct SimBroker {
    inner: Mutex<Inner>,
    pub(super) latency_ms: (u64, u64),
    balance: Decimal,
    /// The margin mode of new accounts.
    margin_mode: MarginMode,
    /// How long deals stay in an account's history.
    pub(super) deal_window: TimeDelta,
    /// Stamps every snapshot (`taken_at`) and every deal.
    pub(super) clock: Clock,
}

pub(super) fn unknown(account: &str) -> BrokerError {
    BrokerError::Permanent(format!(
        "unknown account {account:?} at the simulated broker"
    ))
}

impl SimBroker {
    /// Generates `config.accounts` accounts (`sim-001`, …) from `config.seed`. Invalid
    /// values are tolerated (call [`SimConfig::problems`] first): latency bounds are
    /// ordered, probabilities above 100 mean "always".
    pub fn new(config: &SimConfig) -> Self {
        let accounts = (1..=config.accounts.min(MAX_ACCOUNTS))
            .map(|n| {
                let g = generate(config, n);
                let id = account_id(n);
                let account = Account {
                    balance: config.balance,
                    trades: g.trades,
                    positions: g.positions,
                    injected: g.injected,
                    margin_mode: config
                        .margin_modes
                        .get(&id)
                        .copied()
                        .unwrap_or(config.margin_mode),
                    ..Account::default()
                };
                (id, account)
            })
            .collect();
        let (a, b) = (config.latency_ms_min, config.latency_ms_max);
        Self {
            inner: Mutex::new(Inner {
                accounts,
                rng: SplitMix64::stream(config.seed, 0),
                random: RandomFaults {
                    per_mille: 0,
                    mix: Vec::new(),
                    drawn: Vec::new(),
                    // Accounts use streams 1..=MAX_ACCOUNTS, latency stream 0.
                    rng: SplitMix64::stream(config.seed, u64::MAX),
                },
            }),
            latency_ms: (a.min(b), a.max(b)),
            balance: config.balance,
            margin_mode: config.margin_mode,
            deal_window: TimeDelta::seconds(
                i64::try_from(config.deal_history_secs).unwrap_or(i64::MAX),
            )
            .max(TimeDelta::seconds(1)),
            clock: Clock::real(),
        }
    }

    /// The same broker stamping its snapshots with `clock` instead of the real clock (a
    /// clock following paused tokio time runs a trading day in a test).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic never happens while the lock is held, but stay usable if one did.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the account, `None` when it is unknown.
    pub(super) fn with<R>(&self, id: &str, f: impl FnOnce(&mut Account) -> R) -> Option<R> {
        self.lock().accounts.get_mut(id).map(f)
    }

    /// Every account id, sorted.
    pub fn account_ids(&self) -> Vec<String> {
        self.lock().accounts.keys().cloned().collect()
    }

    /// The noise the generator applied to `account` (empty for scripted or unknown
    /// accounts; later scripted changes are not tracked).
    pub fn injected(&self, account: &str) -> Vec<Injected> {
        self.with(account, |a| a.injected.clone())
            .unwrap_or_default()
    }

    /// Adds an account, or replaces one with the same id (clearing its faults and counters).
    pub fn add_account(&self, id: &str, trades: Vec<BotTrade>, positions: Vec<BrokerPosition>) {
        let account = Account {
            balance: self.balance,
            trades,
            positions,
            margin_mode: self.margin_mode,
            ..Account::default()
        };
        self.lock().accounts.insert(id.to_owned(), account);
    }

    /// Removes an account; later calls for it fail as permanent. False when unknown.
    pub fn remove_account(&self, id: &str) -> bool {
        self.lock().accounts.remove(id).is_some()
    }

    /// Replaces the broker positions of an account, leaving no deal: positions that
    /// vanish this way have no closing deal (a history that lost them), positions that
    /// appear no opening deal. False when unknown.
    pub fn set_positions(&self, id: &str, positions: Vec<BrokerPosition>) -> bool {
        self.with(id, |a| a.positions = positions).is_some()
    }

    /// Replaces the bot trades of an account. False when unknown.
    pub fn set_trades(&self, id: &str, trades: Vec<BotTrade>) -> bool {
        self.with(id, |a| a.trades = trades).is_some()
    }

    /// Changes the position with `ticket` in place. False when account or ticket is unknown.
    pub fn update_position(
        &self,
        id: &str,
        ticket: u64,
        f: impl FnOnce(&mut BrokerPosition),
    ) -> bool {
        self.with(id, |a| {
            a.positions.iter_mut().find(|p| p.ticket == ticket).map(f)
        })
        .flatten()
        .is_some()
    }

    /// Sets the account's balance. False when the account is unknown.
    pub fn set_balance(&self, id: &str, balance: Decimal) -> bool {
        self.with(id, |a| a.balance = balance).is_some()
    }

    /// Removes the position with `ticket`, leaving no deal (to script a position that
    /// vanished without a trace; [`SimBroker::close_by`] leaves its closing deal). False
    /// when account or ticket is unknown.
    pub fn remove_position(&self, id: &str, ticket: u64) -> bool {
        self.with(id, |a| {
            let before = a.positions.len();
            a.positions.retain(|p| p.ticket != ticket);
            a.positions.len() < before
        })
        .unwrap_or(false)
    }

    /// The broker positions of an account (empty when unknown).
    pub fn positions(&self, id: &str) -> Vec<BrokerPosition> {
        self.with(id, |a| a.positions.clone()).unwrap_or_default()
    }

    /// The bot trades of an account (empty when unknown).
    pub fn trades(&self, id: &str) -> Vec<BotTrade> {
        self.with(id, |a| a.trades.clone()).unwrap_or_default()
    }

    /// Fixes the latency of every snapshot of an account. False when unknown.
    pub fn set_latency(&self, id: &str, latency: Duration) -> bool {
        self.with(id, |a| a.latency = Some(latency)).is_some()
    }

    /// Queues faults: each snapshot call consumes one, in order, before any persistent
    /// fault applies. False when the account is unknown.
    pub fn push_faults(&self, id: &str, faults: impl IntoIterator<Item = Fault>) -> bool {
        self.with(id, |a| a.faults.extend(faults)).is_some()
    }

    /// Sets (or with `None` clears) a fault applied to every call while no queued fault
    /// is left. False when the account is unknown.
    pub fn set_fault(&self, id: &str, fault: Option<Fault>) -> bool {
        self.with(id, |a| a.fault = fault).is_some()
    }

    /// Makes every snapshot call of every account that has no queued or persistent fault
    /// fail with chance `per_mille` / 1000, with a fault chosen uniformly from `mix`
    /// (`per_mille` 0 or an empty `mix` turns it off). Resets the counts of
    /// [`SimBroker::random_faults_drawn`].
    pub fn set_random_faults(&self, per_mille: u32, mix: Vec<Fault>) {
        let mut guard = self.lock();
        let random = &mut guard.random;
        random.per_mille = per_mille;
        random.drawn = vec![0; mix.len()];
        random.mix = mix;
    }

    /// How many times each fault of the last [`SimBroker::set_random_faults`] mix was
    /// drawn, in the order of the mix.
    pub fn random_faults_drawn(&self) -> Vec<u64> {
        self.lock().random.drawn.clone()
    }

    /// How many snapshot calls an account has received (0 when unknown).
    pub fn snapshot_calls(&self, id: &str) -> u64 {
        self.with(id, |a| a.calls).unwrap_or(0)
    }

    /// Sets the quotes every snapshot of the account reports. False when unknown.
    pub fn set_quotes(&self, id: &str, quotes: Vec<Quote>) -> bool {
        self.with(id, |a| a.quotes = quotes).is_some()
    }

    /// Queues faults for the account's next close calls. `Fault::Timeout` closes the
    /// position but never answers (a close whose answer was lost); `Fault::Error` refuses
    /// the close. False when unknown.
    pub fn push_close_faults(&self, id: &str, faults: impl IntoIterator<Item = Fault>) -> bool {
        self.with(id, |a| a.close_faults.extend(faults)).is_some()
    }

    /// Close calls made for the account so far.
    pub fn close_calls(&self, id: &str) -> u64 {
        self.with(id, |a| a.closes).unwrap_or(0)
    }

    /// Counts the call and picks its fault and latency.
    fn begin(&self, id: &str) -> Result<(Option<Fault>, Duration), BrokerError> {
        let (lo, hi) = self.latency_ms;
        let mut guard = self.lock();
        let Inner {
            accounts,
            rng,
            random,
        } = &mut *guard;
        let account = accounts.get_mut(id).ok_or_else(|| unknown(id))?;
        account.calls += 1;
        let fault = account
            .faults
            .pop_front()
            .or_else(|| account.fault.clone())
            .or_else(|| random.draw());
        let latency = account
            .latency
            .unwrap_or_else(|| Duration::from_millis(rng.between(lo, hi)));
        Ok((fault, latency))
    }

    /// The account as it is now.
    fn read(&self, id: &str) -> Result<AccountSnapshot, BrokerError> {
        let now = self.clock.now();
        let window = self.deal_window;
        let read = self.with(id, |a| {
            a.history.prune(now, window);
            let deals = match a.deal_report {
                DealReport::Snapshot => a.history.all(),
                _ => Vec::new(),
            };
            let facts = (a.margin_mode, a.orders.clone(), deals);
            (a.balance, a.positions.clone(), a.quotes.clone(), facts)
        });
        let (balance, positions, quotes, (margin_mode, orders, deals)) =
            read.ok_or_else(|| unknown(id))?;
        let floating: Decimal = positions.iter().map(|p| p.profit + p.swap).sum();
        let equity = balance + floating;
        let margin = market::margin(&positions);
        Ok(AccountSnapshot {
            balance,
            equity,
            margin,
            free_margin: equity - margin,
            positions,
            quotes,
            taken_at: now,
            margin_mode: Some(margin_mode),
            orders: Some(orders),
            deals,
        })
    }
}

impl RandomFaults {
    /// A fault for this call, or `None` (then the call answers normally).
    fn draw(&mut self) -> Option<Fault> {
        if self.per_mille == 0 || self.mix.is_empty() {
            return None;
        }
        if self.rng.below(1000) >= u64::from(self.per_mille) {
            return None;
        }
        let i = self.rng.below(self.mix.len() as u64) as usize;
        self.drawn[i] += 1;
        Some(self.mix[i].clone())
    }
}

impl Broker for SimBroker {
    fn snapshot<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<AccountSnapshot, BrokerError>> {
        Box::pin(async move {
            let (fault, latency) = self.begin(account)?;
            let delay = match &fault {
                Some(Fault::Timeout) => NEVER_ANSWERS,
                Some(Fault::Latency(d)) => *d,
                _ => latency,
            };
            tokio::time::sleep(delay).await;
            match fault {
                None | Some(Fault::Latency(_)) => self.read(account),
                Some(Fault::Timeout) => Err(BrokerError::Timeout(format!(
                    "simulated broker did not answer for account {account}"
                ))),
                Some(Fault::Error(e)) => Err(e),
                Some(Fault::Malformed) => Err(BrokerError::Malformed {
                    field: "positions[0].volume".to_owned(),
                    reason: "simulated: \"abc\" is not a number".to_owned(),
                }),
                Some(Fault::Panic) => {
                    panic!("simulated broker panic in snapshot of account {account}")
                }
            }
        })
    }

    /// Closes the whole position, leaving its closing deal (reason `Expert`).
    fn close_position<'a>(
        &'a self,
        account: &'a str,
        ticket: u64,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(self.close(account, ticket))
    }

    /// Cancels the pending order (see [`SimBroker::cancel_calls`]); an order already gone
    /// is no error.
    fn cancel_order<'a>(
        &'a self,
        account: &'a str,
        ticket: u64,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(self.cancel(account, ticket))
    }

    /// The position's deals, as the account's [`DealReport`] says.
    fn position_deals<'a>(
        &'a self,
        account: &'a str,
        position_id: u64,
    ) -> BoxFuture<'a, Result<DealLookup, BrokerError>> {
        Box::pin(self.lookup(account, position_id))
    }

    /// The simulator reports the quotes set by [`SimBroker::set_quotes`].
    fn quotes_available(&self) -> bool {
        true
    }
}

impl SimBroker {
    /// A close: counts it, applies its fault, removes the position.
    async fn close(&self, account: &str, ticket: u64) -> Result<(), BrokerError> {
        let (lo, _) = self.latency_ms;
        let fault = {
            let mut guard = self.lock();
            let a = guard
                .accounts
                .get_mut(account)
                .ok_or_else(|| unknown(account))?;
            a.closes += 1;
            a.close_faults.pop_front()
        };
        tokio::time::sleep(Duration::from_millis(lo)).await;
        if let Some(Fault::Error(e)) = fault {
            return Err(e);
        }
        let removed = self.close_by(account, ticket, DealReason::Expert);
        if let Some(Fault::Timeout) = fault {
            tokio::time::sleep(NEVER_ANSWERS).await;
        }
        if removed {
            Ok(())
        } else {
            Err(BrokerError::Permanent(format!(
                "position {ticket} not found"
            )))
        }
    }
}

impl TradeSource for SimBroker {
    fn open_trades<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<Vec<BotTrade>, BrokerError>> {
        Box::pin(async move {
            self.with(account, |a| a.trades.clone())
                .ok_or_else(|| unknown(account))
        })
    }
}
