//! The bot: what it decides and records on its side. Every decision is recorded at once
//! and sent to the broker, which applies it `latency_ms` later ([`super::venue`]).

use super::BOT_MAGIC;
use super::book::{Book, PIP};
use super::model::{Event, Order, Pos, Sent, Trade};
use super::truth::PlantedFault;
use crate::domain::{DealReason, Side};

/// Most trades the bot keeps open on an account.
const MAX_OPEN: usize = 10;
/// Fills land within this many points of the bot's price (2 pips).
const FILL_POINTS: i64 = 2 * PIP;

impl Book {
    /// The opening book: a filled trade opened up to an hour before the start.
    pub(super) fn open_at_start(&mut self) {
        let opened = -self.rng.between_i64(60_000, 3_600_000);
        let sym = self.rng.below(self.symbols.len() as u64) as usize;
        let side = self.side_for(sym);
        self.now = opened;
        if self.mode.is_netting() {
            let (trade, position) = self.net_order(sym, side);
            self.trades.push(Trade {
                filled: true,
                ..trade
            });
            self.net_fill(&position.client_id.clone().unwrap_or_default(), position);
        } else {
            let (trade, position) = self.market_order(sym, side, None);
            self.trades.push(Trade {
                filled: true,
                ..trade
            });
            self.open_position(position, DealReason::Expert);
        }
        self.now = 0;
    }

    /// One action of the bot.
    pub(super) fn bot_act(&mut self) {
        if self.mode.is_netting() {
            return self.net_act();
        }
        let open = self.trades.iter().filter(|t| !t.frozen).count();
        let roll = if open < 2 {
            0
        } else if open >= MAX_OPEN {
            40 + self.rng.below(60)
        } else {
            self.rng.below(100)
        };
        match roll {
            0..30 => self.open_market(None),
            30..40 => self.place_limit(),
            40..80 => self.modify(),
            _ => self.close(),
        }
    }

    /// A side for a new trade on `sym`: a netting account adds to its position's side.
    fn side_for(&mut self, sym: usize) -> Side {
        let held = self.mode.is_netting().then(|| {
            self.trades
                .iter()
                .find(|t| t.sym == sym && !t.frozen)
                .map(|t| t.side)
        });
        match held.flatten() {
            Some(side) => side,
            None if self.rng.chance(50) => Side::Buy,
            None => Side::Sell,
        }
    }

    /// Stop loss and take profit around `price` for a `side` trade.
    fn stops(&mut self, side: Side, price: i64) -> (Option<i64>, Option<i64>) {
        let c = self.config.clone();
        let sl = self.rng.between(c.sl_pips.0, c.sl_pips.1).max(1) as i64 * PIP;
        let tp = self.rng.between(c.tp_pips.0, c.tp_pips.1).max(1) as i64 * PIP;
        match side {
            Side::Buy => (Some(price - sl), Some(price + tp)),
            Side::Sell => (Some(price + sl), Some(price - tp)),
        }
    }

    /// A market trade as the bot records it and its position as the broker will fill it
    /// (with `fault`, if one is planted on the fill).
    fn market_order(
        &mut self,
        sym: usize,
        side: Side,
        fault: Option<PlantedFault>,
    ) -> (Trade, Pos) {
        let lots = self.rng.between(5, 100) as i64;
        let entry = self.mid(sym);
        let (sl, tp) = self.stops(side, entry);
        let (ticket, id) = (self.ticket(), self.trade_id());
        let worse = |points: i64| match side {
            Side::Buy => entry + points,
            Side::Sell => entry - points,
        };
        let open = match fault {
            Some(PlantedFault::EntrySlippage) => worse(self.rng.between(6, 15) as i64 * PIP),
            _ => entry + self.rng.between_i64(-FILL_POINTS, FILL_POINTS),
        };
        let filled_lots = match fault {
            Some(PlantedFault::WrongVolume) => {
                (lots * self.rng.between(50, 80) as i64 / 100).max(1)
            }
            _ => lots,
        };
        let trade = Trade {
            id: id.clone(),
            sym,
            side,
            lots,
            entry,
            sl,
            tp,
            ticket,
            opened: self.now,
            filled: false,
            frozen: fault.is_some(),
            busy_until: self.now,
        };
        let position = Pos {
            ticket,
            identifier: ticket,
            sym,
            side,
            lots: filled_lots,
            open,
            sl,
            tp,
            magic: BOT_MAGIC,
            comment: "bot".into(),
            client_id: Some(id),
            opened: self.now,
            frozen: fault.is_some(),
        };
        (trade, position)
    }

