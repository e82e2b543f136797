//! The lease actor's rounds: which database round runs next, and what each outcome means
//! for the leases held.

use std::collections::BTreeSet;
use std::time::Duration;

use ractor::ActorRef;
use tokio::time::Instant;

use super::LeaseEvent;
use super::actor::{Done, LeaseMsg, LeaseState};
use super::ops;
use super::share::Step;

/// Starts the next database round when none runs: renewals first, then releases, then
/// claims.
pub(super) fn next(myself: &ActorRef<LeaseMsg>, state: &mut LeaseState) {
    if state.busy {
        return;
    }
    let (db, me, ttl) = (state.db.clone(), state.instance.clone(), state.config.ttl());
    let reply = myself.clone();
    if state.renew_due && !state.stopping {
        state.renew_due = false;
        state.busy = true;
        let sent = state.trust.leases();
        let started = Instant::now();
        tokio::spawn(async move {
            let result = ops::renew_round(db, me, sent.clone(), ttl).await;
            let _ = reply.cast(LeaseMsg::Done(Done::Renewed {
                started,
                sent,
                result,
            }));
        });
    } else if !state.to_release.is_empty() {
        state.busy = true;
        let leases = std::mem::take(&mut state.to_release);
        tokio::spawn(async move {
            let result = ops::release(db, me, leases, ttl).await;
            let _ = reply.cast(LeaseMsg::Done(Done::Released(result)));
        });
    } else if state.claim_due && !state.stopping {
        state.claim_due = false;
        state.busy = true;
        let known: Vec<String> = state.known.iter().cloned().collect();
        // Taken on by this round: accounts learned while it runs set it again for the next.
        let ensure = std::mem::take(&mut state.ensure);
        let owned = state.trust.len();
        let started = Instant::now();
        tokio::spawn(async move {
            let result = ops::claim_round(db, me, known, ensure, owned, ttl).await;
            let _ = reply.cast(LeaseMsg::Done(Done::Claimed { started, result }));
        });
    }
}

/// The tree's accounts changed: leases of accounts it no longer knows are given up.
pub(super) fn on_accounts(state: &mut LeaseState, accounts: Vec<String>) {
    let known: BTreeSet<String> = accounts.into_iter().collect();
    let added = known.difference(&state.known).next().is_some();
    let gone: Vec<String> = state
        .trust
        .leases()
        .into_iter()
        .map(|l| l.account_id)
        .filter(|a| !known.contains(a))
        .collect();
    for account in gone {
        give_up(state, &account, "account removed");
    }
    state.known = known;
    if added {
        state.ensure = true;
        state.claim_due = true;
    }
}

/// Drops the leases past their trust deadline, and raises the alarm once when the
/// database has been away longer than a lease.
pub(super) fn check(state: &mut LeaseState) {
    for account in state.trust.expire(Instant::now()) {
        tracing::warn!(account = %account, "lease not renewed before its deadline; stopping the account");
        lost(state, &account);
    }
    let silent = state.last_ok.elapsed();
    if !state.away && !state.stopping && silent > state.config.ttl() {
        state.away = true;
        state.stats.set_away(true);
        tracing::error!(
            instance = %state.instance,
            silent_ms = silent.as_millis() as u64,
            "ha_database_away"
        );
        (state.sink)(LeaseEvent::DatabaseAway {
            away: true,
            silent_ms: silent.as_millis() as u64,
        });
    }
}

