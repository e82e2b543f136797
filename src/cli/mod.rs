//! The command-line front end: argument parsing and one function per command.
//!
//! Exit codes: 0 success (for `reconcile`: no divergence), 1 divergences found,
//! 2 bad input, bad configuration or usage, 3 a runtime failure (database unreachable …).

mod reconcile;

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
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Reconcile one positions file against one trades file, offline (no database).
    Reconcile(ReconcileArgs),
    /// Apply the database migrations to the configured database.
    Migrate {
        /// Configuration file (default: ./config.toml when present, else built-in defaults).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
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
    /// Configuration file (default: ./config.toml when present, else built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
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

/// Exit code: bad input, configuration or usage.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code: a runtime failure such as an unreachable database.
pub const EXIT_RUNTIME: u8 = 3;

/// Runs the parsed command line and returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Reconcile(args) => reconcile::run(&args),
        Command::Migrate { config } => migrate(config).await,
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
