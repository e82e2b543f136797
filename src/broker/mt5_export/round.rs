//! Export rounds: the bridge writes the same `export_round` id into every file of one
//! export, so a reader that caught `positions.json` of one round and `account.json` of the
//! next (the bridge writes them one after the other) can tell, and read again later.
//!
//! ```text
//! positions.json   {"export_round": "<id>", "positions": [<positions_get() records>]}
//! account.json     {"export_round": "<id>", "balance": …, <the rest of account_info()>}
//! orders.json      {"export_round": "<id>", "orders": [<orders_get() records>]}
//! deals.json       {"export_round": "<id>", "deals": [<history_deals_get() records>], …}
//! ```
//!
//! The id is an opaque string; only equality counts. Files of a bridge older than rounds
//! (a bare array, an account record without the field) are still read when *neither* file
//! has a round: the bridge runs on another machine and is upgraded on its own schedule,
//! and such a pair is as trustworthy as it always was. A pair where only one file has a
//! round is refused like any mismatch: it is the bridge's first round after an upgrade,
//! half written, and the next read finds both files of one round.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use super::{ACCOUNT_FILE, BrokerError, POSITIONS_FILE};
use crate::broker::wire::{Object, malformed, shown};

/// The field that holds the round id, in both files.
pub const ROUND_FIELD: &str = "export_round";

/// The array of an export file (`positions.json`, `orders.json`, `deals.json`), and the
/// file's round.
pub(super) struct Positions<'a> {
    /// The text of the array.
    pub text: &'a str,
    /// What names the array in errors: the file, or its `positions` field.
    pub source: String,
    /// The round, if the file has one.
    pub round: Option<String>,
}

/// The positions array of `positions.json` and its round: the `positions` field of an
/// object (with a round), or the whole text of a bare array (without). `label` names the
/// file in errors.
pub(super) fn split_positions<'a>(
    label: &str,
    text: &'a str,
) -> Result<Positions<'a>, BrokerError> {
    split_list(label, text, "positions")
}

/// The array `field` of an export file and its round, like [`split_positions`].
pub(super) fn split_list<'a>(
    label: &str,
    text: &'a str,
    field: &str,
) -> Result<Positions<'a>, BrokerError> {
    if !text.trim_start().starts_with('{') {
        return Ok(Positions {
            text,
            source: label.to_owned(),
            round: None,
        });
    }
    let fields: BTreeMap<String, &'a RawValue> =
        serde_json::from_str(text).map_err(|e| malformed(label, format!("invalid JSON: {e}")))?;
    let positions = fields
        .get(field)
        .ok_or_else(|| malformed(format!("{label}.{field}"), "missing required field"))?;
    let round = match fields.get(ROUND_FIELD) {
        None => None,
        Some(raw) => Some(serde_json::from_str::<String>(raw.get()).map_err(|_| {
            malformed(
                format!("{label}.{ROUND_FIELD}"),
                format!("value {}: expected a string", shown(raw.get())),
            )
        })?),
    };
    Ok(Positions {
        text: positions.get(),
        source: format!("{label}.{field}"),
        round,
    })
}

/// Refuses, as retryable, `file` (of round `round`) read with a `positions.json` of round
/// `positions`; `account` names the export directory.
pub(super) fn check_file(
    account: &str,
    positions: Option<&str>,
    file: &str,
    round: Option<&str>,
) -> Result<(), BrokerError> {
    if positions == round {
        return Ok(());
    }
    let shown_round = |r: Option<&str>| r.map_or_else(|| "none".to_owned(), shown);
    Err(BrokerError::Retryable {
        reason: format!(
            "{account}/{POSITIONS_FILE} and {account}/{file}: export round mismatch: positions round {}, {file} round {} (read while the bridge was writing; the next read should match)",
            shown_round(positions),
            shown_round(round),
        ),
        retry_after: None,
    })
}

/// Refuses, as retryable, a `positions.json` of round `positions` read with an
/// `account.json` (`info`) of another round; `account` names the export directory.
pub(super) fn check(
    account: &str,
    positions: Option<&str>,
    info: &Object<'_>,
) -> Result<(), BrokerError> {
    let info_round = info.opt_string(ROUND_FIELD)?;
    if positions == info_round.as_deref() {
        return Ok(());
    }
    let shown_round = |r: Option<&str>| r.map_or_else(|| "none".to_owned(), shown);
    Err(BrokerError::Retryable {
        reason: format!(
            "{account}/{POSITIONS_FILE} and {account}/{ACCOUNT_FILE}: export round mismatch: positions round {}, account round {} (read while the bridge was writing; the next read should match)",
            shown_round(positions),
            shown_round(info_round.as_deref()),
        ),
        retry_after: None,
    })
}
