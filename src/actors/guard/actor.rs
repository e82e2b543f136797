//! GuardActor: one per guarded account, beside its sync actor. It receives every snapshot
//! the sync actor fetches, before anything else happens to it, so reconciliation
//! failures (an unknown pip size, a trade read that fails, a divergence write that fails)
//! never stop the guards, and a failing guard never stops reconciliation.
//!
//! The path: snapshot → evaluate → alert (stored, then sent) → close round (the alert
//! claimed, on a fresh snapshot) → a close intent recorded per position → close → verify.
//! Rounds run in their own task, so the actor keeps evaluating snapshots while positions
//! are being closed.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use sea_orm::DatabaseConnection;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::enforce::{self, Enforcement};
use super::round::RoundOutcome;
use crate::actors::fencing::FenceSink;
use crate::actors::handle::SwapRef;
use crate::actors::persistence::PersistenceHandle;
use crate::broker::Broker;
use crate::clock::Clock;
use crate::domain::{AccountSnapshot, ReconcileRules};
use crate::guards::{GuardSet, GuardsConfig, Sinks};
use crate::store::Fence;

/// Messages of a GuardActor.
#[derive(Debug)]
pub enum GuardMsg {
    /// A snapshot the sync actor fetched; `requested_at` is when it asked the broker.
    Snapshot {
        /// The account as the broker showed it.
        snapshot: Arc<AccountSnapshot>,
        /// When the request left (a snapshot requested before a close round ended says
        /// nothing about what the round left open).
        requested_at: Instant,
    },
    /// A lead or a retry backoff is over: run a close round.
    RoundDue {
        /// The enforcement generation the timer was set in (stale timers do nothing).
        generation: u64,
    },
    /// Time to check that snapshots still come (see [`super::blind`]).
    Watch,
    /// The service stops: start nothing new; answer once the round under way (if any)
    /// has verified and recorded its closes.
    Drain(RpcReplyPort<()>),
    /// A close round finished.
    RoundDone {
        /// The generation it ran in.
        generation: u64,
        /// What it did.
        outcome: RoundOutcome,
    },
}

#[cfg(feature = "cluster")]
impl ractor::Message for GuardMsg {}

/// Where the sync actor sends snapshots: the account's current guard actor.
pub type GuardHandle = SwapRef<GuardMsg>;

/// Dependencies of a GuardActor.
#[derive(Clone)]
pub struct GuardArgs {
    /// The account.
    pub account_id: String,
    /// Its broker (for fresh snapshots and closes).
    pub broker: Arc<dyn Broker>,
    /// Configured pip rules and aliases (the broker's specifications are merged in).
    pub rules: Arc<ReconcileRules>,
    /// `[guards]`.
    pub config: Arc<GuardsConfig>,
    /// Where alerts go.
    pub sinks: Sinks,
    /// Alerts are stored here before they are sent; claims and cancels happen here.
    pub db: DatabaseConnection,
    /// The audit trail.
    pub persistence: PersistenceHandle,
    /// The global cap on broker calls in flight (closes take part in it).
    pub limiter: Arc<Semaphore>,
    /// Deadline of every broker call.
    pub timeout: Duration,
    /// The positions this guard closed, shared with the account's sync.
    pub closes: super::ServiceCloses,
    /// The wall clock of evaluations, alerts (`close_at`), claims and audit events.
    pub clock: Clock,
    /// The account's lease under high availability (owner and epoch); `None` otherwise.
    pub fence: Option<Fence>,
    /// Where writes refused by `fence` are reported.
    pub fenced: FenceSink,
}

/// The actor (empty: everything lives in its state).
pub struct GuardActor;

/// Its state: the rules and what they remember, and the enforcement of a breach.
pub struct GuardState {
    pub(super) args: Arc<GuardArgs>,
    pub(super) set: GuardSet,
    pub(super) enforcement: Option<Enforcement>,
    pub(super) generation: u64,
    /// The memory as last stored (JSON), to write only what changed.
    pub(super) saved: Option<String>,
    /// When the last good snapshot arrived, and whether people were told the guards are
    /// blind since.
    pub(super) last_seen: Instant,
    pub(super) blind: bool,
    /// The timer of `Watch`.
    pub(super) watch: Option<tokio::task::JoinHandle<()>>,
    /// Set by `Drain`: no new round starts; the port answers when the last one ended.
    pub(super) draining: Option<Vec<RpcReplyPort<()>>>,
    /// When the last equity sample was stored.
    pub(super) sampled_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for GuardActor {
    type Msg = GuardMsg;
    type State = GuardState;
    type Arguments = GuardArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: GuardArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(GuardState {
            set: GuardSet::new(&args.config, &args.account_id, &args.rules),
            args: Arc::new(args),
            enforcement: None,
            generation: 0,
            saved: None,
            last_seen: Instant::now(),
            blind: false,
            watch: None,
            draining: None,
            sampled_at: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        super::memory::restore(&myself, state).await;
        super::blind::start_watch(&myself, state);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(timer) = state.watch.take() {
            timer.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: GuardMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            GuardMsg::Snapshot {
                snapshot,
                requested_at,
            } => {
                super::blind::seen(state);
                enforce::on_snapshot(&myself, state, &snapshot, requested_at).await;
                super::memory::save(state).await;
                super::sampling::sample(state, &snapshot).await;
            }
            GuardMsg::Watch => super::blind::watch(state),
            GuardMsg::Drain(reply) => enforce::drain(state, reply),
            GuardMsg::RoundDue { generation } => enforce::on_due(&myself, state, generation),
            GuardMsg::RoundDone {
                generation,
                outcome,
            } => enforce::on_round_done(&myself, state, generation, outcome),
        }
        Ok(())
    }
}
