//! One account's world: its prices, the bot's trades, the broker's positions, orders and
//! deals, and the queue of what happens next, advanced in time order.
//!
//! Time is kept in milliseconds since the day's start. Prices move in 1-second steps; an
//! event due at the same millisecond as a step is handled before it. Every random draw
//! happens while handling an event or a step, so the world at a given time does not
//! depend on the times it was asked at before.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;

use super::config::DayConfig;
use super::model::{Event, Order, Pos, Trade, Walk};
use super::truth::{DayStats, Planted};
use crate::broker::sim::market;
use crate::broker::sim::rng::SplitMix64;
use crate::domain::{Deal, DealEntry, DealReason, MarginMode, Side, Volume};

/// Milliseconds between two price steps.
pub(super) const STEP_MS: i64 = 1_000;
/// Points in a pip (3- and 5-digit quotes).
pub(super) const PIP: i64 = market::POINTS_PER_PIP;
/// Symbols an account may trade, each with its reference price in `market`.
const SYMBOLS: [&str; 8] = [
    "EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCAD", "EURJPY", "NZDUSD", "EURGBP",
];
/// Ticket space of one account: account `n` uses tickets from `n · TICKET_SPAN`.
const TICKET_SPAN: u64 = 10_000_000;

/// One account's world.
#[derive(Debug)]
pub(super) struct Book {
    pub(super) config: Arc<DayConfig>,
    /// The account's id.
    pub(super) id: String,
    pub(super) rng: SplitMix64,
    pub(super) mode: MarginMode,
    pub(super) symbols: Vec<Walk>,
    /// The time of the last price step.
    walked: i64,
    /// The time the world has been brought to.
    pub(super) now: i64,
    queue: BTreeMap<(i64, u64), Event>,
    seq: u64,
    pub(super) trades: Vec<Trade>,
    pub(super) positions: Vec<Pos>,
    pub(super) orders: Vec<Order>,
    /// Deals with the time they appear in the history.
    pub(super) deals: Vec<(i64, Deal)>,
    pub(super) balance: Decimal,
    pub(super) planted: Vec<Planted>,
    /// Tickets the other advisor's positions ever had.
    pub(super) other_tickets: BTreeSet<u64>,
    /// The bot's trades placed as limit orders: from the record to the order leaving the
    /// broker (filled or cancelled; `i64::MAX` while it waits).
    pub(super) order_trades: BTreeMap<String, (i64, i64)>,
    /// Per symbol (netting): until when a change the bot sent is on its way.
    pub(super) sym_busy_until: Vec<i64>,
    pub(super) stats: DayStats,
    next_ticket: u64,
    next_deal: u64,
    next_trade: u64,
}

impl Book {
    /// Account `n` (1-based) of `config`, with its opening book; depends only on the seed
    /// and `n`.
    pub(super) fn new(config: Arc<DayConfig>, n: usize, id: String) -> Self {
        let mut rng = SplitMix64::stream(config.seed, n as u64);
        let mode = if rng.chance(config.netting_pct) {
            MarginMode::Netting
        } else {
            MarginMode::Hedging
        };
        let other = mode == MarginMode::Hedging && rng.chance(config.other_advisor_pct);
        let wanted = config.symbols_per_account.clamp(1, SYMBOLS.len());
        let first = rng.below(SYMBOLS.len() as u64) as usize;
        let symbols: Vec<Walk> = (0..wanted)
            .map(|i| {
                let name = SYMBOLS[(first + i) % SYMBOLS.len()];
                let q = market::quote(name);
                let points = q.mid + rng.between_i64(-q.mid / 100, q.mid / 100);
                Walk {
                    name,
                    digits: q.digits,
                    points,
                    floor: q.mid / 2,
                }
            })
            .collect();
        let base = (n as u64).saturating_mul(TICKET_SPAN);
        let mut book = Self {
            id,
            mode,
            sym_busy_until: vec![0; symbols.len()],
            symbols,
            rng,
            walked: 0,
            now: 0,
            queue: BTreeMap::new(),
            seq: 0,
            trades: Vec::new(),
            positions: Vec::new(),
            orders: Vec::new(),
            deals: Vec::new(),
            balance: Decimal::from(10_000),
            planted: Vec::new(),
            other_tickets: BTreeSet::new(),
            order_trades: BTreeMap::new(),
            stats: DayStats::default(),
            next_ticket: base + 1_000_000,
            next_deal: base + 6_000_000,
            next_trade: 0,
            config,
        };
        book.opening(other);
        book
    }

