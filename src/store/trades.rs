//! The bot's trades: imported from the bot, read back as the open set to reconcile.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
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

/// One page of every account's open trades, ordered by (account, trade id), after the
/// key `after` (exclusive): at most `limit` rows, each with its key (account, trade id)
/// and the trade, or the error reading that row back (one bad row spoils its account,
/// not the page).
pub async fn open_trades_page<C: ConnectionTrait>(
    db: &C,
    after: Option<(&str, &str)>,
    limit: u64,
) -> Result<Vec<(String, String, Result<BotTrade, StoreError>)>, StoreError> {
    use bot_trade::Column as C;
    let mut q = bot_trade::Entity::find().filter(C::Status.eq(OPEN));
    if let Some((account, trade)) = after {
        q = q.filter(
            Expr::tuple([Expr::col(C::AccountId), Expr::col(C::TradeId)])
                .gt(Expr::tuple([Expr::value(account), Expr::value(trade)])),
        );
    }
    Ok(q.order_by_asc(C::AccountId)
        .order_by_asc(C::TradeId)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|row| {
            let (account, trade) = (row.account_id.clone(), row.trade_id.clone());
            (account, trade, convert::trade_from_row(row))
        })
        .collect())
}
