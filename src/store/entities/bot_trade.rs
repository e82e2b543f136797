//! The `bot_trades` table: the trades the bot believes it has, open or closed.

use sea_orm::entity::prelude::*;

/// A row of `bot_trades`. Decimals are exact text; the broker's `u64` ticket is in
/// `ticket_u64`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "bot_trades")]
pub struct Model {
    /// Surrogate key.
    #[sea_orm(primary_key)]
    pub pk: i64,
    /// Owning account (`accounts.id`).
    pub account_id: String,
    /// The bot's trade id, unique within the account.
    pub trade_id: String,
    /// Symbol as the bot spells it.
    pub symbol: String,
    /// `buy` or `sell`.
    pub side: String,
    /// Volume in lots, exact decimal text.
    #[sea_orm(column_type = "Text")]
    pub volume: String,
    /// Expected entry price, exact decimal text.
    #[sea_orm(column_type = "Text")]
    pub entry_price: String,
    /// Stop loss, exact decimal text.
    #[sea_orm(column_type = "Text", nullable)]
    pub sl: Option<String>,
    /// Take profit, exact decimal text.
    #[sea_orm(column_type = "Text", nullable)]
    pub tp: Option<String>,
    /// Broker ticket as `BIGINT`: written when it fits, read when `ticket_u64` is `NULL`
    /// (rows from before `ticket_u64`).
    pub ticket: Option<i64>,
    /// Broker ticket, any `u64`, as 20 zero-padded decimal digits (see `convert`).
    pub ticket_u64: Option<String>,
    /// Client id sent with the order.
    pub client_id: Option<String>,
    /// When the bot opened the trade.
    pub opened_at: Option<DateTimeUtc>,
    /// `open` or `closed`.
    pub status: String,
    /// When the trade was closed.
    pub closed_at: Option<DateTimeUtc>,
    /// The bot's version of the trade as `BIGINT`, saturated at `i64::MAX`: for SQL
    /// readers only; the store reads `version_u64`.
    pub version: i64,
    /// The bot's version of the trade, any `u64`, as 20 zero-padded decimal digits.
    pub version_u64: String,
}

impl ActiveModelBehavior for ActiveModel {}
