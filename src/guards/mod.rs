//! Risk guards: drawdown limits and market conditions, alerts, and automatic closes.
//!
//! Guards run inside each account's sync actor, on the snapshot every sync fetches, so a
//! failing guard follows the account's circuit breaker like any other failure. The default
//! is detect-only: alerts go out, nothing is closed until `[guards] auto_close` lists the
//! account. A breach alerts at once and schedules the close `alert_lead_secs` later; an
//! operator may cancel it meanwhile; a market guard that holds postpones it.

pub mod alerts;
pub mod config;
pub mod drawdown;
pub mod engine;
pub mod lifecycle;
pub mod market;

pub use alerts::{Alert, Sinks};
pub use config::GuardsConfig;
pub use drawdown::{Evaluation, Level};
pub use engine::{Crossing, GuardMemory, GuardSet};
pub use lifecycle::AlertStatus;
pub use market::Hold;
