//! Hourly rollups of syncs: one row per account and hour, so that a sync that neither
//! failed nor changed a divergence costs no row of its own.
//!
//! A rollup counts every sync of its hour (failed or not), the failures by class, the sum
//! and maximum of the durations, and a histogram of the durations over the fixed bounds
//! [`BUCKET_BOUNDS_MS`]. Percentiles are read from the histogram ([`SyncRollup::percentile`]),
//! never stored: two rollups of the same account and hour (one instance writing the same
//! hour twice, a replay, another instance later) merge exactly by adding their counters,
//! in memory with [`SyncRollup::merge`] and in the database with
//! `ON CONFLICT (account_id, hour) DO UPDATE` adding column to column.

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};

use super::convert::db_time;
use super::entities::sync_rollup;
use super::error::StoreError;
use super::isolate::{Rows, write, write_isolating};
use super::journal::SyncRunRecord;

/// Upper bounds of the duration buckets, in milliseconds (log-spaced, 1-2-5). A last
/// bucket holds the syncs above the last bound.
pub const BUCKET_BOUNDS_MS: [u64; 14] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000,
];

/// Buckets of a rollup: one per bound, and one above the last.
pub const BUCKETS: usize = BUCKET_BOUNDS_MS.len() + 1;

/// Failure classes a rollup counts, in the order of [`SyncRollup::failures`]: the broker's
/// error classes, and `other` for a class this version does not know.
pub const FAILURE_CLASSES: [&str; 6] = [
    "timeout",
    "retryable",
    "permanent",
    "malformed",
    "crash",
    "other",
];

/// The syncs of one account in one hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRollup {
    /// Account.
    pub account_id: String,
    /// Start of the hour (UTC).
    pub hour: DateTime<Utc>,
    /// Syncs, failed or not.
    pub syncs: u64,
    /// Failed syncs per class of [`FAILURE_CLASSES`].
    pub failures: [u64; FAILURE_CLASSES.len()],
    /// Sum of the durations, in milliseconds.
    pub sum_ms: u64,
    /// The longest duration, in milliseconds.
    pub max_ms: u64,
    /// Syncs per duration bucket (not cumulative): `buckets[i]` counts durations in
    /// `(BUCKET_BOUNDS_MS[i-1], BUCKET_BOUNDS_MS[i]]`, the last one those above every bound.
    pub buckets: [u64; BUCKETS],
}

/// The start of the hour of `at`.
pub fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    let secs = at.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(3_600), 0).unwrap_or(at)
}

/// The bucket of a duration of `ms` milliseconds.
fn bucket_of(ms: u64) -> usize {
    BUCKET_BOUNDS_MS
        .iter()
        .position(|&bound| ms <= bound)
        .unwrap_or(BUCKET_BOUNDS_MS.len())
}

impl SyncRollup {
    /// A rollup of no sync yet.
    pub fn new(account_id: &str, hour: DateTime<Utc>) -> Self {
        Self {
            account_id: account_id.to_owned(),
            hour: hour_of(hour),
            syncs: 0,
            failures: [0; FAILURE_CLASSES.len()],
            sum_ms: 0,
            max_ms: 0,
            buckets: [0; BUCKETS],
        }
    }

    /// Counts one sync (in whatever hour it is: the caller picks the rollup by
    /// [`hour_of`] its `started_at`).
    pub fn observe(&mut self, run: &SyncRunRecord) {
        self.observe_many(run, 1);
    }

    /// Counts a report that stands for `syncs` syncs of the same class whose durations
    /// add up to its `duration` (one folded while the database was away): each is
    /// counted with the mean duration. Nothing for 0.
    pub fn observe_many(&mut self, run: &SyncRunRecord, syncs: u64) {
        if syncs == 0 {
            return;
        }
        let total = u64::try_from(run.duration.as_millis()).unwrap_or(u64::MAX);
        let ms = total / syncs;
        self.syncs = self.syncs.saturating_add(syncs);
        if let Some(class) = &run.error_class {
            let i = FAILURE_CLASSES
                .iter()
                .position(|c| c == class)
                .unwrap_or(FAILURE_CLASSES.len() - 1);
            self.failures[i] = self.failures[i].saturating_add(syncs);
        }
        self.sum_ms = self.sum_ms.saturating_add(total);
        self.max_ms = self.max_ms.max(ms);
        let b = bucket_of(ms);
        self.buckets[b] = self.buckets[b].saturating_add(syncs);
    }

