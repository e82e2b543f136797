//! The broker's side: applying what the bot sent, the price walk with the stops and
//! limit orders it reaches, stop-outs, ticket changes, the other advisor, and what the
//! service asks (closes, cancels, deals by position).

use super::OTHER_MAGIC;
use super::book::Book;
use super::model::{Event, Order, Pos, Sent};
use crate::domain::{Deal, DealEntry, DealReason, Side};

/// Largest move of a price in one step, in points (a standard deviation of 0.7 pips a
/// second, about 43 pips an hour: stops are hit within minutes).
const STEP_POINTS: i64 = 12;
/// Most positions the other advisor holds at once.
const OTHER_MAX: usize = 3;

impl Book {
    /// The broker applies what the bot sent.
    pub(super) fn apply(&mut self, sent: Sent) {
        match sent {
            Sent::Fill {
                trade_id,
                fault,
                position,
            } => {
                let (ticket, sym) = (position.ticket, position.sym);
                self.open_position(position, DealReason::Expert);
                self.stats.fills += 1;
                if let Some(i) = self.trade_of(&trade_id) {
                    self.trades[i].filled = true;
                }
                if let Some(fault) = fault {
                    self.plant(fault, Some(trade_id), Some(ticket), sym);
                }
            }
            Sent::NetFill { trade_id, position } => {
                self.net_fill(&trade_id, position);
                self.stats.fills += 1;
            }
            Sent::NetClose { sym, lots } => {
                if let Some(i) = self.positions.iter().position(|p| p.sym == sym) {
                    let out = lots.min(self.positions[i].lots);
                    let price = self.mid(sym);
                    let p = self.positions[i].clone();
                    self.deal(&p, DealEntry::Out, DealReason::Expert, out, price);
                    self.positions[i].lots -= out;
                    if self.positions[i].lots <= 0 {
                        self.positions.remove(i);
                    }
                }
            }
            Sent::Modify { identifier, sl, tp } => {
                if let Some(i) = self.position_of(identifier)
                    && !self.positions[i].frozen
                {
                    (self.positions[i].sl, self.positions[i].tp) = (sl, tp);
                }
            }
            Sent::Close { identifier } => {
                if let Some(i) = self.position_of(identifier) {
                    let price = self.mid(self.positions[i].sym);
                    self.close_at(i, DealReason::Expert, price);
                }
            }
            Sent::Place(order) => self.orders.push(Order {
                placed: self.now,
                ..order
            }),
            Sent::Cancel { ticket, trade } => {
                if let Some(i) = self.orders.iter().position(|o| o.ticket == ticket) {
                    self.orders.remove(i);
                    self.order_ended(&trade.id);
                    self.stats.orders_cancelled += 1;
                } else if self.position_of(ticket).is_some() {
                    // Filled meanwhile: the cancel fails and the bot learns of the fill.
                    let at = self.after(self.config.learn_ms);
                    self.schedule(at, Event::LearnFilled(trade));
                }
            }
        }
    }

    /// Opens `position` now, with its opening deal (reason `reason`).
    pub(super) fn open_position(&mut self, mut position: Pos, reason: DealReason) {
        position.opened = self.now;
        self.deal(
            &position,
            DealEntry::In,
            reason,
            position.lots,
            position.open,
        );
        self.positions.push(position);
    }

    /// Adds `position` to its symbol's position (netting): one position per symbol, at
    /// the volume-weighted price of its fills.
    pub(super) fn net_fill(&mut self, trade_id: &str, position: Pos) {
        if let Some(i) = self.trade_of(trade_id) {
            self.trades[i].filled = true;
        }
        match self.positions.iter().position(|p| p.sym == position.sym) {
            Some(i) => {
                let held = self.positions[i].clone();
                let lots = held.lots + position.lots;
                let open =
                    (held.open * held.lots + position.open * position.lots + lots / 2) / lots;
                let added = Pos {
                    lots: position.lots,
                    open: position.open,
                    ..held
                };
                self.deal(
                    &added,
                    DealEntry::In,
                    DealReason::Expert,
                    added.lots,
                    added.open,
                );
                (self.positions[i].lots, self.positions[i].open) = (lots, open);
            }
            None => self.open_position(position, DealReason::Expert),
        }
    }

    /// Closes the whole position at index `i` at `price` for `reason`; the bot learns of a
    /// stop or a stop-out after `learn_ms`.
    pub(super) fn close_at(&mut self, i: usize, reason: DealReason, price: i64) {
        let p = self.positions.remove(i);
        self.deal(&p, DealEntry::Out, reason, p.lots, price);
        if matches!(
            reason,
            DealReason::StopLoss | DealReason::TakeProfit | DealReason::StopOut
        ) && let Some(id) = p.client_id
        {
            let at = self.after(self.config.learn_ms);
            self.schedule(at, Event::LearnClosed(id));
        }
    }

    /// One price step: every symbol moves, then limit orders fill and stops are hit.
    pub(super) fn step(&mut self) {
        for w in &mut self.symbols {
            w.points = (w.points + self.rng.between_i64(-STEP_POINTS, STEP_POINTS)).max(w.floor);
        }
        let mut i = 0;
        while i < self.orders.len() {
            let o = &self.orders[i];
            let reached = match o.side {
                Side::Buy => self.mid(o.sym) <= o.price,
                Side::Sell => self.mid(o.sym) >= o.price,
            };
            if reached {
                let order = self.orders.remove(i);
                self.fill_order(order);
            } else {
                i += 1;
            }
        }
        let mut i = 0;
        while i < self.positions.len() {
            match self.stop_hit(&self.positions[i]) {
                Some((reason, price)) => {
                    self.close_at(i, reason, price);
                    if reason == DealReason::StopLoss {
                        self.stats.sl_hits += 1;
                    } else {
                        self.stats.tp_hits += 1;
                    }
                }
                None => i += 1,
            }
        }
    }

