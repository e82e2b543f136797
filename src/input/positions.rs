//! Broker position files: MetaApi REST positions or MetaTrader5 `positions_get()` records.
//!
//! The format is detected per file from the first element: MetaApi objects carry
//! `openPrice`, MT5 records carry `price_open`. Every element must be of that format.
//!
//! Symbols, comments and client ids are bounded ([`super::text`]).

use std::collections::HashSet;

use rust_decimal::Decimal;

use super::record::{InputError, Record, array};
use super::text::{MAX_COMMENT_BYTES, MAX_ID_BYTES, MAX_SYMBOL_BYTES};
use crate::domain::{BrokerPosition, Side};

/// The two formats the readers accept: MetaApi's REST payloads and the MetaTrader5
/// Python package's records (positions here; pending orders and deals as well).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionFormat {
    /// MetaApi `GET /users/current/accounts/:accountId/positions`.
    MetaApi,
    /// MetaTrader5 Python `positions_get()` records (`p._asdict()`).
    Mt5,
}

/// Parses a positions JSON array from `text`; `source` names it in errors.
pub fn parse_positions(source: &str, text: &str) -> Result<Vec<BrokerPosition>, InputError> {
    let items = array(source, text)?;
    let mut format = None;
    let mut seen = HashSet::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    for (index, raw) in items.into_iter().enumerate() {
        let record = Record::parse(source, index, raw)?;
        let this = detect(&record).ok_or_else(|| InputError {
            file: source.to_owned(),
            index: Some(index),
            field: None,
            value: None,
            reason: "neither a MetaApi position (openPrice) nor an MT5 record (price_open)".into(),
        })?;
        let first = *format.get_or_insert(this);
        if this != first {
            return Err(InputError {
                file: source.to_owned(),
                index: Some(index),
                field: None,
                value: None,
                reason: format!("mixes formats: element 0 is {first:?}, this one is {this:?}"),
            });
        }
        let position = match this {
            PositionFormat::MetaApi => metaapi(&record)?,
            PositionFormat::Mt5 => mt5(&record)?,
        };
        let key_field = if this == PositionFormat::MetaApi {
            "id"
        } else {
            "ticket"
        };
        if !seen.insert(position.ticket) {
            return Err(record.error(key_field, "duplicate position ticket"));
        }
        out.push(position);
    }
    Ok(out)
}

fn detect(record: &Record<'_>) -> Option<PositionFormat> {
    if record.has("openPrice") {
        Some(PositionFormat::MetaApi)
    } else if record.has("price_open") {
        Some(PositionFormat::Mt5)
    } else {
        None
    }
}

fn metaapi(r: &Record<'_>) -> Result<BrokerPosition, InputError> {
    let side = match r.string("type")?.as_str() {
        "POSITION_TYPE_BUY" => Side::Buy,
        "POSITION_TYPE_SELL" => Side::Sell,
        _ => return Err(r.error("type", "expected POSITION_TYPE_BUY or POSITION_TYPE_SELL")),
    };
    let ticket = r.ticket("id")?;
    Ok(BrokerPosition {
        ticket,
        identifier: ticket,
        symbol: r.text("symbol", MAX_SYMBOL_BYTES)?,
        side,
        volume: r.volume("volume")?,
        open_price: r.price("openPrice")?,
        sl: r.optional_price("stopLoss")?,
        tp: r.optional_price("takeProfit")?,
        current_price: r.optional_price("currentPrice")?,
        profit: r.opt_decimal("profit")?.unwrap_or(Decimal::ZERO),
        swap: r.opt_decimal("swap")?.unwrap_or(Decimal::ZERO),
        magic: r.int_or("magic", 0)?,
        comment: r
            .opt_text("comment", MAX_COMMENT_BYTES)?
            .unwrap_or_default(),
        client_id: r
            .opt_text("clientId", MAX_ID_BYTES)?
            .filter(|s| !s.is_empty()),
        open_time: r
            .opt_time("time")?
            .ok_or_else(|| r.error("time", "missing required field"))?,
    })
}

fn mt5(r: &Record<'_>) -> Result<BrokerPosition, InputError> {
    let side = match r.int_or("type", -1)? {
        0 => Side::Buy,
        1 => Side::Sell,
        _ if !r.has("type") => return Err(r.error("type", "missing required field")),
        _ => return Err(r.error("type", "expected 0 (buy) or 1 (sell)")),
    };
    let ticket = r.ticket("ticket")?;
    Ok(BrokerPosition {
        ticket,
        identifier: r
            .opt_ticket("identifier")?
            .filter(|&i| i != 0)
            .unwrap_or(ticket),
        symbol: r.text("symbol", MAX_SYMBOL_BYTES)?,
        side,
        volume: r.volume("volume")?,
        open_price: r.price("price_open")?,
        sl: r.optional_price("sl")?,
        tp: r.optional_price("tp")?,
        current_price: r.optional_price("price_current")?,
        profit: r.opt_decimal("profit")?.unwrap_or(Decimal::ZERO),
        swap: r.opt_decimal("swap")?.unwrap_or(Decimal::ZERO),
        magic: r.int_or("magic", 0)?,
        comment: r
            .opt_text("comment", MAX_COMMENT_BYTES)?
            .unwrap_or_default(),
        client_id: None,
        open_time: r.unix_time("time")?,
    })
}