    /// The bot opens a market trade; `fault` is planted on its fill.
    pub(super) fn open_market(&mut self, fault: Option<PlantedFault>) {
        let sym = self.rng.below(self.symbols.len() as u64) as usize;
        let side = self.side_for(sym);
        let (mut trade, mut position) = self.market_order(sym, side, fault);
        self.stats.bot_opens += 1;
        if fault == Some(PlantedFault::NeverFilled) {
            self.plant(
                PlantedFault::NeverFilled,
                Some(trade.id.clone()),
                Some(trade.ticket),
                sym,
            );
            self.trades.push(trade);
            return;
        }
        let at = self.after(self.config.latency_ms);
        trade.busy_until = at;
        position.opened = at;
        let trade_id = trade.id.clone();
        self.trades.push(trade);
        self.schedule(
            at,
            Event::Apply(Sent::Fill {
                trade_id,
                fault,
                position,
            }),
        );
    }

    /// The bot places a limit order 5–25 pips away, and records its trade at that price.
    fn place_limit(&mut self) {
        let sym = self.rng.below(self.symbols.len() as u64) as usize;
        let side = self.side_for(sym);
        let lots = self.rng.between(5, 100) as i64;
        let away = self.rng.between(5, 25) as i64 * PIP;
        let price = match side {
            Side::Buy => self.mid(sym) - away,
            Side::Sell => self.mid(sym) + away,
        };
        let (sl, tp) = self.stops(side, price);
        let (ticket, id) = (self.ticket(), self.trade_id());
        let at = self.after(self.config.latency_ms);
        let (lo, hi) = self.config.order_ttl_secs;
        let expires = self.after((lo.saturating_mul(1_000), hi.saturating_mul(1_000)));
        self.trades.push(Trade {
            id: id.clone(),
            sym,
            side,
            lots,
            entry: price,
            sl,
            tp,
            ticket,
            opened: self.now,
            filled: false,
            frozen: false,
            busy_until: at,
        });
        self.order_trades.insert(id.clone(), (self.now, i64::MAX));
        self.stats.orders_placed += 1;
        let order = Order {
            ticket,
            trade_id: id,
            sym,
            side,
            lots,
            price,
            sl,
            tp,
            placed: at,
        };
        self.schedule(at, Event::Apply(Sent::Place(order)));
        self.schedule(expires, Event::OrderExpires(ticket));
    }

    /// The bot moves the stop loss (or the take profit) of a trade to a distance from the
    /// current price.
    fn modify(&mut self) {
        let live = self.live_trades();
        let Some(k) = self.rng.index(live.len()) else {
            return;
        };
        let i = live[k];
        let (side, sym) = (self.trades[i].side, self.trades[i].sym);
        let (sl, tp) = self.stops(side, self.mid(sym));
        let at = self.after(self.config.latency_ms);
        let moves_sl = self.rng.chance(60);
        let t = &mut self.trades[i];
        if moves_sl {
            t.sl = sl;
        } else {
            t.tp = tp;
        }
        t.busy_until = at;
        let sent = Sent::Modify {
            identifier: t.ticket,
            sl: t.sl,
            tp: t.tp,
        };
        self.stats.modifies += 1;
        self.schedule(at, Event::Apply(sent));
    }

