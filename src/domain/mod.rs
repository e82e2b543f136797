//! The pure domain: positions, trades, pips, matching and divergences.
//! No tokio, no sea-orm, no clock: everything here is a function of its arguments.

pub mod book;
pub mod close_reasons;
pub mod close_tracker;
mod compare;
pub mod decimal_serde;
pub mod divergence;
pub mod facts;
mod heuristic;
pub mod judge;
pub mod model;
mod netting;
mod orders;
pub mod pips;
pub mod reconcile;
pub mod rules;
pub mod scope;
pub mod service_closes;
pub mod values;

#[cfg(test)]
mod book_tests;
#[cfg(test)]
mod extreme_tests;
#[cfg(test)]
mod live_tests;
#[cfg(test)]
mod tests;

pub use book::{Book, External, Holding, Netted, PendingFill};
pub use close_tracker::CloseLookups;
pub use divergence::{
    CloseDetail, Divergence, DivergenceKind, Match, MatchMethod, Reconciliation, Unit, Value,
};
pub use facts::{Deal, DealEntry, DealLookup, DealReason, MarginMode, PendingOrder};
pub use judge::{Judge, LiveRules, Verdict};
pub use model::{AccountSnapshot, BotTrade, BrokerPosition, Quote};
pub use pips::{SymbolSpec, SymbolTable, UnknownPipSize};
pub use reconcile::{ReconcileError, reconcile, reconcile_book};
pub use rules::{MAX_TOLERANCE, ReconcileRules, ToleranceOverride, Tolerances};
pub use scope::{ExternalPolicy, Scope, Scopes};
pub use service_closes::relabel_service_closes;
pub use values::{Price, Side, ValueError, Volume};
