//! One close round of an enforced breach: claim the alert, look at the account afresh,
//! close every open position whose market allows it and cancel every pending order
//! (concurrently, under the global cap on broker calls), and check the ones whose answer
//! did not say "done". What a round takes is the guards' close scope: the whole account
//! (default), or only the bot's positions and orders (`[reconcile.scope]`).
//!
//! Never blind: a close (or cancel) is sent only for a position (or order) a snapshot
//! taken in this round shows open. One whose answer was lost is checked with another
//! snapshot (an order already gone is cancelled, whoever removed it); when that check
//! fails too, it is left for the next round, which starts with a snapshot of its own. No
//! round runs without the stored alert claimed by this closer, and no call goes out
//! without its close intent recorded first ([`super::intents`] decides what is sent,
//! [`super::act`] sends and checks).
//!
//! Broker calls have this process's deadline; database calls have the database's (lock
//! and statement timeouts set when the pool connects).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::act::{Act, act_on_all, check, fetch};
use super::actor::GuardArgs;
use super::alerting::audit;
use super::fenced;
use super::intents;
use crate::domain::{BrokerPosition, PendingOrder, Scope};
use crate::guards::config::CloseScope;
use crate::guards::{AlertStatus, Hold};
use crate::store::{self, Claim, FencedClaim};

/// What a round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundOutcome {
    /// Positions were looked at and closes sent.
    Done {
        /// Positions closed and checked.
        closed: usize,
        /// Pending orders cancelled and checked.
        cancelled: usize,
        /// Positions or orders still open (refused, unanswered or unchecked): another
        /// round follows.
        failed: usize,
        /// Positions a market guard holds back.
        held: usize,
        /// Whether the alert's new status was stored (otherwise this closer still holds
        /// the claim).
        recorded: bool,
    },
    /// An operator cancelled the enforcement.
    Cancelled,
    /// The alert cannot close any more (its breach ended, or it is not stored): its status.
    Over(Option<AlertStatus>),
    /// Another closer holds the claim.
    ClaimedElsewhere,
    /// Nothing was sent: the store or the broker did not answer; `holding` says whether
    /// this closer holds the claim.
    NotStarted {
        /// Why.
        reason: String,
        /// Whether the claim is still this closer's.
        holding: bool,
    },
}

/// What a round needs to know.
pub(super) struct Round {
    pub alert: String,
    pub attempt: u32,
    /// Market holds by canonical symbol, as of the latest evaluation.
    pub holds: HashMap<String, Vec<Hold>>,
    /// Whether an earlier round of this closer left the claim unreleased.
    pub holding: bool,
}

/// Runs one round.
pub(super) async fn run(args: Arc<GuardArgs>, round: Round) -> RoundOutcome {
    let alert = round.alert.as_str();
    if let Err(outcome) = claim(&args, &round).await {
        return outcome;
    }
    let snapshot = match fetch(&args).await {
        Ok(s) => s,
        Err(e) => {
            let recorded = finish(&args, alert, AlertStatus::Failed).await;
            return not_started(format!("no snapshot: {e}"), !recorded);
        }
    };
    let scope = bot_scope(&args);
    let (mut targets, mut held) = (Vec::new(), Vec::new());
    for p in snapshot.positions.iter().filter(|p| takes(scope, p)) {
        let symbol = args.rules.canonical(&p.symbol);
        match round.holds.get(&symbol) {
            Some(holds) if !holds.is_empty() => {
                held.push(serde_json::json!({"ticket": p.ticket, "symbol": symbol, "holds": holds}))
            }
            _ => targets.push(p.ticket),
        }
    }
    // A pending order fills at its own price, not the market's: every one is cancelled.
    let orders: Vec<u64> = snapshot
        .orders
        .iter()
        .flatten()
        .filter(|o| takes_order(scope, o))
        .map(|o| o.ticket)
        .collect();
    if !held.is_empty() {
        audit(
            &args,
            "close_postponed",
            serde_json::json!({"alert": alert, "positions": held}),
        );
    }
    let plan = intents::plan(&args, alert, &snapshot, &targets, &orders).await;
    let (closes, cancels) = tokio::join!(
        act_on_all(&args, &round, &plan.closes, Act::Close),
        act_on_all(&args, &round, &plan.cancels, Act::Cancel),
    );
    let (unanswered, uncancelled) = (&closes.unanswered, &cancels.unanswered);
    let (open, open_orders) = check(&args, alert, unanswered, uncancelled).await;
    // Sent and confirmed (at once or by the check), or verified gone; the rest is open.
    let closed = plan.closes.len() - closes.withheld - open + plan.gone;
    let cancelled = plan.cancels.len() - cancels.withheld - open_orders;
    let failed = open + closes.withheld + plan.withheld;
    let failed_orders = open_orders + cancels.withheld;
    // Positions a market guard holds back are still to be closed: the close is pending
    // (for their market), not done.
    let status = if failed + failed_orders > 0 {
        AlertStatus::Failed
    } else if !held.is_empty() {
        AlertStatus::PendingClose
    } else {
        AlertStatus::Closed
    };
    let recorded = finish(&args, alert, status).await;
    RoundOutcome::Done {
        closed,
        cancelled,
        failed: failed + failed_orders,
        held: held.len(),
        recorded,
    }
}

