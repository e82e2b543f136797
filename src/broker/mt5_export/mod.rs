//! The MT5 export adapter: reads the JSON files that `bridge/mt5_export.py` writes next to
//! a MetaTrader 5 terminal (MetaTrader5 Python package).
//!
//! Layout, one directory per account (our account id):
//!
//! ```text
//! <dir>/<account>/positions.json   positions_get() as records: [{"ticket": …, "price_open": …}]
//! <dir>/<account>/account.json     account_info() as a record: {"balance": …, "equity": …}
//! <dir>/<account>/quotes.json      {"positions_sha256": "<hex>", "quotes": [{"symbol": …,
//!                                  "bid": …, "ask": …, "time": …, "time_msc": …}]}
//! <dir>/<account>/orders.json      {"export_round": …, "orders": [orders_get() records]}
//! <dir>/<account>/deals.json       {"export_round": …, "deals": [history_deals_get() records]}
//! ```
//!
//! The files of one export carry the same round id, and files of two rounds are refused
//! as retryable (see `round`). `orders.json` and `deals.json` are optional (an older
//! bridge does not write them), but when present they must be fresh and of the round of
//! the positions; `account.json`'s `margin_mode` gives the margin mode (see `facts`).
//! [`Broker::position_deals`] answers from the deals of the last read.
//!
//! `account.json` also says whether the terminal is connected to its trade server
//! (`terminal_connected`, from `terminal_info()`). A disconnected terminal still lists
//! positions — what it last knew, or none — so its read fails as retryable: its `[]` is
//! unknown, never a flat account, and no guard or reconciliation acts on it. An older
//! bridge that does not write the field is read as before.
//!
//! The bridge replaces each file atomically (temp file + rename) every few seconds. A file
//! older than `max_age_secs` is stale: the bridge or the terminal has stopped, and the
//! account's read fails as retryable. So is a file modified more than
//! `max_clock_skew_secs` ahead of now: its writer's clock is ahead, and its age cannot be
//! known. A missing or stale export is never read as an empty account.
//!
//! Quotes are optional: a missing, stale or unreadable `quotes.json` means a snapshot
//! without quotes, never a failed read. `positions_sha256` ties them to one export round:
//! unless it is the SHA-256 of the `positions.json` just read, the files come from two
//! rounds and no quote is used. A quote's time is `time_msc` (else `time`) read as UTC,
//! although MetaTrader 5 gives the trade server's clock: on a server whose clock is not
//! UTC the age of a quote is wrong. A quote more than [`MAX_TICK_AHEAD`] ahead of this
//! machine's clock cannot be aged and is left out (the quote-age check then holds); a
//! server behind UTC makes quotes look old, and the quote-age check holds as well.

mod facts;
mod quotes;
mod round;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use serde::Deserialize;

pub use facts::{DEALS_FILE, ORDERS_FILE};
pub use quotes::{MAX_TICK_AHEAD, Round, parse_quotes};

use super::wire::{self, MAX_PAYLOAD_BYTES, Object};
use super::{BoxFuture, Broker, BrokerError};
use crate::domain::{AccountSnapshot, Deal, DealLookup};
use crate::input::text::MAX_ID_BYTES;

/// The positions file of an account's export directory.
pub const POSITIONS_FILE: &str = "positions.json";
/// The account-information file of an account's export directory.
pub const ACCOUNT_FILE: &str = "account.json";
/// The quotes file of an account's export directory.
pub const QUOTES_FILE: &str = "quotes.json";

/// The field of `account.json` that says whether the terminal is connected to its trade
/// server (`terminal_info().connected`); a bridge that does not write it is read as before.
pub const TERMINAL_CONNECTED: &str = "terminal_connected";

/// `[broker.mt5_export]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mt5ExportConfig {
    /// The directory the bridge writes to (one sub-directory per account).
    pub dir: PathBuf,
    /// An export file older than this, in seconds, is stale.
    pub max_age_secs: u64,
    /// An export file modified more than this many seconds ahead of now is stale too (the
    /// clocks of the bridge's machine and ours may differ this much).
    pub max_clock_skew_secs: u64,
}

impl Default for Mt5ExportConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("mt5-export"),
            max_age_secs: 30,
            max_clock_skew_secs: 5,
        }
    }
}

impl Mt5ExportConfig {
    /// Every invalid value, each named by its key (`broker.mt5_export.<key>`).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.dir.as_os_str().is_empty() {
            out.push("broker.mt5_export.dir: must not be empty".into());
        }
        if self.max_age_secs == 0 {
            out.push("broker.mt5_export.max_age_secs: must be greater than 0".into());
        }
        out
    }
}

