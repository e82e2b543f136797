//! Pending-order files: MetaApi REST orders or MetaTrader5 `orders_get()` records.
//!
//! The format is detected per file from the first element's `type`: MetaApi spells it as
//! text (`ORDER_TYPE_BUY_LIMIT`), the MT5 package as a number (2). Every element must be
//! of that format.
//!
//! | MetaApi `type` | MT5 `type` | read as |
//! |---|---|---|
//! | `ORDER_TYPE_BUY`, `…_BUY_LIMIT`, `…_BUY_STOP`, `…_BUY_STOP_LIMIT` | 0, 2, 4, 6 | buy |
//! | `ORDER_TYPE_SELL`, `…_SELL_LIMIT`, `…_SELL_STOP`, `…_SELL_STOP_LIMIT` | 1, 3, 5, 7 | sell |
//! | `ORDER_TYPE_CLOSE_BY` | 8 | left out: it opens nothing |
//!
//! The volume is what is left to fill (`currentVolume`, else `volume`; MT5
//! `volume_current`, else `volume_initial`); an order with nothing left to fill is left
//! out (it is becoming a position). Symbols, comments and client ids are bounded
//! ([`super::text`]).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::record::{InputError, Record, ticketed};
use super::text::{MAX_COMMENT_BYTES, MAX_ID_BYTES, MAX_SYMBOL_BYTES};
use crate::domain::{PendingOrder, Side, Volume};

/// MetaApi's order types that open a position, with its side.
const METAAPI_TYPES: &[(&str, Side)] = &[
    ("ORDER_TYPE_BUY", Side::Buy),
    ("ORDER_TYPE_SELL", Side::Sell),
    ("ORDER_TYPE_BUY_LIMIT", Side::Buy),
    ("ORDER_TYPE_SELL_LIMIT", Side::Sell),
    ("ORDER_TYPE_BUY_STOP", Side::Buy),
    ("ORDER_TYPE_SELL_STOP", Side::Sell),
    ("ORDER_TYPE_BUY_STOP_LIMIT", Side::Buy),
    ("ORDER_TYPE_SELL_STOP_LIMIT", Side::Sell),
];

/// The order type that only closes positions by opposite ones.
const METAAPI_CLOSE_BY: &str = "ORDER_TYPE_CLOSE_BY";

/// MT5's `ORDER_TYPE_CLOSE_BY`.
const MT5_CLOSE_BY: i64 = 8;

/// Parses a pending-orders JSON array from `text`; `source` names it in errors.
pub fn parse_orders(source: &str, text: &str) -> Result<Vec<PendingOrder>, InputError> {
    ticketed(source, text, "order", metaapi, mt5, |x| x.ticket)
}

fn metaapi(r: &Record<'_>) -> Result<Option<PendingOrder>, InputError> {
    let kind = r.string("type")?;
    if kind == METAAPI_CLOSE_BY {
        return Ok(None);
    }
    let Some(&(_, side)) = METAAPI_TYPES.iter().find(|(k, _)| *k == kind) else {
        let known: Vec<&str> = METAAPI_TYPES.iter().map(|(k, _)| *k).collect();
        let reason = format!("expected one of {}, {METAAPI_CLOSE_BY}", known.join(", "));
        return Err(r.error("type", reason));
    };
    let Some(volume) = left_to_fill(r, "currentVolume", "volume")? else {
        return Ok(None);
    };
    let placed_at = r
        .opt_time("time")?
        .ok_or_else(|| r.error("time", "missing required field"))?;
    let mut order = order(r, ("id", "openPrice"), side, volume, placed_at)?;
    order.client_id = r
        .opt_text("clientId", MAX_ID_BYTES)?
        .filter(|s| !s.is_empty());
    Ok(Some(order))
}

fn mt5(r: &Record<'_>) -> Result<Option<PendingOrder>, InputError> {
    let kind = r.int_or("type", -1)?;
    if kind == MT5_CLOSE_BY {
        return Ok(None);
    }
    let side = match kind {
        0 | 2 | 4 | 6 => Side::Buy,
        1 | 3 | 5 | 7 => Side::Sell,
        _ => {
            return Err(r.error(
                "type",
                "expected 0 to 7 (buy, sell, buy/sell limit, stop, stop limit) or 8 (close by)",
            ));
        }
    };
    let Some(volume) = left_to_fill(r, "volume_current", "volume_initial")? else {
        return Ok(None);
    };
    let placed_at = r.unix_time_ms_or_s("time_setup_msc", "time_setup")?;
    order(r, ("ticket", "price_open"), side, volume, placed_at).map(Some)
}

/// The fields both formats share, under their names in `(ticket, price)`.
fn order(
    r: &Record<'_>,
    (ticket, price): (&str, &str),
    side: Side,
    volume: Volume,
    placed_at: DateTime<Utc>,
) -> Result<PendingOrder, InputError> {
    Ok(PendingOrder {
        ticket: r.ticket(ticket)?,
        symbol: r.text("symbol", MAX_SYMBOL_BYTES)?,
        side,
        volume,
        price: r.optional_price(price)?,
        magic: r.int_or("magic", 0)?,
        comment: r
            .opt_text("comment", MAX_COMMENT_BYTES)?
            .unwrap_or_default(),
        client_id: None,
        placed_at,
    })
}

/// The volume left to fill: `current` when given, else `initial` (one is required);
/// `None` when it is zero, an error when negative or out of bounds.
fn left_to_fill(
    r: &Record<'_>,
    current: &str,
    initial: &str,
) -> Result<Option<Volume>, InputError> {
    let (field, value) = match r.opt_decimal(current)? {
        Some(v) => (current, v),
        None => match r.opt_decimal(initial)? {
            Some(v) => (initial, v),
            None => {
                let reason = format!("missing required field (and no {initial})");
                return Err(r.error(current, reason));
            }
        },
    };
    if value == Decimal::ZERO {
        return Ok(None);
    }
    Volume::new_checked(value)
        .map(Some)
        .map_err(|e| r.error(field, e.to_string()))
}
