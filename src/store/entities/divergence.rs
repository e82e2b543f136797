//! The `divergences` table: every divergence ever seen, open until resolved.

use sea_orm::entity::prelude::*;

/// A row of `divergences`. At most one open row per (account, fingerprint).
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "divergences")]
pub struct Model {
    /// Surrogate key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Account the divergence was found on.
    pub account_id: String,
    /// Stable identity of the divergence (see `domain::divergence::fingerprint`).
    pub fingerprint: String,
    /// Kind, snake_case.
    pub kind: String,
    /// Canonical symbol.
    pub symbol: String,
    /// Broker ticket as `BIGINT`: written when it fits, read when `ticket_u64` is `NULL`
    /// (rows from before `ticket_u64`).
    pub ticket: Option<i64>,
    /// Broker ticket, any `u64`, as 20 zero-padded decimal digits (see `convert`).
    pub ticket_u64: Option<String>,
    /// Bot trade id, when a trade is involved.
    pub trade_id: Option<String>,
    /// The bot's value: exact decimal text or a side.
    #[sea_orm(column_type = "Text", nullable)]
    pub expected: Option<String>,
    /// The broker's value: exact decimal text or a side.
    #[sea_orm(column_type = "Text", nullable)]
    pub actual: Option<String>,
    /// Signed difference, exact decimal text.
    #[sea_orm(column_type = "Text", nullable)]
    pub delta: Option<String>,
    /// Unit of `delta`: `pips` or `percent`.
    pub unit: Option<String>,
    /// `open` or `resolved`.
    pub status: String,
    /// When the divergence was first seen.
    pub first_seen: DateTimeUtc,
    /// When the divergence was last seen.
    pub last_seen: DateTimeUtc,
    /// When the divergence went away.
    pub resolved_at: Option<DateTimeUtc>,
    /// Why the broker closed the position (a deal reason: `stop_loss`, `client` …), for
    /// `closed_at_broker` and `partially_closed`.
    #[sea_orm(column_type = "Text", nullable)]
    pub close_reason: Option<String>,
    /// Volume-weighted close price of the closing deals, exact decimal text.
    #[sea_orm(column_type = "Text", nullable)]
    pub close_price: Option<String>,
    /// Realised profit of the closing deals, exact decimal text.
    #[sea_orm(column_type = "Text", nullable)]
    pub close_profit: Option<String>,
    /// Volume the closing deals took, exact decimal text.
    #[sea_orm(column_type = "Text", nullable)]
    pub closed_volume: Option<String>,
    /// When the last closing deal executed (broker time).
    pub close_time: Option<DateTimeUtc>,
    /// When an operator acknowledged it (it then needs no attention), if one did.
    pub acknowledged_at: Option<DateTimeUtc>,
    /// Who acknowledged it.
    #[sea_orm(column_type = "Text", nullable)]
    pub acknowledged_by: Option<String>,
    /// The operator's note (a known manual hedge, a partial fill accepted …).
    #[sea_orm(column_type = "Text", nullable)]
    pub acknowledged_note: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}
