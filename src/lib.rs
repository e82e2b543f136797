//! mt5-reconciler: keeps a trading bot honest about its MetaTrader 5 accounts.
//!
//! Module map:
//! - [`domain`]: pure types and the `reconcile` function (no I/O, no clock).
//! - [`input`]: reads position, trade and symbol files into domain types, exactly.
//! - [`store`]: sea-orm entities and the queries the service needs.
//! - [`config`]: typed `config.toml`.
//! - [`cli`]: the command-line front end used by `main.rs`.

pub mod actors;
pub mod broker;
pub mod cli;
pub mod config;
pub mod domain;
pub mod input;
pub mod service;
pub mod store;
