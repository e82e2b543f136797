//! What an account looked like at its last reconciled sync: the broker's positions, the
//! bot's trades, how they were paired and the positions outside the bot's scope. Kept in
//! memory only (one slot per account, replaced by each sync) for the dashboard's account
//! page; nothing here is stored.

use std::sync::{Arc, Mutex, PoisonError};

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

/// One account's slot: written by its sync actor, read by the supervisor for the API.
#[derive(Debug, Clone, Default)]
pub struct LiveSlot(Arc<Mutex<Option<Arc<LiveView>>>>);

impl LiveSlot {
    /// Replaces the view.
    pub fn set(&self, view: LiveView) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(view));
    }

    /// The last view, if a sync reconciled the account yet.
    pub fn get(&self) -> Option<Arc<LiveView>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
