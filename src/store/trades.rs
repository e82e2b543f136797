//! The bot's trades: imported from the bot, read back as the open set to reconcile.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};

use super::convert::{self, OPEN};
use super::entities::bot_trade;
use super::error::StoreError;
use super::trade_writes::{TradeWrite, upsert_trades};
use crate::domain::BotTrade;

/// Inserts or updates `trades` by (account, trade id), all marked open, atomically,
/// keeping their stored versions (see [`upsert_trades`]; the account's change marker
/// moves when anything changed).
///
/// Every trade must belong to `account_id` (its `account` field); a trade of another
/// account fails the whole import. Returns the number of trades imported (written or
/// already stored so).
pub async fn import_trades<C: TransactionTrait>(
    db: &C,
    account_id: &str,
    trades: &[BotTrade],
) -> Result<usize, StoreError> {
    let writes: Vec<TradeWrite> = trades
        .iter()
        .map(|t| TradeWrite {
            trade: t.clone(),
            version: None,
        })
        .collect();
    let outcome = upsert_trades(db, account_id, &writes).await?;
    Ok(outcome.written + outcome.unchanged)
}

/// The account's open trades, by trade id.
pub async fn open_trades<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
) -> Result<Vec<BotTrade>, StoreError> {
    Ok(open_trades_versioned(db, account_id)
        .await?
        .into_iter()
        .map(|(trade, _)| trade)
        .collect())
}

/// The account's open trades with their versions, by trade id.
pub async fn open_trades_versioned<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
) -> Result<Vec<(BotTrade, u64)>, StoreError> {
    bot_trade::Entity::find()
        .filter(bot_trade::Column::AccountId.eq(account_id))
        .filter(bot_trade::Column::Status.eq(OPEN))
        .order_by_asc(bot_trade::Column::TradeId)
        .all(db)
        .await?
        .into_iter()
        .map(|row| {
            let version = convert::version_from_row(&row)?;
            Ok((convert::trade_from_row(row)?, version))
        })
        .collect()
}
