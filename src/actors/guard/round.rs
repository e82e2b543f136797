//! One close round of an enforced breach: claim the alert, look at the account afresh,
//! close every open position whose market allows it (concurrently, under the global cap
//! on broker calls), and check the ones whose answer did not say "closed".
//!
//! Never blind: a close is sent only for a position a snapshot taken in this round shows
//! open. A close whose answer was lost is checked with another snapshot; when that check
//! fails too, the position is left for the next round, which starts with a snapshot of
//! its own. No round runs without the stored alert claimed by this closer.
//!
//! Broker calls have this process's deadline; database calls have the database's (lock
//! and statement timeouts set when the pool connects).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::actor::GuardArgs;
use super::alerting::audit;
use crate::broker::BrokerError;
use crate::domain::AccountSnapshot;
use crate::guards::{AlertStatus, Hold};
use crate::store::{self, Claim};

/// What a round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundOutcome {
    /// Positions were looked at and closes sent.
    Done {
        /// Positions closed and checked.
        closed: usize,
        /// Positions still open (refused, unanswered or unchecked): another round follows.
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
    let (mut targets, mut held) = (Vec::new(), Vec::new());
    for p in &snapshot.positions {
        let symbol = args.rules.canonical(&p.symbol);
        match round.holds.get(&symbol) {
            Some(holds) if !holds.is_empty() => {
                held.push(serde_json::json!({"ticket": p.ticket, "symbol": symbol, "holds": holds}))
            }
            _ => targets.push(p.ticket),
        }
    }
    if !held.is_empty() {
        audit(
            &args,
            "close_postponed",
            serde_json::json!({"alert": alert, "positions": held}),
        );
    }
    let unanswered = close_all(&args, &round, &targets).await;
    let closed_first = targets.len() - unanswered.len();
    let failed = check(&args, alert, &unanswered).await;
    // Positions a market guard holds back are still to be closed: the close is pending
    // (for their market), not done.
    let status = if failed > 0 {
        AlertStatus::Failed
    } else if !held.is_empty() {
        AlertStatus::PendingClose
    } else {
        AlertStatus::Closed
    };
    let recorded = finish(&args, alert, status).await;
    RoundOutcome::Done {
        closed: closed_first + unanswered.len() - failed,
        failed,
        held: held.len(),
        recorded,
    }
}

fn not_started(reason: String, holding: bool) -> RoundOutcome {
    RoundOutcome::NotStarted { reason, holding }
}

/// A snapshot under the broker cap, within the deadline.
async fn fetch(args: &GuardArgs) -> Result<AccountSnapshot, BrokerError> {
    let broker = args.broker.as_ref();
    crate::broker::snapshot_within(broker, &args.account_id, &args.limiter, args.timeout).await
}

/// Sends every close at once (each waits for a place under the cap); returns the tickets
/// whose answer was not "closed", with what was said.
async fn close_all(args: &Arc<GuardArgs>, round: &Round, tickets: &[u64]) -> Vec<(u64, String)> {
    let mut tasks = JoinSet::new();
    for &ticket in tickets {
        let args = args.clone();
        let (alert, attempt) = (round.alert.clone(), round.attempt);
        tasks.spawn(async move {
            audit(
                &args,
                "close_requested",
                serde_json::json!({"alert": alert, "ticket": ticket, "attempt": attempt}),
            );
            let Ok(_permit) = args.limiter.acquire().await else {
                return (ticket, Some("shutting down".to_owned()));
            };
            let call = args.broker.close_position(&args.account_id, ticket);
            match tokio::time::timeout(args.timeout, call).await {
                Ok(Ok(())) => {
                    audit(
                        &args,
                        "close_confirmed",
                        serde_json::json!({"alert": alert, "ticket": ticket, "checked": false}),
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

/// Looks again at the positions whose close was not answered "closed"; returns how many
/// are (or may be) still open.
async fn check(args: &Arc<GuardArgs>, alert: &str, unanswered: &[(u64, String)]) -> usize {
    if unanswered.is_empty() {
        return 0;
    }
    let snapshot = match fetch(args).await {
        Ok(s) => s,
        Err(e) => {
            for (ticket, error) in unanswered {
                audit(
                    args,
                    "close_unverified",
                    serde_json::json!({"alert": alert, "ticket": ticket, "error": error, "check": e.to_string()}),
                );
            }
            return unanswered.len();
        }
    };
    let mut open = 0;
    for (ticket, error) in unanswered {
        if snapshot.positions.iter().any(|p| p.ticket == *ticket) {
            open += 1;
            audit(
                args,
                "close_failed",
                serde_json::json!({"alert": alert, "ticket": ticket, "error": error}),
            );
        } else {
            audit(
                args,
                "close_confirmed",
                serde_json::json!({"alert": alert, "ticket": ticket, "checked": true, "after": error}),
            );
            closed(args, alert, *ticket);
        }
    }
    open
}

/// Remembers that this service closed `ticket`: at once for the sync; durably in the
/// background (the close is done either way; a lost record only means the trade shows as
/// missing after a restart).
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
