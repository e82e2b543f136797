//! mt5-reconciler: keeps a trading bot honest about its MetaTrader 5 accounts.
//!
//! Module map:
//! - [`domain`]: pure types and the `reconcile` function (no I/O, no clock).
//! - [`input`]: reads position, trade and symbol files into domain types, exactly.
//! - [`actors`]: the supervised actor tree; [`broker`]: brokers and trade sources.
//! - [`clock`]: the one wall clock the tree reads (real, or following tokio time in tests).
//! - [`guards`]: drawdown and market guards, alerts, automatic closes.
//! - [`store`]: sea-orm entities and the queries the service needs.
//! - [`config`]: typed `config.toml`; [`config_env`]: `MT5R_…` environment overrides.
//! - [`nats`]: events out to NATS JetStream, the bot's trade events in.
//! - [`http`]: the status API, Prometheus metrics and the dashboard that `run` serves.
//! - [`telemetry`]: log output (pretty or JSON) and sync run ids.
//! - [`memory`]: the binary's allocator settings.
//! - [`cli`]: the command-line front end used by `main.rs`.

pub mod actors;
pub mod broker;
pub mod cli;
pub mod clock;
pub mod config;
pub mod config_env;
pub mod domain;
pub mod guards;
pub mod http;
pub mod input;
pub mod memory;
pub mod nats;
pub mod service;
pub mod store;
pub mod telemetry;
