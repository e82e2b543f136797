//! The command-line front end: argument parsing and one function per command.
//!
//! Exit codes: 0 success (for `reconcile`: no divergence), 1 divergences found (for
//! `alerts cancel`: nothing to cancel), 2 bad input, bad configuration or usage, 3 a
//! runtime failure (database unreachable …).

mod accounts;
mod acknowledge;
mod alerts;
mod bulk;
mod demo;
mod divergences;
mod ops;
mod reconcile;
mod trades;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;

/// Reconciles MetaTrader 5 positions against a trading bot's open trades.
#[derive(Debug, Parser)]
#[command(name = "mt5-reconciler", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log lines on standard error: pretty (for people) or json (for a log collector).
    /// RUST_LOG filters them, e.g. RUST_LOG=mt5_reconciler=debug.
    #[arg(long, value_enum, global = true, default_value = "pretty")]
    pub log_format: crate::telemetry::LogFormat,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Reconcile one positions file against one trades file, offline (no database);
    /// pending orders, deals and the margin mode may come with them.
    Reconcile(ReconcileArgs),
    /// A few rounds against the simulated broker on SQLite, then a summary.
    Demo(demo::DemoArgs),
    /// Run the service until SIGINT or SIGTERM.
    Run {
        /// Configuration file (default: ./config.toml when present, else built-in defaults).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Apply the database migrations to the configured database.
    Migrate {
        /// Configuration file (default: ./config.toml when present, else built-in defaults).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// List the stored divergences, newest first (configured database).
    Divergences(divergences::DivergencesArgs),
    /// List, add, remove or enable accounts (the accounts table the service follows).
    Accounts(accounts::AccountsArgs),
    /// Import the bot's trades into the configured database.
    Trades(trades::TradesArgs),
    /// List the risk guards' alerts, or cancel the automatic close one scheduled.
    Alerts(alerts::AlertsArgs),
    /// Acknowledge a divergence with a note: it stays in the record, audited, and no
    /// longer counts as needing attention.
    Acknowledge(acknowledge::AcknowledgeArgs),
}

/// Arguments of `reconcile`.
#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    /// Broker positions: MetaApi positions or MT5 `positions_get()` records (JSON array).
    #[arg(long, value_name = "FILE")]
    pub positions: PathBuf,
    /// The bot's open trades (JSON array).
    #[arg(long, value_name = "FILE")]
    pub trades: PathBuf,
    /// Symbol specifications, e.g. {"XAUUSD": {"digits": 2}}; wins over config.toml.
    #[arg(long, value_name = "FILE")]
    pub symbols: Option<PathBuf>,
    /// Pending orders: MetaApi orders or MT5 `orders_get()` records (JSON array).
    #[arg(long, value_name = "FILE")]
    pub orders: Option<PathBuf>,
    /// Deals: MetaApi deals or MT5 `history_deals_get()` records (JSON array).
    #[arg(long, value_name = "FILE")]
    pub deals: Option<PathBuf>,
    /// How the account books positions (default: not said, compared as hedging).
    #[arg(long, value_enum, value_name = "MODE")]
    pub margin_mode: Option<MarginModeArg>,
    /// Configuration file (default: ./config.toml when present, else built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The account whose `[reconcile.scope]` applies (default: the section's own scope).
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
    /// Output format (default: table on a terminal, json otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// The stable JSON contract, for scripts.
    Json,
}

/// `--margin-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MarginModeArg {
    /// Several positions per symbol (MT5 retail hedging).
    Hedging,
    /// One position per symbol (MT5 retail netting).
    Netting,
    /// One position per symbol, exchange rules.
    Exchange,
}

impl From<MarginModeArg> for crate::domain::MarginMode {
    fn from(m: MarginModeArg) -> Self {
        match m {
            MarginModeArg::Hedging => Self::Hedging,
            MarginModeArg::Netting => Self::Netting,
            MarginModeArg::Exchange => Self::Exchange,
        }
    }
}

/// Exit code: bad input, configuration or usage.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code: a runtime failure such as an unreachable database.
pub const EXIT_RUNTIME: u8 = 3;

/// Runs the parsed command line and returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Reconcile(args) => reconcile::run(&args),
        Command::Migrate { config } => migrate(config).await,
        Command::Demo(args) => demo::run(&args).await,
        Command::Run { config } => run_service(config).await,
        Command::Divergences(args) => divergences::run(&args).await,
        Command::Accounts(args) => accounts::run(&args).await,
        Command::Trades(args) => trades::run(&args).await,
        Command::Alerts(args) => alerts::run(&args).await,
        Command::Acknowledge(args) => acknowledge::run(&args).await,
    }
}

/// Loads configuration or prints the problem; `None` means exit 2.
fn load_config(path: Option<&std::path::Path>) -> Option<Config> {
    match Config::load(path) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

async fn migrate(config: Option<PathBuf>) -> ExitCode {
    let Some(config) = load_config(config.as_deref()) else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let shown = crate::store::redact_url(&config.database.url);
    match crate::store::connect(&config.database.url).await {
        Ok(_) => {
            println!("database {shown} is migrated");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: database {shown}: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

async fn run_service(config: Option<PathBuf>) -> ExitCode {
    let Some(config) = load_config(config.as_deref()) else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    // Beyond loopback the API needs a token: refuse before touching anything else.
    if let Err(e) = crate::http::resolve_tokens(&config.http) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let shown = crate::store::redact_url(&config.database.url);
    // SQLite is single-instance: held until the process ends.
    let _single = match crate::store::SingleInstance::acquire(&config.database.url) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let db = match crate::store::connect(&config.database.url).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("error: database {shown}: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    tracing::info!(database = %shown, "starting");
    match crate::service::run(&config, db, shutdown_signal()).await {
        Ok(report) if report.flushed => {
            tracing::info!(abandoned_syncs = report.abandoned_syncs, "stopped");
            ExitCode::SUCCESS
        }
        Ok(report) => {
            eprintln!(
                "error: stopped, but the final flush failed ({} syncs abandoned)",
                report.abandoned_syncs
            );
            ExitCode::from(EXIT_RUNTIME)
        }
        Err(e @ crate::service::ServiceError::Config(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
