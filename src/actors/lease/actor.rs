//! The lease actor: registers the instance, heartbeats, claims about its fair share of the
//! accounts, renews all its leases in one statement, gives up a surplus gradually, and
//! tells the tree `Owned` / `Lost`. Database work runs in tasks, one at a time, whose
//! results come back as messages; deadlines are checked on a timer of their own, so a
//! database that hangs never keeps a lease trusted past its deadline.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::LeaseEvent;
use super::config::HaConfig;
use super::ops::{self, Claimed};
use super::rounds;
use super::share::Balance;
use super::stats::HaStats;
use super::trust::Trust;
use crate::store::Lease;

/// Where the actor's `Owned` / `Lost` go (the supervisor casts them to itself).
pub type LeaseSink = Arc<dyn Fn(LeaseEvent) + Send + Sync>;

/// How often trust deadlines and the database's absence are checked.
pub(super) const CHECK_EVERY: Duration = Duration::from_millis(250);

/// Dependencies of the lease actor.
pub struct LeaseArgs {
    /// The database (PostgreSQL); the actor reserves connections of its own on it.
    pub db: DatabaseConnection,
    /// `[ha]`.
    pub config: HaConfig,
    /// This instance's id.
    pub instance_id: String,
    /// Where `Owned` / `Lost` go.
    pub sink: LeaseSink,
    /// Counters for the status.
    pub stats: HaStats,
    /// The accounts known at start.
    pub accounts: Vec<String>,
}

/// Messages of the lease actor.
pub enum LeaseMsg {
    /// The accounts the tree knows now (from the configuration and the accounts table).
    Accounts(Vec<String>),
    /// Timer: renew every lease held.
    Renew,
    /// Timer: claim free or expired leases up to the fair share.
    Claim,
    /// Timer: drop the leases past their trust deadline.
    Check,
    /// Another instance freed leases.
    Notified,
    /// A database round ended.
    Done(Done),
    /// Shutdown: give up every lease and tell the other instances; replies with the
    /// number freed. The actor claims nothing afterwards.
    Release(RpcReplyPort<u64>),
    /// The leases held now.
    Held(RpcReplyPort<Vec<Lease>>),
    /// A write of `account` under `epoch` was fenced: the lease moved on. The tree already
    /// stopped the account; the lease is dropped here (not freed: someone else holds it, or
    /// it expired).
    Fenced {
        /// Account.
        account: String,
        /// The epoch the write was produced under.
        epoch: i64,
    },
}

#[cfg(feature = "cluster")]
impl ractor::Message for LeaseMsg {}

/// The end of a database round.
pub enum Done {
    /// A claim round, started at `started`.
    Claimed {
        /// When its statements started.
        started: Instant,
        /// Its outcome.
        result: Result<Claimed, String>,
    },
    /// A renewal of `sent`, started at `started`.
    Renewed {
        /// When its statement started.
        started: Instant,
        /// The leases sent for renewal.
        sent: Vec<Lease>,
        /// The accounts renewed and the live instances.
        result: Result<(Vec<String>, u64), String>,
    },
    /// A release.
    Released(Result<u64, String>),
}

/// The actor.
pub struct LeaseActor;

