//! Readers for position, trade, symbol, pending-order and deal files: exact decimals, and
//! errors that name the file, the array index, the field and the bad value.

mod accounts;
mod bulk;
mod deals;
mod orders;
mod positions;
mod record;
mod symbols;
pub mod text;
mod trades;

#[cfg(test)]
mod facts_tests;
#[cfg(test)]
mod tests;

use std::path::Path;

pub use accounts::{AccountInput, parse_accounts, parse_close};
pub use bulk::{
    AccountLine, AccountTrades, parse_account_lines, parse_trade_lines, read_trade_dir,
};
pub use deals::{mt5_reason, parse_deals};
pub use orders::parse_orders;
pub use positions::{PositionFormat, parse_positions};
pub use record::InputError;
pub use symbols::parse_symbols;
pub use trades::{parse_trade_writes, parse_trades};

use crate::domain::{BotTrade, BrokerPosition, Deal, PendingOrder, SymbolTable};

/// Reads a whole file as UTF-8, naming it in the error.
pub fn read_text(path: &Path) -> Result<String, InputError> {
    std::fs::read_to_string(path)
        .map_err(|e| InputError::whole(&path.display().to_string(), format!("cannot read: {e}")))
}

/// Reads a positions file (format detected per file).
pub fn read_positions(path: &Path) -> Result<Vec<BrokerPosition>, InputError> {
    parse_positions(&path.display().to_string(), &read_text(path)?)
}

/// Reads a trades file for `account`.
pub fn read_trades(path: &Path, account: &str) -> Result<Vec<BotTrade>, InputError> {
    parse_trades(&path.display().to_string(), &read_text(path)?, account)
}

/// Reads a symbols file.
pub fn read_symbols(path: &Path) -> Result<SymbolTable, InputError> {
    parse_symbols(&path.display().to_string(), &read_text(path)?)
}

/// Reads a pending-orders file (format detected per file).
pub fn read_orders(path: &Path) -> Result<Vec<PendingOrder>, InputError> {
    parse_orders(&path.display().to_string(), &read_text(path)?)
}

/// Reads a deals file (format detected per file).
pub fn read_deals(path: &Path) -> Result<Vec<Deal>, InputError> {
    parse_deals(&path.display().to_string(), &read_text(path)?)
}
