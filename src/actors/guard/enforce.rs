//! The guard loop's decisions: what a snapshot's crossings mean, when the breach's alert
//! is durable, when a close round runs, and what its outcome leads to.
//!
//! An enforcement is one breach on an account that closes positions. It moves:
//! `unstored` (the alert went out saying the close waits for the store; retried on every
//! snapshot) → `lead` (stored; the operator's window) → `running` (a round) → `idle`
//! (everything closed; a position that appears while the breach holds starts a round) or
//! `backoff` (something is still open; a round follows) — until an operator cancels it or
//! the breach ends.

use std::sync::Arc;

use ractor::ActorRef;
use tokio::time::Instant;

use super::actor::{GuardMsg, GuardState};
use super::alerting::{self, audit, notify};
use super::fenced;
use super::round::{self, Round, RoundOutcome};
use crate::domain::AccountSnapshot;
use crate::guards::{AlertStatus, Crossing, Level};
use crate::store::AlertRecord;

/// Where an enforcement stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Its alert is not stored yet: no close may run.
    Unstored {
        /// Whether people were told the close waits for the store.
        told: bool,
    },
    /// Stored; the close is due then.
    Lead(Instant),
    /// A round is running.
    Running,
    /// Everything closed when the last round ended, then.
    Idle(Instant),
    /// Something was left open; the next round is due then.
    Backoff(Instant),
}

/// One enforced breach.
#[derive(Debug, Clone)]
pub struct Enforcement {
    pub(super) alert: AlertRecord,
    pub(super) phase: Phase,
    /// Rounds that left something open in a row.
    pub(super) attempt: u32,
    /// Whether this guard still holds the alert's claim.
    pub(super) holding: bool,
}

/// Evaluates a snapshot and moves the enforcement on.
pub(super) async fn on_snapshot(
    myself: &ActorRef<GuardMsg>,
    state: &mut GuardState,
    snapshot: &AccountSnapshot,
    requested_at: Instant,
) {
    let args = state.args.clone();
    let rules =
        crate::broker::symbols::rules_for(args.broker.as_ref(), &args.account_id, &args.rules);
    let crossings = state.set.observe(snapshot, &rules, args.clock.now());
    if state.set.doubting() {
        audit(
            &args,
            "reading_doubted",
            serde_json::json!({
                "balance": snapshot.balance.to_string(), "equity": snapshot.equity.to_string(),
                "why": "contradicts the previous reading; counts once the next confirms it",
            }),
        );
    }
    for c in &crossings {
        on_crossing(state, snapshot, c).await;
    }
    if state.enforcement.is_some() && !state.set.breached() {
        end(state, "the breach is over");
    }
    progress(myself, state, snapshot, requested_at).await;
}

async fn on_crossing(state: &mut GuardState, snapshot: &AccountSnapshot, c: &Crossing) {
    let args = state.args.clone();
    let e = &c.now;
    let detail = serde_json::json!({
        "rule": e.rule, "from": c.from, "to": e.level,
        "loss": e.loss.to_string(), "reference": e.reference.to_string(),
        "equity": snapshot.equity.to_string(), "balance": snapshot.balance.to_string(),
    });
    match e.level {
        Level::Ok => audit(&args, "guard_cleared", detail),
        Level::Warn if c.from == Level::Ok => {
            audit(&args, "guard_warn", detail);
            alerting::raise(&args, e, ("warn", c.day), None).await;
        }
        Level::Warn => audit(&args, "guard_below_breach", detail),
        Level::Breach => {
            audit(&args, "guard_breach", detail);
            if !args.config.closes(&args.account_id) {
                alerting::raise(&args, e, ("breach", c.day), None).await;
            } else if let Some(active) = &state.enforcement {
                let note = format!(
                    "positions are already being closed under {}",
                    active.alert.id
                );
                alerting::raise(&args, e, ("breach", c.day), Some(note)).await;
            } else {
                let now = args.clock.now();
                let lead = chrono::Duration::seconds(
                    i64::try_from(args.config.alert_lead_secs).unwrap_or(i64::MAX),
                );
                let close_at = now.checked_add_signed(lead).unwrap_or(now);
                let alert = alerting::record(
                    &args,
                    e,
                    ("breach", c.day),
                    AlertStatus::PendingClose,
                    Some(close_at),
                    now,
                );
                state.enforcement = Some(Enforcement {
                    alert,
                    phase: Phase::Unstored { told: false },
                    attempt: 0,
                    holding: false,
                });
            }
        }
    }
}

