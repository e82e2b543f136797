//! `quotes.json`: the ticks of the held symbols, exported in the round of the positions.

use std::path::Path;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::{Mt5ExportBroker, QUOTES_FILE, read_fresh};
use crate::broker::BrokerError;
use crate::broker::wire::{self, Object};
use crate::domain::Quote;
use crate::input::text::{MAX_SYMBOL_BYTES, text_problem};

/// How far a quote's time may be ahead of this machine's clock (two machines' clocks
/// differ a little); beyond it the trade server's clock is taken not to be UTC.
pub const MAX_TICK_AHEAD: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

impl Mt5ExportBroker {
    /// The quotes of the export round whose positions are `positions`; none when the file
    /// is missing (an older bridge), stale, unreadable or of another round. Problems are
    /// logged; they never fail the read.
    pub(super) fn read_quotes(
        &self,
        account: &str,
        dir: &Path,
        positions: &str,
        now: SystemTime,
    ) -> Vec<Quote> {
        let path = dir.join(QUOTES_FILE);
        if !path.exists() {
            return Vec::new();
        }
        let text = match read_fresh(&path, self.max_age, now) {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(account = %account, error = %e, "no quotes from the export");
                return Vec::new();
            }
        };
        let (quotes, problems) = match parse_quotes(account, positions, &text, now.into()) {
            Ok(read) => read,
            Err(Round::Other) => {
                tracing::debug!(account = %account, "quotes of another export round; none used in this read");
                return Vec::new();
            }
            Err(Round::Unreadable(e)) => {
                tracing::warn!(account = %account, error = %e, "no quotes from the export");
                return Vec::new();
            }
        };
        for e in problems {
            tracing::warn!(account = %account, error = %e, "a quote of the export left out");
        }
        quotes
    }
}

/// Why a quotes file gives no quotes at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    /// It belongs to another export round than the positions read.
    Other,
    /// It cannot be read (the error names the field).
    Unreadable(BrokerError),
}

#[derive(Deserialize)]
struct QuotesFile<'a> {
    positions_sha256: Option<String>,
    #[serde(borrow)]
    quotes: Option<Vec<&'a RawValue>>,
}

/// The quotes of a `quotes.json` text whose round wrote `positions` (the exact text of
/// the positions file read), at `now`: the usable quotes, and an error for each one left
/// out (naming `<account>/quotes.json.quotes[i].<field>` and its value). Each quote needs
/// a `symbol`, a `bid` and an `ask` (exact, positive, not crossed) and `time_msc` or
/// `time` (whole milliseconds or seconds since 1970, read as UTC, at most
/// [`MAX_TICK_AHEAD`] ahead of `now`).
pub fn parse_quotes(
    account: &str,
    positions: &str,
    text: &str,
    now: DateTime<Utc>,
) -> Result<(Vec<Quote>, Vec<BrokerError>), Round> {
    let label = format!("{account}/{QUOTES_FILE}");
    let file: QuotesFile<'_> = serde_json::from_str(text)
        .map_err(|e| Round::Unreadable(wire::malformed(&label, format!("invalid JSON: {e}"))))?;
    let Some(sha) = file.positions_sha256 else {
        return Err(Round::Unreadable(wire::malformed(
            format!("{label}.positions_sha256"),
            "missing required field",
        )));
    };
    let digest: String = Sha256::digest(positions.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if !sha.trim().eq_ignore_ascii_case(&digest) {
        return Err(Round::Other);
    }
    let Some(records) = file.quotes else {
        return Err(Round::Unreadable(wire::malformed(
            format!("{label}.quotes"),
            "missing required field",
        )));
    };
    let (mut quotes, mut problems) = (Vec::new(), Vec::new());
    for (i, raw) in records.iter().enumerate() {
        let source = format!("{label}.quotes[{i}]");
        match tick(&source, raw.get(), now) {
            Ok(q) if quotes.iter().any(|o: &Quote| o.symbol == q.symbol) => {
                problems.push(wire::malformed(
                    format!("{source}.symbol"),
                    format!("value {}: duplicate", q.symbol),
                ))
            }
            Ok(q) => quotes.push(q),
            Err(e) => problems.push(e),
        }
    }
    Ok((quotes, problems))
}

/// One `symbol_info_tick()` record (with its `symbol`) as a quote.
fn tick(source: &str, text: &str, now: DateTime<Utc>) -> Result<Quote, BrokerError> {
    let o = Object::parse(source, text)?;
    let symbol = o
        .opt_string("symbol")?
        .ok_or_else(|| o.error("symbol", "missing required field"))?;
    if let Some(problem) = text_problem(&symbol, MAX_SYMBOL_BYTES) {
        return Err(o.error("symbol", problem));
    }
    let (field, time) = match o.opt_decimal("time_msc")? {
        Some(ms) => (
            "time_msc",
            whole(&o, "time_msc", ms)?.and_then(DateTime::from_timestamp_millis),
        ),
        None => {
            let secs = o
                .opt_decimal("time")?
                .ok_or_else(|| o.error("time", "missing required field (and no time_msc)"))?;
            (
                "time",
                whole(&o, "time", secs)?.and_then(|s| DateTime::from_timestamp(s, 0)),
            )
        }
    };
    let time = time.ok_or_else(|| o.error(field, "out of range"))?;
    if time - now > MAX_TICK_AHEAD {
        return Err(o.error(
            field,
            format!(
                "{}s ahead of this machine's clock: the trade server's clock is not UTC, so the quote's age cannot be measured",
                (time - now).num_seconds()
            ),
        ));
    }
    wire::quote(&o, &symbol, time)
}

/// A whole, non-negative number of `field`, or `None` when it does not fit an `i64`.
fn whole(o: &Object<'_>, field: &str, d: Decimal) -> Result<Option<i64>, BrokerError> {
    if d.is_sign_negative() || !d.fract().is_zero() {
        return Err(o.error(field, "expected a whole number since 1970"));
    }
    Ok(d.to_i64())
}
