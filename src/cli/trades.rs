//! `mt5-reconciler trades import FILE --account ID`: loads the bot's trades (the trade
//! JSON of `reconcile`) into the `bot_trades` table, where the `db` trade source reads them.
//! Trades are upserted by id and marked open, all or nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::{EXIT_BAD_INPUT, ops};
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
    /// Import a trades file (JSON array, as for `reconcile --trades`) into one account.
    Import {
        /// The trades file.
        file: PathBuf,
        /// The account the trades belong to (a row of the accounts table).
        #[arg(long, value_name = "ID")]
        account: String,
        /// Configuration file (default: ./config.toml when present, else built-in defaults).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// Runs the command: 0 imported, 2 bad file or unknown account, 3 database away.
pub async fn run(args: &TradesArgs) -> ExitCode {
    let TradesAction::Import {
        file,
        account,
        config,
    } = &args.action;
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
    match store::import_trades(&db, account, &trades).await {
        Ok(n) => {
            ops::print(&format!(
                "imported {n} trades into account {account} from {}",
                file.display()
            ));
            ExitCode::SUCCESS
        }
        Err(e) => ops::store_failed(&format!("cannot import {}", file.display()), &e),
    }
}
