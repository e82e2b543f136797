//! Converging many accounts at once: what the persistence actor does with a batch.
//!
//! One SELECT of the open fingerprints of every account in the batch, one multi-row INSERT
//! per chunk of new divergences, and one UPDATE per distinct observation time for the
//! resolved ones — instead of a few statements per account. Chunk sizes depend on the
//! backend (see `chunks`).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use super::chunks::{row_bytes, statement_chunks, text};
use super::convert::{self, OPEN, RESOLVED, db_time};
use super::divergences::{Converged, open_fingerprint_conflict};
use super::entities::divergence;
use super::error::StoreError;
use crate::domain::Divergence;

/// One account's wanted state in a batch.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// Account.
    pub account_id: &'a str,
    /// When the state was observed.
    pub at: DateTime<Utc>,
    /// Every divergence that should be open.
    pub desired: &'a [Divergence],
}

/// Brings every listed account's open divergences to exactly its desired set, like
/// [`super::converge`] for each, in a handful of statements. Accounts must be distinct.
/// Run it inside a transaction. Results come in the order of `wanted`.
pub async fn converge_many<C: ConnectionTrait>(
    db: &C,
    wanted: &[Wanted<'_>],
) -> Result<Vec<Converged>, StoreError> {
    let backend = db.get_database_backend();
    let accounts: Vec<&str> = wanted.iter().map(|w| w.account_id).collect();
    let mut open: HashMap<String, HashMap<String, i64>> = HashMap::with_capacity(accounts.len());
    for chunk in statement_chunks(backend, &accounts, |a| row_bytes(1, a.len())) {
        let rows: Vec<(i64, String, String)> = divergence::Entity::find()
            .select_only()
            .columns([
                divergence::Column::Id,
                divergence::Column::AccountId,
                divergence::Column::Fingerprint,
            ])
            .filter(divergence::Column::AccountId.is_in(chunk.iter().copied()))
            .filter(divergence::Column::Status.eq(OPEN))
            .into_tuple()
            .all(db)
            .await?;
        for (id, account, fingerprint) in rows {
            open.entry(account).or_default().insert(fingerprint, id);
        }
    }

    let mut out = Vec::with_capacity(wanted.len());
    let mut inserts = Vec::new();
    let mut resolves: HashMap<DateTime<Utc>, Vec<i64>> = HashMap::new();
    for w in wanted {
        let current = open.remove(w.account_id).unwrap_or_default();
        let mut seen: HashSet<&str> = HashSet::with_capacity(w.desired.len());
        let mut done = Converged::default();
        for d in w.desired {
            if seen.insert(d.fingerprint.as_str()) && !current.contains_key(&d.fingerprint) {
                inserts.push(convert::divergence_row(w.account_id, d, w.at));
                done.opened.push(d.clone());
            }
        }
        let mut gone: Vec<(&String, &i64)> = current
            .iter()
            .filter(|(fp, _)| !seen.contains(fp.as_str()))
            .collect();
        gone.sort();
        for (fp, id) in gone {
            resolves.entry(w.at).or_default().push(*id);
            done.resolved.push(fp.clone());
        }
        out.push(done);
    }

    for chunk in statement_chunks(backend, &inserts, divergence_row_bytes) {
        divergence::Entity::insert_many(chunk.iter().cloned())
            .on_conflict(open_fingerprint_conflict())
            .exec_without_returning(db)
            .await?;
    }
    for (at, ids) in resolves {
        let at = db_time(at);
        for chunk in statement_chunks(backend, &ids, |_| row_bytes(1, 0)) {
            divergence::Entity::update_many()
                .col_expr(divergence::Column::Status, Expr::value(RESOLVED))
                .col_expr(divergence::Column::ResolvedAt, Expr::value(at))
                .col_expr(divergence::Column::LastSeen, Expr::value(at))
                .filter(divergence::Column::Id.is_in(chunk.iter().copied()))
                .filter(divergence::Column::Status.eq(OPEN))
                .exec(db)
                .await?;
        }
    }
    Ok(out)
}

/// The estimated size of an inserted divergence row (15 parameters).
pub(super) fn divergence_row_bytes(r: &divergence::ActiveModel) -> usize {
    let text = text(&r.account_id)
        + text(&r.fingerprint)
        + text(&r.kind)
        + text(&r.symbol)
        + text(&r.trade_id)
        + text(&r.expected)
        + text(&r.actual)
        + text(&r.delta)
        + text(&r.unit)
        + text(&r.status)
        + text(&r.ticket_u64);
    row_bytes(15, text)
}
