//! Divergence listings for operators (the API, the dashboard, the `divergences` command):
//! filters, newest first, keyset pagination; and the open counts by account and kind that
//! the metrics show.
//!
//! Pages are cut by row id (`before`), not by offset, so a page stays stable while new
//! divergences are written.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::convert::{OPEN, db_time};
use super::divergences::{DivergenceStatus, StoredDivergence};
use super::entities::divergence;
use super::error::StoreError;
use crate::domain::DivergenceKind;

/// Most rows one page may hold.
pub const MAX_PAGE: u64 = 1_000;

/// Which divergences to list. Every filter is optional; `limit` is capped at [`MAX_PAGE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DivergenceFilter {
    /// Only this account.
    pub account: Option<String>,
    /// Only open, or only resolved, divergences.
    pub status: Option<DivergenceStatus>,
    /// Only this kind.
    pub kind: Option<DivergenceKind>,
    /// Only divergences first seen at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only acknowledged (`Some(true)`) or only unacknowledged (`Some(false)`) rows.
    pub acknowledged: Option<bool>,
    /// Only rows with an id below this one (the `next_before` of the previous page).
    pub before: Option<i64>,
    /// Rows per page.
    pub limit: u64,
}

impl Default for DivergenceFilter {
    fn default() -> Self {
        Self {
            account: None,
            status: None,
            kind: None,
            since: None,
            acknowledged: None,
            before: None,
            limit: 100,
        }
    }
}

/// One page of divergences, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DivergencePage {
    /// The rows, by id descending.
    pub items: Vec<StoredDivergence>,
    /// Pass as `before` to get the next page; `None` on the last page.
    pub next_before: Option<i64>,
}

/// Divergences matching `filter`, newest first (by row id).
pub async fn query_divergences<C: ConnectionTrait>(
    db: &C,
    filter: &DivergenceFilter,
) -> Result<DivergencePage, StoreError> {
    let limit = filter.limit.clamp(1, MAX_PAGE);
    let mut query = divergence::Entity::find();
    if let Some(account) = &filter.account {
        query = query.filter(divergence::Column::AccountId.eq(account.as_str()));
    }
    if let Some(status) = filter.status {
        query = query.filter(divergence::Column::Status.eq(status.as_str()));
    }
    if let Some(kind) = filter.kind {
        query = query.filter(divergence::Column::Kind.eq(kind.as_str()));
    }
    if let Some(since) = filter.since {
        query = query.filter(divergence::Column::FirstSeen.gte(db_time(since)));
    }
    match filter.acknowledged {
        Some(true) => query = query.filter(divergence::Column::AcknowledgedAt.is_not_null()),
        Some(false) => query = query.filter(divergence::Column::AcknowledgedAt.is_null()),
        None => {}
    }
    if let Some(before) = filter.before {
        query = query.filter(divergence::Column::Id.lt(before));
    }
    let mut rows = query
        .order_by_desc(divergence::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let items = rows
        .iter()
        .map(super::divergences::stored_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let next_before = if more {
        items.last().map(|d| d.id)
    } else {
        None
    };
    Ok(DivergencePage { items, next_before })
}

/// Open divergences per (account, kind), by account then kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCount {
    /// Account.
    pub account_id: String,
    /// Kind, snake_case.
    pub kind: String,
    /// Open rows.
    pub count: u64,
}

/// How many divergences are open and not acknowledged (what needs attention), per account
/// and kind (one grouped query).
pub async fn open_divergence_counts<C: ConnectionTrait>(
    db: &C,
) -> Result<Vec<OpenCount>, StoreError> {
    let rows: Vec<(String, String, i64)> = divergence::Entity::find()
        .select_only()
        .column(divergence::Column::AccountId)
        .column(divergence::Column::Kind)
        .column_as(Expr::col(divergence::Column::Id).count(), "n")
        .filter(divergence::Column::Status.eq(OPEN))
        .filter(divergence::Column::AcknowledgedAt.is_null())
        .group_by(divergence::Column::AccountId)
        .group_by(divergence::Column::Kind)
        .order_by_asc(divergence::Column::AccountId)
        .order_by_asc(divergence::Column::Kind)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(account_id, kind, n)| OpenCount {
            account_id,
            kind,
            count: u64::try_from(n).unwrap_or(0),
        })
        .collect())
}
