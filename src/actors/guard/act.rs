//! The broker calls of a close round: every close (or cancel) the intents let out, sent at
//! once under the global cap, each marked `sent` just before its call and `done` (in the
//! background) when the broker says so; then a check, on another snapshot, of those whose answer was not
//! "done" (marked `done` when gone, `failed` when still open, left `sent` when the check
//! cannot tell).
//!
//! A call goes out only when its intent could be marked `sent`: under high availability
//! that needs the account's lease and the intent still this owner's and epoch's, so a
//! guard that lost its account (or whose intent a newer owner adopted) sends nothing.

use std::sync::Arc;

use tokio::task::JoinSet;

use super::actor::GuardArgs;
use super::alerting::audit;
use super::fenced;
use super::intents;
use super::round::Round;
use crate::broker::{BoxFuture, BrokerError};
use crate::domain::AccountSnapshot;
use crate::store::{self, IntentKind, IntentState};

/// A close of a position or a cancel of a pending order, with its audit kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Act {
    Close,
    Cancel,
}

impl Act {
    /// The audit kind of `step` (`requested`, `confirmed`, `failed`, `unverified`,
    /// `withheld`).
    fn audit(self, step: &str) -> String {
        match self {
            Act::Close => format!("close_{step}"),
            Act::Cancel => format!("cancel_{step}"),
        }
    }

    /// The audit detail's key for the ticket.
    pub(super) fn key(self) -> &'static str {
        match self {
            Act::Close => "ticket",
            Act::Cancel => "order",
        }
    }

    /// The kind of its intents.
    pub(super) fn kind(self) -> IntentKind {
        match self {
            Act::Close => IntentKind::Close,
            Act::Cancel => IntentKind::Cancel,
        }
    }

    fn call<'a>(self, args: &'a GuardArgs, ticket: u64) -> BoxFuture<'a, Result<(), BrokerError>> {
        match self {
            Act::Close => args.broker.close_position(&args.account_id, ticket),
            Act::Cancel => args.broker.cancel_order(&args.account_id, ticket),
        }
    }
}

/// What the calls of one kind left to do.
#[derive(Debug, Default)]
pub(super) struct Acted {
    /// Tickets whose answer was not "done", with what was said.
    pub unanswered: Vec<(u64, String)>,
    /// Tickets whose call was not sent: their intent could not be marked `sent`.
    pub withheld: usize,
}

enum Answer {
    Done,
    Unanswered(String),
    Withheld,
}

/// Sends every close (or cancel) at once (each waits for a place under the cap).
pub(super) async fn act_on_all(
    args: &Arc<GuardArgs>,
    round: &Round,
    tickets: &[u64],
    act: Act,
) -> Acted {
    let mut tasks = JoinSet::new();
    for &ticket in tickets {
        let args = args.clone();
        let (alert, attempt) = (round.alert.clone(), round.attempt);
        tasks.spawn(async move {
            if !intents::mark(&args, &alert, ticket, IntentState::Sent, None).await {
                audit(
                    &args,
                    &act.audit("withheld"),
                    serde_json::json!({"alert": alert, act.key(): ticket, "why": "its close intent could not be marked sent (lease or intent no longer this instance's, or the store unavailable)"}),
                );
                return (ticket, Answer::Withheld);
            }
            audit(
                &args,
                &act.audit("requested"),
                serde_json::json!({"alert": alert, act.key(): ticket, "attempt": attempt}),
            );
            let Ok(_permit) = args.limiter.acquire().await else {
                return (ticket, Answer::Unanswered("shutting down".to_owned()));
            };
            match tokio::time::timeout(args.timeout, act.call(&args, ticket)).await {
                Ok(Ok(())) => {
                    audit(
                        &args,
                        &act.audit("confirmed"),
                        serde_json::json!({"alert": alert, act.key(): ticket, "checked": false}),
                    );
                    closed(&args, &alert, ticket);
                    // In the background, like the record of the close: the close is done
                    // either way, and the round goes on to its check without waiting.
                    let (args, alert) = (args.clone(), alert.clone());
                    tokio::spawn(async move {
                        intents::mark(&args, &alert, ticket, IntentState::Done, None).await
                    });
                    (ticket, Answer::Done)
                }
                Ok(Err(e)) => (ticket, Answer::Unanswered(e.to_string())),
                Err(_) => (ticket, Answer::Unanswered("timed out".to_owned())),
            }
        });
    }
    let mut acted = Acted::default();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((ticket, Answer::Unanswered(error))) => acted.unanswered.push((ticket, error)),
            Ok((_, Answer::Withheld)) => acted.withheld += 1,
            Ok((_, Answer::Done)) => {}
            Err(e) => {
                tracing::error!(account = %args.account_id, error = %e, "a close task failed")
            }
        }
    }
    acted
}

/// Looks again at the positions and orders whose close or cancel was not answered
/// "done"; returns how many of each are (or may be) still open.
pub(super) async fn check(
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
            // Marked after the sync and the audit trail know (an unverified one stays sent).
            match still {
                Some(false) => intents::mark(args, alert, *ticket, IntentState::Done, None).await,
                Some(true) => {
                    intents::mark(args, alert, *ticket, IntentState::Failed, Some(error)).await
                }
                None => false,
            };
        }
    }
    open
}

/// A snapshot under the broker cap, within the deadline.
pub(super) async fn fetch(args: &GuardArgs) -> Result<AccountSnapshot, BrokerError> {
    let broker = args.broker.as_ref();
    crate::broker::snapshot_within(broker, &args.account_id, &args.limiter, args.timeout).await
}

/// Remembers that this service closed position `ticket` (or cancelled order `ticket`): at
/// once for the sync; durably in the background (the close is done either way; a lost
/// record only means the trade shows as missing after a restart). A bot trade carrying
/// the ticket is then `closed_by_service`.
pub(super) fn closed(args: &Arc<GuardArgs>, alert: &str, ticket: u64) {
    args.closes.insert(ticket, alert);
    let (args, alert) = (args.clone(), alert.to_owned());
    let at = args.clock.now();
    tokio::spawn(async move {
        let account = args.account_id.clone();
        let stored = fenced::write(&args, "service close", async |txn| {
            store::record_service_close(txn, &account, ticket, &alert, at).await
        });
        if let Err(e) = stored.await {
            tracing::warn!(account = %args.account_id, ticket, error = %e, "cannot store a close of this service");
        }
    });
}
