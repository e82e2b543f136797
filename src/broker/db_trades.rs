//! The default trade source: the bot's open trades from the `bot_trades` table.
//!
//! Each account's open set is kept with the change marker it was read at (see
//! `store::trades_revision`): a sync reads the marker, one row, and re-reads the trades
//! only when it moved, so a write by any process is seen by the account's next sync. An
//! account without a marker (never written through the store) is read on every sync.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sea_orm::DatabaseConnection;

use super::{BoxFuture, BrokerError, TradeSource};
use crate::domain::BotTrade;
use crate::store::{self, StoreError};

/// Per account: the marker its cached open set was read at, and that set.
type Cache = HashMap<String, (i64, Arc<Vec<BotTrade>>)>;

/// Reads open trades from the database (filled by the bot, or by `trades import`).
#[derive(Debug, Clone)]
pub struct DbTrades {
    db: DatabaseConnection,
    cache: Arc<Mutex<Cache>>,
}

impl DbTrades {
    /// A trade source over `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            cache: Arc::default(),
        }
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

    async fn read(&self, account: &str) -> Result<Vec<BotTrade>, StoreError> {
        // The marker first: a write landing between the two reads moves it past the
        // cached one, so the next sync reads again.
        let revision = store::trades_revision(&self.db, account).await?;
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
