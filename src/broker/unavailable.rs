//! A connector that could not be set up (its token is missing, its TLS failed …): every
//! snapshot fails with the same permanent error, so its accounts are disabled with a
//! reason an operator can read, and the other connectors run on.

use super::{BoxFuture, Broker, BrokerError};
use crate::domain::AccountSnapshot;

/// A broker whose every read fails permanently with `reason`.
#[derive(Debug, Clone)]
pub struct Unavailable {
    reason: String,
}

impl Unavailable {
    /// A broker that answers every snapshot with `Permanent(reason)`; `reason` must not
    /// carry a secret.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

impl Broker for Unavailable {
    fn snapshot<'a>(
        &'a self,
        _account: &'a str,
    ) -> BoxFuture<'a, Result<AccountSnapshot, BrokerError>> {
        Box::pin(async move { Err(BrokerError::Permanent(self.reason.clone())) })
    }
}
