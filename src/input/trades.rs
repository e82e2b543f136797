//! Bot trade files: `[{"id", "symbol", "side", "volume", "entry_price", …}]`.
//!
//! Ids, client ids, symbols and the account are bounded ([`super::text`]).

use std::collections::HashSet;

use super::record::{InputError, Record, array};
use super::text::{self, MAX_ID_BYTES, MAX_SYMBOL_BYTES, text_problem};
use crate::domain::BotTrade;

/// Fields a trade object may carry; anything else is refused (a typo such as
/// `stop_loss` would otherwise silently drop a stop loss).
const FIELDS: &[&str] = &[
    "id",
    "symbol",
    "side",
    "volume",
    "entry_price",
    "sl",
    "tp",
    "ticket",
    "client_id",
    "opened_at",
];

/// Parses a trades JSON array from `text` for `account`; `source` names it in errors.
pub fn parse_trades(source: &str, text: &str, account: &str) -> Result<Vec<BotTrade>, InputError> {
    Ok(parse(source, text, account, false)?
        .into_iter()
        .map(|(trade, _)| trade)
        .collect())
}

/// Like [`parse_trades`], each trade with an optional `"version"` (a whole number from 0
/// to 2^64 − 1, or a string holding one): the API's trade bodies.
pub fn parse_trade_writes(
    source: &str,
    text: &str,
    account: &str,
) -> Result<Vec<(BotTrade, Option<u64>)>, InputError> {
    parse(source, text, account, true)
}

/// A version: absent, or a whole number up to `u64::MAX` (number or string).
pub(super) fn version(r: &Record<'_>) -> Result<Option<u64>, InputError> {
    let Some(text) = r.opt_id("version")? else {
        return Ok(None);
    };
    text.trim().parse::<u64>().map(Some).map_err(|_| {
        r.error(
            "version",
            format!("expected a whole number from 0 to {}", u64::MAX),
        )
    })
}

fn parse(
    source: &str,
    text: &str,
    account: &str,
    versioned: bool,
) -> Result<Vec<(BotTrade, Option<u64>)>, InputError> {
    if let Some(reason) = text_problem(account, MAX_ID_BYTES) {
        return Err(InputError {
            file: source.to_owned(),
            index: None,
            field: Some("account".to_owned()),
            value: Some(text::shown(account, 60)),
            reason,
        });
    }
    let items = array(source, text)?;
    let mut ids = HashSet::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    for (index, raw) in items.into_iter().enumerate() {
        let r = Record::parse(source, index, raw)?;
        let known = |k: &&str| FIELDS.contains(k) || (versioned && *k == "version");
        if let Some(unknown) = r.keys().find(|k| !known(k)) {
            return Err(r.error(
                unknown,
                format!(
                    "unknown field (expected one of {}{})",
                    FIELDS.join(", "),
                    if versioned { ", version" } else { "" }
                ),
            ));
        }
        let id = r
            .opt_id("id")?
            .ok_or_else(|| r.error("id", "missing required field"))?;
        if id.trim().is_empty() {
            return Err(r.error("id", "must not be empty"));
        }
        if !ids.insert(id.clone()) {
            return Err(r.error("id", "duplicate trade id"));
        }
        let side = r.string("side")?;
        let side = side
            .parse()
            .map_err(|_| r.error("side", "expected \"buy\" or \"sell\""))?;
        let version = if versioned { version(&r)? } else { None };
        let trade = BotTrade {
            id,
            account: account.to_owned(),
            symbol: r.text("symbol", MAX_SYMBOL_BYTES)?,
            side,
            volume: r.volume("volume")?,
            entry_price: r.price("entry_price")?,
            sl: r.optional_price("sl")?,
            tp: r.optional_price("tp")?,
            ticket: r.opt_ticket("ticket")?,
            client_id: r
                .opt_text("client_id", MAX_ID_BYTES)?
                .filter(|s| !s.is_empty()),
            opened_at: r.opt_time("opened_at")?,
        };
        out.push((trade, version));
    }
    Ok(out)
}