pub(super) fn on_done(myself: &ActorRef<LeaseMsg>, state: &mut LeaseState, done: Done) {
    state.busy = false;
    match done {
        Done::Claimed { started, result } => {
            schedule_claim(myself, state);
            match result {
                Ok(claimed) => {
                    answered(state);
                    state.stats.set_live(claimed.live);
                    if state.stopping {
                        state.to_release.extend(claimed.leases);
                        return;
                    }
                    state.stats.acquired(claimed.leases.len());
                    for lease in &claimed.leases {
                        state.trust.claimed(lease, started);
                        tracing::info!(account = %lease.account_id, epoch = lease.epoch, "lease acquired");
                        (state.sink)(LeaseEvent::Owned {
                            account: lease.account_id.clone(),
                            epoch: lease.epoch,
                        });
                    }
                    state.stats.set_owned(state.trust.len());
                    rebalance(state, claimed.live);
                }
                Err(e) => {
                    // The rows may not have been made sure of: the next round does it.
                    state.ensure = true;
                    tracing::warn!(error = %e, "lease claim failed");
                }
            }
        }
        Done::Renewed {
            started,
            sent,
            result,
        } => match result {
            Ok((renewed, live)) => {
                answered(state);
                state.stats.set_live(live);
                for account in state.trust.renewed(&sent, &renewed, started) {
                    tracing::warn!(account = %account, "lease lost at renewal; stopping the account");
                    (state.sink)(LeaseEvent::Lost { account });
                    state.stats.lost(1);
                }
                state.stats.set_owned(state.trust.len());
            }
            Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
        },
        Done::Released(result) => match result {
            Ok(n) => {
                answered(state);
                tracing::debug!(released = n, "leases released");
            }
            Err(e) => tracing::warn!(error = %e, "cannot release leases; they expire"),
        },
    }
}

/// Above the fair share for long enough: give up part of the surplus.
fn rebalance(state: &mut LeaseState, live: u64) {
    let step = state
        .balance
        .step(state.known.len(), live, state.trust.len());
    if let Step::GiveUp(n) = step {
        let surplus: Vec<String> = state
            .trust
            .leases()
            .into_iter()
            .rev()
            .take(n)
            .map(|l| l.account_id)
            .collect();
        for account in surplus {
            give_up(state, &account, "above the fair share");
        }
    }
}

/// Stops acting on `account` now and frees its lease at the next round.
fn give_up(state: &mut LeaseState, account: &str, why: &str) {
    if let Some(lease) = state.trust.remove(account) {
        tracing::info!(account = %account, epoch = lease.epoch, reason = why, "lease given up");
        (state.sink)(LeaseEvent::Lost {
            account: account.to_owned(),
        });
        state.stats.lost(1);
        state.stats.set_owned(state.trust.len());
        state.to_release.push(lease);
    }
}

/// A write of `account` under `epoch` was fenced: the lease held under that epoch is
/// dropped without telling the tree (it stopped the account already) and without freeing
/// it (it is no longer ours to free).
pub(super) fn fenced(state: &mut LeaseState, account: &str, epoch: i64) {
    let held = state.trust.leases();
    if !held
        .iter()
        .any(|l| l.account_id == account && l.epoch == epoch)
    {
        return;
    }
    state.trust.remove(account);
    tracing::info!(account = %account, epoch, "lease dropped: a write was fenced");
    state.stats.lost(1);
    state.stats.set_owned(state.trust.len());
}

/// `account`, already dropped from the leases held, is lost.
fn lost(state: &mut LeaseState, account: &str) {
    (state.sink)(LeaseEvent::Lost {
        account: account.to_owned(),
    });
    state.stats.lost(1);
    state.stats.set_owned(state.trust.len());
}

/// Every lease is dropped (shutdown).
pub(super) fn lose_all(state: &mut LeaseState, why: &str) {
    for lease in state.trust.clear() {
        tracing::info!(account = %lease.account_id, reason = why, "lease given up");
        lost(state, &lease.account_id);
    }
}

/// The database answered.
fn answered(state: &mut LeaseState) {
    let silent = state.last_ok.elapsed();
    state.last_ok = Instant::now();
    if state.away {
        state.away = false;
        state.stats.set_away(false);
        tracing::info!(instance = %state.instance, "ha database back");
        (state.sink)(LeaseEvent::DatabaseAway {
            away: false,
            silent_ms: silent.as_millis() as u64,
        });
    }
}

/// The next periodic claim, in `claim_secs` ± 20 %.
fn schedule_claim(myself: &ActorRef<LeaseMsg>, state: &mut LeaseState) {
    if state.stopping {
        return;
    }
    // xorshift: a different spread per instance and per round.
    let mut x = state.seed;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    state.seed = x;
    let base = state.config.claim();
    let factor = 0.8 + 0.4 * ((x % 1000) as f64 / 1000.0);
    let delay = Duration::from_secs_f64(base.as_secs_f64() * factor);
    if let Some(old) = state.claim_timer.take() {
        old.abort();
    }
    state.claim_timer = Some(myself.send_after(delay, || LeaseMsg::Claim));
}