/// Moves the enforcement on after a snapshot.
async fn progress(
    myself: &ActorRef<GuardMsg>,
    state: &mut GuardState,
    snapshot: &AccountSnapshot,
    requested_at: Instant,
) {
    let args = state.args.clone();
    let Some(enf) = state.enforcement.as_mut() else {
        return;
    };
    match enf.phase {
        Phase::Unstored { told } => {
            // The lead starts once the alert is durable: a close always has a stored,
            // cancellable intent behind it.
            let lead = std::time::Duration::from_secs(args.config.alert_lead_secs);
            let now = args.clock.now();
            enf.alert.created_at = now;
            enf.alert.close_at = chrono::Duration::from_std(lead)
                .ok()
                .and_then(|d| now.checked_add_signed(d));
            match alerting::store(&args, &enf.alert).await {
                Ok(false) => {
                    // The same breach was stored before a restart: take up where it stands.
                    let id = enf.alert.id.clone();
                    adopt(myself, state, &id).await;
                }
                Ok(true) => {
                    alerting::send(&args, &enf.alert, true);
                    audit(
                        &args,
                        "close_scheduled",
                        serde_json::json!({"alert": enf.alert.id, "close_at": enf.alert.close_at}),
                    );
                    enf.phase = Phase::Lead(Instant::now() + lead);
                    state.generation += 1;
                    let generation = state.generation;
                    myself.send_after(lead, move || GuardMsg::RoundDue { generation });
                }
                Err(error) => {
                    tracing::error!(account = %args.account_id, alert = %enf.alert.id, error = %error, "cannot store the breach alert; the close waits for the store");
                    if !told {
                        let mut waiting = enf.alert.clone();
                        waiting.close_at = None;
                        waiting.message = format!(
                            "{}; nothing is closed until this alert is stored (the store is unavailable: {error})",
                            waiting
                                .message
                                .split("; every position")
                                .next()
                                .unwrap_or_default()
                        );
                        alerting::send(&args, &waiting, false);
                        enf.phase = Phase::Unstored { told: true };
                    }
                }
            }
        }
        Phase::Lead(due) | Phase::Backoff(due) if due <= Instant::now() => {
            // The timer may have been lost (a restart): the snapshot carries the round.
            start_round(myself, state);
        }
        Phase::Idle(ended) if requested_at > ended => {
            let holds = state.set.holds_all();
            let scope = round::bot_scope(&args);
            let positions = snapshot
                .positions
                .iter()
                .filter(|p| round::takes(scope, p))
                .filter(|p| {
                    holds
                        .get(&args.rules.canonical(&p.symbol))
                        .is_none_or(Vec::is_empty)
                })
                .count();
            let orders = snapshot
                .orders
                .iter()
                .flatten()
                .filter(|o| round::takes_order(scope, o))
                .count();
            if positions + orders > 0 {
                audit(
                    &args,
                    "close_again",
                    serde_json::json!({"alert": enf.alert.id, "positions": positions, "orders": orders, "why": "positions or orders open while the breach holds"}),
                );
                start_round(myself, state);
            }
        }
        Phase::Lead(_) | Phase::Backoff(_) | Phase::Idle(_) | Phase::Running => {}
    }
}

/// Takes up the stored alert `id` of the breach this guard enforces: where it stands
/// decides what follows (a pending close keeps its stored due time).
async fn adopt(myself: &ActorRef<GuardMsg>, state: &mut GuardState, id: &str) {
    let args = state.args.clone();
    let stored = match crate::store::list_alerts(&args.db, Some(&args.account_id), 50).await {
        Ok(rows) => rows.into_iter().find(|r| r.id == id),
        Err(e) => {
            tracing::warn!(account = %args.account_id, alert = %id, error = %e, "cannot read the stored alert; will try again");
            return;
        }
    };
    match stored {
        Some(r) if r.status.enforcing() => resume(myself, state, r),
        Some(r) => {
            audit(
                &args,
                "breach_already_handled",
                serde_json::json!({"alert": id, "status": r.status}),
            );
            state.enforcement = None;
        }
        None => {}
    }
}

/// Resumes the enforcement of stored alert `r` (after a restart): a pending close waits
/// for its stored due time; anything else starts with a round, whose first step is a
/// fresh look at the account.
pub(super) fn resume(myself: &ActorRef<GuardMsg>, state: &mut GuardState, r: AlertRecord) {
    let now = state.args.clock.now();
    let wait = r
        .close_at
        .filter(|_| r.status == AlertStatus::PendingClose)
        .and_then(|at| (at - now).to_std().ok())
        .unwrap_or_default();
    audit(
        &state.args,
        "enforcement_resumed",
        serde_json::json!({"alert": r.id, "status": r.status, "close_at": r.close_at}),
    );
    let holding = r.status == AlertStatus::Closing;
    state.enforcement = Some(Enforcement {
        alert: r,
        phase: Phase::Lead(Instant::now() + wait),
        attempt: 0,
        holding,
    });
    state.generation += 1;
    let generation = state.generation;
    myself.send_after(wait, move || GuardMsg::RoundDue { generation });
}

/// A lead or backoff timer fired.
pub(super) fn on_due(myself: &ActorRef<GuardMsg>, state: &mut GuardState, generation: u64) {
    let due = state
        .enforcement
        .as_ref()
        .is_some_and(|e| matches!(e.phase, Phase::Lead(_) | Phase::Backoff(_)));
    if due && generation == state.generation {
        start_round(myself, state);
    }
}