/// The bot's scope when the guards close only the bot's positions and orders; `None`
/// when they close the whole account.
pub(super) fn bot_scope(args: &GuardArgs) -> Option<&Scope> {
    match args.config.close_scope {
        CloseScope::Account => None,
        CloseScope::Bot => Some(args.rules.scopes.for_account(&args.account_id)),
    }
}

/// Whether a round under `scope` closes position `p`.
pub(super) fn takes(scope: Option<&Scope>, p: &BrokerPosition) -> bool {
    scope.is_none_or(|s| s.owns_position(p))
}

/// Whether a round under `scope` cancels order `o`.
pub(super) fn takes_order(scope: Option<&Scope>, o: &PendingOrder) -> bool {
    scope.is_none_or(|s| s.owns_order(o))
}

/// Claims the alert for this round: with high availability by the account's lease (a
/// newer epoch takes over a close an earlier owner left `closing`, audited
/// `close_claim_taken_over`); without, one closer at a time.
async fn claim(args: &GuardArgs, round: &Round) -> Result<(), RoundOutcome> {
    let (alert, at) = (round.alert.as_str(), args.clock.now());
    let Some(fence) = args.fence.as_ref() else {
        return match store::claim_close(&args.db, alert, at).await {
            Ok(Claim::Won) => Ok(()),
            Ok(Claim::Lost(AlertStatus::Closing)) if round.holding => Ok(()),
            Ok(Claim::Lost(status)) => Err(lost(status)),
            Ok(Claim::Missing) => Err(RoundOutcome::Over(None)),
            Err(e) => Err(not_started(
                format!("store unavailable: {e}"),
                round.holding,
            )),
        };
    };
    match store::claim_close_fenced(&args.db, alert, fence, at).await {
        Ok(FencedClaim::Won { from }) => {
            if let Some(from) = from {
                audit(
                    args,
                    "close_claim_taken_over",
                    serde_json::json!({"alert": alert, "from_owner": from.owner, "from_epoch": from.epoch, "epoch": fence.epoch}),
                );
            }
            Ok(())
        }
        Ok(FencedClaim::Lost(status)) => Err(lost(status)),
        Ok(FencedClaim::Missing) => Err(RoundOutcome::Over(None)),
        Ok(FencedClaim::NotOwner) => Err(not_started(
            "the account's lease is no longer this instance's".into(),
            false,
        )),
        Err(e) => Err(not_started(
            format!("store unavailable: {e}"),
            round.holding,
        )),
    }
}

/// The outcome of a claim lost to `status`.
fn lost(status: AlertStatus) -> RoundOutcome {
    match status {
        AlertStatus::Closing => RoundOutcome::ClaimedElsewhere,
        AlertStatus::Cancelled => RoundOutcome::Cancelled,
        other => RoundOutcome::Over(Some(other)),
    }
}

fn not_started(reason: String, holding: bool) -> RoundOutcome {
    RoundOutcome::NotStarted { reason, holding }
}

/// Releases the claim into `status`; false when the store did not record it (the claim
/// then stays this closer's). An operator's cancel meanwhile wins: nothing is changed.
async fn finish(args: &GuardArgs, alert: &str, status: AlertStatus) -> bool {
    let at = args.clock.now();
    let moved = fenced::write(args, "close round end", async |txn| {
        store::transition_alert(txn, alert, &[AlertStatus::Closing], status, at).await
    });
    match moved.await {
        Ok(written) => written.is_some(),
        Err(e) => {
            tracing::warn!(account = %args.account_id, alert = %alert, error = %e, "cannot record the close round");
            false
        }
    }
}

/// The delay before round `attempt` (1, 2, 4 … seconds, at most a minute).
pub(super) fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.min(6)).min(Duration::from_secs(60))
}
