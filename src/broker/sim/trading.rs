//! Trading at the simulated broker, the building blocks of a trading day: positions opened
//! and closed with their deals, partial closes, a position re-opened under a new ticket,
//! pending orders placed, filled and cancelled, the margin mode, and how the history is
//! reported ([`DealReport`]).
//!
//! The hooks are synchronous and take effect at once; the [`Broker`](crate::broker::Broker)
//! calls (`cancel_order`, `position_deals`) take the shortest simulated latency. Every
//! deal is stamped with the simulator's clock. On a netting account
//! ([`MarginMode::is_netting`]) a fill on a symbol already held adds to the position,
//! reduces it, closes it or reverses it (ticket changed, identifier kept), as MT5 does.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;

use super::history::{DealReport, close_price, closing, opening};
use super::simulator::{Account, SimBroker, unknown};
use crate::broker::BrokerError;
use crate::domain::{
    BrokerPosition, Deal, DealEntry, DealLookup, DealReason, MarginMode, PendingOrder, Price,
    Volume,
};

/// When a deal happens and how long the history keeps it.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    now: DateTime<Utc>,
    window: TimeDelta,
}

impl SimBroker {
    /// Runs `f` on the account with the time of a deal made now, `None` when unknown.
    fn trade<R>(&self, id: &str, f: impl FnOnce(&mut Account, Stamp) -> R) -> Option<R> {
        let stamp = Stamp {
            now: self.clock.now(),
            window: self.deal_window,
        };
        self.with(id, |a| f(a, stamp))
    }

    /// Sets how the account books positions (reported with every snapshot; fills on a
    /// netting account net). False when unknown.
    pub fn set_margin_mode(&self, id: &str, mode: MarginMode) -> bool {
        self.with(id, |a| a.margin_mode = mode).is_some()
    }

    /// Sets how the account's deal history is reported. False when unknown.
    pub fn set_deal_report(&self, id: &str, report: DealReport) -> bool {
        self.with(id, |a| a.deal_report = report).is_some()
    }

    /// The account's deals still within the history's window, oldest first (empty when
    /// unknown), whatever its [`DealReport`].
    pub fn deals(&self, id: &str) -> Vec<Deal> {
        self.trade(id, |a, s| {
            a.history.prune(s.now, s.window);
            a.history.all()
        })
        .unwrap_or_default()
    }

    /// The account's pending orders (empty when unknown).
    pub fn orders(&self, id: &str) -> Vec<PendingOrder> {
        self.with(id, |a| a.orders.clone()).unwrap_or_default()
    }

    /// Cancel calls made for the account so far.
    pub fn cancel_calls(&self, id: &str) -> u64 {
        self.with(id, |a| a.cancels).unwrap_or(0)
    }

    /// Opens `position` now, as given (it does not net, even on a netting account),
    /// leaving its opening deal with `reason`. False when the account is unknown or its
    /// ticket or identifier is in use.
    pub fn open_position(&self, id: &str, position: BrokerPosition, reason: DealReason) -> bool {
        self.trade(id, |a, s| {
            if a.uses_ticket(position.ticket) || a.uses_ticket(position.identifier) {
                return false;
            }
            let deal = opening(
                &position,
                position.volume,
                position.open_price,
                reason,
                s.now,
            );
            a.history.record(deal, s.window);
            a.positions.push(position);
            true
        })
        .unwrap_or(false)
    }

    /// Closes the whole position `ticket` for `reason` (stop loss, take profit, stop-out,
    /// by hand …), leaving its closing deal at the price the reason implies. False when
    /// the account or the ticket is unknown.
    pub fn close_by(&self, id: &str, ticket: u64, reason: DealReason) -> bool {
        self.trade(id, |a, s| {
            let Some(i) = a.positions.iter().position(|p| p.ticket == ticket) else {
                return false;
            };
            let p = a.positions.remove(i);
            let price = close_price(&p, reason);
            a.history
                .record(closing(&p, p.volume, price, reason, s.now), s.window);
            true
        })
        .unwrap_or(false)
    }

    /// Closes `volume` of the position `ticket` for `reason`, leaving a closing deal of
    /// that volume; the rest stays open (its floating profit scaled down). False when the
    /// account or the ticket is unknown, or `volume` is not below the position's.
    pub fn close_partially(
        &self,
        id: &str,
        ticket: u64,
        volume: Volume,
        reason: DealReason,
    ) -> bool {
        self.trade(id, |a, s| {
            let Some(p) = a.positions.iter_mut().find(|p| p.ticket == ticket) else {
                return false;
            };
            let Ok(rest) = Volume::new_checked(p.volume.get() - volume.get()) else {
                return false;
            };
            let deal = closing(p, volume, close_price(p, reason), reason, s.now);
            p.profit = (p.profit * rest.get() / p.volume.get()).round_dp(2);
            p.volume = rest;
            a.history.record(deal, s.window);
            true
        })
        .unwrap_or(false)
    }

    /// Re-opens the position `ticket` under a new ticket, keeping its identifier (as a
    /// broker may at a rollover); no deal. The new ticket, `None` when the account or
    /// the ticket is unknown.
    pub fn reopen(&self, id: &str, ticket: u64) -> Option<u64> {
        self.with(id, |a| {
            let i = a.positions.iter().position(|p| p.ticket == ticket)?;
            let new = a.new_ticket();
            a.positions[i].ticket = new;
            Some(new)
        })
        .flatten()
    }

    /// Places a pending order; a ticket of 0 gets the account's next free ticket. The
    /// order's ticket, `None` when the account is unknown or the ticket is in use.
    pub fn place_order(&self, id: &str, mut order: PendingOrder) -> Option<u64> {
        self.with(id, |a| {
            if order.ticket == 0 {
                order.ticket = a.new_ticket();
            } else if a.uses_ticket(order.ticket) {
                return None;
            }
            let ticket = order.ticket;
            a.orders.push(order);
            Some(ticket)
        })
        .flatten()
    }

