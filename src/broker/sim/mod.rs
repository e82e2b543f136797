//! The simulated broker: deterministic, seeded accounts with configurable noise, plus
//! scriptable latency and faults, for the demo, the integration tests and benchmarks.
//!
//! The same seed always gives byte-identical trades and positions, and every piece of
//! noise is recorded ([`SimBroker::injected`]) as the divergence it should produce.
//!
//! Each account also has a margin mode, pending orders and a deal history: positions the
//! simulator opens or closes (its own `close_position`, and the trading hooks of
//! `trading`) leave their deals, which `position_deals` answers from. Generated positions
//! predate the history's window and have none.

mod config;
pub mod day;
mod generate;
mod history;
mod market;
mod rng;
mod simulator;
mod trading;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod trading_tests;

pub use config::{MAX_ACCOUNTS, MAX_POSITIONS_PER_ACCOUNT, SimConfig};
pub use day::{DayConfig, TradingDay};
pub use generate::Injected;
pub use history::{DealReport, FIRST_DEAL_TICKET, MAX_DEALS_PER_ACCOUNT};
pub use simulator::{FIRST_SIM_TICKET, Fault, NEVER_ANSWERS, SimBroker};
