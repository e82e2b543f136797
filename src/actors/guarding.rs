//! The guards' part of an account's sync: evaluate the snapshot, alert on a crossed level,
//! schedule a close on a breach (when the account auto-closes), and carry the close out
//! when it is due — unless an operator cancelled it or a market guard holds.
//!
//! The guard state lives in a handle the supervisor keeps per account, so it survives
//! restarts of the account's actor. Every step is an audit event: breach → alert →
//! cancelled or close requested → confirmed or failed.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::ActorRef;
use sea_orm::DatabaseConnection;

use super::persistence::PersistMsg;
use super::user_sync::{UserSyncArgs, UserSyncMsg};
use crate::broker::ErrorClass;
use crate::domain::AccountSnapshot;
use crate::guards::alerts::alert_id;
use crate::guards::{Alert, GuardSet, GuardsConfig, Level, Sinks};
use crate::store::{self, AlertRecord, AuditEvent};

/// A close scheduled by a breach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingClose {
    /// The breach alert.
    pub alert_id: String,
    /// When it is due (tokio time, like the timer that fires it).
    pub due: tokio::time::Instant,
}

/// One account's guards and its pending close.
#[derive(Debug)]
pub struct GuardState {
    /// The rules and what they remember.
    pub set: GuardSet,
    /// A close waiting for its time, a cancel, or a market guard to clear.
    pub pending: Option<PendingClose>,
}

/// What a sync actor needs for its account's guards.
#[derive(Clone)]
pub struct Guarding {
    /// The state, shared with the supervisor so it outlives the actor.
    pub state: Arc<Mutex<GuardState>>,
    /// Settings.
    pub config: Arc<GuardsConfig>,
    /// Where alerts go.
    pub sinks: Sinks,
    /// For the alert rows and the compare-and-set that claims a close.
    pub db: DatabaseConnection,
}

impl Guarding {
    fn lock(&self) -> MutexGuard<'_, GuardState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn audit(args: &UserSyncArgs, kind: &str, detail: serde_json::Value) {
    args.persistence.send(PersistMsg::Audit(AuditEvent {
        at: Utc::now(),
        account_id: Some(args.account_id.clone()),
        kind: kind.to_owned(),
        detail,
    }));
}

/// Evaluates the snapshot; alerts on crossings; schedules or continues a close.
pub async fn after_sync(
    myself: &ActorRef<UserSyncMsg>,
    args: &UserSyncArgs,
    g: &Guarding,
    snapshot: &AccountSnapshot,
) {
    let now = Utc::now();
    let crossings = g.lock().set.observe(snapshot, &args.rules, now);
    for c in crossings {
        let e = &c.now;
        let detail = serde_json::json!({
            "rule": e.rule, "from": c.from, "to": e.level,
            "loss": e.loss.to_string(), "reference": e.reference.to_string(),
            "equity": snapshot.equity.to_string(), "balance": snapshot.balance.to_string(),
        });
        match e.level {
            Level::Ok => audit(args, "guard_cleared", detail),
            Level::Warn if c.from == Level::Ok => {
                audit(args, "guard_warn", detail);
                raise(args, g, "warn", e, None, now).await;
            }
            Level::Warn => audit(args, "guard_below_breach", detail),
            Level::Breach => {
                audit(args, "guard_breach", detail);
                let closes = g.config.closes(&args.account_id) && g.lock().pending.is_none();
                let lead = Duration::from_secs(g.config.alert_lead_secs);
                let close_at =
                    closes.then(|| now + chrono::Duration::from_std(lead).unwrap_or_default());
                let id = raise(args, g, "breach", e, close_at, now).await;
                if let Some(close_at) = close_at {
                    let due = tokio::time::Instant::now() + lead;
                    g.lock().pending = Some(PendingClose {
                        alert_id: id.clone(),
                        due,
                    });
                    audit(
                        args,
                        "close_scheduled",
                        serde_json::json!({"alert": id, "close_at": close_at}),
                    );
                    myself.send_after(lead, move || UserSyncMsg::CloseDue { alert_id: id });
                }
            }
        }
    }
    // A close whose time has come (its timer may have died with an earlier actor), or one
    // postponed by a market guard: try again on every sync.
    let due = g
        .lock()
        .pending
        .clone()
        .filter(|p| p.due <= tokio::time::Instant::now());
    if let Some(p) = due {
        close_due(args, g, &p.alert_id).await;
    }
}

