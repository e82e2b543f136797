//! Many accounts at once: the bulk files of `accounts import` and `trades import`.
//!
//! - Accounts: JSON Lines, one object per line: `{"id", "broker", "name"?, "enabled"?}`.
//! - Trades: JSON Lines, one account per line: `{"account": "ID", "trades": [...]}` with
//!   the trades as in a trades file; or a directory whose `<account>.json` files are
//!   trades files.
//!
//! Each account stands alone: a bad line refuses that account only, with an error naming
//! the file and line (and, inside the trades, the element, field and value). Blank lines
//! are skipped.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::accounts::MAX_NAME_BYTES;
use super::record::InputError;
use super::text::{self, MAX_ID_BYTES, text_problem};
use super::{parse_trades, read_text};
use crate::domain::BotTrade;

/// One account line, validated (the broker is checked against the known ones by the
/// caller, which knows them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountLine {
    /// Account id.
    pub id: String,
    /// Connector name.
    pub broker: String,
    /// Display name (the id when absent).
    pub name: String,
    /// Whether the account is reconciled (default true).
    pub enabled: bool,
}

/// One account's trades, or why they are refused.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountTrades {
    /// Account id (as written, even when the entry is refused).
    pub account: String,
    /// The trades, or the first problem found in them.
    pub trades: Result<Vec<BotTrade>, InputError>,
}

/// `source` and line `n` (1-based) as an error's place.
fn place(source: &str, n: usize) -> String {
    format!("{source} line {n}")
}

/// A problem with one field of a whole line.
fn field_error(at: &str, field: &str, value: &str, reason: impl Into<String>) -> InputError {
    InputError {
        file: at.to_owned(),
        index: None,
        field: Some(field.to_owned()),
        value: Some(text::shown(value, 60)),
        reason: reason.into(),
    }
}

/// Checks an account id: present, not blank, bounded, no control characters.
fn account_id(at: &str, field: &str, id: &str) -> Result<(), InputError> {
    if id.trim().is_empty() {
        return Err(field_error(at, field, id, "must not be empty"));
    }
    match text_problem(id, MAX_ID_BYTES) {
        Some(reason) => Err(field_error(at, field, id, reason)),
        None => Ok(()),
    }
}

/// The non-blank lines of `text`, numbered from 1.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
}

/// Parses an accounts JSON Lines file; one result per non-blank line, in order. A second
/// line for an id already seen is refused.
pub fn parse_account_lines(source: &str, text: &str) -> Vec<Result<AccountLine, InputError>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        id: String,
        broker: String,
        name: Option<String>,
        enabled: Option<bool>,
    }
    let mut seen = HashSet::new();
    lines(text)
        .map(|(n, line)| {
            let at = place(source, n);
            let raw: Raw = serde_json::from_str(line).map_err(|e| {
                InputError::whole(
                    &at,
                    format!("expected {{\"id\", \"broker\", \"name\"?, \"enabled\"?}}: {e}"),
                )
            })?;
            account_id(&at, "id", &raw.id)?;
            if let Some(reason) = text_problem(&raw.broker, MAX_ID_BYTES) {
                return Err(field_error(&at, "broker", &raw.broker, reason));
            }
            let name = raw.name.unwrap_or_else(|| raw.id.clone());
            if let Some(reason) = text_problem(&name, MAX_NAME_BYTES) {
                return Err(field_error(&at, "name", &name, reason));
            }
            if !seen.insert(raw.id.clone()) {
                return Err(field_error(&at, "id", &raw.id, "listed on an earlier line"));
            }
            Ok(AccountLine {
                id: raw.id,
                broker: raw.broker,
                name,
                enabled: raw.enabled.unwrap_or(true),
            })
        })
        .collect()
}

/// Parses a trades JSON Lines file: one entry per non-blank line. A line that names no
/// readable account is refused under the account `""`; a second line for an account is
/// refused (one line holds an account's whole set).
pub fn parse_trade_lines(source: &str, text: &str) -> Vec<AccountTrades> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw<'a> {
        account: String,
        #[serde(borrow)]
        trades: &'a RawValue,
    }
    let mut seen = HashSet::new();
    lines(text)
        .map(|(n, line)| {
            let at = place(source, n);
            let raw: Raw = match serde_json::from_str(line) {
                Ok(r) => r,
                Err(e) => {
                    let why = format!("expected {{\"account\", \"trades\": [...]}}: {e}");
                    return AccountTrades {
                        account: String::new(),
                        trades: Err(InputError::whole(&at, why)),
                    };
                }
            };
            let trades = account_id(&at, "account", &raw.account)
                .and_then(|()| {
                    if seen.insert(raw.account.clone()) {
                        Ok(())
                    } else {
                        let why = "listed on an earlier line (one line holds an account's trades)";
                        Err(field_error(&at, "account", &raw.account, why))
                    }
                })
                .and_then(|()| parse_trades(&at, raw.trades.get(), &raw.account));
            AccountTrades {
                account: raw.account,
                trades,
            }
        })
        .collect()
}

