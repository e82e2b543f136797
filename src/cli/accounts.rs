//! `mt5-reconciler accounts list|add|remove|enable`: the `accounts` table, which a
//! running service follows (it starts enabled rows and stops rows that are disabled or
//! gone, at its next refresh: `scheduler.accounts_refresh_secs`).
//!
//! `remove` disables the row rather than deleting it: the account's divergences, sync runs
//! and trades stay, and `enable` brings it back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{SecondsFormat, Utc};
use clap::Subcommand;
use serde_json::json;

use super::{EXIT_BAD_INPUT, Format, bulk, ops};
use crate::config::KNOWN_BROKERS;
use crate::store::{self, Account, StoredAccount};

/// Arguments of `accounts`.
#[derive(Debug, clap::Args)]
pub struct AccountsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: AccountsAction,
    /// Configuration file (default: ./config.toml when present, else built-in defaults).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

/// The `accounts` sub-commands.
#[derive(Debug, Subcommand)]
pub enum AccountsAction {
    /// The accounts of the table, with their open divergences.
    List {
        /// Output format (default: table on a terminal, json otherwise).
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Add an account (or update and enable an existing one).
    Add {
        /// Account id, as its broker knows it.
        id: String,
        /// Connector: sim, metaapi or mt5_export.
        #[arg(long)]
        broker: String,
        /// Display name (default: the id).
        #[arg(long)]
        name: Option<String>,
    },
    /// Stop reconciling an account: disables its row, keeping its history.
    Remove {
        /// Account id.
        id: String,
    },
    /// Reconcile a disabled account again.
    Enable {
        /// Account id.
        id: String,
    },
    /// Add or update many accounts from a JSON Lines file, one per line:
    /// {"id", "broker", "name"?, "enabled"?}.
    Import {
        /// The JSON Lines file.
        file: PathBuf,
    },
}

/// Runs the command: 0 done, 2 bad input (unknown account or broker), 3 database away.
pub async fn run(args: &AccountsArgs) -> ExitCode {
    if let AccountsAction::Add { id, broker, .. } = &args.action {
        if id.trim().is_empty() {
            eprintln!("error: the account id must not be empty");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        if !KNOWN_BROKERS.contains(&broker.as_str()) {
            eprintln!(
                "error: --broker {broker:?}: unknown broker (known: {})",
                KNOWN_BROKERS.join(", ")
            );
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    }
    let (config, db) = match ops::open(args.config.as_deref()).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let rows = match store::list_accounts(&db).await {
        Ok(r) => r,
        Err(e) => return ops::store_failed("cannot read the accounts table", &e),
    };
    let find = |id: &str| rows.iter().find(|r| r.account.id == id).cloned();
    let (account, message) = match &args.action {
        AccountsAction::List { format } => return list(&db, &rows, *format).await,
        AccountsAction::Add { id, broker, name } => {
            if !config.broker.enabled.contains(broker) {
                eprintln!(
                    "warning: broker {broker:?} is not in broker.enabled of the configuration; \
                     the service will disable this account until it is"
                );
            }
            let verb = if find(id).is_some() {
                "updated"
            } else {
                "added"
            };
            let account = Account {
                id: id.clone(),
                name: name.clone().unwrap_or_else(|| id.clone()),
                broker: broker.clone(),
                enabled: true,
                disabled_reason: None,
            };
            (account, format!("account {id} {verb} (broker {broker})"))
        }
        AccountsAction::Import { file } => return bulk::import_accounts(&db, file).await,
        AccountsAction::Remove { id } | AccountsAction::Enable { id } => {
            let Some(stored) = find(id) else {
                eprintln!("error: no account {id:?} in the accounts table");
                return ExitCode::from(EXIT_BAD_INPUT);
            };
            let enable = matches!(args.action, AccountsAction::Enable { .. });
            let by_breaker = stored
                .account
                .disabled_reason
                .as_deref()
                .is_some_and(|r| r.starts_with(store::BREAKER_DISABLED));
            let account = Account {
                enabled: enable,
                disabled_reason: (!enable).then(|| store::REMOVED_BY_OPERATOR.to_owned()),
                ..stored.account
            };
            let verb = match (enable, by_breaker) {
                (true, true) => "re-enabled (the breaker had disabled it)",
                (true, false) => "enabled",
                (false, _) => "disabled",
            };
            (account, format!("account {id} {verb}"))
        }
    };
    if let Err(e) = store::upsert_account(&db, &account, Utc::now()).await {
        return ops::store_failed("cannot write the accounts table", &e);
    }
    ops::print(&format!(
        "{message}; a running service follows within scheduler.accounts_refresh_secs ({} s)",
        config.scheduler.accounts_refresh_secs
    ));
    ExitCode::SUCCESS
}

async fn list(
    db: &sea_orm::DatabaseConnection,
    rows: &[StoredAccount],
    format: Option<Format>,
) -> ExitCode {
    let counts = match store::open_divergence_counts(db).await {
        Ok(c) => c,
        Err(e) => return ops::store_failed("cannot count open divergences", &e),
    };
    let mut open: BTreeMap<&str, u64> = BTreeMap::new();
    for c in &counts {
        *open.entry(c.account_id.as_str()).or_default() += c.count;
    }
    let open_of = |id: &str| open.get(id).copied().unwrap_or(0);
    let text = match ops::format(format) {
        Format::Json => {
            let items: Vec<_> = rows
                .iter()
                .map(|r| {
                    let a = &r.account;
                    json!({
                        "id": a.id, "name": a.name, "broker": a.broker, "enabled": a.enabled,
                        "disabled_reason": a.disabled_reason,
                        "open_divergences": open_of(&a.id),
                        "created_at": r.created_at, "updated_at": r.updated_at,
                    })
                })
                .collect();
            ops::json(&items)
        }
        Format::Table if rows.is_empty() => "no accounts in the table".to_owned(),
        Format::Table => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let a = &r.account;
                    vec![
                        a.id.clone(),
                        a.name.clone(),
                        a.broker.clone(),
                        match (a.enabled, a.disabled_reason.as_deref()) {
                            (true, Some(r)) if r.starts_with(store::BREAKER_DISABLED) => {
                                "no (breaker)"
                            }
                            (true, _) => "yes",
                            (false, _) => "no",
                        }
                        .to_owned(),
                        open_of(&a.id).to_string(),
                        r.updated_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                        a.disabled_reason.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            let header = [
                "ID",
                "NAME",
                "BROKER",
                "ENABLED",
                "OPEN",
                "UPDATED",
                "DISABLED BECAUSE",
            ];
            ops::table(&header, &cells)
        }
    };
    ops::print(&text);
    ExitCode::SUCCESS
}
