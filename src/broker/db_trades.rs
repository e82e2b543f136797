//! The default trade source: the bot's open trades from the `bot_trades` table, kept in
//! memory between syncs.
//!
//! Each account's open set is kept with the change marker it was read at (see
//! `store::trade_revisions_since`). The markers of all accounts are read together, at most
//! once per [`MARKERS_MAX_AGE`] and only when a sync asks: those changed in the last
//! [`CHANGE_WINDOW`] by the writer's clock, and every marker once per
//! [`FULL_READ_EVERY`] (a writer whose clock lags further, or a change committed that
//! late, is still seen within it). A sync re-reads an account's trades only when its
//! marker moved, so a write by any process (the API, NATS, the command line, another
//! instance) is seen by the account's syncs that start once the next read of the markers
//! has ended (about a second after it), without a query per sync. One sync reads the
//! markers and waits for them; the syncs that come meanwhile take the markers as they
//! are, so a database that answers slowly delays one sync, not every one. An account
//! without a marker (never written through the store) is read on every sync.
//!
//! The first full read of the markers also fills the kept trades of every account that has
//! one, in pages of [`WARM_PAGE`] rows ordered by (account, trade id): a service starting
//! with many accounts asks the database a handful of queries, not one per account.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use sea_orm::DatabaseConnection;
use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

use super::{BoxFuture, BrokerError, TradeSource};
use crate::domain::BotTrade;
use crate::store::{self, StoreError};

/// Markers read longer ago than this are read again when a sync asks.
pub const MARKERS_MAX_AGE: Duration = Duration::from_secs(1);
/// Each read takes the markers changed this long before it, by the writer's clock.
pub const CHANGE_WINDOW: Duration = Duration::from_secs(60);
/// Every marker is read again this often.
pub const FULL_READ_EVERY: Duration = Duration::from_secs(60);
/// Rows per query when the kept trades are filled in one pass.
pub const WARM_PAGE: u64 = 10_000;

/// Per account: the marker its cached open set was read at, and that set.
type Cache = HashMap<String, (i64, Arc<Vec<BotTrade>>)>;

/// When the markers were read.
#[derive(Debug, Default)]
struct Reads {
    read_at: Option<Instant>,
    full_at: Option<Instant>,
}

/// Reads open trades from the database (filled by the bot, or by `trades import`).
#[derive(Debug, Clone)]
pub struct DbTrades {
    db: DatabaseConnection,
    cache: Arc<Mutex<Cache>>,
    /// The markers of all accounts as last read.
    markers: Arc<Mutex<HashMap<String, i64>>>,
    /// Held by the one caller reading the markers.
    reads: Arc<tokio::sync::Mutex<Reads>>,
    /// Whether the markers were read in full once, and the kept trades filled with them
    /// (until then every caller waits).
    ready: Arc<AtomicBool>,
    max_age: Duration,
    warm_page: u64,
}

