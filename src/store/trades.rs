//! The bot's trades: imported from the bot, read back as the open set to reconcile.

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, TransactionSession,
    TransactionTrait,
};

use super::chunks::{row_bytes, statement_chunks, text};
use super::convert::{self, OPEN};
use super::entities::bot_trade;
use super::error::StoreError;
use crate::domain::BotTrade;

/// Inserts or updates `trades` by (account, trade id), all marked open, atomically.
///
/// Every trade must belong to `account_id` (its `account` field); a trade of another
/// account fails the whole import. Returns the number of trades written.
pub async fn import_trades<C: TransactionTrait>(
    db: &C,
    account_id: &str,
    trades: &[BotTrade],
) -> Result<usize, StoreError> {
    let rows = trades
        .iter()
        .map(|t| convert::trade_row(account_id, t))
        .collect::<Result<Vec<_>, _>>()?;
    let txn = db.begin().await?;
    let bytes = |r: &bot_trade::ActiveModel| {
        let text = text(&r.account_id)
            + text(&r.trade_id)
            + text(&r.symbol)
            + text(&r.side)
            + text(&r.volume)
            + text(&r.entry_price)
            + text(&r.sl)
            + text(&r.tp)
            + text(&r.client_id)
            + text(&r.status)
            + text(&r.ticket_u64);
        row_bytes(14, text)
    };
    for chunk in statement_chunks(txn.get_database_backend(), &rows, bytes) {
        bot_trade::Entity::insert_many(chunk.iter().cloned())
            .on_conflict(upsert_by_trade_id())
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(rows.len())
}

/// The account's open trades, by trade id.
pub async fn open_trades<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
) -> Result<Vec<BotTrade>, StoreError> {
    bot_trade::Entity::find()
        .filter(bot_trade::Column::AccountId.eq(account_id))
        .filter(bot_trade::Column::Status.eq(OPEN))
        .order_by_asc(bot_trade::Column::TradeId)
        .all(db)
        .await?
        .into_iter()
        .map(convert::trade_from_row)
        .collect()
}

/// `ON CONFLICT (account_id, trade_id) DO UPDATE` every column but the key.
fn upsert_by_trade_id() -> OnConflict {
    use bot_trade::Column as C;
    OnConflict::columns([C::AccountId, C::TradeId])
        .update_columns([
            C::Symbol,
            C::Side,
            C::Volume,
            C::EntryPrice,
            C::Sl,
            C::Tp,
            C::Ticket,
            C::TicketU64,
            C::ClientId,
            C::OpenedAt,
            C::Status,
            C::ClosedAt,
        ])
        .to_owned()
}
