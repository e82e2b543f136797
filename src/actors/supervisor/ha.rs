//! The supervisor's side of high availability: with `[ha]` enabled, every account is
//! known but its sync and guard actors run only while this instance owns its lease. The
//! lease actor decides ownership; here `Owned` starts the account's actors and `Lost`
//! stops them at once.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::{
    SupervisorMsg, SupervisorState, audit, end_round, send_sync, start_actor, start_guard,
    stop_actor,
};
use crate::actors::breaker::BreakerState;
use crate::actors::fencing::{FenceSink, FencedWrites};
use crate::actors::lease::{HaConfig, HaStats, LeaseActor, LeaseArgs, LeaseEvent, LeaseMsg};
use crate::guards::Alert;
use crate::store::Fence;

/// High availability settings of a tree.
#[derive(Debug, Clone)]
pub struct HaArgs {
    /// `[ha]`.
    pub config: HaConfig,
    /// This instance's id.
    pub instance_id: String,
    /// The lease counters (the status shows them).
    pub stats: HaStats,
}

impl HaArgs {
    /// The settings of `config`, with its instance id resolved.
    pub fn new(config: HaConfig) -> Self {
        let instance_id = config.resolved_instance_id();
        Self {
            stats: HaStats::new(&instance_id),
            instance_id,
            config,
        }
    }
}

/// The supervisor's HA state.
pub(super) struct Ha {
    pub(super) args: HaArgs,
    pub(super) lease: Option<ActorRef<LeaseMsg>>,
}

/// Whether account `id` may run its actors here: always without HA, only while owned
/// with it.
pub(super) fn may_run(state: &SupervisorState, id: &str) -> bool {
    state.ha.is_none() || state.accounts.get(id).is_some_and(|e| e.owned.is_some())
}

/// The fence of account `id`'s side effects: this instance and the epoch it owns the
/// account under; `None` without HA (or while not owned).
pub(super) fn fence(state: &SupervisorState, id: &str) -> Option<Fence> {
    let ha = state.ha.as_ref()?;
    let epoch = state.accounts.get(id)?.owned?;
    Some(Fence {
        instance_id: ha.args.instance_id.clone(),
        epoch,
    })
}

/// Where the persistence actor and the guards report fenced writes: to this supervisor.
pub(super) fn fence_sink(myself: &ActorRef<SupervisorMsg>) -> FenceSink {
    let me = myself.clone();
    FenceSink::new(move |w| {
        let _ = me.cast(SupervisorMsg::Fenced(w));
    })
}

/// Writes of an account were refused by their fence: counted and logged; when they were
/// produced under the epoch the account is owned under here, the account is dropped at
/// once (its actors stop as on `Lost`) and the lease actor forgets the lease. Items of an
/// older epoch only count.
pub(super) fn on_fenced(state: &mut SupervisorState, w: FencedWrites) {
    let id = w.out.account_id.as_str();
    tracing::warn!(
        account = %id,
        epoch = w.out.epoch,
        lease_owner = w.out.lease_owner.as_deref().unwrap_or("none"),
        lease_epoch = ?w.out.lease_epoch,
        items = w.items,
        "writes fenced: the lease moved on, items dropped"
    );
    let Some(ha) = &state.ha else {
        return;
    };
    ha.args.stats.fenced(w.items);
    let owned = state.accounts.get(id).and_then(|e| e.owned);
    if owned != Some(w.out.epoch) {
        return;
    }
    if let Some(lease) = &ha.lease {
        let _ = lease.cast(LeaseMsg::Fenced {
            account: id.to_owned(),
            epoch: w.out.epoch,
        });
    }
    let id = id.to_owned();
    lost(state, &id, "writes fenced");
}

/// Spawns the lease actor under the supervisor.
pub(super) async fn spawn_lease(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
) -> Result<(), ActorProcessingErr> {
    let Some(ha) = &state.ha else {
        return Ok(());
    };
    let me = myself.clone();
    let args = LeaseArgs {
        db: state.args.db.clone(),
        config: ha.args.config.clone(),
        instance_id: ha.args.instance_id.clone(),
        sink: Arc::new(move |e| {
            let _ = me.cast(SupervisorMsg::Lease(e));
        }),
        stats: ha.args.stats.clone(),
        accounts: state.accounts.keys().cloned().collect(),
    };
    let (actor, _) = Actor::spawn_linked(None, LeaseActor, args, myself.get_cell()).await?;
    if let Some(ha) = &mut state.ha {
        ha.lease = Some(actor);
    }
    Ok(())
}

/// Tells the lease actor which accounts the tree knows now.
pub(super) fn publish_accounts(state: &SupervisorState) {
    if let Some(lease) = state.ha.as_ref().and_then(|h| h.lease.as_ref()) {
        let _ = lease.cast(LeaseMsg::Accounts(state.accounts.keys().cloned().collect()));
    }
}

