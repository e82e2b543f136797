//! The MT5 export adapter: reads the JSON files that `bridge/mt5_export.py` writes next to
//! a MetaTrader 5 terminal (MetaTrader5 Python package).
//!
//! Layout, one directory per account (our account id):
//!
//! ```text
//! <dir>/<account>/positions.json   positions_get() as records: [{"ticket": …, "price_open": …}]
//! <dir>/<account>/account.json     account_info() as a record: {"balance": …, "equity": …}
//! ```
//!
//! Both files of one export carry the same round id, and a pair of two rounds is refused
//! as retryable (see `round`).
//!
//! The bridge replaces each file atomically (temp file + rename) every few seconds. A file
//! older than `max_age_secs` is stale: the bridge or the terminal has stopped, and the
//! account's read fails as retryable. So is a file modified more than
//! `max_clock_skew_secs` ahead of now: its writer's clock is ahead, and its age cannot be
//! known. A missing or stale export is never read as an empty account.

mod round;
#[cfg(test)]
mod tests;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use serde::Deserialize;

use super::wire::{self, MAX_PAYLOAD_BYTES, Object};
use super::{BoxFuture, Broker, BrokerError};
use crate::domain::AccountSnapshot;
use crate::input::text::MAX_ID_BYTES;

/// The positions file of an account's export directory.
pub const POSITIONS_FILE: &str = "positions.json";
/// The account-information file of an account's export directory.
pub const ACCOUNT_FILE: &str = "account.json";

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
        parse(account, &positions, &info)
    }
}

/// An account's snapshot from the texts of its two export files: `positions` holds
/// `positions_get()` records, `account` the `account_info()` record (balance, equity,
/// margin and margin_free are required). Errors name `<account>/<file>` and the field;
/// files of two export rounds are refused as retryable.
pub fn parse(account: &str, positions: &str, info: &str) -> Result<AccountSnapshot, BrokerError> {
    let split = round::split_positions(&format!("{account}/{POSITIONS_FILE}"), positions)?;
    let positions = wire::positions(&split.source, split.text)?;
    let label = format!("{account}/{ACCOUNT_FILE}");
    let info = Object::parse(&label, info)?;
    round::check(account, split.round.as_deref(), &info)?;
    Ok(AccountSnapshot {
        balance: info.decimal("balance")?,
        equity: info.decimal("equity")?,
        margin: info.decimal("margin")?,
        free_margin: info.decimal("margin_free")?,
        positions,
        quotes: Vec::new(),
        taken_at: Utc::now(),
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
