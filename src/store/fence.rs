//! The fencing token of an account's side effects under high availability.

/// Who may write for an account, and under which epoch: the instance that owns the
/// account's lease and the epoch it claimed it under. A side effect carries its account's
/// fence (or none without high availability, and always on SQLite), and is written only
/// while the lease row still names this owner and epoch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fence {
    /// This instance's id (the lease's `owner`).
    pub instance_id: String,
    /// The lease's epoch when this instance claimed it.
    pub epoch: i64,
}
