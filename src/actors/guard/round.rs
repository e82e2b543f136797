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
//! round runs without the stored alert claimed by this closer.
//!
//! Broker calls have this process's deadline; database calls have the database's (lock
//! and statement timeouts set when the pool connects).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::actor::GuardArgs;
use super::alerting::audit;
use crate::broker::{BoxFuture, BrokerError};
use crate::domain::{AccountSnapshot, BrokerPosition, PendingOrder, Scope};
use crate::guards::config::CloseScope;
use crate::guards::{AlertStatus, Hold};
use crate::store::{self, Claim};

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
    match store::claim_close(&args.db, alert, args.clock.now()).await {
        Ok(Claim::Won) => {}
        Ok(Claim::Lost(AlertStatus::Closing)) if round.holding => {}
        Ok(Claim::Lost(AlertStatus::Closing)) => return RoundOutcome::ClaimedElsewhere,
        Ok(Claim::Lost(AlertStatus::Cancelled)) => return RoundOutcome::Cancelled,
        Ok(Claim::Lost(other)) => return RoundOutcome::Over(Some(other)),
        Ok(Claim::Missing) => return RoundOutcome::Over(None),
        Err(e) => return not_started(format!("store unavailable: {e}"), round.holding),
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
    let (unanswered, uncancelled) = tokio::join!(
        act_on_all(&args, &round, &targets, Act::Close),
        act_on_all(&args, &round, &orders, Act::Cancel),
    );
    let done_first = targets.len() - unanswered.len();
    let cancelled_first = orders.len() - uncancelled.len();
    let (failed, failed_orders) = check(&args, alert, &unanswered, &uncancelled).await;
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
        closed: done_first + unanswered.len() - failed,
        cancelled: cancelled_first + uncancelled.len() - failed_orders,
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

fn not_started(reason: String, holding: bool) -> RoundOutcome {
    RoundOutcome::NotStarted { reason, holding }
}

/// A snapshot under the broker cap, within the deadline.
async fn fetch(args: &GuardArgs) -> Result<AccountSnapshot, BrokerError> {
    let broker = args.broker.as_ref();
    crate::broker::snapshot_within(broker, &args.account_id, &args.limiter, args.timeout).await
}

/// A close of a position or a cancel of a pending order, with its audit kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Close,
    Cancel,
}

impl Act {
    /// The audit kind of `step` (`requested`, `confirmed`, `failed`, `unverified`).
    fn audit(self, step: &str) -> String {
        match self {
            Act::Close => format!("close_{step}"),
            Act::Cancel => format!("cancel_{step}"),
        }
    }

    /// The audit detail's key for the ticket.
    fn key(self) -> &'static str {
        match self {
            Act::Close => "ticket",
            Act::Cancel => "order",
        }
    }

    fn call<'a>(self, args: &'a GuardArgs, ticket: u64) -> BoxFuture<'a, Result<(), BrokerError>> {
        match self {
            Act::Close => args.broker.close_position(&args.account_id, ticket),
            Act::Cancel => args.broker.cancel_order(&args.account_id, ticket),
        }
    }
}

/// Sends every close (or cancel) at once (each waits for a place under the cap); returns
/// the tickets whose answer was not "done", with what was said.
async fn act_on_all(
    args: &Arc<GuardArgs>,
    round: &Round,
    tickets: &[u64],
    act: Act,
) -> Vec<(u64, String)> {
    let mut tasks = JoinSet::new();
    for &ticket in tickets {
        let args = args.clone();
        let (alert, attempt) = (round.alert.clone(), round.attempt);
        tasks.spawn(async move {
            audit(
                &args,
                &act.audit("requested"),
                serde_json::json!({"alert": alert, act.key(): ticket, "attempt": attempt}),
            );
            let Ok(_permit) = args.limiter.acquire().await else {
                return (ticket, Some("shutting down".to_owned()));
            };
            match tokio::time::timeout(args.timeout, act.call(&args, ticket)).await {
                Ok(Ok(())) => {
                    audit(
                        &args,
                        &act.audit("confirmed"),
                        serde_json::json!({"alert": alert, act.key(): ticket, "checked": false}),
                    );
                    closed(&args, &alert, ticket);
                    (ticket, None)
                }
                Ok(Err(e)) => (ticket, Some(e.to_string())),
                Err(_) => (ticket, Some("timed out".to_owned())),
            }
        });
    }
    let mut unanswered = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((ticket, Some(error))) => unanswered.push((ticket, error)),
            Ok((_, None)) => {}
            Err(e) => {
                tracing::error!(account = %args.account_id, error = %e, "a close task failed")
            }
        }
    }
    unanswered
}