/// Whether `account` can name a directory under the export directory: letters, digits,
/// `-`, `_` and `.`, at most [`MAX_ID_BYTES`] of them, and not `.` or `..`.
pub fn is_safe_account_dir(account: &str) -> bool {
    !account.is_empty()
        && account.len() <= MAX_ID_BYTES
        && account != "."
        && account != ".."
        && account
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Reads accounts from the bridge's export directory.
#[derive(Debug, Clone)]
pub struct Mt5ExportBroker {
    dir: PathBuf,
    max_age: MaxAge,
    /// The deals of each account's last read that had a deals file.
    deals: Arc<Mutex<HashMap<String, Vec<Deal>>>>,
}

/// How old, and how far ahead of now, an export file's modification time may be.
#[derive(Debug, Clone, Copy)]
struct MaxAge {
    /// `max_age_secs`.
    behind: Duration,
    /// `max_clock_skew_secs`.
    ahead: Duration,
}

impl Mt5ExportBroker {
    /// A broker over `config.dir`.
    pub fn new(config: &Mt5ExportConfig) -> Self {
        Self {
            dir: config.dir.clone(),
            max_age: MaxAge {
                behind: Duration::from_secs(config.max_age_secs),
                ahead: Duration::from_secs(config.max_clock_skew_secs),
            },
            deals: Arc::default(),
        }
    }

    /// Reads one account's export now (blocking file I/O: call off the async runtime).
    pub fn read(&self, account: &str) -> Result<AccountSnapshot, BrokerError> {
        if !is_safe_account_dir(account) {
            return Err(BrokerError::Permanent(format!(
                "account id {account:?} cannot name an export directory (letters, digits, - _ . only)"
            )));
        }
        let dir = self.dir.join(account);
        let now = SystemTime::now();
        let positions = read_fresh(&dir.join(POSITIONS_FILE), self.max_age, now)?;
        let info = read_fresh(&dir.join(ACCOUNT_FILE), self.max_age, now)?;
        let orders = read_if_exported(&dir.join(ORDERS_FILE), self.max_age, now)?;
        let deals = read_if_exported(&dir.join(DEALS_FILE), self.max_age, now)?;
        let texts = ExportTexts {
            positions: &positions,
            account: &info,
            orders: orders.as_deref(),
            deals: deals.as_deref(),
        };
        let mut snapshot = parse_export(account, &texts)?;
        snapshot.quotes = self.read_quotes(account, &dir, &positions, now);
        let mut known = self.deals.lock().unwrap_or_else(|p| p.into_inner());
        if deals.is_some() {
            known.insert(account.to_owned(), snapshot.deals.clone());
        } else {
            known.remove(account);
        }
        Ok(snapshot)
    }
}

/// The texts of one read of an account's export directory.
#[derive(Debug, Clone, Copy)]
pub struct ExportTexts<'a> {
    /// `positions.json`.
    pub positions: &'a str,
    /// `account.json`.
    pub account: &'a str,
    /// `orders.json`, when the bridge wrote one.
    pub orders: Option<&'a str>,
    /// `deals.json`, when the bridge wrote one.
    pub deals: Option<&'a str>,
}

/// An account's snapshot from the texts of its two export files: `positions` holds
/// `positions_get()` records, `account` the `account_info()` record (balance, equity,
/// margin and margin_free are required). Errors name `<account>/<file>` and the field;
/// files of two export rounds are refused as retryable.
pub fn parse(account: &str, positions: &str, info: &str) -> Result<AccountSnapshot, BrokerError> {
    let texts = ExportTexts {
        positions,
        account: info,
        orders: None,
        deals: None,
    };
    parse_export(account, &texts)
}

/// An account's snapshot from the texts of its export files, as [`parse`], with its
/// margin mode, and its pending orders and deals when their files were exported (no
/// orders file: `orders` is `None`).
pub fn parse_export(
    account: &str,
    texts: &ExportTexts<'_>,
) -> Result<AccountSnapshot, BrokerError> {
    let split = round::split_positions(&format!("{account}/{POSITIONS_FILE}"), texts.positions)?;
    let positions = wire::positions(&split.source, split.text)?;
    let label = format!("{account}/{ACCOUNT_FILE}");
    let info = Object::parse(&label, texts.account)?;
    let round = split.round.as_deref();
    round::check(account, round, &info)?;
    if info.opt_bool(TERMINAL_CONNECTED)? == Some(false) {
        return Err(BrokerError::Retryable {
            reason: format!(
                "{label}: {TERMINAL_CONNECTED} = false: the terminal is not connected to its trade server, so its positions are unknown (not read as flat)"
            ),
            retry_after: None,
        });
    }
    Ok(AccountSnapshot {
        balance: info.decimal("balance")?,
        equity: info.decimal("equity")?,
        margin: info.decimal("margin")?,
        free_margin: info.decimal("margin_free")?,
        positions,
        quotes: Vec::new(),
        taken_at: Utc::now(),
        margin_mode: facts::margin_mode(&info)?,
        orders: texts
            .orders
            .map(|text| facts::orders(account, round, text))
            .transpose()?,
        deals: match texts.deals {
            Some(text) => facts::deals(account, round, text)?,
            None => Vec::new(),
        },
    })
}

