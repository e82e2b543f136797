//! Equity samples: an account's equity over time as its guards saw it, with its first
//! drawdown rule's reference and the equity at which that rule warns and breaches. Written
//! by the guard at most once per sampling interval; aged by `[retention]
//! equity_samples_days`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use super::convert::db_time;
use super::entities::equity_sample;
use super::error::StoreError;

/// One sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EquitySample {
    /// Account.
    pub account_id: String,
    /// When the snapshot was evaluated.
    pub at: DateTime<Utc>,
    /// Equity.
    pub equity: Decimal,
    /// Balance.
    pub balance: Decimal,
    /// The first drawdown rule's reference, once it has one.
    pub reference: Option<Decimal>,
    /// The equity at which that rule warns.
    pub warn_equity: Option<Decimal>,
    /// The equity at which that rule breaches.
    pub breach_equity: Option<Decimal>,
}

/// Stores one sample.
pub async fn record_equity_sample<C: ConnectionTrait>(
    db: &C,
    s: &EquitySample,
) -> Result<(), StoreError> {
    let text = |d: Option<Decimal>| d.map(|d| d.to_string());
    let row = equity_sample::ActiveModel {
        id: NotSet,
        account_id: Set(s.account_id.clone()),
        at: Set(db_time(s.at)),
        equity: Set(s.equity.to_string()),
        balance: Set(s.balance.to_string()),
        reference: Set(text(s.reference)),
        warn_equity: Set(text(s.warn_equity)),
        breach_equity: Set(text(s.breach_equity)),
    };
    equity_sample::Entity::insert(row)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// `account`'s samples at or after `since`, oldest first.
pub async fn list_equity_samples<C: ConnectionTrait>(
    db: &C,
    account: &str,
    since: DateTime<Utc>,
) -> Result<Vec<EquitySample>, StoreError> {
    let rows = equity_sample::Entity::find()
        .filter(equity_sample::Column::AccountId.eq(account))
        .filter(equity_sample::Column::At.gte(db_time(since)))
        .order_by_asc(equity_sample::Column::At)
        .order_by_asc(equity_sample::Column::Id)
        .all(db)
        .await?;
    rows.into_iter().map(from_row).collect()
}

fn from_row(m: equity_sample::Model) -> Result<EquitySample, StoreError> {
    let id = m.id.to_string();
    let parse = |column: &'static str, v: &str| {
        v.parse::<Decimal>().map_err(|e| StoreError::BadData {
            table: "equity_samples",
            column,
            row: id.clone(),
            value: v.to_owned(),
            reason: e.to_string(),
        })
    };
    let opt = |column: &'static str, v: &Option<String>| {
        v.as_deref().map(|v| parse(column, v)).transpose()
    };
    Ok(EquitySample {
        equity: parse("equity", &m.equity)?,
        balance: parse("balance", &m.balance)?,
        reference: opt("reference", &m.reference)?,
        warn_equity: opt("warn_equity", &m.warn_equity)?,
        breach_equity: opt("breach_equity", &m.breach_equity)?,
        account_id: m.account_id,
        at: m.at,
    })
}