    /// The opening book: a few filled trades (and the other advisor's position), and the
    /// first of every recurring event.
    fn opening(&mut self, other: bool) {
        let c = self.config.clone();
        let opening = self.rng.between(2, 4);
        for _ in 0..opening {
            self.open_at_start();
        }
        self.schedule_after(c.bot_every_secs, Event::BotAct);
        if other {
            self.other_open();
            self.schedule_after(c.other_every_secs, Event::OtherAct);
        }
        if self.mode == MarginMode::Hedging {
            self.schedule_after(c.fault_every_secs, Event::PlantFault);
            self.schedule_after(c.ticket_change_every_secs, Event::TicketChange);
            self.schedule_after(c.stop_out_every_secs, Event::StopOut);
        }
    }

    /// Brings the world to `at`: every event and price step up to it, in time order.
    pub(super) fn advance_to(&mut self, at: DateTime<Utc>) {
        let to = (at - self.config.start).num_milliseconds();
        while let Some(next) = self.next_due(to) {
            match next {
                Due::Event(key) => {
                    let Some(event) = self.queue.remove(&key) else {
                        break;
                    };
                    self.now = key.0;
                    self.handle(event);
                }
                Due::Step(t) => {
                    self.now = t;
                    self.walked = t;
                    self.step();
                }
            }
        }
        self.now = self.now.max(to);
    }

    /// What is due next, at or before `to`.
    fn next_due(&self, to: i64) -> Option<Due> {
        let step = self.walked + STEP_MS;
        match self.queue.first_key_value() {
            Some((&key, _)) if key.0 <= step && key.0 <= to => Some(Due::Event(key)),
            _ if step <= to => Some(Due::Step(step)),
            _ => None,
        }
    }

    fn handle(&mut self, event: Event) {
        let c = self.config.clone();
        match event {
            Event::BotAct => {
                self.bot_act();
                self.schedule_after(c.bot_every_secs, Event::BotAct);
            }
            Event::OtherAct => {
                self.other_act();
                self.schedule_after(c.other_every_secs, Event::OtherAct);
            }
            Event::PlantFault => {
                if self.now <= c.faults_until_ms() {
                    self.plant_fault();
                    self.schedule_after(c.fault_every_secs, Event::PlantFault);
                }
            }
            Event::TicketChange => {
                self.ticket_change();
                self.schedule_after(c.ticket_change_every_secs, Event::TicketChange);
            }
            Event::StopOut => {
                self.stop_out();
                self.schedule_after(c.stop_out_every_secs, Event::StopOut);
            }
            Event::Apply(sent) => self.apply(sent),
            Event::LearnClosed(id) => self.learn_closed(&id),
            Event::LearnFilled(trade) => self.learn_filled(trade),
            Event::OrderExpires(ticket) => self.order_expires(ticket),
        }
    }

