//! Converging many accounts at once: what the persistence actor does with a batch.
//!
//! One SELECT of the open fingerprints of every account in the batch, one multi-row INSERT
//! per chunk of new divergences, and one UPDATE per distinct observation time for the
//! resolved ones — instead of a few statements per account. Chunk sizes depend on the
//! backend (see `chunks`). [`converge_many_isolating`] writes the same statements so that
//! a divergence the database refuses is left out and reported, not fatal (see `isolate`).
//!
//! Unchanged divergences are not written here: the batch's sync reports move their
//! `last_seen` (see `seen`), so a batch that changes nothing costs no divergence write.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, TransactionTrait,
};

use super::chunks::{row_bytes, statement_chunks, text};
use super::convert::{self, OPEN};
use super::divergences::Converged;
use super::entities::divergence;
use super::error::StoreError;
use super::isolate::{Rows, write, write_isolating};
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
    /// Fingerprints observed but not yet raised (in flight, or not yet confirmed): one
    /// already open stays open, one that is not is not opened.
    pub held: &'a [String],
}

/// A change of a batch the database refused: it was left out, the rest was written.
#[derive(Debug)]
pub struct Refusal {
    /// Index of the account's entry in the batch.
    pub wanted: usize,
    /// Fingerprint of the divergence concerned.
    pub fingerprint: String,
    /// The divergence that could not be opened; `None` when it was its resolution that
    /// was refused (it then stays open).
    pub divergence: Option<Divergence>,
    /// Why.
    pub error: StoreError,
}

/// The statements a batch needs, and whose they are.
struct Plan {
    out: Vec<Converged>,
    inserts: Vec<divergence::ActiveModel>,
    /// (entry in `wanted`, index in its `desired`) of each insert.
    insert_owners: Vec<(usize, usize)>,
    resolves: Vec<(DateTime<Utc>, Vec<i64>)>,
    /// (entry in `wanted`, fingerprint) of each resolved row id.
    resolve_owners: HashMap<i64, (usize, String)>,
}

/// Brings every listed account's open divergences to exactly its desired set, like
/// [`super::converge`] for each, in a handful of statements. Accounts must be distinct.
/// Run it inside a transaction. Results come in the order of `wanted`.
pub async fn converge_many<C: ConnectionTrait>(
    db: &C,
    wanted: &[Wanted<'_>],
) -> Result<Vec<Converged>, StoreError> {
    let plan = plan(db, wanted).await?;
    write(db, Rows::Divergences(&plan.inserts)).await?;
    for (at, ids) in &plan.resolves {
        write(db, Rows::Resolve(*at, ids)).await?;
    }
    Ok(plan.out)
}

/// Like [`converge_many`], but a divergence whose row the database refuses is left out
/// (and a resolution it refuses leaves the divergence open) instead of failing the batch;
/// each is returned as a [`Refusal`]. An error that is not a refusal still fails it. Run
/// it inside a transaction: each statement gets a savepoint.
pub async fn converge_many_isolating<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    wanted: &[Wanted<'_>],
) -> Result<(Vec<Converged>, Vec<Refusal>), StoreError> {
    let mut plan = plan(db, wanted).await?;
    let mut refusals = Vec::new();
    for (i, error) in write_isolating(db, Rows::Divergences(&plan.inserts)).await? {
        let (w, d) = plan.insert_owners[i];
        let divergence = wanted[w].desired[d].clone();
        plan.out[w]
            .opened
            .retain(|o| o.fingerprint != divergence.fingerprint);
        refusals.push(Refusal {
            wanted: w,
            fingerprint: divergence.fingerprint.clone(),
            divergence: Some(divergence),
            error,
        });
    }
    for (at, ids) in &plan.resolves {
        for (i, error) in write_isolating(db, Rows::Resolve(*at, ids)).await? {
            let Some((w, fingerprint)) = plan.resolve_owners.remove(&ids[i]) else {
                continue;
            };
            plan.out[w].resolved.retain(|f| *f != fingerprint);
            refusals.push(Refusal {
                wanted: w,
                fingerprint,
                divergence: None,
                error,
            });
        }
    }
    Ok((plan.out, refusals))
}

/// Reads the accounts' open fingerprints and works out the inserts and resolutions.
async fn plan<C: ConnectionTrait>(db: &C, wanted: &[Wanted<'_>]) -> Result<Plan, StoreError> {
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

    let mut plan = Plan {
        out: Vec::with_capacity(wanted.len()),
        inserts: Vec::new(),
        insert_owners: Vec::new(),
        resolves: Vec::new(),
        resolve_owners: HashMap::new(),
    };
    let mut resolves: HashMap<DateTime<Utc>, Vec<i64>> = HashMap::new();
    for (w, want) in wanted.iter().enumerate() {
        let current = open.remove(want.account_id).unwrap_or_default();
        let mut seen: HashSet<&str> = HashSet::with_capacity(want.desired.len());
        let mut done = Converged::default();
        for (i, d) in want.desired.iter().enumerate() {
            if seen.insert(d.fingerprint.as_str()) && !current.contains_key(&d.fingerprint) {
                plan.inserts
                    .push(convert::divergence_row(want.account_id, d, want.at));
                plan.insert_owners.push((w, i));
                done.opened.push(d.clone());
            }
        }
        let mut gone: Vec<(&String, &i64)> = current
            .iter()
            .filter(|(fp, _)| !seen.contains(fp.as_str()) && !want.held.contains(fp))
            .collect();
        gone.sort();
        for (fp, id) in gone {
            resolves.entry(want.at).or_default().push(*id);
            plan.resolve_owners.insert(*id, (w, fp.clone()));
            done.resolved.push(fp.clone());
        }
        plan.out.push(done);
    }
    plan.resolves = resolves.into_iter().collect();
    Ok(plan)
}

/// The estimated size of an inserted divergence row (20 parameters).
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
        + text(&r.ticket_u64)
        + text(&r.close_reason)
        + text(&r.close_price)
        + text(&r.close_profit)
        + text(&r.closed_volume);
    row_bytes(20, text)
}
