//! The `sync_rollups` table: one row per account and hour, counting the syncs of that
//! hour, with a histogram of their durations over fixed bounds.

use sea_orm::entity::prelude::*;

/// A row of `sync_rollups`. Unique per (account, hour); every counter adds up when two
/// rollups of the same hour merge, `max_ms` takes the larger.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_rollups")]
pub struct Model {
    /// Surrogate key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Account.
    pub account_id: String,
    /// Start of the hour (UTC).
    pub hour: DateTimeUtc,
    /// Syncs in the hour, failed or not.
    pub syncs: i64,
    /// Failed syncs of class `timeout`.
    pub failed_timeout: i64,
    /// … `retryable`.
    pub failed_retryable: i64,
    /// … `permanent`.
    pub failed_permanent: i64,
    /// … `malformed`.
    pub failed_malformed: i64,
    /// … `crash`.
    pub failed_crash: i64,
    /// … of a class this version does not know.
    pub failed_other: i64,
    /// Sum of the durations, in milliseconds.
    pub sum_ms: i64,
    /// Syncs of at most 1 ms.
    pub le_1ms: i64,
    /// Syncs of more than the previous bound and at most 2 ms.
    pub le_2ms: i64,
    /// … at most 5 ms.
    pub le_5ms: i64,
    /// … at most 10 ms.
    pub le_10ms: i64,
    /// … at most 20 ms.
    pub le_20ms: i64,
    /// … at most 50 ms.
    pub le_50ms: i64,
    /// … at most 100 ms.
    pub le_100ms: i64,
    /// … at most 200 ms.
    pub le_200ms: i64,
    /// … at most 500 ms.
    pub le_500ms: i64,
    /// … at most 1 s.
    pub le_1000ms: i64,
    /// … at most 2 s.
    pub le_2000ms: i64,
    /// … at most 5 s.
    pub le_5000ms: i64,
    /// … at most 10 s.
    pub le_10000ms: i64,
    /// … at most 30 s.
    pub le_30000ms: i64,
    /// Syncs of more than 30 s.
    pub gt_30000ms: i64,
    /// The longest sync, in milliseconds.
    pub max_ms: i64,
}

impl ActiveModelBehavior for ActiveModel {}
