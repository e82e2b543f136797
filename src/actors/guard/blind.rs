//! A blind guard is an alarm: when a guarded account has had no good snapshot for
//! `blind_after_secs` (its breaker open or disabled, a stale export, a broker that does
//! not answer), its guards cannot see a breach, and an alert says so; another says when
//! the snapshots come back.

use std::time::Duration;

use ractor::ActorRef;
use tokio::time::Instant;

use super::actor::{GuardMsg, GuardState};
use super::alerting::{audit, notify};

/// Starts the periodic check (four times per `blind_after_secs`).
pub(super) fn start_watch(myself: &ActorRef<GuardMsg>, state: &mut GuardState) {
    let every = Duration::from_secs(state.args.config.blind_after_secs.max(1)) / 4;
    let me = myself.clone();
    state.watch = Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            if me.cast(GuardMsg::Watch).is_err() {
                return;
            }
        }
    }));
}

/// One id per account and day for its blindness notices.
fn blind_id(args: &super::actor::GuardArgs) -> String {
    let today = args.clock.now().date_naive();
    crate::guards::alerts::alert_id(&args.account_id, "guards", "blind", today)
}

/// A good snapshot arrived.
pub(super) fn seen(state: &mut GuardState) {
    state.last_seen = Instant::now();
    if state.blind {
        state.blind = false;
        let args = &state.args;
        audit(args, "guards_sighted", serde_json::json!({}));
        notify(
            args,
            &blind_id(args),
            "guards_sighted",
            format!(
                "snapshots of {} come again: its guards see again",
                args.account_id
            ),
        );
    }
}

/// Says so once when no good snapshot came for too long.
pub(super) fn watch(state: &mut GuardState) {
    let limit = Duration::from_secs(state.args.config.blind_after_secs);
    let quiet = state.last_seen.elapsed();
    if state.blind || quiet < limit {
        return;
    }
    state.blind = true;
    let args = &state.args;
    audit(
        args,
        "guards_blind",
        serde_json::json!({"secs_without_snapshot": quiet.as_secs()}),
    );
    notify(
        args,
        &blind_id(args),
        "guards_blind",
        format!(
            "no good snapshot of {} for {} s: its guards cannot see a breach",
            args.account_id,
            quiet.as_secs()
        ),
    );
}