    /// Fills the pending order `ticket` at `price` (else at its own price): it leaves the
    /// orders and opens a position whose ticket and identifier are the order's ticket,
    /// with an opening deal (reason `Expert` for an order with a magic number, `Client`
    /// otherwise); on a netting account holding the symbol, it nets instead. The
    /// identifier of the position opened or changed; `None` when the account or the
    /// order is unknown, or there is no price to fill at.
    pub fn fill_order(&self, id: &str, ticket: u64, price: Option<Price>) -> Option<u64> {
        self.trade(id, |a, s| {
            let i = a.orders.iter().position(|o| o.ticket == ticket)?;
            let price = price.or(a.orders[i].price)?;
            let netted = a.margin_mode.is_netting()
                && a.positions.iter().any(|p| p.symbol == a.orders[i].symbol);
            let order = a.orders.remove(i);
            let reason = if order.magic == 0 {
                DealReason::Client
            } else {
                DealReason::Expert
            };
            if netted {
                return net(a, &order, price, reason, s);
            }
            let position = BrokerPosition {
                ticket: order.ticket,
                identifier: order.ticket,
                symbol: order.symbol,
                side: order.side,
                volume: order.volume,
                open_price: price,
                sl: None,
                tp: None,
                current_price: Some(price),
                profit: Decimal::ZERO,
                swap: Decimal::ZERO,
                magic: order.magic,
                comment: order.comment,
                client_id: order.client_id,
                open_time: s.now,
            };
            let deal = opening(&position, position.volume, price, reason, s.now);
            a.history.record(deal, s.window);
            a.positions.push(position);
            Some(order.ticket)
        })
        .flatten()
    }

    /// Removes the pending order `ticket` without a fill (the broker cancelled it, or it
    /// expired). False when the account or the order is unknown.
    pub fn drop_order(&self, id: &str, ticket: u64) -> bool {
        self.with(id, |a| {
            let before = a.orders.len();
            a.orders.retain(|o| o.ticket != ticket);
            a.orders.len() < before
        })
        .unwrap_or(false)
    }

    /// `cancel_order`: counts it, waits the shortest latency, removes the order if it is
    /// still pending.
    pub(super) async fn cancel(&self, account: &str, ticket: u64) -> Result<(), BrokerError> {
        self.with(account, |a| a.cancels += 1)
            .ok_or_else(|| unknown(account))?;
        tokio::time::sleep(Duration::from_millis(self.latency_ms.0)).await;
        self.drop_order(account, ticket);
        Ok(())
    }

    /// `position_deals`: after the shortest latency, the deals of `position_id` as the
    /// account's [`DealReport`] says.
    pub(super) async fn lookup(
        &self,
        account: &str,
        position_id: u64,
    ) -> Result<DealLookup, BrokerError> {
        tokio::time::sleep(Duration::from_millis(self.latency_ms.0)).await;
        self.trade(account, |a, s| {
            a.history.prune(s.now, s.window);
            match a.deal_report {
                DealReport::Lookup | DealReport::Snapshot => {
                    DealLookup::Found(a.history.of(position_id))
                }
                DealReport::Lagging => DealLookup::Found(Vec::new()),
                DealReport::Unsupported => DealLookup::Unsupported,
            }
        })
        .ok_or_else(|| unknown(account))
    }
}

/// Fills `order` at `price` against the account's position on its symbol (netting): the
/// same side adds (open price weighted by volume), the other side reduces, closes or
/// reverses it (the reversed position takes the order's ticket and keeps its identifier).
/// The position's identifier; `None` (and nothing changed) when a volume would be out of
/// bounds.
fn net(
    a: &mut Account,
    order: &PendingOrder,
    price: Price,
    reason: DealReason,
    s: Stamp,
) -> Option<u64> {
    let i = a.positions.iter().position(|p| p.symbol == order.symbol)?;
    let p = &a.positions[i];
    let (held, add) = (p.volume.get(), order.volume.get());
    let identifier = p.identifier;
    if p.side == order.side {
        let volume = Volume::new_checked(held + add).ok()?;
        let scale = p.open_price.get().scale().max(price.get().scale());
        let weighted = (p.open_price.get() * held + price.get() * add) / (held + add);
        let open = Price::new_checked(weighted.round_dp(scale)).ok()?;
        let deal = opening(p, order.volume, price, reason, s.now);
        let p = &mut a.positions[i];
        p.volume = volume;
        p.open_price = open;
        a.history.record(deal, s.window);
    } else if add < held {
        let rest = Volume::new_checked(held - add).ok()?;
        let deal = closing(p, order.volume, price, reason, s.now);
        a.positions[i].volume = rest;
        a.history.record(deal, s.window);
    } else if add == held {
        let deal = closing(p, order.volume, price, reason, s.now);
        a.positions.remove(i);
        a.history.record(deal, s.window);
    } else {
        let rest = Volume::new_checked(add - held).ok()?;
        let mut deal = closing(p, order.volume, price, reason, s.now);
        deal.entry = DealEntry::InOut;
        deal.profit = closing(p, p.volume, price, reason, s.now).profit;
        let p = &mut a.positions[i];
        p.ticket = order.ticket;
        p.side = order.side;
        p.volume = rest;
        p.open_price = price;
        p.current_price = Some(price);
        p.sl = None;
        p.tp = None;
        p.profit = Decimal::ZERO;
        p.open_time = s.now;
        a.history.record(deal, s.window);
    }
    Some(identifier)
}
