//! What an MT5 export says beyond positions: the account's margin mode (`account.json`),
//! its pending orders (`orders.json`) and its deals of a recent window (`deals.json`).
//!
//! ```text
//! account.json   {…, "margin_mode": 0 | 1 | 2, …}    0 retail netting, 1 exchange, 2 retail hedging
//! orders.json    {"export_round": "<id>", "orders": [<orders_get() records>]}
//! deals.json     {"export_round": "<id>", "date_from": <unix>, "date_to": <unix>,
//!                 "deals": [<history_deals_get(date_from, date_to) records>]}
//! ```
//!
//! Both files carry the round of the positions they were exported with; a file of another
//! round is refused as retryable, like an account file. A bridge older than these files
//! does not write them: the snapshot then has no orders (`None`: unknown, not "none") and
//! no deals, and [`crate::broker::Broker::position_deals`] answers `Unsupported`. The
//! records are read by [`crate::input::parse_orders`] and [`crate::input::parse_deals`],
//! with the same validation and text bounds as positions; deal times are the trade server's
//! clock (`time_msc`, else `time`), read as UTC like tick times.

use super::round;
use crate::broker::BrokerError;
use crate::broker::wire::{self, Object};
use crate::domain::{Deal, MarginMode, PendingOrder};

/// The pending-orders file of an account's export directory.
pub const ORDERS_FILE: &str = "orders.json";
/// The deals file of an account's export directory.
pub const DEALS_FILE: &str = "deals.json";

/// `account_info().margin_mode` of `info`: 0 retail netting, 1 exchange, 2 retail
/// hedging; `None` when the record has none. Any other value is malformed.
pub fn margin_mode(info: &Object<'_>) -> Result<Option<MarginMode>, BrokerError> {
    match info.opt_u32("margin_mode", u32::MAX)? {
        None => Ok(None),
        Some(0) => Ok(Some(MarginMode::Netting)),
        Some(1) => Ok(Some(MarginMode::Exchange)),
        Some(2) => Ok(Some(MarginMode::Hedging)),
        Some(_) => Err(info.error(
            "margin_mode",
            "expected 0 (retail netting), 1 (exchange) or 2 (retail hedging)",
        )),
    }
}

/// The pending orders of `orders.json` (`text`), exported with positions of round
/// `positions_round`.
pub fn orders(
    account: &str,
    positions_round: Option<&str>,
    text: &str,
) -> Result<Vec<PendingOrder>, BrokerError> {
    let split = round::split_list(&format!("{account}/{ORDERS_FILE}"), text, "orders")?;
    round::check_file(
        account,
        positions_round,
        ORDERS_FILE,
        split.round.as_deref(),
    )?;
    crate::input::parse_orders(&split.source, split.text).map_err(wire::from_input)
}

/// The deals of `deals.json` (`text`), exported with positions of round
/// `positions_round`; deals that are not buys or sells are left out.
pub fn deals(
    account: &str,
    positions_round: Option<&str>,
    text: &str,
) -> Result<Vec<Deal>, BrokerError> {
    let split = round::split_list(&format!("{account}/{DEALS_FILE}"), text, "deals")?;
    round::check_file(account, positions_round, DEALS_FILE, split.round.as_deref())?;
    crate::input::parse_deals(&split.source, split.text).map_err(wire::from_input)
}