/// Tells the alert sinks that need no database (webhook, NATS; the log already said it)
/// that the database has been away longer than a lease, so nothing is enforced anywhere,
/// or that it is back.
fn database_away(state: &SupervisorState, away: bool, silent_ms: u64) {
    let Some(ha) = &state.ha else {
        return;
    };
    let instance = &ha.args.instance_id;
    let at = state.args.clock.now();
    let (kind, message) = if away {
        (
            "database_away",
            format!(
                "instance {instance}: the database has not answered for {} s, longer than a lease: no account is synced or guarded by it until it answers",
                silent_ms / 1000
            ),
        )
    } else {
        (
            "database_back",
            format!(
                "instance {instance}: the database answers again after {} s; accounts are claimed again",
                silent_ms / 1000
            ),
        )
    };
    state.sinks.send(&Alert {
        id: format!("{kind}-{instance}-{}", at.timestamp()),
        account_id: "*".into(),
        kind: kind.into(),
        rule: "ha".into(),
        loss: None,
        reference: None,
        close_at: None,
        message,
        at,
    });
}

/// Applies what the lease actor decided.
pub(super) async fn on_lease(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    event: LeaseEvent,
) {
    match event {
        LeaseEvent::Owned { account, epoch } => owned(myself, state, &account, epoch).await,
        LeaseEvent::Lost { account } => lost(state, &account, "lease lost"),
        LeaseEvent::DatabaseAway { away, silent_ms } => database_away(state, away, silent_ms),
    }
}

async fn owned(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    id: &str,
    epoch: i64,
) {
    let Some(entry) = state.accounts.get_mut(id) else {
        return;
    };
    if entry.owned == Some(epoch) {
        return;
    }
    let replaced = entry.owned.replace(epoch).is_some();
    let breaker = entry.breaker.state().clone();
    if replaced {
        // A new epoch: whatever ran under the old one stops first.
        stop_account(state, id, "lease replaced");
    }
    audit(
        state,
        Some(id),
        "lease_acquired",
        serde_json::json!({"epoch": epoch}),
    );
    start_guard(myself, state, id).await;
    match breaker {
        BreakerState::Running | BreakerState::HalfOpen => {
            if let Err(e) = start_actor(myself, state, id).await {
                tracing::error!(account = %id, error = %e, "cannot start the sync actor");
                return;
            }
            if breaker == BreakerState::HalfOpen
                && let Some(entry) = state.accounts.get_mut(id)
            {
                send_sync(entry, &mut state.skipped);
            }
        }
        // Backing off, open or disabled: the breaker's timer (or an operator) starts it.
        _ => {}
    }
}

/// Account `id` is no longer owned: its actors stop at once.
pub(super) fn lost(state: &mut SupervisorState, id: &str, why: &str) {
    let Some(entry) = state.accounts.get_mut(id) else {
        return;
    };
    let Some(epoch) = entry.owned.take() else {
        return;
    };
    stop_account(state, id, why);
    audit(
        state,
        Some(id),
        "lease_lost",
        serde_json::json!({"epoch": epoch, "reason": why}),
    );
}

fn stop_account(state: &mut SupervisorState, id: &str, why: &str) {
    let Some(entry) = state.accounts.get_mut(id) else {
        return;
    };
    let round = entry.round.take();
    stop_actor(entry, why);
    if let Some(guard) = entry.guard.take().and_then(|g| g.get()) {
        guard.stop(Some(why.into()));
    }
    end_round(state, round, None);
}

/// The lease actor stopped: nothing here is owned any more (its leases will expire, and
/// nobody renews them); a new lease actor starts over.
pub(super) async fn on_lease_exit(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
) -> Result<(), ActorProcessingErr> {
    let owned: Vec<String> = state
        .accounts
        .iter()
        .filter(|(_, e)| e.owned.is_some())
        .map(|(id, _)| id.clone())
        .collect();
    for id in owned {
        lost(state, &id, "lease actor stopped");
    }
    spawn_lease(myself, state).await
}

/// Whether `cell` is the lease actor.
pub(super) fn is_lease(state: &SupervisorState, id: ractor::ActorId) -> bool {
    state
        .ha
        .as_ref()
        .and_then(|h| h.lease.as_ref())
        .is_some_and(|l| l.get_id() == id)
}

/// Shutdown: the lease actor frees every lease and tells the other instances.
pub(super) fn release(state: &SupervisorState, reply: RpcReplyPort<u64>) {
    match state.ha.as_ref().and_then(|h| h.lease.as_ref()) {
        Some(lease) => {
            if let Err(e) = lease.cast(LeaseMsg::Release(reply)) {
                tracing::warn!(error = %e, "cannot ask the lease actor to release the leases");
            }
        }
        None => {
            let _ = reply.send(0);
        }
    }
}
