//! The latest quiet sync of each account, waiting to move `last_seen`.
//!
//! A sync that changed nothing and did not fail is not kept as a row: it only counts in
//! its hour's rollup and observes its account's open divergences (see
//! `store::mark_seen`). Only the latest such observation per account matters, so they
//! wait here as one time per account instead of one report per sync: while the database
//! is away, the memory they take follows the number of accounts, not of syncs.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::store::{Sighting, SyncRunRecord};

/// The latest sighting of each account since the last write.
#[derive(Debug, Default)]
pub(super) struct LatestSightings {
    latest: HashMap<String, DateTime<Utc>>,
}

impl LatestSightings {
    /// Notes `run` (a successful sync) as a sighting of its account.
    pub fn note(&mut self, run: &SyncRunRecord) {
        self.note_at(&run.account_id, run.finished_at);
    }

    fn note_at(&mut self, account: &str, at: DateTime<Utc>) {
        match self.latest.get_mut(account) {
            Some(seen) => *seen = Ord::max(*seen, at),
            None => {
                self.latest.insert(account.to_owned(), at);
            }
        }
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
            .map(|(account_id, at)| Sighting {
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
            s.note(&SyncRunRecord::begun(account, at(secs)));
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
