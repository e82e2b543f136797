//! What the broker reports and what the bot believes: positions, trades, snapshots.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::facts::{Deal, MarginMode, PendingOrder};
use super::values::{Price, Side, Volume};

/// A position as the broker reports it, already converted from any wire format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerPosition {
    /// The broker's ticket; may change when the broker reopens a position.
    pub ticket: u64,
    /// The stable position identifier (equals the ticket when the broker gives none).
    pub identifier: u64,
    /// Symbol as the broker spells it.
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Volume in lots.
    pub volume: Volume,
    /// Price the position was opened at.
    pub open_price: Price,
    /// Stop loss, `None` when not set.
    pub sl: Option<Price>,
    /// Take profit, `None` when not set.
    pub tp: Option<Price>,
    /// Latest price, when the broker reports one.
    pub current_price: Option<Price>,
    /// Floating profit in the account currency.
    pub profit: Decimal,
    /// Accumulated swap.
    pub swap: Decimal,
    /// Expert-advisor magic number.
    pub magic: i64,
    /// Free-text comment.
    pub comment: String,
    /// Client id set by the opener (MetaApi `clientId`), if any.
    pub client_id: Option<String>,
    /// When the position was opened.
    pub open_time: DateTime<Utc>,
}

#[cfg(test)]
impl BrokerPosition {
    /// A plain position for unit tests: no stops, no profit, opened at the epoch.
    pub(crate) fn for_test(
        ticket: u64,
        symbol: &str,
        side: Side,
        volume: Decimal,
        open: Decimal,
    ) -> Self {
        Self {
            ticket,
            identifier: ticket,
            symbol: symbol.into(),
            side,
            volume: Volume::new(volume),
            open_price: Price::new(open),
            sl: None,
            tp: None,
            current_price: None,
            profit: Decimal::ZERO,
            swap: Decimal::ZERO,
            magic: 0,
            comment: String::new(),
            client_id: None,
            open_time: DateTime::UNIX_EPOCH,
        }
    }
}

/// A trade the bot believes it has open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotTrade {
    /// The bot's own trade id (unique within an account).
    pub id: String,
    /// Account the trade belongs to.
    pub account: String,
    /// Symbol as the bot spells it.
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Volume in lots.
    pub volume: Volume,
    /// Price the bot expected to be filled at.
    pub entry_price: Price,
    /// Intended stop loss.
    pub sl: Option<Price>,
    /// Intended take profit.
    pub tp: Option<Price>,
    /// Broker ticket, once the bot knows it.
    pub ticket: Option<u64>,
    /// Client id the bot sent with the order.
    pub client_id: Option<String>,
    /// When the bot opened the trade.
    pub opened_at: Option<DateTime<Utc>>,
}

impl BotTrade {
    /// The key a broker position's client id or comment must equal for a client-id match.
    pub fn client_key(&self) -> &str {
        self.client_id.as_deref().unwrap_or(&self.id)
    }
}

/// A price quote for a symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// Symbol as the broker spells it.
    pub symbol: String,
    /// Best bid.
    pub bid: Decimal,
    /// Best ask.
    pub ask: Decimal,
    /// When the broker last updated it.
    pub time: DateTime<Utc>,
}

/// One read of an account at the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSnapshot {
    /// Balance in the account currency.
    pub balance: Decimal,
    /// Equity, including floating profit, swap and commission.
    pub equity: Decimal,
    /// Margin in use.
    pub margin: Decimal,
    /// Free margin.
    pub free_margin: Decimal,
    /// Open positions.
    pub positions: Vec<BrokerPosition>,
    /// Quotes of the symbols the broker reported prices for (may be empty, or lack a
    /// symbol: the guards then measure gaps on the positions' current prices, and the
    /// spread and quote-age checks hold).
    #[serde(default)]
    pub quotes: Vec<Quote>,
    /// When the snapshot was taken.
    pub taken_at: DateTime<Utc>,
    /// How the account books positions; `None` when the broker did not say (compared as
    /// hedging).
    #[serde(default)]
    pub margin_mode: Option<MarginMode>,
    /// Pending orders; `None` when the broker does not report them (a trade waiting for
    /// an order then cannot be told from a missing one).
    #[serde(default)]
    pub orders: Option<Vec<PendingOrder>>,
    /// Recent deals the broker offered with the snapshot (the MT5 bridge's window of
    /// history); empty when it offers none. A broker with per-position history answers
    /// [`crate::broker::Broker::position_deals`] instead.
    #[serde(default)]
    pub deals: Vec<Deal>,
}