/// Looks again at the positions and orders whose close or cancel was not answered
/// "done"; returns how many of each are (or may be) still open.
async fn check(
    args: &Arc<GuardArgs>,
    alert: &str,
    unanswered: &[(u64, String)],
    uncancelled: &[(u64, String)],
) -> (usize, usize) {
    if unanswered.is_empty() && uncancelled.is_empty() {
        return (0, 0);
    }
    let snapshot = match fetch(args).await {
        Ok(s) => s,
        Err(e) => {
            for (act, list) in [(Act::Close, unanswered), (Act::Cancel, uncancelled)] {
                for (ticket, error) in list {
                    audit(
                        args,
                        &act.audit("unverified"),
                        serde_json::json!({"alert": alert, act.key(): ticket, "error": error, "check": e.to_string()}),
                    );
                }
            }
            return (unanswered.len(), uncancelled.len());
        }
    };
    let position_open = |t: u64| Some(snapshot.positions.iter().any(|p| p.ticket == t));
    // A broker that stopped reporting orders cannot say whether one is gone.
    let order_open = |t: u64| {
        let orders = snapshot.orders.as_ref()?;
        Some(orders.iter().any(|o| o.ticket == t))
    };
    let mut open = (0, 0);
    for (act, list) in [(Act::Close, unanswered), (Act::Cancel, uncancelled)] {
        for (ticket, error) in list {
            let still = match act {
                Act::Close => position_open(*ticket),
                Act::Cancel => order_open(*ticket),
            };
            let (kind, detail) = match still {
                Some(false) => {
                    closed(args, alert, *ticket);
                    let detail = serde_json::json!({"alert": alert, act.key(): ticket, "checked": true, "after": error});
                    ("confirmed", detail)
                }
                Some(true) => (
                    "failed",
                    serde_json::json!({"alert": alert, act.key(): ticket, "error": error}),
                ),
                None => (
                    "unverified",
                    serde_json::json!({"alert": alert, act.key(): ticket, "error": error, "check": "the broker no longer reports orders"}),
                ),
            };
            if still != Some(false) {
                match act {
                    Act::Close => open.0 += 1,
                    Act::Cancel => open.1 += 1,
                }
            }
            audit(args, &act.audit(kind), detail);
        }
    }
    open
}

/// Remembers that this service closed position `ticket` (or cancelled order `ticket`): at
/// once for the sync; durably in the background (the close is done either way; a lost
/// record only means the trade shows as missing after a restart). A bot trade carrying
/// the ticket is then `closed_by_service`.
fn closed(args: &Arc<GuardArgs>, alert: &str, ticket: u64) {
    args.closes.insert(ticket, alert);
    let (args, alert) = (args.clone(), alert.to_owned());
    let at = args.clock.now();
    tokio::spawn(async move {
        let stored =
            store::record_service_close(&args.db, &args.account_id, ticket, &alert, at).await;
        if let Err(e) = stored {
            tracing::warn!(account = %args.account_id, ticket, error = %e, "cannot store a close of this service");
        }
    });
}

/// Releases the claim into `status`; false when the store did not record it (the claim
/// then stays this closer's). An operator's cancel meanwhile wins: nothing is changed.
async fn finish(args: &GuardArgs, alert: &str, status: AlertStatus) -> bool {
    let at = args.clock.now();
    match store::transition_alert(&args.db, alert, &[AlertStatus::Closing], status, at).await {
        Ok(_) => true,
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