    /// Adds `other` (of the same account and hour) to this one.
    pub fn merge(&mut self, other: &SyncRollup) {
        self.syncs = self.syncs.saturating_add(other.syncs);
        for (a, b) in self.failures.iter_mut().zip(other.failures) {
            *a = a.saturating_add(b);
        }
        self.sum_ms = self.sum_ms.saturating_add(other.sum_ms);
        self.max_ms = self.max_ms.max(other.max_ms);
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a = a.saturating_add(b);
        }
    }

    /// Failed syncs of `class` (one of [`FAILURE_CLASSES`]; 0 for any other name).
    pub fn failed(&self, class: &str) -> u64 {
        FAILURE_CLASSES
            .iter()
            .position(|c| *c == class)
            .map_or(0, |i| self.failures[i])
    }

    /// Failed syncs of every class.
    pub fn failed_total(&self) -> u64 {
        self.failures.iter().fold(0, |a, b| a.saturating_add(*b))
    }

    /// The `q` quantile (0 < q ≤ 1) of the durations, in milliseconds, as the upper
    /// bound of the bucket that holds it (never above the maximum seen): an estimate that
    /// errs high, by at most the bucket's width. `None` without syncs.
    pub fn percentile(&self, q: f64) -> Option<u64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        // The rank of the quantile, 1-based: ceil(q · total), at least 1.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let bound = BUCKET_BOUNDS_MS.get(i).copied().unwrap_or(u64::MAX);
                return Some(bound.min(self.max_ms));
            }
        }
        Some(self.max_ms)
    }

    /// The median duration (see [`Self::percentile`]).
    pub fn p50(&self) -> Option<u64> {
        self.percentile(0.5)
    }

    /// The 99th percentile of the durations (see [`Self::percentile`]).
    pub fn p99(&self) -> Option<u64> {
        self.percentile(0.99)
    }
}

