//! The leases this instance holds and how long it trusts each, on its own monotonic clock.
//!
//! A lease is trusted until the start of its last successful claim or renewal plus the TTL
//! minus a margin: the database cannot expire it before then (its expiry was set at least
//! that late), so an instance that stops acting at its own deadline never acts on a lease
//! another instance may hold — also after a pause of the whole process, which wakes up past
//! its deadlines. No wall clock is compared with another machine's.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::store::Lease;

/// One lease held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The epoch it was claimed under.
    pub epoch: i64,
    /// When this instance stops acting on it unless renewed.
    pub trusted_until: Instant,
}

/// The leases held, by account.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    held: BTreeMap<String, Held>,
    /// How long a lease is trusted after the start of the statement that set its expiry.
    window: Duration,
}

impl Trust {
    /// Leases are trusted for `ttl - margin` after their claim or renewal started.
    pub fn new(ttl: Duration, margin: Duration) -> Self {
        Self {
            held: BTreeMap::new(),
            window: ttl.saturating_sub(margin),
        }
    }

    /// A lease claimed by a statement that started at `started`.
    pub fn claimed(&mut self, lease: &Lease, started: Instant) {
        self.held.insert(
            lease.account_id.clone(),
            Held {
                epoch: lease.epoch,
                trusted_until: started + self.window,
            },
        );
    }

    /// A renewal of `sent` that started at `started` renewed `renewed`: those are trusted
    /// anew; the others of `sent` still held under the same epoch are lost and returned.
    pub fn renewed(&mut self, sent: &[Lease], renewed: &[String], started: Instant) -> Vec<String> {
        let renewed: std::collections::BTreeSet<&str> =
            renewed.iter().map(String::as_str).collect();
        let mut lost = Vec::new();
        for lease in sent {
            let Some(held) = self.held.get_mut(&lease.account_id) else {
                continue;
            };
            if held.epoch != lease.epoch {
                continue;
            }
            if renewed.contains(lease.account_id.as_str()) {
                held.trusted_until = held.trusted_until.max(started + self.window);
            } else {
                self.held.remove(&lease.account_id);
                lost.push(lease.account_id.clone());
            }
        }
        lost
    }

    /// Drops and returns the leases whose deadline is at or before `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let gone: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| h.trusted_until <= now)
            .map(|(a, _)| a.clone())
            .collect();
        for a in &gone {
            self.held.remove(a);
        }
        gone
    }

    /// Drops the lease of `account`, returning it.
    pub fn remove(&mut self, account: &str) -> Option<Lease> {
        self.held.remove(account).map(|h| Lease {
            account_id: account.to_owned(),
            epoch: h.epoch,
        })
    }

    /// Drops every lease, returning them.
    pub fn clear(&mut self) -> Vec<Lease> {
        let all = self.leases();
        self.held.clear();
        all
    }

    /// Every lease held.
    pub fn leases(&self) -> Vec<Lease> {
        self.held
            .iter()
            .map(|(a, h)| Lease {
                account_id: a.clone(),
                epoch: h.epoch,
            })
            .collect()
    }

    /// Whether `account` is held.
    pub fn holds(&self, account: &str) -> bool {
        self.held.contains_key(account)
    }

    /// How many leases are held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(a: &str, epoch: i64) -> Lease {
        Lease {
            account_id: a.into(),
            epoch,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_start_of_the_last_renewal() {
        let mut t = Trust::new(Duration::from_secs(15), Duration::from_secs(3));
        let t0 = Instant::now();
        t.claimed(&lease("a", 1), t0);
        t.claimed(&lease("b", 4), t0);
        assert!(t.expire(t0 + Duration::from_secs(11)).is_empty());
        let lost = t.renewed(
            &[lease("a", 1), lease("b", 4)],
            &["a".to_owned()],
            t0 + Duration::from_secs(5),
        );
        assert_eq!(lost, vec!["b".to_owned()]);
        assert!(t.expire(t0 + Duration::from_secs(16)).is_empty());
        assert_eq!(t.expire(t0 + Duration::from_secs(17)), vec!["a".to_owned()]);
        assert!(t.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_of_an_older_epoch_changes_nothing() {
        let mut t = Trust::new(Duration::from_secs(15), Duration::from_secs(3));
        let t0 = Instant::now();
        t.claimed(&lease("a", 2), t0);
        let lost = t.renewed(&[lease("a", 1)], &[], t0);
        assert!(lost.is_empty());
        assert!(t.holds("a"));
    }
}
