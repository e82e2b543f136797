//! Hourly rollups of sync reports, folded in memory and written now and then.
//!
//! Every sync counts in its account's rollup of the hour it started in. Only the reports
//! an operator needs row by row stay `sync_runs` rows (see
//! [`SyncRunRecord::kept_raw`]: failures, and syncs that opened or resolved a
//! divergence). A report that arrives on its own (a sync that changed nothing, or failed)
//! is folded when it arrives; a state's report once its batch is written, since only then
//! is it known what the sync changed.
//!
//! The fold lives here, in memory, per (account, hour), and is written as one upsert
//! row per key that **adds** to the stored row (see `store::add_rollups`), at most every
//! [`ROLLUP_WRITE_EVERY`] of the tree's clock, when an hour is over, on an explicit
//! flush and when the actor stops. At a 10 s interval an account's six syncs of a minute
//! cost one row write instead of six `sync_runs` inserts, so writes per sync stay below
//! what one row per sync cost. Adding (not overwriting) makes a write safe to repeat
//! after a partial failure, and lets a second instance or a replay write the same hour.
//! The cost: a crash of the process loses the counts of at most that long (failures and
//! changes are raw rows, written with their batch, and are not lost).

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::store::{SyncRollup, SyncRunRecord, hour_of};

/// How often pending rollups are written at most, in the tree's clock (besides at the
/// end of an hour, on an explicit flush and on stop).
pub const ROLLUP_WRITE_EVERY: TimeDelta = TimeDelta::seconds(60);

/// Rollups folded since the last write.
#[derive(Debug, Default)]
pub(super) struct PendingRollups {
    pending: HashMap<(String, DateTime<Utc>), SyncRollup>,
    last_write: Option<DateTime<Utc>>,
}

impl PendingRollups {
    /// Counts each run in its account-hour, as the number of syncs it stands for (more
    /// than one for a report folded while the database was away).
    pub fn fold<'a>(&mut self, runs: impl IntoIterator<Item = (&'a SyncRunRecord, u64)>) {
        for (run, syncs) in runs {
            let hour = hour_of(run.started_at);
            self.pending
                .entry((run.account_id.clone(), hour))
                .or_insert_with(|| SyncRollup::new(&run.account_id, hour))
                .observe_many(run, syncs);
        }
    }

    /// Keys waiting to be written.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Whether a write is due at `now`: some rollup is pending and either
    /// [`ROLLUP_WRITE_EVERY`] has passed since the last write (or none happened yet) or a
    /// pending hour is over.
    pub fn due(&mut self, now: DateTime<Utc>) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        let last = *self.last_write.get_or_insert(now);
        let current = hour_of(now);
        now - last >= ROLLUP_WRITE_EVERY || self.pending.keys().any(|(_, h)| *h < current)
    }

    /// Takes every pending rollup for a write at `now`.
    pub fn take(&mut self, now: DateTime<Utc>) -> Vec<SyncRollup> {
        self.last_write = Some(now);
        self.pending.drain().map(|(_, r)| r).collect()
    }

    /// Puts back rollups whose write failed (merged with any folded meanwhile).
    pub fn put_back(&mut self, rollups: Vec<SyncRollup>) {
        for r in rollups {
            match self.pending.get_mut(&(r.account_id.clone(), r.hour)) {
                Some(p) => p.merge(&r),
                None => {
                    self.pending.insert((r.account_id.clone(), r.hour), r);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap_or_default()
    }

    fn run(account: &str, started: &str) -> SyncRunRecord {
        SyncRunRecord {
            duration: Duration::from_millis(30),
            ..SyncRunRecord::begun(account, at(started))
        }
    }

    #[test]
    fn runs_fold_per_account_and_hour_and_writes_come_when_due() {
        let mut p = PendingRollups::default();
        assert!(!p.due(at("2026-12-03T10:00:00Z")), "nothing pending");
        let runs = [
            run("a", "2026-12-03T10:00:01Z"),
            run("a", "2026-12-03T10:59:59Z"),
            run("b", "2026-12-03T10:30:00Z"),
        ];
        p.fold(runs.iter().map(|r| (r, 1)));
        assert_eq!(p.len(), 2);
        assert!(
            !p.due(at("2026-12-03T10:59:59Z")),
            "first look starts the wait"
        );
        assert!(p.due(at("2026-12-03T11:00:00Z")), "the hour is over");
        let taken = p.take(at("2026-12-03T11:00:00Z"));
        assert_eq!(taken.iter().map(|r| r.syncs).sum::<u64>(), 3);
        p.fold([(&run("a", "2026-12-03T11:00:05Z"), 4)]);
        assert!(!p.due(at("2026-12-03T11:00:59Z")));
        assert!(
            p.due(at("2026-12-03T11:01:00Z")),
            "a minute after the last write"
        );
        p.put_back(taken);
        assert_eq!(p.len(), 3, "put back beside the newer hour");
        let all = p.take(at("2026-12-03T11:02:00Z"));
        assert_eq!(all.iter().map(|r| r.syncs).sum::<u64>(), 7);
    }
}
