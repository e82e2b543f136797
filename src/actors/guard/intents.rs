//! What a close round may send, decided by the close intents (`close_intents`): every close
//! or cancel is recorded before its call, and an intent an earlier owner of the account
//! left unfinished is verified at the broker before anything is sent for it.
//!
//! For each position (order) this round's fresh snapshot shows open:
//! - no intent → record it `pending`, send;
//! - this owner's, under this epoch (always, without high availability) → send again
//!   unless it is `done` or `gone` (a retry of this guard's own round);
//! - an earlier owner's or epoch's, unfinished → the snapshot shows it open; its deals
//!   are asked too when the broker keeps per-position history: closing deals that account
//!   for it make it `gone` (a snapshot that lags). Otherwise it is adopted (owner and epoch
//!   become this guard's) and sent. Never re-sent blindly;
//! - `done` or `gone` → skipped.
//!
//! An earlier owner's unfinished intent whose position (order) the snapshot no longer
//! shows is `gone`: closed, by that owner's call or otherwise; it is audited
//! (`close_verified_gone`) and recorded as this service's close. A broker without
//! per-position history is verified by positions alone: that is the limit.

use std::sync::Arc;

use super::act::{self, Act};
use super::actor::GuardArgs;
use super::alerting::audit;
use crate::domain::close_reasons::{Asked, Finding, classify};
use crate::domain::{AccountSnapshot, BrokerPosition, DealLookup};
use crate::store::{self, CloseIntent, IntentKey, IntentState, Recorded};

/// What the intents let a round do.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// Positions to close.
    pub closes: Vec<u64>,
    /// Orders to cancel.
    pub cancels: Vec<u64>,
    /// Positions or orders an earlier owner's intent was verified gone for.
    pub gone: usize,
    /// Positions or orders left alone: their intent could not be recorded or adopted.
    pub withheld: usize,
}

/// The plan of a round of alert `alert` on `snapshot`, whose open `targets` (positions)
/// and `orders` are to be closed and cancelled.
pub(super) async fn plan(
    args: &Arc<GuardArgs>,
    alert: &str,
    snapshot: &AccountSnapshot,
    targets: &[u64],
    orders: &[u64],
) -> Plan {
    let mut plan = Plan {
        gone: settle_absent(args, alert, snapshot).await,
        ..Plan::default()
    };
    for (act, tickets) in [(Act::Close, targets), (Act::Cancel, orders)] {
        for &ticket in tickets {
            let position = snapshot.positions.iter().find(|p| p.ticket == ticket);
            match decide(
                args,
                alert,
                act,
                ticket,
                position.filter(|_| act == Act::Close),
            )
            .await
            {
                Decision::Send if act == Act::Close => plan.closes.push(ticket),
                Decision::Send => plan.cancels.push(ticket),
                Decision::Gone => plan.gone += 1,
                Decision::Skip => {}
                Decision::Withhold => plan.withheld += 1,
            }
        }
    }
    plan
}

enum Decision {
    Send,
    Gone,
    Skip,
    Withhold,
}

async fn decide(
    args: &Arc<GuardArgs>,
    alert: &str,
    act: Act,
    ticket: u64,
    position: Option<&BrokerPosition>,
) -> Decision {
    let key = key(args, alert, ticket);
    let fence = args.fence.as_ref();
    let at = args.clock.now();
    match store::record_intent(&args.db, key, act.kind(), fence, at).await {
        Ok(Recorded::New) => {
            audit(
                args,
                "close_intent_recorded",
                serde_json::json!({"alert": alert, act.key(): ticket, "kind": act.kind(), "epoch": fence.map(|f| f.epoch)}),
            );
            Decision::Send
        }
        Ok(Recorded::Existing(i)) if i.state.is_final() => Decision::Skip,
        Ok(Recorded::Existing(i)) if i.made_under(fence) => Decision::Send,
        Ok(Recorded::Existing(i)) => inherited(args, act, &i, position).await,
        Ok(Recorded::NotOwner) => {
            tracing::warn!(account = %args.account_id, alert, ticket, "close intent not recorded: the lease is no longer this instance's");
            Decision::Withhold
        }
        Err(e) => {
            tracing::warn!(account = %args.account_id, alert, ticket, error = %e, "cannot record a close intent; nothing sent for it");
            Decision::Withhold
        }
    }
}

/// An earlier owner's unfinished intent whose position (order) the snapshot shows open.
async fn inherited(
    args: &Arc<GuardArgs>,
    act: Act,
    intent: &CloseIntent,
    position: Option<&BrokerPosition>,
) -> Decision {
    if let Some(p) = position
        && let Some(finding) = closed_by_deals(args, p).await
    {
        let how = serde_json::json!({"closing_deals": finding});
        return if settle_gone(args, act, intent, how).await {
            Decision::Gone
        } else {
            Decision::Withhold
        };
    }
    if !adopt(args, intent).await {
        return Decision::Withhold;
    }
    audit(
        args,
        "close_intent_inherited",
        serde_json::json!({
            "alert": intent.alert_id, act.key(): intent.ticket, "from_owner": intent.owner,
            "from_epoch": intent.epoch, "state": intent.state,
            "epoch": args.fence.as_ref().map(|f| f.epoch), "verified": "still open at the broker",
        }),
    );
    Decision::Send
}

