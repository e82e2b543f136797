//! The default trade source: the bot's open trades from the `bot_trades` table.

use sea_orm::DatabaseConnection;

use super::{BoxFuture, BrokerError, TradeSource};
use crate::domain::BotTrade;
use crate::store;

/// Reads open trades from the database (filled by the bot, or by `trades import`).
#[derive(Debug, Clone)]
pub struct DbTrades {
    db: DatabaseConnection,
}

impl DbTrades {
    /// A trade source over `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

impl TradeSource for DbTrades {
    fn open_trades<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<Vec<BotTrade>, BrokerError>> {
        Box::pin(async move {
            store::open_trades(&self.db, account).await.map_err(|e| {
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
