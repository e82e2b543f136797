//! A fake MetaApi REST server on loopback, in MetaApi's documented paths and payload
//! shapes.
//!
//! - [`FakeMetaApi::start`]: accounts scripted per test, every request recorded
//!   (the adapter's integration tests, in process).
//! - [`Fleet`]: generated accounts holding positions at the quoted prices, for the load
//!   harness and for several service processes sharing one broker; run as its own process
//!   (`fake-metaapi --accounts 10000 --latency-ms 100-200`, see [`process`]), so what it
//!   costs is never counted as the service's.
//! - [`Stats`]: connections accepted and requests by endpoint, served on
//!   [`STATS_PATH`](stats::STATS_PATH).

pub mod fleet;
pub mod process;
mod scripted;
pub mod stats;

pub use fleet::{Fleet, FleetPosition};
pub use scripted::{ACCOUNT, FakeMetaApi, Options, POSITIONS, Script, Seen, price_body};
pub use stats::{Latency, Stats};
