//! The guards' memory across restarts: the drawdown rules' references, high-water marks,
//! levels and latches (stored after every snapshot that changed them), and the breach
//! alerts still enforcing (read back from the alerts table), so a restarted guard
//! continues the same trading day and the same breach. Nothing here may stop the guard:
//! a store that does not answer leaves it running on what it has.

use ractor::ActorRef;

use super::actor::{GuardMsg, GuardState};
use super::enforce;
use super::fenced;
use crate::guards::{AlertStatus, GuardMemory};
use crate::store;

/// Reads back what the guard remembered and the breach it was enforcing.
pub(super) async fn restore(myself: &ActorRef<GuardMsg>, state: &mut GuardState) {
    let args = state.args.clone();
    let account = args.account_id.as_str();
    match store::load_guard_state(&args.db, account).await {
        Ok(Some(json)) => match serde_json::from_str::<GuardMemory>(&json) {
            Ok(memory) => {
                state.set.restore(memory);
                state.saved = Some(json);
            }
            Err(e) => {
                tracing::error!(account = %account, error = %e, "stored guard memory unreadable; starting afresh")
            }
        },
        Ok(None) => {}
        Err(e) => {
            tracing::error!(account = %account, error = %e, "cannot read the guard memory; starting afresh")
        }
    }
    match store::service_closes(&args.db, account).await {
        Ok(closes) => {
            for (ticket, alert) in closes {
                args.closes.insert(ticket, &alert);
            }
        }
        Err(e) => {
            tracing::error!(account = %account, error = %e, "cannot read this service's closes; their trades may show as missing")
        }
    }
    match store::enforcing_alerts(&args.db, account).await {
        Ok(alerts) => {
            // The newest breach enforces; an older one still open is over.
            let mut alerts = alerts.into_iter().filter(|a| a.kind == "breach");
            let newest = alerts.next_back();
            for older in alerts {
                let at = args.clock.now();
                let moved = fenced::write(&args, "older enforcement end", async |txn| {
                    let from = &AlertStatus::CANCELLABLE;
                    store::transition_alert(txn, &older.id, from, AlertStatus::Ended, at).await
                });
                if let Err(e) = moved.await {
                    tracing::warn!(account = %account, alert = %older.id, error = %e, "cannot end an older enforcement");
                }
            }
            if let Some(alert) = newest {
                enforce::resume(myself, state, alert);
            }
        }
        Err(e) => {
            tracing::error!(account = %account, error = %e, "cannot read the enforcing alerts; a breach seen again is enforced afresh")
        }
    }
}

/// Stores the memory when it changed since it was last stored.
pub(super) async fn save(state: &mut GuardState) {
    let memory = state.set.memory();
    let Ok(json) = serde_json::to_string(&memory) else {
        return;
    };
    if state.saved.as_deref() == Some(json.as_str()) {
        return;
    }
    let args = &state.args;
    let (account, at) = (&args.account_id, args.clock.now());
    let saved = super::fenced::write(args, "guard state", async |txn| {
        store::save_guard_state(txn, account, &json, at).await
    })
    .await;
    match saved {
        Ok(Some(())) => state.saved = Some(json),
        // The lease moved on: the guard stops; the new owner's guard keeps the memory.
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(account = %args.account_id, error = %e, "cannot store the guard memory; will try again")
        }
    }
}
