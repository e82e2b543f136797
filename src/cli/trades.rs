//! `mt5-reconciler trades import`: loads the bot's trades into the `bot_trades` table,
//! where the `db` trade source reads them: one account's trades file (the trade JSON of
//! `reconcile`) with `--account ID`, or many accounts from a JSON Lines file or a
//! directory of `<account>.json` files. Trades are upserted by id and marked open, all or
//! nothing per account; `--replace` also closes the account's open trades absent from
//! what is given.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::{EXIT_BAD_INPUT, bulk, ops};
use crate::input;
use crate::store;

/// Arguments of `trades`.
#[derive(Debug, clap::Args)]
pub struct TradesArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: TradesAction,
}

/// The `trades` sub-commands.
#[derive(Debug, Subcommand)]
pub enum TradesAction {
    /// Import a trades file (JSON array, as for `reconcile --trades`) into one account
    /// (`--account`), or the trades of many accounts: a JSON Lines file (one line per
    /// account: {"account": ID, "trades": [...]}) or a directory of `<account>.json` files.
    Import {
        /// The trades file, JSON Lines file or directory.
        file: PathBuf,
        /// The account the trades file belongs to (a row of the accounts table); without
        /// it, FILE holds many accounts.
        #[arg(long, value_name = "ID")]
        account: Option<String>,
        /// Make each account's open set exactly what is given: open trades absent from it
        /// are marked closed (never deleted).
        #[arg(long)]
        replace: bool,
        /// Configuration file (default: ./config.toml when present, else built-in defaults).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// Runs the command: 0 imported, 2 bad file or unknown account (for many accounts: any
/// refused), 3 database away.
pub async fn run(args: &TradesArgs) -> ExitCode {
    let TradesAction::Import {
        file,
        account,
        replace,
        config,
    } = &args.action;
    let Some(account) = account else {
        let (_, db) = match ops::open(config.as_deref()).await {
            Ok(v) => v,
            Err(code) => return code,
        };
        return bulk::import_trades(&db, file, *replace).await;
    };
    let trades = match input::read_trades(file, account) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let (_, db) = match ops::open(config.as_deref()).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let known = match store::list_accounts(&db).await {
        Ok(rows) => rows.iter().any(|r| r.account.id == *account),
        Err(e) => return ops::store_failed("cannot read the accounts table", &e),
    };
    if !known {
        eprintln!(
            "error: no account {account:?} in the accounts table; add it first: \
             mt5-reconciler accounts add {account} --broker <sim|metaapi|mt5_export>"
        );
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let written = if *replace {
        let writes: Vec<store::TradeWrite> = trades
            .into_iter()
            .map(|trade| store::TradeWrite {
                trade,
                version: None,
            })
            .collect();
        store::replace_open_trades(&db, account, &writes, chrono::Utc::now())
            .await
            .map(|o| {
                format!(
                    "{} trades written, {} unchanged, {} closed",
                    o.written, o.unchanged, o.closed
                )
            })
    } else {
        store::import_trades(&db, account, &trades)
            .await
            .map(|n| format!("imported {n} trades"))
    };
    match written {
        Ok(what) => {
            ops::print(&format!(
                "{what} into account {account} from {}",
                file.display()
            ));
            ExitCode::SUCCESS
        }
        Err(e) => ops::store_failed(&format!("cannot import {}", file.display()), &e),
    }
}