/// The close the deals of position `p` account for, when its broker keeps per-position
/// history and they do: a snapshot that still shows a position closed since.
async fn closed_by_deals(
    args: &GuardArgs,
    p: &BrokerPosition,
) -> Option<crate::domain::divergence::CloseDetail> {
    let lookup = args.broker.position_deals(&args.account_id, p.identifier);
    let deals = {
        let _permit = args.limiter.acquire().await.ok()?;
        match tokio::time::timeout(args.timeout, lookup).await {
            Ok(Ok(DealLookup::Found(deals))) => deals,
            Ok(Ok(DealLookup::Unsupported)) => Vec::new(),
            Ok(Err(e)) => {
                tracing::warn!(account = %args.account_id, ticket = p.ticket, error = %e, "cannot read the deals of an inherited close; verified by positions");
                Vec::new()
            }
            Err(_) => Vec::new(),
        }
    };
    let asked = Asked::Vanished {
        last_volume: Some(p.volume),
    };
    match classify(asked, p.identifier, &deals) {
        Finding::Closed(detail) => Some(detail),
        Finding::NotClosed | Finding::Unknown => None,
    }
}

/// Earlier owners' unfinished intents of `alert` whose position (order) `snapshot` no
/// longer shows: each is made `gone`. Returns how many.
async fn settle_absent(args: &Arc<GuardArgs>, alert: &str, snapshot: &AccountSnapshot) -> usize {
    if args.fence.is_none() {
        return 0;
    }
    let open = match store::open_intents(&args.db, &args.account_id, alert).await {
        Ok(open) => open,
        Err(e) => {
            tracing::warn!(account = %args.account_id, alert, error = %e, "cannot read the open close intents; they are verified next round");
            return 0;
        }
    };
    let mut gone = 0;
    for intent in open.iter().filter(|i| !i.made_under(args.fence.as_ref())) {
        let (act, absent) = match intent.kind {
            store::IntentKind::Close => (
                Act::Close,
                Some(!snapshot.positions.iter().any(|p| p.ticket == intent.ticket)),
            ),
            // A broker that does not report orders cannot say whether one is gone.
            store::IntentKind::Cancel => (
                Act::Cancel,
                snapshot
                    .orders
                    .as_ref()
                    .map(|o| !o.iter().any(|o| o.ticket == intent.ticket)),
            ),
        };
        if absent == Some(true) {
            let how = serde_json::json!("absent from a fresh snapshot");
            gone += usize::from(settle_gone(args, act, intent, how).await);
        }
    }
    gone
}

/// Adopts an earlier owner's `intent` and marks it `gone` (verified closed, `how`);
/// audits it and records it as this service's close. False when it could not be adopted.
async fn settle_gone(
    args: &Arc<GuardArgs>,
    act: Act,
    intent: &CloseIntent,
    how: serde_json::Value,
) -> bool {
    if !adopt(args, intent).await {
        return false;
    }
    let alert = intent.alert_id.as_str();
    act::closed(args, alert, intent.ticket);
    audit(
        args,
        "close_verified_gone",
        serde_json::json!({
            "alert": alert, act.key(): intent.ticket, "from_owner": intent.owner,
            "from_epoch": intent.epoch, "state": intent.state, "verified": how,
        }),
    );
    mark(args, alert, intent.ticket, IntentState::Gone, None).await;
    true
}

/// Makes an earlier owner's `intent` this guard's (lease-conditioned); false when it
/// could not (the lease or the intent changed, or the store did not answer).
async fn adopt(args: &GuardArgs, intent: &CloseIntent) -> bool {
    let Some(fence) = args.fence.as_ref() else {
        return true;
    };
    match store::adopt_intent(&args.db, intent, fence, args.clock.now()).await {
        Ok(adopted) => adopted,
        Err(e) => {
            tracing::warn!(account = %args.account_id, ticket = intent.ticket, error = %e, "cannot adopt a close intent; nothing sent for it");
            false
        }
    }
}

/// Moves this guard's intent of `ticket` under `alert` to `to`; false when it did not (a
/// newer owner adopted it, the lease is gone, or the store did not answer).
pub(super) async fn mark(
    args: &GuardArgs,
    alert: &str,
    ticket: u64,
    to: IntentState,
    error: Option<&str>,
) -> bool {
    let key = key(args, alert, ticket);
    let at = args.clock.now();
    match store::mark_intent(&args.db, key, args.fence.as_ref(), to, error, at).await {
        Ok(changed) => changed,
        Err(e) => {
            tracing::warn!(account = %args.account_id, alert, ticket, state = to.as_str(), error = %e, "cannot mark a close intent");
            false
        }
    }
}

fn key<'a>(args: &'a GuardArgs, alert: &'a str, ticket: u64) -> IntentKey<'a> {
    IntentKey {
        account: &args.account_id,
        ticket,
        alert,
    }
}
