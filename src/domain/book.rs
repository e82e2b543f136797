//! The broker's side of a reconciliation beyond a list of positions ([`Book`]: pending
//! orders and the margin mode), and what a reconciliation reports besides pairs and
//! divergences: trades waiting on an order ([`PendingFill`]), positions and orders outside
//! the bot's scope ([`External`]), and the symbols compared as netting ([`Netted`]).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::divergence::MatchMethod;
use super::facts::{MarginMode, PendingOrder};
use super::model::{AccountSnapshot, BrokerPosition};
use super::values::Side;

/// What the broker holds on one account, as the reconciliation reads it.
#[derive(Debug, Clone, Copy)]
pub struct Book<'a> {
    /// Open positions.
    pub positions: &'a [BrokerPosition],
    /// Pending orders; `None` when the broker does not report them (a trade waiting for
    /// an order is then missing, as it always was).
    pub orders: Option<&'a [PendingOrder]>,
    /// How the account books positions; `None` (unknown) is compared as hedging.
    pub margin_mode: Option<MarginMode>,
}

impl<'a> Book<'a> {
    /// Positions alone: a hedging account whose orders are unknown.
    pub fn positions(positions: &'a [BrokerPosition]) -> Self {
        Self {
            positions,
            orders: None,
            margin_mode: None,
        }
    }

    /// Whether the account holds at most one position per symbol.
    pub fn is_netting(&self) -> bool {
        self.margin_mode.is_some_and(MarginMode::is_netting)
    }
}

impl<'a> From<&'a AccountSnapshot> for Book<'a> {
    fn from(s: &'a AccountSnapshot) -> Self {
        Self {
            positions: &s.positions,
            orders: s.orders.as_deref(),
            margin_mode: s.margin_mode,
        }
    }
}

/// A bot trade whose order is still pending at the broker: not missing, not yet a
/// position.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PendingFill {
    /// Bot trade id.
    pub trade_id: String,
    /// The pending order's ticket.
    pub order: u64,
    /// Canonical symbol.
    pub symbol: String,
    /// The trade's volume.
    #[serde(with = "super::decimal_serde")]
    pub volume: Decimal,
    /// The volume the order still has to fill.
    #[serde(with = "super::decimal_serde")]
    pub order_volume: Decimal,
    /// How they were paired (ticket, client id, or the heuristic: same symbol, side and
    /// volume, closest price).
    pub method: MatchMethod,
}

/// What an external item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Holding {
    /// An open position.
    Position,
    /// A pending order.
    Order,
}

impl Holding {
    /// The snake_case name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Position => "position",
            Self::Order => "order",
        }
    }
}

/// A position or pending order outside the bot's scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct External {
    /// Position or order.
    pub holding: Holding,
    /// Its ticket.
    pub ticket: u64,
    /// Canonical symbol.
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Volume in lots.
    #[serde(with = "super::decimal_serde")]
    pub volume: Decimal,
    /// Its magic number.
    pub magic: i64,
    /// Its comment.
    pub comment: String,
}

/// A symbol of a netting account whose one position was compared with the net of the
/// bot's trades.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Netted {
    /// Canonical symbol.
    pub symbol: String,
    /// The account's position of the symbol, if it has one.
    pub ticket: Option<u64>,
    /// The trades netted, sorted by id.
    pub trade_ids: Vec<String>,
    /// The latest trade (by `opened_at`, then id): its id names the symbol's divergences
    /// and its SL/TP is the bot's intent.
    pub latest: String,
}
