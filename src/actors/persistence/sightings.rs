//! The latest quiet sync of each account, waiting to move `last_seen`.
//!
//! A sync that changed nothing and did not fail is not kept as a row: it only counts in
//! its hour's rollup and observes its account's open divergences (see
//! `store::mark_seen`). Only the latest such observation per account matters, so they
//! wait here as one time per account instead of one report per sync: while the database
//! is away, the memory they take follows the number of accounts, not of syncs.
//!
//! Each sighting keeps the fence of the report it came from: a sighting of an account whose
//! lease moved on is not written (see `store::check_fences`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use sea_orm::{DatabaseConnection, TransactionTrait};

use crate::actors::fencing::{FenceSink, FencedWrites};
use crate::store::{self, Fence, FenceCheck, Sighting, StoreError, SyncRunRecord};

/// The latest sighting of each account since the last write.
#[derive(Debug, Default)]
pub(super) struct LatestSightings {
    latest: HashMap<String, (DateTime<Utc>, Option<Fence>)>,
}

impl LatestSightings {
    /// Notes `run` (a successful sync produced under `fence`) as a sighting of its account.
    pub fn note(&mut self, run: &SyncRunRecord, fence: Option<Fence>) {
        self.note_at(&run.account_id, run.finished_at, fence);
    }

    fn note_at(&mut self, account: &str, at: DateTime<Utc>, fence: Option<Fence>) {
        match self.latest.get_mut(account) {
            // The latest fence: a sighting made under a newer lease supersedes.
            Some((seen, f)) => {
                *seen = Ord::max(*seen, at);
                if fence.as_ref().map(|f| f.epoch) >= f.as_ref().map(|f| f.epoch) {
                    *f = fence;
                }
            }
            None => {
                self.latest.insert(account.to_owned(), (at, fence));
            }
        }
    }

    /// Every (account, fence) of the fenced sightings, to check.
    fn fences(&self) -> Vec<(&str, &Fence)> {
        self.latest
            .iter()
            .filter_map(|(a, (_, f))| Some((a.as_str(), f.as_ref()?)))
            .collect()
    }

    /// Forgets the sightings `check` refuses; returns how many.
    pub fn drop_fenced(&mut self, check: &FenceCheck) -> usize {
        let before = self.latest.len();
        self.latest.retain(|a, (_, f)| check.allows(a, f.as_ref()));
        before - self.latest.len()
    }

    /// Accounts waiting.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// The sightings to write.
    pub fn pending(&self) -> Vec<Sighting<'_>> {
        self.latest
            .iter()
            .map(|(account_id, (at, _))| Sighting {
                account_id,
                at: *at,
            })
            .collect()
    }

    /// Forgets what was written. Keeps the capacity, so the next minute's sightings reuse
    /// the same table.
    pub fn clear(&mut self) {
        self.latest.clear();
    }

    /// Moves `last_seen` to the latest quiet sighting of each account noted since the last
    /// write, leaving out (and reporting to `fenced`) those of accounts whose lease moved
    /// on. Runs after the buffered states are written, so a sighting never precedes the
    /// state it observed; on failure they stay for the next attempt.
    pub async fn write(
        &mut self,
        db: &DatabaseConnection,
        fenced: &FenceSink,
    ) -> Result<(), StoreError> {
        if self.is_empty() {
            return Ok(());
        }
        if self.fences().is_empty() {
            store::mark_seen(db, &self.pending()).await?;
        } else {
            let txn = db.begin().await?;
            let check = store::check_fences(&txn, self.fences()).await?;
            self.drop_fenced(&check);
            store::mark_seen(&txn, &self.pending()).await?;
            txn.commit().await?;
            // One sighting per account.
            for out in check.refused() {
                fenced.report(FencedWrites { out, items: 1 });
            }
        }
        self.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000 + secs, 0).unwrap_or_default()
    }

    #[test]
    fn one_latest_sighting_per_account_whatever_the_order() {
        let mut s = LatestSightings::default();
        for (account, secs) in [("a", 10), ("b", 5), ("a", 30), ("a", 20)] {
            s.note(&SyncRunRecord::begun(account, at(secs)), None);
        }
        let mut pending: Vec<(String, DateTime<Utc>)> = s
            .pending()
            .into_iter()
            .map(|p| (p.account_id.to_owned(), p.at))
            .collect();
        pending.sort();
        assert_eq!(pending, vec![("a".into(), at(30)), ("b".into(), at(5))]);
        s.clear();
        assert!(s.is_empty());
    }
}
