//! Equity samples for the dashboard's chart: at most one per [`SAMPLE_EVERY`] per account,
//! from the snapshots the guard evaluates, with its first drawdown rule's reference and
//! levels. A sample the store refuses is skipped (the next one comes a minute later);
//! nothing here may stop the guard.

use chrono::TimeDelta;

use super::actor::GuardState;
use crate::domain::AccountSnapshot;
use crate::store::{self, EquitySample};

/// Least time between two samples of one account.
pub const SAMPLE_EVERY: TimeDelta = TimeDelta::seconds(60);

/// Stores a sample of `snapshot` when the last one is [`SAMPLE_EVERY`] old.
pub(super) async fn sample(state: &mut GuardState, snapshot: &AccountSnapshot) {
    let args = &state.args;
    let now = args.clock.now();
    if state.sampled_at.is_some_and(|at| now - at < SAMPLE_EVERY) {
        return;
    }
    let levels = state.set.chart_levels();
    let sample = EquitySample {
        account_id: args.account_id.clone(),
        at: now,
        equity: snapshot.equity,
        balance: snapshot.balance,
        reference: levels.map(|l| l.0),
        warn_equity: levels.map(|l| l.1),
        breach_equity: levels.map(|l| l.2),
    };
    // Marked as taken either way: a store that is away is not asked again at once.
    state.sampled_at = Some(now);
    let written = super::fenced::write(args, "equity sample", async |txn| {
        store::record_equity_sample(txn, &sample).await
    })
    .await;
    if let Err(e) = written {
        tracing::warn!(account = %args.account_id, error = %e, "cannot store an equity sample");
    }
}