impl Broker for Mt5ExportBroker {
    fn snapshot<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<AccountSnapshot, BrokerError>> {
        Box::pin(async move {
            let (me, id) = (self.clone(), account.to_owned());
            tokio::task::spawn_blocking(move || me.read(&id))
                .await
                .map_err(|e| BrokerError::Retryable {
                    reason: format!("reading the export failed: {e}"),
                    retry_after: None,
                })?
        })
    }

    /// Snapshots carry the quotes the bridge exported with the positions.
    fn quotes_available(&self) -> bool {
        true
    }

    /// The deals of `position_id` among those of the account's last read (a window of
    /// recent history: `--deals-hours` of the bridge); `Unsupported` until a read found a
    /// deals file (an older bridge writes none).
    fn position_deals<'a>(
        &'a self,
        account: &'a str,
        position_id: u64,
    ) -> BoxFuture<'a, Result<DealLookup, BrokerError>> {
        let known = self.deals.lock().unwrap_or_else(|p| p.into_inner());
        let found = match known.get(account) {
            Some(deals) => DealLookup::Found(
                deals
                    .iter()
                    .filter(|d| d.position_id == position_id)
                    .cloned()
                    .collect(),
            ),
            None => DealLookup::Unsupported,
        };
        Box::pin(std::future::ready(Ok(found)))
    }
}

/// [`read_fresh`] for a file an older bridge does not write: `None` when it is missing.
fn read_if_exported(
    path: &Path,
    max_age: MaxAge,
    now: SystemTime,
) -> Result<Option<String>, BrokerError> {
    if !path.exists() {
        return Ok(None);
    }
    read_fresh(path, max_age, now).map(Some)
}

/// Reads `path` if it was written within `max_age` of `now`, up to the payload limit.
/// The age is taken from the opened file, so a rename in between cannot mix versions.
fn read_fresh(path: &Path, max_age: MaxAge, now: SystemTime) -> Result<String, BrokerError> {
    let shown = path.display();
    let retry = |reason: String| BrokerError::Retryable {
        reason,
        retry_after: None,
    };
    let file = std::fs::File::open(path).map_err(|e| {
        retry(if e.kind() == std::io::ErrorKind::NotFound {
            format!("{shown}: no export yet (is the bridge running?)")
        } else {
            format!("{shown}: cannot open: {e}")
        })
    })?;
    let meta = file
        .metadata()
        .map_err(|e| retry(format!("{shown}: cannot stat: {e}")))?;
    let written = meta
        .modified()
        .map_err(|e| retry(format!("{shown}: no modification time: {e}")))?;
    // A time a little in the future is the clocks of two machines; more is no age at all.
    if let Ok(ahead) = written.duration_since(now)
        && ahead > max_age.ahead
    {
        return Err(retry(format!(
            "{shown}: stale export, modified at {} which is {}s ahead of now ({}) (max_clock_skew_secs = {}): is the clock of the bridge's machine ahead?",
            utc(written),
            ahead.as_secs(),
            utc(now),
            max_age.ahead.as_secs()
        )));
    }
    let age = now.duration_since(written).unwrap_or(Duration::ZERO);
    if age > max_age.behind {
        return Err(retry(format!(
            "{shown}: stale export, last written {}s ago (max_age_secs = {})",
            age.as_secs(),
            max_age.behind.as_secs()
        )));
    }
    if meta.len() > MAX_PAYLOAD_BYTES as u64 {
        return Err(wire::malformed(
            shown.to_string(),
            format!(
                "{} bytes exceed the limit of {MAX_PAYLOAD_BYTES} bytes",
                meta.len()
            ),
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_PAYLOAD_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| retry(format!("{shown}: cannot read: {e}")))?;
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(wire::malformed(
            shown.to_string(),
            format!("more than {MAX_PAYLOAD_BYTES} bytes"),
        ));
    }
    String::from_utf8(bytes).map_err(|_| wire::malformed(shown.to_string(), "not UTF-8"))
}

/// A file time for a message, in RFC 3339 UTC.
fn utc(t: SystemTime) -> String {
    chrono::DateTime::<Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