    /// Schedules `event` at `at` (milliseconds since the start).
    pub(super) fn schedule(&mut self, at: i64, event: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), event);
    }

    /// Schedules a recurring event after an interval drawn around `mean_secs` (never when
    /// the mean is 0).
    fn schedule_after(&mut self, mean_secs: u64, event: Event) {
        if mean_secs == 0 {
            return;
        }
        let mean = mean_secs.saturating_mul(1_000);
        let wait = self.rng.between(mean / 4, mean.saturating_mul(7) / 4);
        let at = self
            .now
            .saturating_add(i64::try_from(wait).unwrap_or(i64::MAX));
        self.schedule(at, event);
    }

    /// A draw from `range` (milliseconds), as a delay from now.
    pub(super) fn after(&mut self, range: (u64, u64)) -> i64 {
        let d = self.rng.between(range.0, range.1).max(1);
        self.now
            .saturating_add(i64::try_from(d).unwrap_or(i64::MAX))
    }

    /// A new order or position ticket.
    pub(super) fn ticket(&mut self) -> u64 {
        self.next_ticket += self.rng.between(1, 9);
        self.next_ticket
    }

    /// A new trade id of the bot.
    pub(super) fn trade_id(&mut self) -> String {
        self.next_trade += 1;
        format!("bot-{:06}", self.next_trade)
    }

    /// The instant of `ms` after the start.
    pub(super) fn instant(&self, ms: i64) -> DateTime<Utc> {
        self.config.start + TimeDelta::milliseconds(ms)
    }

    /// The current price of symbol `sym`, in points.
    pub(super) fn mid(&self, sym: usize) -> i64 {
        self.symbols[sym].points
    }

    /// `points` of symbol `sym` as a decimal.
    pub(super) fn dec(&self, sym: usize, points: i64) -> Decimal {
        market::price(points, self.symbols[sym].digits).get()
    }

    /// Realised (or floating) profit of `lots` of a `side` position of `sym` from `open`
    /// to `close`, in the account currency.
    pub(super) fn profit(
        &self,
        sym: usize,
        side: Side,
        lots: i64,
        open: i64,
        close: i64,
    ) -> Decimal {
        let name = self.symbols[sym].name;
        let volume = Decimal::new(lots, 2);
        market::profit(
            name,
            side,
            volume,
            self.dec(sym, open),
            self.dec(sym, close),
        )
    }

    /// Records a deal of `lots` of position `p` at `price` (points), now; a closing deal
    /// realises its profit.
    pub(super) fn deal(
        &mut self,
        p: &Pos,
        entry: DealEntry,
        reason: DealReason,
        lots: i64,
        price: i64,
    ) {
        let profit = if entry.closes() {
            self.profit(p.sym, p.side, lots, p.open, price)
        } else {
            Decimal::ZERO
        };
        self.balance += profit;
        self.next_deal += 1;
        let side = match (entry.closes(), p.side) {
            (false, s) => s,
            (true, Side::Buy) => Side::Sell,
            (true, Side::Sell) => Side::Buy,
        };
        let deal = Deal {
            ticket: self.next_deal,
            position_id: p.identifier,
            symbol: self.symbols[p.sym].name.to_owned(),
            side,
            entry,
            reason,
            volume: Volume::new(Decimal::new(lots.max(1), 2)),
            price: market::price(price, self.symbols[p.sym].digits),
            profit,
            time: self.instant(self.now),
        };
        let (lo, hi) = self.config.history_lag_ms;
        let lag = i64::try_from(self.rng.between(lo, hi)).unwrap_or(i64::MAX);
        self.deals.push((self.now.saturating_add(lag), deal));
        self.stats.deals += 1;
    }
    pub(super) fn position_of(&self, identifier: u64) -> Option<usize> {
        self.positions
            .iter()
            .position(|p| p.identifier == identifier)
    }

    /// Index of the bot's trade `id`.
    pub(super) fn trade_of(&self, id: &str) -> Option<usize> {
        self.trades.iter().position(|t| t.id == id)
    }

    /// Indices of the bot's trades it may act on now: filled, nothing on its way, no
    /// fault, and their position at the broker.
    pub(super) fn live_trades(&self) -> Vec<usize> {
        (0..self.trades.len())
            .filter(|&i| {
                let t = &self.trades[i];
                t.filled
                    && !t.frozen
                    && t.busy_until < self.now
                    && self
                        .position_of(t.ticket)
                        .is_some_and(|p| !self.positions[p].frozen)
            })
            .collect()
    }
    /// How the account books positions.
    pub(super) fn mode(&self) -> MarginMode {
        self.mode
    }

    /// What happened so far.
    pub(super) fn stats(&self) -> &DayStats {
        &self.stats
    }
}

/// The next thing to handle.
enum Due {
    Event((i64, u64)),
    Step(i64),
}