    /// The stop `p` reached at the current price, if any (never for a planted fault).
    fn stop_hit(&self, p: &Pos) -> Option<(DealReason, i64)> {
        if p.frozen {
            return None;
        }
        let mid = self.mid(p.sym);
        let (lost, won) = match p.side {
            Side::Buy => (p.sl.filter(|&sl| mid <= sl), p.tp.filter(|&tp| mid >= tp)),
            Side::Sell => (p.sl.filter(|&sl| mid >= sl), p.tp.filter(|&tp| mid <= tp)),
        };
        lost.map(|sl| (DealReason::StopLoss, sl))
            .or(won.map(|tp| (DealReason::TakeProfit, tp)))
    }

    /// A limit order fills at its price into a position whose identifier is its ticket.
    fn fill_order(&mut self, o: Order) {
        let position = Pos {
            ticket: o.ticket,
            identifier: o.ticket,
            sym: o.sym,
            side: o.side,
            lots: o.lots,
            open: o.price,
            sl: o.sl,
            tp: o.tp,
            magic: super::BOT_MAGIC,
            comment: "bot".into(),
            client_id: Some(o.trade_id.clone()),
            opened: self.now,
            frozen: false,
        };
        self.open_position(position, DealReason::Expert);
        self.order_ended(&o.trade_id);
        self.stats.orders_filled += 1;
        if let Some(i) = self.trade_of(&o.trade_id) {
            self.trades[i].filled = true;
        }
    }

    /// The broker closes the account's worst bot position (stop-out).
    pub(super) fn stop_out(&mut self) {
        let worst = self
            .live_trades()
            .into_iter()
            .filter_map(|i| self.position_of(self.trades[i].ticket))
            .min_by_key(|&p| {
                let p = &self.positions[p];
                self.profit(p.sym, p.side, p.lots, p.open, self.mid(p.sym))
            });
        if let Some(i) = worst {
            let price = self.mid(self.positions[i].sym);
            self.close_at(i, DealReason::StopOut, price);
            self.stats.stop_outs += 1;
        }
    }

    /// The broker reopens one of the bot's positions under a new ticket; its identifier
    /// stays.
    pub(super) fn ticket_change(&mut self) {
        let live = self.live_trades();
        let Some(k) = self.rng.index(live.len()) else {
            return;
        };
        if let Some(p) = self.position_of(self.trades[live[k]].ticket) {
            self.positions[p].ticket = self.ticket();
            self.stats.ticket_changes += 1;
        }
    }

    /// The other advisor opens a position, or closes one of its own.
    pub(super) fn other_act(&mut self) {
        let held: Vec<usize> = (0..self.positions.len())
            .filter(|&i| self.positions[i].magic == OTHER_MAGIC)
            .collect();
        if held.is_empty() || (held.len() < OTHER_MAX && self.rng.chance(50)) {
            return self.other_open();
        }
        if let Some(k) = self.rng.index(held.len()) {
            let price = self.mid(self.positions[held[k]].sym);
            self.close_at(held[k], DealReason::Expert, price);
        }
    }

    /// A position of a random symbol, side and size at the current price, under `magic`,
    /// not the bot's (no client id).
    pub(super) fn random_position(&mut self, magic: i64, comment: &str, frozen: bool) -> Pos {
        let sym = self.rng.below(self.symbols.len() as u64) as usize;
        let side = if self.rng.chance(50) {
            Side::Buy
        } else {
            Side::Sell
        };
        let ticket = self.ticket();
        Pos {
            ticket,
            identifier: ticket,
            sym,
            side,
            lots: self.rng.between(1, 50) as i64,
            open: self.mid(sym),
            sl: None,
            tp: None,
            magic,
            comment: comment.to_owned(),
            client_id: None,
            opened: self.now,
            frozen,
        }
    }

    /// The other advisor opens a position at the current price.
    pub(super) fn other_open(&mut self) {
        let position = self.random_position(OTHER_MAGIC, "grid-ea", false);
        let ticket = position.ticket;
        self.other_tickets.insert(ticket);
        self.open_position(position, DealReason::Expert);
        self.stats.other_opens += 1;
    }

    /// The service closes the position with `ticket`; false when there is none.
    pub(super) fn close_by_service(&mut self, ticket: u64) -> bool {
        let Some(i) = self.positions.iter().position(|p| p.ticket == ticket) else {
            return false;
        };
        let price = self.mid(self.positions[i].sym);
        self.close_at(i, DealReason::Expert, price);
        self.stats.service_closes += 1;
        true
    }

    /// The service cancels the order `ticket` (gone already is fine).
    pub(super) fn cancel_by_service(&mut self, ticket: u64) {
        if let Some(i) = self.orders.iter().position(|o| o.ticket == ticket) {
            let order = self.orders.remove(i);
            self.order_ended(&order.trade_id);
            self.stats.orders_cancelled += 1;
        }
    }

    /// The deals of position `identifier` in the broker's history now.
    pub(super) fn position_deals(&self, identifier: u64) -> Vec<Deal> {
        self.deals
            .iter()
            .filter(|(visible, d)| *visible <= self.now && d.position_id == identifier)
            .map(|(_, d)| d.clone())
            .collect()
    }
}