fn start_round(myself: &ActorRef<GuardMsg>, state: &mut GuardState) {
    if state.draining.is_some() {
        return;
    }
    let Some(enf) = state.enforcement.as_mut() else {
        return;
    };
    enf.phase = Phase::Running;
    state.generation += 1;
    let generation = state.generation;
    let round = Round {
        alert: enf.alert.id.clone(),
        attempt: enf.attempt + 1,
        holds: state.set.holds_all(),
        holding: enf.holding,
    };
    let (args, me) = (Arc::clone(&state.args), myself.clone());
    tokio::spawn(async move {
        let outcome = round::run(args, round).await;
        let _ = me.cast(GuardMsg::RoundDone {
            generation,
            outcome,
        });
    });
}

/// The service stops: nothing new starts; `reply` answers once no round is under way
/// (a round verifies and records its closes before it ends).
pub(super) fn drain(state: &mut GuardState, reply: ractor::RpcReplyPort<()>) {
    let running = state
        .enforcement
        .as_ref()
        .is_some_and(|e| e.phase == Phase::Running);
    let waiting = state.draining.get_or_insert_with(Vec::new);
    if running {
        waiting.push(reply);
    } else {
        let _ = reply.send(());
    }
}

/// A round ended: decide what follows.
pub(super) fn on_round_done(
    myself: &ActorRef<GuardMsg>,
    state: &mut GuardState,
    generation: u64,
    outcome: RoundOutcome,
) {
    let args = state.args.clone();
    if let Some(waiting) = state.draining.as_mut() {
        for reply in waiting.drain(..) {
            let _ = reply.send(());
        }
    }
    if generation != state.generation {
        return;
    }
    let Some(enf) = state.enforcement.as_mut() else {
        return;
    };
    let id = enf.alert.id.clone();
    let retry = |enf: &mut Enforcement, state_gen: &mut u64| {
        enf.attempt += 1;
        let delay = round::backoff(enf.attempt);
        enf.phase = Phase::Backoff(Instant::now() + delay);
        *state_gen += 1;
        let generation = *state_gen;
        myself.send_after(delay, move || GuardMsg::RoundDue { generation });
    };
    match outcome {
        RoundOutcome::Done {
            closed,
            cancelled,
            failed,
            held,
            recorded,
        } => {
            enf.holding = !recorded;
            if failed == 0 {
                enf.attempt = 0;
                enf.phase = Phase::Idle(Instant::now());
                if closed + cancelled > 0 {
                    notify(
                        &args,
                        &id,
                        "close_confirmed",
                        format!(
                            "automatic close of {}: {closed} positions closed, {cancelled} pending orders cancelled, {held} wait for their market",
                            args.account_id
                        ),
                    );
                }
            } else {
                notify(
                    &args,
                    &id,
                    "close_failed",
                    format!(
                        "automatic close of {}: {failed} positions or pending orders still open; retrying",
                        args.account_id
                    ),
                );
                retry(enf, &mut state.generation);
            }
        }
        RoundOutcome::Cancelled => {
            notify(
                &args,
                &id,
                "close_cancelled",
                format!(
                    "automatic close of {} cancelled by an operator",
                    args.account_id
                ),
            );
            state.enforcement = None;
        }
        RoundOutcome::Over(status) => {
            tracing::warn!(account = %args.account_id, alert = %id, status = ?status, "enforcement over: the alert can close nothing more");
            state.enforcement = None;
        }
        RoundOutcome::ClaimedElsewhere => {
            audit(
                &args,
                "close_left_to_claimant",
                serde_json::json!({"alert": id}),
            );
            retry(enf, &mut state.generation);
        }
        RoundOutcome::NotStarted { reason, holding } => {
            enf.holding = holding;
            tracing::warn!(account = %args.account_id, alert = %id, reason = %reason, "close postponed");
            audit(
                &args,
                "close_postponed",
                serde_json::json!({"alert": id, "reason": reason}),
            );
            retry(enf, &mut state.generation);
        }
    }
}

/// The breach is over: nothing more is closed for it.
fn end(state: &mut GuardState, why: &str) {
    let Some(enf) = state.enforcement.take() else {
        return;
    };
    let args = state.args.clone();
    audit(
        &args,
        "enforcement_ended",
        serde_json::json!({"alert": enf.alert.id, "why": why}),
    );
    state.generation += 1;
    let (id, at) = (enf.alert.id, args.clock.now());
    tokio::spawn(async move {
        let moved = fenced::write(&args, "enforcement end", async |txn| {
            crate::store::transition_alert(
                txn,
                &id,
                &AlertStatus::CANCELLABLE,
                AlertStatus::Ended,
                at,
            )
            .await
        });
        if moved.await.is_err() {
            tracing::warn!(account = %args.account_id, alert = %id, "cannot record the end of the enforcement");
        }
    });
}
