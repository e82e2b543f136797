//! Bulk set-up: `accounts import FILE` and `trades import` of many accounts in one call
//! (a JSON Lines file or a directory of `<account>.json` files). Each account is all or
//! nothing; the others go on. A summary says what was written and lists what was refused,
//! each with the file, line and field at fault.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use chrono::Utc;
use sea_orm::DatabaseConnection;

use super::{EXIT_BAD_INPUT, EXIT_RUNTIME, ops};
use crate::config::KNOWN_BROKERS;
use crate::input::{self, AccountTrades};
use crate::store::{self, Account, TradeWrite, WriteOutcome};

/// Refusals listed in full in a summary; the rest are counted.
const LISTED: usize = 20;

/// Refused entries, described, and whether any failed for the database's sake.
#[derive(Default)]
struct Refusals {
    lines: Vec<String>,
    runtime: bool,
}

impl Refusals {
    fn push(&mut self, what: String) {
        self.lines.push(what);
    }

    /// The summary's tail and the exit code.
    fn finish(self, summary: String) -> ExitCode {
        let mut text = summary;
        if !self.lines.is_empty() {
            let _ = write!(text, "\nrefused {}:", self.lines.len());
            for l in self.lines.iter().take(LISTED) {
                let _ = write!(text, "\n  {l}");
            }
            if self.lines.len() > LISTED {
                let _ = write!(text, "\n  … and {} more", self.lines.len() - LISTED);
            }
        }
        ops::print(&text);
        match (self.runtime, self.lines.is_empty()) {
            (true, _) => ExitCode::from(EXIT_RUNTIME),
            (false, false) => ExitCode::from(EXIT_BAD_INPUT),
            (false, true) => ExitCode::SUCCESS,
        }
    }
}

/// `accounts import FILE`: upserts every valid line's account (enabled unless the line
/// says otherwise); 0 all imported, 2 some refused, 3 database away.
pub(super) async fn import_accounts(db: &DatabaseConnection, file: &Path) -> ExitCode {
    let started = Instant::now();
    let text = match input::read_text(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let mut refused = Refusals::default();
    let mut accounts = Vec::new();
    for line in input::parse_account_lines(&file.display().to_string(), &text) {
        match line {
            Ok(a) if !KNOWN_BROKERS.contains(&a.broker.as_str()) => refused.push(format!(
                "{}: account {:?}, field \"broker\", value {:?}: unknown broker (known: {})",
                file.display(),
                a.id,
                a.broker,
                KNOWN_BROKERS.join(", ")
            )),
            Ok(a) => accounts.push(Account {
                id: a.id,
                name: a.name,
                broker: a.broker,
                enabled: a.enabled,
                disabled_reason: (!a.enabled).then(|| "imported disabled".to_owned()),
            }),
            Err(e) => refused.push(e.to_string()),
        }
    }
    if let Err(e) = store::upsert_accounts(db, &accounts, Utc::now()).await {
        return ops::store_failed("cannot write the accounts table", &e);
    }
    let enabled = accounts.iter().filter(|a| a.enabled).count();
    refused.finish(format!(
        "imported {} accounts ({enabled} enabled) from {} in {:.1} s",
        accounts.len(),
        file.display(),
        started.elapsed().as_secs_f64()
    ))
}

/// `trades import SOURCE` without `--account`: every account of a JSON Lines file or a
/// directory; with `replace`, each account's open set becomes exactly what is given.
pub(super) async fn import_trades(
    db: &DatabaseConnection,
    source: &Path,
    replace: bool,
) -> ExitCode {
    let started = Instant::now();
    let entries = if source.is_dir() {
        match input::read_trade_dir(source) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        }
    } else {
        match input::read_text(source) {
            Ok(text) => input::parse_trade_lines(&source.display().to_string(), &text),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        }
    };
    let known: HashSet<String> = match store::list_accounts(db).await {
        Ok(rows) => rows.into_iter().map(|r| r.account.id).collect(),
        Err(e) => return ops::store_failed("cannot read the accounts table", &e),
    };
    let mut refused = Refusals::default();
    let mut writes: Vec<(String, Vec<TradeWrite>)> = Vec::new();
    for AccountTrades { account, trades } in entries {
        match trades {
            Err(e) => refused.push(e.to_string()),
            Ok(_) if !known.contains(&account) => refused.push(format!(
                "account {account:?}: not in the accounts table (add it first: accounts import or accounts add)"
            )),
            Ok(trades) => {
                let w = trades
                    .into_iter()
                    .map(|trade| TradeWrite {
                        trade,
                        version: None,
                    })
                    .collect();
                writes.push((account, w));
            }
        }
    }
    let results = store::write_many_accounts(db, &writes, replace, Utc::now()).await;
    let mut total = WriteOutcome::default();
    let mut accounts = 0;
    for ((account, _), r) in writes.iter().zip(results) {
        match r {
            Ok(o) => {
                accounts += 1;
                total.written += o.written;
                total.unchanged += o.unchanged;
                total.stale += o.stale;
                total.closed += o.closed;
            }
            Err(e) => {
                refused.runtime = true;
                refused.push(format!("account {account:?}: {e}"));
            }
        }
    }
    refused.finish(format!(
        "imported the trades of {accounts} accounts from {} in {:.1} s: {} trades written, {} unchanged, {} closed{}",
        source.display(),
        started.elapsed().as_secs_f64(),
        total.written,
        total.unchanged,
        total.closed,
        if replace { " (absent from their set)" } else { "" },
    ))
}
