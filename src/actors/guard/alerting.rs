//! What the guards tell people and the audit trail: alerts stored before they are sent,
//! notices of close outcomes, and audit events.

use chrono::{DateTime, NaiveDate, Utc};

use super::actor::GuardArgs;
use crate::actors::persistence::PersistMsg;
use crate::guards::{Alert, AlertStatus, Evaluation};
use crate::store::{self, AlertRecord, AuditEvent};

/// Appends an audit event of the account (through persistence: buffered, retried, and
/// fenced under high availability).
pub(super) fn audit(args: &GuardArgs, kind: &str, detail: serde_json::Value) {
    let event = AuditEvent {
        at: args.clock.now(),
        account_id: Some(args.account_id.clone()),
        kind: kind.to_owned(),
        detail,
    };
    args.persistence
        .send(PersistMsg::audit(event, args.fence.clone()));
}

/// Sends a notice about an alert's close to the sinks (not stored: the audit trail is).
pub(super) fn notify(args: &GuardArgs, alert: &str, kind: &str, message: String) {
    args.sinks.send(&Alert {
        id: alert.to_owned(),
        account_id: args.account_id.clone(),
        kind: kind.to_owned(),
        rule: String::new(),
        loss: None,
        reference: None,
        close_at: None,
        message,
        at: args.clock.now(),
    });
}

/// The alert row of evaluation `e` (`kind` is `warn` or `breach`) on trading day `day`.
pub(super) fn record(
    args: &GuardArgs,
    e: &Evaluation,
    (kind, day): (&str, NaiveDate),
    status: AlertStatus,
    close_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> AlertRecord {
    let id = crate::guards::alerts::alert_id(&args.account_id, &e.rule, kind, day);
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
    AlertRecord {
        id,
        account_id: args.account_id.clone(),
        kind: kind.to_owned(),
        rule: e.rule.clone(),
        loss: Some(e.loss),
        reference: Some(e.reference),
        message,
        close_at,
        status,
        created_at: now,
    }
}

/// Stores `r`: `Ok(true)` when stored now, `Ok(false)` when a row with its id was
/// already there (the same breach, seen before a restart); `Err` says why it is not
/// stored (also when the account's lease moved on: see [`stored`]). The deadline is the
/// database's own (lock and statement timeouts set when the pool connects), not a timer of
/// this process: a real query must not lose to a clock that tests run ahead.
pub(super) async fn store(args: &GuardArgs, r: &AlertRecord) -> Result<bool, String> {
    match stored(args, r).await? {
        Some(stored) => Ok(stored),
        None => Err("the account's lease moved on: the alert is not stored here".into()),
    }
}

/// Stores `r` under the account's fence: `Ok(None)` when the lease moved on (the new
/// owner raises it, if it still holds).
async fn stored(args: &GuardArgs, r: &AlertRecord) -> Result<Option<bool>, String> {
    super::fenced::write(args, "alert", async |txn| store::insert_alert(txn, r).await)
        .await
        .map_err(|e| e.to_string())
}

/// Sends `r` to the sinks and audits it.
pub(super) fn send(args: &GuardArgs, r: &AlertRecord, stored: bool) {
    args.sinks.send(&Alert {
        id: r.id.clone(),
        account_id: r.account_id.clone(),
        kind: r.kind.clone(),
        rule: r.rule.clone(),
        loss: r.loss,
        reference: r.reference,
        close_at: r.close_at,
        message: r.message.clone(),
        at: r.created_at,
    });
    audit(
        args,
        "alert_sent",
        serde_json::json!({"alert": r.id, "kind": r.kind, "close_at": r.close_at, "stored": stored}),
    );
}

/// An alert that closes nothing (a warning, a detect-only breach, a second rule's breach
/// while another alert enforces): stored if the store answers, sent either way.
pub(super) async fn raise(
    args: &GuardArgs,
    e: &Evaluation,
    kind: (&str, NaiveDate),
    note: Option<String>,
) {
    let mut r = record(args, e, kind, AlertStatus::Alerted, None, args.clock.now());
    if let Some(note) = note {
        r.message = format!("{}; {note}", r.message);
    }
    let stored = match stored(args, &r).await {
        Ok(Some(true)) => true,
        // Already raised (before a restart): not again. Or no longer ours to raise.
        Ok(Some(false) | None) => return,
        Err(error) => {
            tracing::error!(account = %args.account_id, alert = %r.id, error = %error, "cannot store the alert");
            false
        }
    };
    send(args, &r, stored);
}