/// Reads a directory of trades files: every `<account>.json` in `dir` (not recursive,
/// sorted by name); other files are ignored. Fails only when the directory cannot be read.
pub fn read_trade_dir(dir: &Path) -> Result<Vec<AccountTrades>, InputError> {
    let shown = dir.display().to_string();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| InputError::whole(&shown, format!("cannot read the directory: {e}")))?;
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files
        .into_iter()
        .map(|path| {
            let source = path.display().to_string();
            let account = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            let trades = account_id(&source, "account (the file name)", &account)
                .and_then(|()| read_text(&path))
                .and_then(|text| parse_trades(&source, &text, &account));
            AccountTrades { account, trades }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRADE: &str =
        r#"{"id":"t1","symbol":"EURUSD","side":"buy","volume":"0.1","entry_price":"1.1"}"#;

    #[test]
    fn account_lines_are_checked_one_by_one() {
        let text = format!(
            "{}\n\n{}\n{}\n{}\n{}\n",
            r#"{"id":"a1","broker":"sim"}"#,
            r#"{"id":"a2","broker":"sim","name":"Two","enabled":false}"#,
            r#"{"id":"a1","broker":"sim"}"#,
            r#"{"id":"","broker":"sim"}"#,
            r#"{"id":"a3","brokr":"sim"}"#,
        );
        let out = parse_account_lines("acc.jsonl", &text);
        assert_eq!(out.len(), 5);
        assert_eq!(out[0].as_ref().unwrap().name, "a1");
        let two = out[1].as_ref().unwrap();
        assert_eq!((two.name.as_str(), two.enabled), ("Two", false));
        let dup = out[2].as_ref().unwrap_err().to_string();
        assert!(dup.starts_with("acc.jsonl line 4, field \"id\""), "{dup}");
        assert!(dup.contains("earlier line"), "{dup}");
        let empty = out[3].as_ref().unwrap_err().to_string();
        assert!(empty.contains("line 5, field \"id\""), "{empty}");
        let typo = out[4].as_ref().unwrap_err().to_string();
        assert!(typo.contains("line 6") && typo.contains("brokr"), "{typo}");
    }

    #[test]
    fn a_bad_trade_refuses_its_account_only_and_says_where() {
        let bad = TRADE.replace("\"0.1\"", "\"-1\"").replace("t1", "t2");
        let text = format!(
            "{{\"account\":\"a1\",\"trades\":[{TRADE}]}}\n{{\"account\":\"a2\",\"trades\":[{TRADE},{bad}]}}\nnot json\n{{\"account\":\"a1\",\"trades\":[]}}\n"
        );
        let out = parse_trade_lines("t.jsonl", &text);
        assert_eq!(out.len(), 4);
        assert_eq!(out[0].account, "a1");
        assert_eq!(out[0].trades.as_ref().unwrap().len(), 1);
        assert_eq!(out[1].account, "a2");
        let e = out[1].trades.as_ref().unwrap_err();
        assert_eq!(
            (e.file.as_str(), e.index, e.field.as_deref()),
            ("t.jsonl line 2", Some(1), Some("volume"))
        );
        assert!(
            out[2]
                .trades
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("line 3")
        );
        let again = out[3].trades.as_ref().unwrap_err().to_string();
        assert!(again.contains("earlier line"), "{again}");
    }

    #[test]
    fn a_directory_holds_one_file_per_account() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.json"), format!("[{TRADE}]")).unwrap();
        std::fs::write(dir.path().join("a.json"), "[]").unwrap();
        std::fs::write(dir.path().join("c.json"), "{").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let out = read_trade_dir(dir.path()).unwrap();
        let names: Vec<&str> = out.iter().map(|a| a.account.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(out[1].trades.as_ref().unwrap()[0].account, "b");
        assert!(out[2].trades.is_err());
        assert!(read_trade_dir(&dir.path().join("missing")).is_err());
    }
}