/// The lease actor's state.
pub struct LeaseState {
    pub(super) db: DatabaseConnection,
    pub(super) config: HaConfig,
    pub(super) instance: String,
    pub(super) sink: LeaseSink,
    pub(super) stats: HaStats,
    pub(super) known: BTreeSet<String>,
    /// Whether the next claim round must make sure of the lease rows of `known` (set when
    /// accounts are added, cleared when a round takes it on, set again if that round fails).
    pub(super) ensure: bool,
    pub(super) trust: Trust,
    pub(super) balance: Balance,
    /// A database round is running.
    pub(super) busy: bool,
    pub(super) renew_due: bool,
    pub(super) claim_due: bool,
    pub(super) to_release: Vec<Lease>,
    /// The end of the last round the database answered.
    pub(super) last_ok: Instant,
    pub(super) away: bool,
    /// Shutdown began: nothing is claimed any more.
    pub(super) stopping: bool,
    pub(super) seed: u64,
    pub(super) timers: Vec<JoinHandle<()>>,
    pub(super) claim_timer: Option<JoinHandle<Result<(), ractor::MessagingErr<LeaseMsg>>>>,
    pub(super) listener: Option<JoinHandle<()>>,
}

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for LeaseActor {
    type Msg = LeaseMsg;
    type State = LeaseState;
    type Arguments = LeaseArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: LeaseArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let seed = args
            .instance_id
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            })
            | 1;
        Ok(LeaseState {
            trust: Trust::new(args.config.ttl(), args.config.margin()),
            known: args.accounts.iter().cloned().collect(),
            ensure: true,
            db: args.db,
            instance: args.instance_id,
            config: args.config,
            sink: args.sink,
            stats: args.stats,
            balance: Balance::default(),
            busy: false,
            renew_due: false,
            claim_due: true,
            to_release: Vec::new(),
            last_ok: Instant::now(),
            away: false,
            stopping: false,
            seed,
            timers: Vec::new(),
            claim_timer: None,
            listener: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match ops::reserve(&state.db).await {
            Ok((db, pool)) => {
                state.db = db;
                let retry = state.config.claim();
                let listener =
                    super::listen::spawn(pool, state.instance.clone(), myself.clone(), retry);
                state.listener = Some(listener);
            }
            Err(e) => {
                tracing::warn!(error = %e, "no connections reserved for leases; sharing the pool, periodic claims only")
            }
        }
        let renew = state.config.renew();
        state
            .timers
            .push(myself.send_interval(renew, || LeaseMsg::Renew));
        state
            .timers
            .push(myself.send_interval(CHECK_EVERY, || LeaseMsg::Check));
        tracing::info!(instance = %state.instance, accounts = state.known.len(), "lease actor started");
        rounds::next(&myself, state);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        stop_timers(state);
        if let Some(l) = state.listener.take() {
            l.abort();
        }
        if !state.stopping {
            state.stopping = true;
            rounds::lose_all(state, "stopping");
            let (db, me, ttl) = (state.db.clone(), state.instance.clone(), state.config.ttl());
            match ops::release_all(db, me, ttl).await {
                Ok(n) => tracing::info!(released = n, "leases released"),
                Err(e) => tracing::warn!(error = %e, "cannot release the leases; they expire"),
            }
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: LeaseMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LeaseMsg::Accounts(accounts) => rounds::on_accounts(state, accounts),
            LeaseMsg::Renew => state.renew_due = true,
            LeaseMsg::Claim | LeaseMsg::Notified => state.claim_due = true,
            LeaseMsg::Check => rounds::check(state),
            LeaseMsg::Done(done) => rounds::on_done(&myself, state, done),
            LeaseMsg::Release(reply) => release(state, reply),
            LeaseMsg::Held(reply) => {
                let _ = reply.send(state.trust.leases());
            }
            LeaseMsg::Fenced { account, epoch } => rounds::fenced(state, &account, epoch),
        }
        rounds::next(&myself, state);
        Ok(())
    }
}

fn stop_timers(state: &mut LeaseState) {
    for t in state.timers.drain(..) {
        t.abort();
    }
    if let Some(t) = state.claim_timer.take() {
        t.abort();
    }
}

/// Shutdown: stop acting on every account, free the leases, tell the others.
fn release(state: &mut LeaseState, reply: RpcReplyPort<u64>) {
    stop_timers(state);
    state.stopping = true;
    rounds::lose_all(state, "stopping");
    let (db, me, ttl) = (state.db.clone(), state.instance.clone(), state.config.ttl());
    tokio::spawn(async move {
        let n = match ops::release_all(db, me, ttl).await {
            Ok(n) => {
                tracing::info!(released = n, "leases released");
                n
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot release the leases; they expire");
                0
            }
        };
        let _ = reply.send(n);
    });
}
