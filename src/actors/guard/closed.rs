//! The positions this service closed on an account, by ticket, with their alert: written
//! by the account's guard when a close is confirmed, read by its sync to report the bot's
//! trades of those positions as `closed_by_service`. The database keeps the durable copy
//! (`service_closes`); the guard loads it when it starts.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::domain::Value;

/// Tickets this service closed → their alert (the `al-…` id as a number).
#[derive(Debug, Clone, Default)]
pub struct ServiceCloses(Arc<RwLock<HashMap<u64, u64>>>);

impl ServiceCloses {
    /// Remembers that `ticket` was closed under alert `alert` (`al-…`); ignores an id of
    /// another shape.
    pub fn insert(&self, ticket: u64, alert: &str) {
        if let Ok(Value::Alert(id)) = alert.parse::<Value>() {
            self.0
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(ticket, id);
        }
    }

    /// The alert `ticket` was closed under, if this service closed it.
    pub fn alert_of(&self, ticket: u64) -> Option<u64> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&ticket)
            .copied()
    }

    /// Whether nothing is remembered (most accounts, most of the time).
    pub fn is_empty(&self) -> bool {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// Forgets the tickets `still_open` says the bot no longer holds a trade for.
    pub fn retain(&self, still_open: impl Fn(u64) -> bool) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|t, _| still_open(*t));
    }
}
