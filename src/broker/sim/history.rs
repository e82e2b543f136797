//! The simulated broker's deal history: every position it opens leaves an opening deal,
//! every position it closes or shrinks a closing deal with its reason, kept for a window
//! of time (`deal_history_secs`) and at most [`MAX_DEALS_PER_ACCOUNT`] per account.
//!
//! Deal tickets count up from [`FIRST_DEAL_TICKET`] per account; prices come from the
//! position (its stop loss for a stop-loss close, its take profit for a take-profit close,
//! else its current price, else its open price), times from the simulator's clock. Nothing
//! here draws a random number: the same script gives the same history.

use std::collections::VecDeque;

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;

use super::market;
use crate::domain::{BrokerPosition, Deal, DealEntry, DealReason, Price, Side, Volume};

/// The first deal ticket of every account.
pub const FIRST_DEAL_TICKET: u64 = 200_000_000_000_000;

/// Most deals one account keeps, whatever their age (the oldest go first).
pub const MAX_DEALS_PER_ACCOUNT: usize = 10_000;

/// How the simulated broker offers an account's deal history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DealReport {
    /// [`crate::broker::Broker::position_deals`] answers from the history; snapshots carry
    /// no deals (like MetaApi).
    #[default]
    Lookup,
    /// Snapshots carry every deal of the window, and `position_deals` answers from the
    /// history too (like the MT5 bridge).
    Snapshot,
    /// A history that lags (just after a reconnect): `position_deals` finds nothing and
    /// snapshots carry no deals, although the deals exist.
    Lagging,
    /// A broker without history: `position_deals` answers `Unsupported`, snapshots carry
    /// no deals.
    Unsupported,
}

/// One account's deals, oldest first.
#[derive(Debug, Clone, Default)]
pub(super) struct History {
    deals: VecDeque<Deal>,
    next_ticket: u64,
}

impl History {
    /// Records `deal` under the next deal ticket, dropping what falls out of `window`
    /// before `deal.time` and what exceeds [`MAX_DEALS_PER_ACCOUNT`].
    pub(super) fn record(&mut self, mut deal: Deal, window: TimeDelta) {
        self.next_ticket = self.next_ticket.max(FIRST_DEAL_TICKET);
        deal.ticket = self.next_ticket;
        self.next_ticket += 1;
        let time = deal.time;
        self.deals.push_back(deal);
        self.prune(time, window);
    }

    /// Drops the deals older than `window` before `now`, and the oldest beyond the cap.
    pub(super) fn prune(&mut self, now: DateTime<Utc>, window: TimeDelta) {
        let oldest = now
            .checked_sub_signed(window)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        while self
            .deals
            .front()
            .is_some_and(|d| d.time < oldest || self.deals.len() > MAX_DEALS_PER_ACCOUNT)
        {
            self.deals.pop_front();
        }
    }

    /// Every deal kept, oldest first.
    pub(super) fn all(&self) -> Vec<Deal> {
        self.deals.iter().cloned().collect()
    }

    /// The deals of the position `identifier`, oldest first.
    pub(super) fn of(&self, identifier: u64) -> Vec<Deal> {
        self.deals
            .iter()
            .filter(|d| d.position_id == identifier)
            .cloned()
            .collect()
    }
}

/// The deal that opened (or added `volume` to) `position` at `price` (ticket 0: the
/// history gives it one).
pub(super) fn opening(
    position: &BrokerPosition,
    volume: Volume,
    price: Price,
    reason: DealReason,
    time: DateTime<Utc>,
) -> Deal {
    Deal {
        ticket: 0,
        position_id: position.identifier,
        symbol: position.symbol.clone(),
        side: position.side,
        entry: DealEntry::In,
        reason,
        volume,
        price,
        profit: Decimal::ZERO,
        time,
    }
}

/// The deal that closed `volume` of `position` at `price` for `reason` (ticket 0: the
/// history gives it one), with the profit realised.
pub(super) fn closing(
    position: &BrokerPosition,
    volume: Volume,
    price: Price,
    reason: DealReason,
    time: DateTime<Utc>,
) -> Deal {
    let profit = market::profit(
        &position.symbol,
        position.side,
        volume.get(),
        position.open_price.get(),
        price.get(),
    );
    Deal {
        ticket: 0,
        position_id: position.identifier,
        symbol: position.symbol.clone(),
        side: opposite(position.side),
        entry: DealEntry::Out,
        reason,
        volume,
        price,
        profit,
        time,
    }
}

/// Where a close for `reason` fills: the stop loss or take profit it hit, else the
/// position's current price, else its open price.
pub(super) fn close_price(position: &BrokerPosition, reason: DealReason) -> Price {
    let level = match reason {
        DealReason::StopLoss => position.sl,
        DealReason::TakeProfit => position.tp,
        _ => None,
    };
    level
        .or(position.current_price)
        .unwrap_or(position.open_price)
}

/// The other side.
pub(super) fn opposite(side: Side) -> Side {
    match side {
        Side::Buy => Side::Sell,
        Side::Sell => Side::Buy,
    }
}
