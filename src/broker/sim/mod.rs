//! The simulated broker: deterministic, seeded accounts with configurable noise, plus
//! scriptable latency and faults, for the demo, the integration tests and benchmarks.
//!
//! The same seed always gives byte-identical trades and positions, and every piece of
//! noise is recorded ([`SimBroker::injected`]) as the divergence it should produce.

mod config;
pub mod day;
mod generate;
mod market;
mod rng;
mod simulator;

#[cfg(test)]
mod tests;

pub use config::{MAX_ACCOUNTS, MAX_POSITIONS_PER_ACCOUNT, SimConfig};
pub use day::{DayConfig, TradingDay};
pub use generate::Injected;
pub use simulator::{Fault, NEVER_ANSWERS, SimBroker};