fn to_db(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_db(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn row(r: &SyncRollup) -> sync_rollup::ActiveModel {
    let f = |i: usize| Set(to_db(r.failures[i]));
    let b = |i: usize| Set(to_db(r.buckets[i]));
    sync_rollup::ActiveModel {
        id: NotSet,
        account_id: Set(r.account_id.clone()),
        hour: Set(db_time(hour_of(r.hour))),
        syncs: Set(to_db(r.syncs)),
        failed_timeout: f(0),
        failed_retryable: f(1),
        failed_permanent: f(2),
        failed_malformed: f(3),
        failed_crash: f(4),
        failed_other: f(5),
        sum_ms: Set(to_db(r.sum_ms)),
        le_1ms: b(0),
        le_2ms: b(1),
        le_5ms: b(2),
        le_10ms: b(3),
        le_20ms: b(4),
        le_50ms: b(5),
        le_100ms: b(6),
        le_200ms: b(7),
        le_500ms: b(8),
        le_1000ms: b(9),
        le_2000ms: b(10),
        le_5000ms: b(11),
        le_10000ms: b(12),
        le_30000ms: b(13),
        gt_30000ms: b(14),
        max_ms: Set(to_db(r.max_ms)),
    }
}

pub(super) fn from_row(m: sync_rollup::Model) -> SyncRollup {
    let failures = [
        m.failed_timeout,
        m.failed_retryable,
        m.failed_permanent,
        m.failed_malformed,
        m.failed_crash,
        m.failed_other,
    ]
    .map(from_db);
    let buckets = [
        m.le_1ms,
        m.le_2ms,
        m.le_5ms,
        m.le_10ms,
        m.le_20ms,
        m.le_50ms,
        m.le_100ms,
        m.le_200ms,
        m.le_500ms,
        m.le_1000ms,
        m.le_2000ms,
        m.le_5000ms,
        m.le_10000ms,
        m.le_30000ms,
        m.gt_30000ms,
    ]
    .map(from_db);
    SyncRollup {
        account_id: m.account_id,
        hour: m.hour,
        syncs: from_db(m.syncs),
        failures,
        sum_ms: from_db(m.sum_ms),
        max_ms: from_db(m.max_ms),
        buckets,
    }
}

/// One row per (account, hour): rollups of the same key merged first, since one
/// statement cannot update the same row twice.
fn merged_rows(rollups: &[SyncRollup]) -> Vec<sync_rollup::ActiveModel> {
    let mut merged: Vec<SyncRollup> = Vec::with_capacity(rollups.len());
    let mut index = std::collections::HashMap::new();
    for r in rollups {
        let key = (r.account_id.as_str(), hour_of(r.hour));
        match index.get(&key) {
            Some(&i) => SyncRollup::merge(&mut merged[i], r),
            None => {
                index.insert(key, merged.len());
                merged.push(r.clone());
            }
        }
    }
    merged.iter().map(row).collect()
}

/// Adds `rollups` to the stored ones of the same account and hour (a new row for a new
/// key). Works inside a caller's transaction.
pub async fn add_rollups<C: ConnectionTrait>(
    db: &C,
    rollups: &[SyncRollup],
) -> Result<(), StoreError> {
    write(db, Rows::Rollups(&merged_rows(rollups))).await
}

/// Like [`add_rollups`], but a rollup the database refuses is left out instead of failing
/// the batch; returns each one refused with its error. Run it inside a transaction.
pub async fn add_rollups_isolating<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    rollups: &[SyncRollup],
) -> Result<Vec<(SyncRollup, StoreError)>, StoreError> {
    let rows = merged_rows(rollups);
    let refused = write_isolating(db, Rows::Rollups(&rows)).await?;
    Ok(refused
        .into_iter()
        .map(|(i, e)| {
            let m = &rows[i];
            let account = match &m.account_id {
                Set(a) => a.clone(),
                _ => String::new(),
            };
            let hour = match &m.hour {
                Set(h) => *h,
                _ => DateTime::<Utc>::MIN_UTC,
            };
            let original = rollups
                .iter()
                .find(|r| r.account_id == account && hour_of(r.hour) == hour)
                .cloned()
                .unwrap_or_else(|| SyncRollup::new(&account, hour));
            (original, e)
        })
        .collect())
}

/// The stored rollups, by account then hour; only `account`'s when given.
pub async fn list_rollups<C: ConnectionTrait>(
    db: &C,
    account: Option<&str>,
) -> Result<Vec<SyncRollup>, StoreError> {
    let mut query = sync_rollup::Entity::find();
    if let Some(account) = account {
        query = query.filter(sync_rollup::Column::AccountId.eq(account));
    }
    let rows = query
        .order_by_asc(sync_rollup::Column::AccountId)
        .order_by_asc(sync_rollup::Column::Hour)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn run(ms: u64, class: Option<&str>) -> SyncRunRecord {
        let at = DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        SyncRunRecord {
            duration: Duration::from_millis(ms),
            error_class: class.map(str::to_owned),
            ..SyncRunRecord::begun("a", at)
        }
    }

    #[test]
    fn durations_fall_in_the_bucket_of_their_upper_bound() {
        for (ms, bucket) in [(0, 0), (1, 0), (2, 1), (3, 2), (30_000, 13), (30_001, 14)] {
            assert_eq!(bucket_of(ms), bucket, "{ms} ms");
        }
    }

    #[test]
    fn hours_start_on_the_hour() {
        let at: DateTime<Utc> = "2026-12-03T12:34:56.789Z".parse().unwrap_or_default();
        assert_eq!(hour_of(at).to_rfc3339(), "2026-12-03T12:00:00+00:00");
        assert_eq!(hour_of(hour_of(at)), hour_of(at));
    }

    #[test]
    fn percentiles_come_from_the_buckets_and_merging_adds_them() {
        let mut a = SyncRollup::new("a", DateTime::UNIX_EPOCH);
        for _ in 0..98 {
            a.observe(&run(40, None));
        }
        let mut b = SyncRollup::new("a", DateTime::UNIX_EPOCH);
        b.observe(&run(150, Some("timeout")));
        b.observe(&run(4_000, Some("nonsense")));
        a.merge(&b);
        assert_eq!(a.syncs, 100);
        assert_eq!((a.failed("timeout"), a.failed("other")), (1, 1));
        assert_eq!(a.failed_total(), 2);
        assert_eq!(a.p50(), Some(50), "40 ms is in the (20, 50] bucket");
        assert_eq!(a.p99(), Some(200), "the 99th of 100 is the 150 ms sync");
        assert_eq!(a.percentile(1.0), Some(4_000), "capped by the maximum");
        assert_eq!(a.max_ms, 4_000);
        assert_eq!(a.sum_ms, 98 * 40 + 150 + 4_000);
        assert_eq!(SyncRollup::new("a", DateTime::UNIX_EPOCH).p50(), None);
        let mut folded = SyncRollup::new("a", DateTime::UNIX_EPOCH);
        folded.observe_many(&run(300, Some("crash")), 3);
        assert_eq!((folded.syncs, folded.failed("crash")), (3, 3));
        assert_eq!(
            (folded.buckets[6], folded.sum_ms, folded.max_ms),
            (3, 300, 100)
        );
    }
}