    /// The bot closes a trade: marked closed at once, the position goes at the broker.
    fn close(&mut self) {
        let live = self.live_trades();
        let Some(k) = self.rng.index(live.len()) else {
            return;
        };
        let trade = self.trades.remove(live[k]);
        self.stats.bot_closes += 1;
        let at = self.after(self.config.latency_ms);
        self.schedule(
            at,
            Event::Apply(Sent::Close {
                identifier: trade.ticket,
            }),
        );
    }

    /// The bot cancels its limit order `ticket` if it has not filled yet.
    pub(super) fn order_expires(&mut self, ticket: u64) {
        let Some(i) = self
            .trades
            .iter()
            .position(|t| t.ticket == ticket && !t.filled)
        else {
            return;
        };
        let trade = self.trades.remove(i);
        let at = self.after(self.config.latency_ms);
        self.schedule(at, Event::Apply(Sent::Cancel { ticket, trade }));
    }

    /// The bot learns that its position was closed at the broker.
    pub(super) fn learn_closed(&mut self, trade_id: &str) {
        if let Some(i) = self.trade_of(trade_id) {
            self.trades.remove(i);
            self.stats.caught_up += 1;
        }
    }

    /// The bot learns that the order it cancelled had filled: the trade is open after all
    /// (unless its position is gone meanwhile).
    pub(super) fn learn_filled(&mut self, trade: Trade) {
        if self.position_of(trade.ticket).is_some() && self.trade_of(&trade.id).is_none() {
            self.trades.push(Trade {
                filled: true,
                busy_until: self.now,
                ..trade
            });
        }
    }

    /// One action of the bot on a netting account: add to a symbol's position, or close
    /// all its trades of a symbol. A symbol with a change on its way is left alone.
    fn net_act(&mut self) {
        let free: Vec<usize> = (0..self.symbols.len())
            .filter(|&s| self.sym_busy_until[s] < self.now)
            .collect();
        let Some(k) = self.rng.index(free.len()) else {
            return;
        };
        let sym = free[k];
        let held = self.trades.iter().filter(|t| t.sym == sym).count();
        let roll = self.rng.below(100);
        let at = self.after(self.config.latency_ms);
        self.sym_busy_until[sym] = at;
        if held == 0 || (roll < 60 && held < 4) {
            let side = self.side_for(sym);
            let (trade, position) = self.net_order(sym, side);
            let trade_id = trade.id.clone();
            self.trades.push(Trade {
                busy_until: at,
                ..trade
            });
            self.stats.bot_opens += 1;
            self.schedule(at, Event::Apply(Sent::NetFill { trade_id, position }));
        } else {
            let lots = self
                .trades
                .iter()
                .filter(|t| t.sym == sym)
                .map(|t| t.lots)
                .sum();
            self.trades.retain(|t| t.sym != sym);
            self.stats.bot_closes += held as u64;
            self.schedule(at, Event::Apply(Sent::NetClose { sym, lots }));
        }
    }

    /// A netting trade (no stops) and the fill that adds it to the symbol's position.
    fn net_order(&mut self, sym: usize, side: Side) -> (Trade, Pos) {
        let lots = self.rng.between(5, 50) as i64;
        let entry = self.mid(sym);
        let open = entry + self.rng.between_i64(-FILL_POINTS, FILL_POINTS);
        let (ticket, id) = (self.ticket(), self.trade_id());
        let trade = Trade {
            id: id.clone(),
            sym,
            side,
            lots,
            entry,
            sl: None,
            tp: None,
            ticket,
            opened: self.now,
            filled: false,
            frozen: false,
            busy_until: self.now,
        };
        let position = Pos {
            ticket,
            identifier: ticket,
            sym,
            side,
            lots,
            open,
            sl: None,
            tp: None,
            magic: BOT_MAGIC,
            comment: "bot".into(),
            client_id: Some(id),
            opened: self.now,
            frozen: false,
        };
        (trade, position)
    }
}
