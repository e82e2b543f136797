//! What a broker can say beyond open positions: the account's margin mode, its pending
//! orders and the deals of its history. The adapters fill these from their wire formats;
//! the reconciliation reads them (netting, pending orders, close reasons).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::values::{Price, Side, Volume};

/// How the account books positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MarginMode {
    /// Several positions per symbol, each with its own ticket (MT5 retail hedging).
    #[default]
    Hedging,
    /// One position per symbol; orders add to it or reduce it (MT5 retail netting).
    Netting,
    /// One position per symbol, exchange rules (MT5 exchange mode): compared as netting.
    Exchange,
}

impl MarginMode {
    /// Whether the account holds at most one position per symbol.
    pub fn is_netting(self) -> bool {
        matches!(self, Self::Netting | Self::Exchange)
    }

    /// The snake_case name used in files and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hedging => "hedging",
            Self::Netting => "netting",
            Self::Exchange => "exchange",
        }
    }
}

/// An order waiting at the broker (limit, stop, …), not yet a position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOrder {
    /// The order's ticket (a position it fills keeps it as its identifier).
    pub ticket: u64,
    /// Symbol as the broker spells it.
    pub symbol: String,
    /// The side of the position it would open.
    pub side: Side,
    /// Volume still to fill, in lots.
    pub volume: Volume,
    /// The price it waits for, when it has one.
    pub price: Option<Price>,
    /// Expert-advisor magic number.
    pub magic: i64,
    /// Free-text comment.
    pub comment: String,
    /// Client id set by the opener (MetaApi `clientId`), if any.
    pub client_id: Option<String>,
    /// When the broker placed it (broker time: never compared with the service's clock).
    pub placed_at: DateTime<Utc>,
}

/// Why a deal happened (MT5 `DEAL_REASON_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealReason {
    /// By hand in the desktop terminal.
    Client,
    /// By hand in the mobile app.
    Mobile,
    /// By hand in the web terminal.
    Web,
    /// By an expert advisor or script.
    Expert,
    /// The stop loss was hit.
    StopLoss,
    /// The take profit was hit.
    TakeProfit,
    /// The broker closed it for lack of margin.
    StopOut,
    /// Rollover, variation margin, split, or a reason this service does not know.
    Other,
}

impl DealReason {
    /// The snake_case name used in files and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Mobile => "mobile",
            Self::Web => "web",
            Self::Expert => "expert",
            Self::StopLoss => "stop_loss",
            Self::TakeProfit => "take_profit",
            Self::StopOut => "stop_out",
            Self::Other => "other",
        }
    }

    /// Whether a person closed it by hand (desktop, mobile or web).
    pub fn is_manual(self) -> bool {
        matches!(self, Self::Client | Self::Mobile | Self::Web)
    }
}

/// Which way a deal moved its position (MT5 `DEAL_ENTRY_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealEntry {
    /// Opened or added to the position.
    In,
    /// Closed or reduced the position.
    Out,
    /// Reversed the position (netting).
    InOut,
    /// Closed by an opposite position.
    OutBy,
}

impl DealEntry {
    /// Whether the deal closed (part of) its position.
    pub fn closes(self) -> bool {
        matches!(self, Self::Out | Self::InOut | Self::OutBy)
    }
}

/// One executed deal of the account's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deal {
    /// The deal's ticket.
    pub ticket: u64,
    /// The identifier of the position it belongs to.
    pub position_id: u64,
    /// Symbol as the broker spells it.
    pub symbol: String,
    /// Buy or sell (a closing deal's side is opposite to its position's).
    pub side: Side,
    /// In, out, in-out or out-by.
    pub entry: DealEntry,
    /// Why it happened.
    pub reason: DealReason,
    /// Volume in lots.
    pub volume: Volume,
    /// Execution price.
    pub price: Price,
    /// Realised profit in the account currency (zero for an opening deal).
    pub profit: Decimal,
    /// When it executed (broker time).
    pub time: DateTime<Utc>,
}

/// The deals a broker knows of one position, as far as it can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DealLookup {
    /// The broker's history for the position, possibly empty (a history that lags).
    Found(Vec<Deal>),
    /// The broker cannot look deals up (an adapter without history).
    Unsupported,
}