impl DbTrades {
    /// A trade source over `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self::with_markers_max_age(db, MARKERS_MAX_AGE)
    }

    /// A trade source over `db` whose markers are read again once `max_age` old (and all
    /// of them at least every [`FULL_READ_EVERY`]).
    pub fn with_markers_max_age(db: DatabaseConnection, max_age: Duration) -> Self {
        Self {
            db,
            cache: Arc::default(),
            markers: Arc::default(),
            reads: Arc::default(),
            ready: Arc::default(),
            max_age,
            warm_page: WARM_PAGE,
        }
    }

    /// The same source, filling its kept trades at start in pages of `rows` rows (at
    /// least 1) instead of [`WARM_PAGE`].
    pub fn with_warm_page(mut self, rows: u64) -> Self {
        self.warm_page = rows.max(1);
        self
    }

    fn cached(&self, account: &str, revision: i64) -> Option<Arc<Vec<BotTrade>>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(account)
            .filter(|(at, _)| *at == revision)
            .map(|(_, trades)| trades.clone())
    }

    fn keep(&self, account: &str, revision: Option<i64>, trades: &[BotTrade]) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match revision {
            Some(r) => {
                cache.insert(account.to_owned(), (r, Arc::new(trades.to_vec())));
            }
            None => {
                cache.remove(account);
            }
        }
    }

    /// `account`'s marker. The caller that finds the markers older than `max_age` reads
    /// them and waits for that read; callers that come while it runs take the markers as
    /// they are, so a slow database delays one sync, not all of them (before the first
    /// full read they wait: there is nothing to take yet). The read runs as a task of its
    /// own, so a caller that gives up (its sync timed out) does not cancel it.
    async fn revision(&self, account: &str) -> Result<Option<i64>, StoreError> {
        loop {
            match self.reads.clone().try_lock_owned() {
                Ok(reads) => {
                    self.read_if_due(reads).await?;
                    break;
                }
                Err(_) if self.ready.load(Ordering::Acquire) => break,
                // The first read is under way: wait for it, then look again.
                Err(_) => drop(self.reads.lock().await),
            }
        }
        let markers = self.markers.lock().unwrap_or_else(|p| p.into_inner());
        Ok(markers.get(account).copied())
    }

    /// Reads the markers when they are older than `max_age` (all of them once
    /// [`FULL_READ_EVERY`] has passed), in a task that owns `reads`.
    async fn read_if_due(&self, mut reads: OwnedMutexGuard<Reads>) -> Result<(), StoreError> {
        let now = Instant::now();
        let full = reads
            .full_at
            .is_none_or(|at| now.duration_since(at) >= FULL_READ_EVERY);
        let due = reads
            .read_at
            .is_none_or(|at| now.duration_since(at) >= self.max_age);
        if !(full || due) {
            return Ok(());
        }
        let this = self.clone();
        tokio::spawn(async move { this.refresh(&mut reads, now, full).await })
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Reads the markers changed lately, or all of them when `full`; the first full
    /// read also fills the kept trades of every account (see [`Self::warm`]).
    async fn refresh(&self, r: &mut Reads, now: Instant, full: bool) -> Result<(), StoreError> {
        if full {
            let all: HashMap<String, i64> = store::trade_revisions_since(&self.db, None)
                .await?
                .into_iter()
                .collect();
            if !self.ready.load(Ordering::Acquire) {
                self.warm(&all).await?;
            }
            *self.markers.lock().unwrap_or_else(|p| p.into_inner()) = all;
            self.ready.store(true, Ordering::Release);
            r.full_at = Some(now);
        } else {
            let since = Utc::now() - CHANGE_WINDOW;
            let changed = store::trade_revisions_since(&self.db, Some(since)).await?;
            let mut markers = self.markers.lock().unwrap_or_else(|p| p.into_inner());
            markers.extend(changed);
        }
        r.read_at = Some(now);
        Ok(())
    }

    /// Keeps the open trades of every account that has a marker, read in pages of
    /// `warm_page` rows instead of one query per account: a service starting with
    /// many accounts fills its cache in one pass. `markers` were read before, so a write
    /// landing meanwhile moves its account's marker past the one kept here. An account
    /// with a row that cannot be read back is left out (its syncs read it and report it).
    async fn warm(&self, markers: &HashMap<String, i64>) -> Result<(), StoreError> {
        let mut open: HashMap<String, Vec<BotTrade>> = HashMap::new();
        let mut spoiled = std::collections::HashSet::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let key = after.as_ref().map(|(a, t)| (a.as_str(), t.as_str()));
            let page = store::open_trades_page(&self.db, key, self.warm_page).await?;
            let full_page = page.len() as u64 == self.warm_page;
            for (account, id, trade) in page {
                match trade {
                    Ok(t) => open.entry(account.clone()).or_default().push(t),
                    Err(_) => {
                        spoiled.insert(account.clone());
                    }
                }
                after = Some((account, id));
            }
            if !full_page {
                break;
            }
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        for (account, &revision) in markers {
            if spoiled.contains(account) {
                continue;
            }
            let trades = open.remove(account).unwrap_or_default();
            cache.insert(account.clone(), (revision, Arc::new(trades)));
        }
        Ok(())
    }

    async fn read(&self, account: &str) -> Result<Vec<BotTrade>, StoreError> {
        // The marker first: a write landing between the two reads moves it past the
        // one the trades are kept at, so a later sync reads again.
        let revision = self.revision(account).await?;
        if let Some(trades) = revision.and_then(|r| self.cached(account, r)) {
            return Ok(trades.as_ref().clone());
        }
        let trades = store::open_trades(&self.db, account).await?;
        self.keep(account, revision, &trades);
        Ok(trades)
    }
}

impl TradeSource for DbTrades {
    fn open_trades<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<Vec<BotTrade>, BrokerError>> {
        Box::pin(async move {
            self.read(account).await.map_err(|e| {
                if e.is_bad_data() {
                    BrokerError::Malformed {
                        field: "bot_trades".into(),
                        reason: e.to_string(),
                    }
                } else {
                    BrokerError::Retryable {
                        reason: format!("reading bot trades: {e}"),
                        retry_after: None,
                    }
                }
            })
        })
    }
}
