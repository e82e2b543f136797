//! The lease actor's counters, shared with the status.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;

/// Counters the lease actor updates and the status reads.
#[derive(Debug, Clone)]
pub struct HaStats(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    instance_id: String,
    owned: AtomicU64,
    acquired: AtomicU64,
    lost: AtomicU64,
    live_instances: AtomicU64,
    database_away: AtomicBool,
    fenced_writes: AtomicU64,
}

/// High availability as the status shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HaStatus {
    /// This instance's id.
    pub instance_id: String,
    /// Accounts whose lease this instance holds.
    pub owned_accounts: u64,
    /// Leases taken (claims) since start.
    pub leases_acquired: u64,
    /// Leases given up or lost since start.
    pub leases_lost: u64,
    /// Live instances at the last heartbeat, this one included.
    pub live_instances: u64,
    /// Whether the database has been away longer than the lease (then nothing is owned).
    pub database_away: bool,
    /// Writes refused since start because their account's lease had moved on (each
    /// dropped, and its account dropped here).
    pub fenced_writes: u64,
}

impl HaStats {
    /// Counters of instance `instance_id`, all zero.
    pub fn new(instance_id: &str) -> Self {
        Self(Arc::new(Inner {
            instance_id: instance_id.to_owned(),
            owned: AtomicU64::new(0),
            acquired: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            live_instances: AtomicU64::new(0),
            database_away: AtomicBool::new(false),
            fenced_writes: AtomicU64::new(0),
        }))
    }

    pub(super) fn set_owned(&self, n: usize) {
        self.0.owned.store(n as u64, Ordering::Relaxed);
    }

    pub(super) fn acquired(&self, n: usize) {
        self.0.acquired.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(super) fn lost(&self, n: usize) {
        self.0.lost.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(super) fn set_live(&self, n: u64) {
        self.0.live_instances.store(n, Ordering::Relaxed);
    }

    pub(super) fn set_away(&self, away: bool) {
        self.0.database_away.store(away, Ordering::Relaxed);
    }

    /// Counts `n` writes refused by their fence.
    pub fn fenced(&self, n: u64) {
        self.0.fenced_writes.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> HaStatus {
        let i = &self.0;
        HaStatus {
            instance_id: i.instance_id.clone(),
            owned_accounts: i.owned.load(Ordering::Relaxed),
            leases_acquired: i.acquired.load(Ordering::Relaxed),
            leases_lost: i.lost.load(Ordering::Relaxed),
            live_instances: i.live_instances.load(Ordering::Relaxed),
            database_away: i.database_away.load(Ordering::Relaxed),
            fenced_writes: i.fenced_writes.load(Ordering::Relaxed),
        }
    }
}
