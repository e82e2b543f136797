//! Reading an account's world as domain types: the broker's snapshot and the bot's trades.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::book::Book;
use crate::broker::sim::market;
use crate::domain::{
    AccountSnapshot, BotTrade, BrokerPosition, PendingOrder, Price, Quote, Volume,
};

/// Half the simulated spread, in points.
const HALF_SPREAD: i64 = 3;

/// Hundredths of a lot as a volume (never below 0.01).
fn volume(lots: i64) -> Volume {
    Volume::new(Decimal::new(lots.max(1), 2))
}

impl Book {
    fn price(&self, sym: usize, points: i64) -> Price {
        market::price(points, self.symbols[sym].digits)
    }

    /// The broker's positions now.
    pub(super) fn broker_positions(&self) -> Vec<BrokerPosition> {
        self.positions
            .iter()
            .map(|p| {
                let mid = self.mid(p.sym);
                BrokerPosition {
                    ticket: p.ticket,
                    identifier: p.identifier,
                    symbol: self.symbols[p.sym].name.to_owned(),
                    side: p.side,
                    volume: volume(p.lots),
                    open_price: self.price(p.sym, p.open),
                    sl: p.sl.map(|sl| self.price(p.sym, sl)),
                    tp: p.tp.map(|tp| self.price(p.sym, tp)),
                    current_price: Some(self.price(p.sym, mid)),
                    profit: self.profit(p.sym, p.side, p.lots, p.open, mid),
                    swap: Decimal::ZERO,
                    magic: p.magic,
                    comment: p.comment.clone(),
                    client_id: p.client_id.clone(),
                    open_time: self.instant(p.opened),
                }
            })
            .collect()
    }

    /// The broker's pending orders now.
    pub(super) fn pending_orders(&self) -> Vec<PendingOrder> {
        self.orders
            .iter()
            .map(|o| PendingOrder {
                ticket: o.ticket,
                symbol: self.symbols[o.sym].name.to_owned(),
                side: o.side,
                volume: volume(o.lots),
                price: Some(self.price(o.sym, o.price)),
                magic: super::BOT_MAGIC,
                comment: "bot".into(),
                client_id: Some(o.trade_id.clone()),
                placed_at: self.instant(o.placed),
            })
            .collect()
    }

    /// The bot's open trades now.
    pub(super) fn bot_trades(&self) -> Vec<BotTrade> {
        self.trades
            .iter()
            .map(|t| BotTrade {
                id: t.id.clone(),
                account: self.id.clone(),
                symbol: self.symbols[t.sym].name.to_owned(),
                side: t.side,
                volume: volume(t.lots),
                entry_price: self.price(t.sym, t.entry),
                sl: t.sl.map(|sl| self.price(t.sym, sl)),
                tp: t.tp.map(|tp| self.price(t.sym, tp)),
                ticket: Some(t.ticket),
                client_id: None,
                opened_at: Some(self.instant(t.opened)),
            })
            .collect()
    }

    /// The account at the broker now, stamped `taken_at`: positions, orders, margin mode,
    /// quotes of every symbol, and the deals of the last `deals_window_secs` that the
    /// history shows.
    pub(super) fn snapshot(&self, taken_at: DateTime<Utc>) -> AccountSnapshot {
        let positions = self.broker_positions();
        let floating: Decimal = positions.iter().map(|p| p.profit).sum();
        let equity = self.balance + floating;
        let margin = market::margin(&positions);
        let window = i64::try_from(self.config.deals_window_secs)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000);
        let from = self.instant(self.now.saturating_sub(window));
        let deals = self
            .deals
            .iter()
            .filter(|(visible, d)| *visible <= self.now && d.time >= from)
            .map(|(_, d)| d.clone())
            .collect();
        let quotes = (0..self.symbols.len())
            .map(|s| Quote {
                symbol: self.symbols[s].name.to_owned(),
                bid: self.price(s, self.mid(s) - HALF_SPREAD).get(),
                ask: self.price(s, self.mid(s) + HALF_SPREAD).get(),
                time: taken_at,
            })
            .collect();
        AccountSnapshot {
            balance: self.balance,
            equity,
            margin,
            free_margin: equity - margin,
            positions,
            quotes,
            taken_at,
            margin_mode: Some(self.mode),
            orders: Some(self.pending_orders()),
            deals,
        }
    }
}