/// Sends and stores an alert; returns its id.
async fn raise(
    args: &UserSyncArgs,
    g: &Guarding,
    kind: &str,
    e: &crate::guards::Evaluation,
    close_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> String {
    let id = alert_id(&args.account_id, &format!("{}:{kind}", e.rule), now);
    let message = match close_at {
        Some(at) => format!(
            "{} breached on {}: loss {} of {}; every position closes at {} unless cancelled",
            e.rule,
            args.account_id,
            e.loss,
            e.reference,
            at.format("%H:%M:%S UTC")
        ),
        None => format!(
            "{} {kind} on {}: loss {} of {}",
            e.rule, args.account_id, e.loss, e.reference
        ),
    };
    let alert = Alert {
        id: id.clone(),
        account_id: args.account_id.clone(),
        kind: kind.to_owned(),
        rule: e.rule.clone(),
        loss: Some(e.loss),
        reference: Some(e.reference),
        close_at,
        message,
        at: now,
    };
    g.sinks.send(&alert);
    let status = if close_at.is_some() {
        store::PENDING_CLOSE
    } else {
        store::ALERTED
    };
    let record = AlertRecord {
        id: alert.id.clone(),
        account_id: alert.account_id.clone(),
        kind: alert.kind.clone(),
        rule: alert.rule.clone(),
        loss: alert.loss,
        reference: alert.reference,
        message: alert.message.clone(),
        close_at: alert.close_at,
        status: status.to_owned(),
        created_at: alert.at,
    };
    if let Err(err) = store::insert_alert(&g.db, &record).await {
        tracing::error!(account = %args.account_id, alert = %id, error = %err, "cannot store the alert");
    }
    audit(
        args,
        "alert_sent",
        serde_json::json!({"alert": id, "kind": kind, "close_at": close_at}),
    );
    id
}

fn notify(args: &UserSyncArgs, g: &Guarding, alert: &str, kind: &str, message: String) {
    g.sinks.send(&Alert {
        id: alert.to_owned(),
        account_id: args.account_id.clone(),
        kind: kind.to_owned(),
        rule: String::new(),
        loss: None,
        reference: None,
        close_at: None,
        message,
        at: Utc::now(),
    });
}

/// The close of `alert` is due: claim it (unless cancelled), close every position whose
/// market allows it, and keep the rest pending.
pub async fn close_due(args: &UserSyncArgs, g: &Guarding, alert: &str) {
    let pending = g.lock().pending.clone();
    if pending.is_none_or(|p| p.alert_id != alert) {
        return;
    }
    let now = Utc::now();
    match store::alert_status(&g.db, alert).await {
        Ok(Some(s)) if s == store::CANCELLED => {
            g.lock().pending = None;
            audit(args, "close_cancelled", serde_json::json!({"alert": alert}));
            notify(
                args,
                g,
                alert,
                "close_cancelled",
                format!(
                    "automatic close of {} cancelled by an operator",
                    args.account_id
                ),
            );
            return;
        }
        Ok(Some(s)) if s == store::PENDING_CLOSE => {
            match store::transition_alert(&g.db, alert, store::PENDING_CLOSE, store::CLOSING, now)
                .await
            {
                Ok(true) => {}
                // Cancelled between the read and the claim: the cancel wins.
                Ok(false) => return Box::pin(close_due(args, g, alert)).await,
                Err(e) => return postpone(args, alert, &format!("database unavailable: {e}")),
            }
        }
        Ok(_) => {}
        Err(e) => return postpone(args, alert, &format!("database unavailable: {e}")),
    }
    let snapshot = match tokio::time::timeout(
        args.timeout,
        args.connector.broker.snapshot(&args.account_id),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return postpone(args, alert, &format!("no snapshot: {e}")),
        Err(_) => return postpone(args, alert, "no snapshot: timed out"),
    };
    let mut held = Vec::new();
    let mut failed = 0;
    for position in &snapshot.positions {
        let symbol = args.rules.canonical(&position.symbol);
        let holds = g.lock().set.holds(&symbol).to_vec();
        if !holds.is_empty() {
            held.push(
                serde_json::json!({"ticket": position.ticket, "symbol": symbol, "holds": holds}),
            );
            continue;
        }
        if !close_one(args, alert, position.ticket).await {
            failed += 1;
        }
    }
    if !held.is_empty() {
        audit(
            args,
            "close_postponed",
            serde_json::json!({"alert": alert, "positions": held}),
        );
        notify(
            args,
            g,
            alert,
            "close_postponed",
            format!(
                "{} positions of {} wait for their market",
                held.len(),
                args.account_id
            ),
        );
        return;
    }
    g.lock().pending = None;
    let (status, kind) = if failed == 0 {
        ("closed", "close_confirmed")
    } else {
        ("failed", "close_failed")
    };
    if let Err(e) = store::transition_alert(&g.db, alert, store::CLOSING, status, Utc::now()).await
    {
        tracing::warn!(alert = %alert, error = %e, "cannot record the close's outcome");
    }
    notify(
        args,
        g,
        alert,
        kind,
        format!(
            "automatic close of {}: {} positions, {failed} failed",
            args.account_id,
            snapshot.positions.len()
        ),
    );
}

fn postpone(args: &UserSyncArgs, alert: &str, why: &str) {
    tracing::warn!(account = %args.account_id, alert = %alert, reason = %why, "close postponed");
    audit(
        args,
        "close_postponed",
        serde_json::json!({"alert": alert, "reason": why}),
    );
}

/// Closes one position; a call that timed out or failed on the way is checked against
/// the account before it is retried, so a position is never closed twice.
async fn close_one(args: &UserSyncArgs, alert: &str, ticket: u64) -> bool {
    const ATTEMPTS: u32 = 3;
    for attempt in 1..=ATTEMPTS {
        audit(
            args,
            "close_requested",
            serde_json::json!({"alert": alert, "ticket": ticket, "attempt": attempt}),
        );
        let call = tokio::time::timeout(
            args.timeout,
            args.connector
                .broker
                .close_position(&args.account_id, ticket),
        )
        .await;
        let (error, permanent) = match call {
            Ok(Ok(())) => {
                audit(
                    args,
                    "close_confirmed",
                    serde_json::json!({"alert": alert, "ticket": ticket, "checked": false}),
                );
                return true;
            }
            Ok(Err(e)) => {
                let permanent = matches!(e.class(), ErrorClass::Permanent | ErrorClass::Malformed);
                (e.to_string(), permanent)
            }
            Err(_) => ("timed out".to_owned(), false),
        };
        // Did it close anyway (or was it closed meanwhile, by its stop loss)? Look before
        // trying again or giving up.
        let check = tokio::time::timeout(
            args.timeout,
            args.connector.broker.snapshot(&args.account_id),
        )
        .await;
        if let Ok(Ok(s)) = check
            && !s.positions.iter().any(|p| p.ticket == ticket)
        {
            audit(
                args,
                "close_confirmed",
                serde_json::json!({"alert": alert, "ticket": ticket, "checked": true, "after": error}),
            );
            return true;
        }
        if permanent {
            audit(
                args,
                "close_failed",
                serde_json::json!({"alert": alert, "ticket": ticket, "error": error}),
            );
            return false;
        }
        tracing::warn!(account = %args.account_id, ticket, attempt, error = %error, "close not confirmed, retrying");
    }
    audit(
        args,
        "close_failed",
        serde_json::json!({"alert": alert, "ticket": ticket, "error": "not confirmed after retries"}),
    );
    false
}
