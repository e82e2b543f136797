//! What an account's world is made of: prices, the bot's trades, the broker's positions
//! and orders, and the events that change them, in points and hundredths of a lot.

use super::truth::PlantedFault;
use crate::domain::Side;

/// One symbol's price, in points.
#[derive(Debug, Clone)]
pub(super) struct Walk {
    pub(super) name: &'static str,
    pub(super) digits: u32,
    pub(super) points: i64,
    /// The walk never goes below this (half the reference price).
    pub(super) floor: i64,
}

/// A trade the bot believes open, in points and hundredths of a lot.
#[derive(Debug, Clone)]
pub(super) struct Trade {
    pub(super) id: String,
    pub(super) sym: usize,
    pub(super) side: Side,
    pub(super) lots: i64,
    pub(super) entry: i64,
    pub(super) sl: Option<i64>,
    pub(super) tp: Option<i64>,
    /// The order's ticket: its position's identifier once filled.
    pub(super) ticket: u64,
    pub(super) opened: i64,
    /// Whether the bot knows its position is open (a market fill or a filled order).
    pub(super) filled: bool,
    /// Carries a planted fault: the bot leaves it alone.
    pub(super) frozen: bool,
    /// Until when a change the bot sent is on its way to the broker.
    pub(super) busy_until: i64,
}

/// A position at the broker.
#[derive(Debug, Clone)]
pub(super) struct Pos {
    pub(super) ticket: u64,
    pub(super) identifier: u64,
    pub(super) sym: usize,
    pub(super) side: Side,
    pub(super) lots: i64,
    pub(super) open: i64,
    pub(super) sl: Option<i64>,
    pub(super) tp: Option<i64>,
    pub(super) magic: i64,
    pub(super) comment: String,
    /// The bot's trade id for the bot's positions.
    pub(super) client_id: Option<String>,
    pub(super) opened: i64,
    /// Carries a planted fault: no stop is hit, no ticket changes.
    pub(super) frozen: bool,
}

/// A pending limit order at the broker.
#[derive(Debug, Clone)]
pub(super) struct Order {
    pub(super) ticket: u64,
    pub(super) trade_id: String,
    pub(super) sym: usize,
    pub(super) side: Side,
    pub(super) lots: i64,
    pub(super) price: i64,
    pub(super) sl: Option<i64>,
    pub(super) tp: Option<i64>,
    pub(super) placed: i64,
}

/// What the bot sent, as the broker will apply it.
#[derive(Debug, Clone)]
pub(super) enum Sent {
    /// A market fill (hedging), possibly faulty.
    Fill {
        trade_id: String,
        fault: Option<PlantedFault>,
        position: Pos,
    },
    /// Adds to the symbol's position (netting).
    NetFill { trade_id: String, position: Pos },
    /// Closes part of the symbol's position (netting).
    NetClose { sym: usize, lots: i64 },
    /// New stops of a position.
    Modify {
        identifier: u64,
        sl: Option<i64>,
        tp: Option<i64>,
    },
    /// Closes a position.
    Close { identifier: u64 },
    /// Places a limit order.
    Place(Order),
    /// Cancels a limit order; the bot's trade comes back if it filled meanwhile.
    Cancel { ticket: u64, trade: Trade },
}

/// Something due at a time.
#[derive(Debug, Clone)]
pub(super) enum Event {
    BotAct,
    OtherAct,
    PlantFault,
    TicketChange,
    StopOut,
    /// The broker applies what the bot sent.
    Apply(Sent),
    /// The bot learns its position was closed at the broker and marks the trade closed.
    LearnClosed(String),
    /// The bot learns the order it cancelled had filled: the trade is open after all.
    LearnFilled(Trade),
    /// The bot cancels its limit order if it has not filled.
    OrderExpires(u64),
}
