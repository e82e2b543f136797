//! The integration-test binary: one binary, one module per area.

mod alert_sinks;
mod alerts_ops;
mod browser;
mod cli;
mod close_reasons;
mod common;
mod extremes;
mod fuzz_corpus;
mod guard_loop;
mod guards;
mod http_api;
mod live;
mod logs;
mod metaapi;
mod nats;
mod nats_trades;
mod ops;
mod persistence;
mod retention;
mod scope;
mod service_proc;
mod sim_day;
mod store;
mod trade_writes;
mod trading_day;
mod tree;
