//! Deal files: MetaApi REST deals (`history-deals/…`) or MetaTrader5 `history_deals_get()`
//! records.
//!
//! The format is detected per file from the first element's `type`: MetaApi spells it as
//! text (`DEAL_TYPE_BUY`), the MT5 package as a number (0). Every element must be of that
//! format. Only buys and sells belong to a position; every other deal type (balance,
//! credit, commission, …) is left out.
//!
//! | field | MetaApi | MT5 |
//! |---|---|---|
//! | ticket | `id` | `ticket` |
//! | position | `positionId` | `position_id` (0 is refused) |
//! | side | `DEAL_TYPE_BUY` / `DEAL_TYPE_SELL` | 0 / 1 |
//! | entry | `entryType`: `DEAL_ENTRY_IN`, `…_OUT`, `…_INOUT`, `…_OUT_BY` | `entry`: 0, 1, 2, 3 |
//! | reason | `reason`: `DEAL_REASON_CLIENT`, `…_MOBILE`, `…_WEB`, `…_EXPERT`, `…_SL`, `…_TP`, `…_SO` | 0 to 6 |
//! | time | `time` (ISO 8601) | `time_msc`, else `time` (unix) |
//!
//! Any other reason (rollover, variation margin, split, one this service does not know,
//! or none) is read as `other`. `volume` and `price` are required and positive, `profit`
//! defaults to 0. Symbols are bounded ([`super::text`]).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::record::{InputError, Record, ticketed};
use super::text::MAX_SYMBOL_BYTES;
use crate::domain::{Deal, DealEntry, DealReason, Side};

/// MetaApi's deal reasons this service tells apart.
const METAAPI_REASONS: &[(&str, DealReason)] = &[
    ("DEAL_REASON_CLIENT", DealReason::Client),
    ("DEAL_REASON_MOBILE", DealReason::Mobile),
    ("DEAL_REASON_WEB", DealReason::Web),
    ("DEAL_REASON_EXPERT", DealReason::Expert),
    ("DEAL_REASON_SL", DealReason::StopLoss),
    ("DEAL_REASON_TP", DealReason::TakeProfit),
    ("DEAL_REASON_SO", DealReason::StopOut),
];

/// MetaApi's deal entries.
const METAAPI_ENTRIES: &[(&str, DealEntry)] = &[
    ("DEAL_ENTRY_IN", DealEntry::In),
    ("DEAL_ENTRY_OUT", DealEntry::Out),
    ("DEAL_ENTRY_INOUT", DealEntry::InOut),
    ("DEAL_ENTRY_OUT_BY", DealEntry::OutBy),
];

/// Parses a deals JSON array from `text`; `source` names it in errors.
pub fn parse_deals(source: &str, text: &str) -> Result<Vec<Deal>, InputError> {
    ticketed(source, text, "deal", metaapi, mt5, |x| x.ticket)
}

/// The MT5 deal reason of number `n`: 0 to 6 as named, anything else `Other`.
pub fn mt5_reason(n: i64) -> DealReason {
    match n {
        0 => DealReason::Client,
        1 => DealReason::Mobile,
        2 => DealReason::Web,
        3 => DealReason::Expert,
        4 => DealReason::StopLoss,
        5 => DealReason::TakeProfit,
        6 => DealReason::StopOut,
        _ => DealReason::Other,
    }
}

fn metaapi(r: &Record<'_>) -> Result<Option<Deal>, InputError> {
    let side = match r.string("type")?.as_str() {
        "DEAL_TYPE_BUY" => Side::Buy,
        "DEAL_TYPE_SELL" => Side::Sell,
        other if other.starts_with("DEAL_TYPE_") => return Ok(None),
        _ => return Err(r.error("type", "expected a DEAL_TYPE_… value")),
    };
    let entry = r.string("entryType")?;
    let Some(&(_, entry)) = METAAPI_ENTRIES.iter().find(|(k, _)| *k == entry) else {
        let known: Vec<&str> = METAAPI_ENTRIES.iter().map(|(k, _)| *k).collect();
        return Err(r.error("entryType", format!("expected one of {}", known.join(", "))));
    };
    let reason = r.opt_string("reason")?.map_or(DealReason::Other, |s| {
        METAAPI_REASONS
            .iter()
            .find(|(k, _)| *k == s)
            .map_or(DealReason::Other, |(_, reason)| *reason)
    });
    let time = r
        .opt_time("time")?
        .ok_or_else(|| r.error("time", "missing required field"))?;
    deal(r, ("id", "positionId"), (side, entry, reason), time).map(Some)
}

fn mt5(r: &Record<'_>) -> Result<Option<Deal>, InputError> {
    let side = match r.int_or("type", -1)? {
        0 => Side::Buy,
        1 => Side::Sell,
        n if n >= 2 => return Ok(None),
        _ => {
            return Err(r.error(
                "type",
                "expected a deal type from 0 (buy, 1 sell, 2 balance …)",
            ));
        }
    };
    let entry = match r.int_or("entry", -1)? {
        0 => DealEntry::In,
        1 => DealEntry::Out,
        2 => DealEntry::InOut,
        3 => DealEntry::OutBy,
        _ if !r.has("entry") => return Err(r.error("entry", "missing required field")),
        _ => {
            return Err(r.error(
                "entry",
                "expected 0 (in), 1 (out), 2 (in/out) or 3 (out by)",
            ));
        }
    };
    let reason = mt5_reason(r.int_or("reason", -1)?);
    let time = r.unix_time_ms_or_s("time_msc", "time")?;
    deal(r, ("ticket", "position_id"), (side, entry, reason), time).map(Some)
}

/// The fields both formats share, under their names in `(ticket, position)`.
fn deal(
    r: &Record<'_>,
    (ticket, position): (&str, &str),
    (side, entry, reason): (Side, DealEntry, DealReason),
    time: DateTime<Utc>,
) -> Result<Deal, InputError> {
    let ticket = r.ticket(ticket)?;
    let position_id = r.ticket(position)?;
    if position_id == 0 {
        return Err(r.error(
            position,
            "a buy or sell deal needs its position's id (not 0)",
        ));
    }
    Ok(Deal {
        ticket,
        position_id,
        symbol: r.text("symbol", MAX_SYMBOL_BYTES)?,
        side,
        entry,
        reason,
        volume: r.volume("volume")?,
        price: r.price("price")?,
        profit: r.opt_decimal("profit")?.unwrap_or(Decimal::ZERO),
        time,
    })
}
