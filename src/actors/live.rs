//! What an account looked like at its last reconciled sync: the broker's positions, the
//! bot's trades, how they were paired and the positions outside the bot's scope, for the
//! dashboard's account page. Kept in memory only, and only while someone looks: reading
//! the slot asks the account's syncs to fill it for [`KEEP_WHILE_READ`]; a sync after that
//! empties it. Ten thousand accounts nobody looks at cost one empty slot each.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{BotTrade, BrokerPosition, External, Match};

/// The last reconciled sync of an account.
#[derive(Debug, Clone, Serialize)]
pub struct LiveView {
    /// When the broker's snapshot was taken.
    pub taken_at: DateTime<Utc>,
    /// The broker's positions.
    pub positions: Vec<BrokerPosition>,
    /// The bot's open trades.
    pub trades: Vec<BotTrade>,
    /// Trades paired with positions, and how (`ticket`, `client_id`, `heuristic`,
    /// `netting`).
    pub matched: Vec<Match>,
    /// Positions and orders outside the bot's scope.
    pub external: Vec<External>,
}

/// How long one read keeps the syncs filling the slot (the account page reads it every
/// few seconds while it is open).
pub const KEEP_WHILE_READ: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Slot {
    view: Option<Arc<LiveView>>,
    wanted_until: Option<Instant>,
}

/// One account's slot: written by its sync actor, read by the supervisor for the API.
#[derive(Debug, Clone, Default)]
pub struct LiveSlot(Arc<Mutex<Slot>>);

impl LiveSlot {
    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether someone read the slot within [`KEEP_WHILE_READ`]; when not, the view is
    /// dropped and the sync need not build one.
    pub fn wanted(&self) -> bool {
        let mut slot = self.slot();
        let wanted = slot.wanted_until.is_some_and(|t| Instant::now() < t);
        if !wanted {
            slot.view = None;
        }
        wanted
    }

    /// Replaces the view.
    pub fn set(&self, view: LiveView) {
        self.slot().view = Some(Arc::new(view));
    }

    /// The last view, if a sync filled the slot since it was first read; keeps the syncs
    /// filling it for [`KEEP_WHILE_READ`].
    pub fn get(&self) -> Option<Arc<LiveView>> {
        let mut slot = self.slot();
        slot.wanted_until = Some(Instant::now() + KEEP_WHILE_READ);
        slot.view.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> LiveView {
        LiveView {
            taken_at: chrono::DateTime::UNIX_EPOCH,
            positions: Vec::new(),
            trades: Vec::new(),
            matched: Vec::new(),
            external: Vec::new(),
        }
    }

    #[test]
    fn a_slot_is_filled_only_once_someone_reads_it() {
        let slot = LiveSlot::default();
        assert!(!slot.wanted(), "nobody asked yet");
        assert!(slot.get().is_none(), "the first read finds nothing …");
        assert!(slot.wanted(), "… and asks the syncs for a view");
        slot.set(view());
        assert!(slot.get().is_some());
        slot.slot().wanted_until = Some(Instant::now());
        assert!(!slot.wanted(), "no reader for a while");
        assert!(slot.slot().view.is_none(), "the view is dropped");
    }
}
