//! Where writes refused by the fence are reported (see `store::check_fences`): the
//! persistence actor and the guards call a [`FenceSink`]; the supervisor's sink counts
//! them, logs them and drops the account at once.

use std::sync::Arc;

use crate::store::FencedOut;

/// Items of one account refused because its lease moved on; they are dropped, not retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencedWrites {
    /// The account, the epoch the items were produced under and the lease as it is now.
    pub out: FencedOut,
    /// How many items were dropped.
    pub items: u64,
}

/// Where fenced writes are reported: a callback, so writers know nothing of the supervisor.
#[derive(Clone)]
pub struct FenceSink(Arc<dyn Fn(FencedWrites) + Send + Sync>);

impl FenceSink {
    /// A sink that calls `f` with every report.
    pub fn new(f: impl Fn(FencedWrites) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// A sink that only logs (without high availability nothing is ever fenced).
    pub fn log_only() -> Self {
        Self::new(|w| {
            tracing::warn!(account = %w.out.account_id, epoch = w.out.epoch, items = w.items, "writes fenced");
        })
    }

    /// Reports `writes`.
    pub fn report(&self, writes: FencedWrites) {
        (self.0)(writes);
    }
}

impl Default for FenceSink {
    fn default() -> Self {
        Self::log_only()
    }
}

impl std::fmt::Debug for FenceSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FenceSink")
    }
}
