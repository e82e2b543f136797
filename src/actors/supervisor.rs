//! ReconcilerSupervisor: the root of the tree. Starts persistence, retention, the scheduler, one
//! UserSyncActor per account and one GuardActor per guarded account; owns each account's
//! circuit breaker (its restart policy); answers `AddAccount`, `RemoveAccount`,
//! `EnableAccount`, `SyncNow` and `GetStatus`.
//!
//! The breaker governs the sync actor only: a guard actor lives as long as its account,
//! is restarted at once if it fails, and keeps receiving snapshots whenever the broker
//! answers.
//!
//! One account's failures never stop, delay or slow another account, and never stop the
//! supervisor: every child exit is handled here, none escalates.
//!
//! With high availability (`ha`), an account's actors run only while this instance owns
//! its lease (see `ha`).

mod ha;

pub use ha::HaArgs;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, OutputPort, RpcReplyPort,
    SupervisionEvent,
};
use rust_decimal::Decimal;
use sea_orm::DatabaseConnection;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::breaker::{Action, Breaker, SupervisionConfig, Transition};
use super::guard::{GuardActor, GuardArgs, GuardHandle, GuardMsg, ServiceCloses};
use super::persistence::{
    PersistMsg, PersistenceActor, PersistenceArgs, PersistenceConfig, PersistenceHandle,
    ReconcilerEvent,
};
use super::retention::{RetentionActor, RetentionArgs, RetentionConfig, RetentionMsg};
use super::scheduler::{Scheduler, SchedulerArgs, SchedulerConfig};
use super::status::{AccountStatus, DurationHistogram, PersistenceStats, SchedulerStatus, Status};
use super::user_sync::{UserSyncActor, UserSyncArgs, UserSyncMsg};
use crate::broker::{Connector, ErrorClass, Needs};
use crate::clock::Clock;
use crate::domain::ReconcileRules;
use crate::guards::{GuardsConfig, Sinks};
use crate::store::{self, AuditEvent, StoredAccount};

/// An account to supervise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSpec {
    /// Account id.
    pub id: String,
    /// Name of its connector (a key of [`SupervisorArgs::connectors`]).
    pub broker: String,
}

/// What a sync ended with.
#[derive(Debug, Clone)]
pub enum SyncOutcome {
    /// The account was reconciled.
    Ok(SyncStats),
    /// It was not; `class` decides what the breaker does.
    Failed {
        /// Error class.
        class: ErrorClass,
        /// What happened (no secrets).
        message: String,
        /// How long the broker asked us to wait, if it did.
        retry_after: Option<Duration>,
        /// Whether the broker answered (the failure came after a good snapshot: the
        /// trades or the reconciliation). The breaker, which protects the broker, then
        /// counts a success, so the snapshots that feed the guards keep coming.
        broker_answered: bool,
    },
}

/// Figures of a successful sync.
#[derive(Debug, Clone)]
pub struct SyncStats {
    /// Positions at the broker.
    pub positions: usize,
    /// Divergences raised.
    pub open_divergences: usize,
    /// Divergences observed but held: in flight, or not yet confirmed.
    pub held_divergences: usize,
    /// Positions outside the bot's scope.
    pub external_positions: usize,
    /// Pending orders outside the bot's scope; `None` when this sync did not read the
    /// orders (every trade had its position): the last count stands.
    pub external_orders: Option<usize>,
    /// Bot trades waiting on a pending order.
    pub pending_orders: usize,
    /// Wall time.
    pub duration: Duration,
    /// Account equity.
    pub equity: Decimal,
}

/// Messages of the supervisor.
pub enum SupervisorMsg {
    /// From the scheduler: sync the accounts of `slot`.
    Tick {
        /// Slot index.
        slot: u32,
    },
    /// From a UserSyncActor.
    SyncFinished {
        /// Account.
        account_id: String,
        /// The reporting actor (stale reports are ignored).
        actor: ActorId,
        /// Outcome.
        outcome: SyncOutcome,
    },
    /// A breaker timer fired.
    Timer {
        /// Account.
        account_id: String,
        /// The breaker generation the timer was set in.
        generation: u64,
    },
    /// Supervise another account (an existing id is left as it is).
    AddAccount(AccountSpec),
    /// Stop supervising an account.
    RemoveAccount(String),
    /// Re-enable a disabled account, or reset a tripped breaker.
    EnableAccount(String),
    /// The same, answering whether the account is supervised here.
    EnableAccountReply(String, RpcReplyPort<bool>),
    /// The accounts table now shows the breaker's verdict on the account.
    BreakerStateRecorded {
        /// Account.
        account_id: String,
        /// Whether the row says "disabled by the breaker".
        disabled: bool,
    },
    /// Sync one account now (if its breaker lets it and it is not already syncing).
    SyncNow(String),
    /// The status of every account and of the scheduler.
    GetStatus(RpcReplyPort<Status>),
    /// An account's status and last reconciled sync (`None`: not supervised here; no view
    /// before the first reconciled sync).
    LiveView(
        String,
        RpcReplyPort<Option<(AccountStatus, Option<Arc<super::LiveView>>)>>,
    ),
    /// Stop dispatching ticks (shutdown); replies with the syncs still in flight.
    PauseTicks(RpcReplyPort<usize>),
    /// Shutdown: guards start no new close round; replies once the rounds under way have
    /// verified and recorded their closes (or `timeout` passed), with the guards that did
    /// not answer.
    DrainGuards(Duration, RpcReplyPort<usize>),
    /// Re-read the `accounts` table.
    RefreshAccounts,
    /// The `accounts` table, read.
    AccountsLoaded(Vec<StoredAccount>),
    /// Write everything buffered; replies once durable.
    Flush(RpcReplyPort<Result<(), String>>),
    /// The persistence actor's queue and flush figures (forwarded to it).
    PersistenceStats(RpcReplyPort<PersistenceStats>),
    /// From now on, the status carries these NATS counters.
    AttachNats(crate::nats::NatsStats),
    /// From the lease actor: an account's lease was taken or lost.
    Lease(super::lease::LeaseEvent),
    /// Shutdown: free every lease held here and tell the other instances; replies with the
    /// number freed (0 without high availability).
    ReleaseLeases(RpcReplyPort<u64>),
    /// Writes of an account were refused by their fence: its lease moved on.
    Fenced(super::FencedWrites),
}

#[cfg(feature = "cluster")]
impl ractor::Message for SupervisorMsg {}

/// Settings of the whole tree.
#[derive(Debug, Clone, Default)]
pub struct TreeConfig {
    /// `[scheduler]`.
    pub scheduler: SchedulerConfig,
    /// `[supervision]`.
    pub supervision: SupervisionConfig,
    /// `[persistence]`.
    pub persistence: PersistenceConfig,
    /// `[guards]`: risk guards (none by default).
    pub guards: GuardsConfig,
    /// `[retention]`: how long rows are kept.
    pub retention: RetentionConfig,
}

/// Dependencies of the supervisor.
pub struct SupervisorArgs {
    /// The database.
    pub db: DatabaseConnection,
    /// Settings.
    pub config: TreeConfig,
    /// Tolerances and pip sizes.
    pub rules: Arc<ReconcileRules>,
    /// Connectors by name; each account names one.
    pub connectors: HashMap<String, Connector>,
    /// Accounts to start with.
    pub accounts: Vec<AccountSpec>,
    /// Where durable divergence changes are published.
    pub events: Arc<OutputPort<ReconcilerEvent>>,
    /// Whether to follow the `accounts` table (the `run` command does).
    pub follow_accounts_table: bool,
    /// The wall clock of every decision and record of the tree ([`Clock::real`] in
    /// production; a clock following tokio time in tests).
    pub clock: Clock,
}

/// The actor.
pub struct ReconcilerSupervisor;

/// Where an account came from: the refresh only adds and removes table accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Configured,
    Table,
}

struct Entry {
    spec: AccountSpec,
    origin: Origin,
    breaker: Breaker,
    actor: Option<ActorRef<UserSyncMsg>>,
    timer: Option<JoinHandle<Result<(), ractor::MessagingErr<SupervisorMsg>>>>,
    slot: u32,
    /// The tick round the running sync belongs to, if a tick started it.
    round: Option<u64>,
    status: AccountStatus,
    /// The account's guard actor (when it has guards), swapped on a restart.
    guard: Option<GuardHandle>,
    /// The positions this service closed on the account (its guard writes, its sync reads).
    closes: ServiceCloses,
    /// Whether its row in the accounts table says the breaker disabled it (then a row
    /// without that reason is an operator's re-enable).
    disabled_in_table: bool,
    /// Its last reconciled sync, for the dashboard.
    live: super::LiveSlot,
    /// With high availability: the epoch of this instance's lease on the account, while
    /// it owns it.
    owned: Option<i64>,
}

/// The supervisor's state.
pub struct SupervisorState {
    args: SupervisorArgs,
    persistence: Option<PersistenceHandle>,
    retention: Option<ActorRef<RetentionMsg>>,
    scheduler: Option<ActorRef<super::scheduler::SchedulerMsg>>,
    limiter: Arc<Semaphore>,
    guards: Arc<GuardsConfig>,
    sinks: Sinks,
    /// The NATS counters, when NATS is configured.
    nats: Option<crate::nats::NatsStats>,
    accounts: BTreeMap<String, Entry>,
    ticking: bool,
    ticks: u64,
    skipped: u64,
    /// Open tick rounds by id.
    rounds: HashMap<u64, Round>,
    /// Time from a tick to the end of the last of the syncs it started.
    last_tick_duration: Option<Duration>,
    /// The longest successful sync of that tick.
    last_tick_slowest_sync: Option<Duration>,
    /// Every such time, for metrics.
    tick_duration: DurationHistogram,
    /// High availability, when enabled.
    ha: Option<ha::Ha>,
}

/// A stable 64-bit hash (FNV-1a) for slots and jitter seeds.
fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for ReconcilerSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    /// The tree's dependencies, and high availability when enabled.
    type Arguments = (SupervisorArgs, Option<HaArgs>);

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        (args, ha): (SupervisorArgs, Option<HaArgs>),
    ) -> Result<Self::State, ActorProcessingErr> {
        let limiter = Arc::new(Semaphore::new(args.config.scheduler.max_in_flight));
        let guards = Arc::new(args.config.guards.clone());
        let sinks = Sinks::new(&guards.webhook, args.events.clone());
        Ok(SupervisorState {
            guards,
            sinks,
            nats: None,
            args,
            persistence: None,
            retention: None,
            scheduler: None,
            limiter,
            accounts: BTreeMap::new(),
            ticking: true,
            ticks: 0,
            skipped: 0,
            rounds: HashMap::new(),
            last_tick_duration: None,
            last_tick_slowest_sync: None,
            tick_duration: DurationHistogram::default(),
            ha: ha.map(|args| ha::Ha { args, lease: None }),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let persistence = spawn_persistence(&myself, &state.args).await?;
        state.persistence = Some(PersistenceHandle::new(persistence));
        state.retention = Some(spawn_retention(&myself, &state.args).await?);
        for spec in state.args.accounts.clone() {
            add_account(&myself, state, spec, Origin::Configured).await;
        }
        state.scheduler = Some(spawn_scheduler(&myself, &state.args).await?);
        ha::spawn_lease(&myself, state).await?;
        if state.args.follow_accounts_table {
            refresh_accounts(&myself, state);
        }
        tracing::info!(accounts = state.accounts.len(), "reconciler started");
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for entry in state.accounts.values_mut() {
            if let Some(t) = entry.timer.take() {
                t.abort();
            }
        }
        // Children get their post_stop (persistence flushes) only when stopped explicitly.
        myself
            .stop_children_and_wait(
                Some("supervisor stopping".into()),
                Some(Duration::from_secs(30)),
            )
            .await;
        tracing::info!("reconciler stopped");
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: SupervisorMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Tick { slot } => on_tick(state, slot),
            SupervisorMsg::SyncFinished {
                account_id,
                actor,
                outcome,
            } => {
                let current = state
                    .accounts
                    .get(&account_id)
                    .and_then(|e| e.actor.as_ref())
                    .map(|a| a.get_id());
                if current == Some(actor) {
                    on_outcome(&myself, state, &account_id, outcome).await;
                }
            }
            SupervisorMsg::Timer {
                account_id,
                generation,
            } => {
                if let Some(entry) = state.accounts.get_mut(&account_id) {
                    entry.timer = None;
                    let step = entry.breaker.on_timer(generation);
                    apply(&myself, state, &account_id, step, None).await;
                }
            }
            SupervisorMsg::AddAccount(spec) => {
                add_account(&myself, state, spec, Origin::Configured).await;
                ha::publish_accounts(state);
            }
            SupervisorMsg::RemoveAccount(id) => {
                remove_account(state, &id);
                ha::publish_accounts(state);
            }
            SupervisorMsg::EnableAccount(id) => {
                enable(&myself, state, &id).await;
            }
            SupervisorMsg::EnableAccountReply(id, reply) => {
                let known = enable(&myself, state, &id).await;
                let _ = reply.send(known);
            }
            SupervisorMsg::BreakerStateRecorded {
                account_id,
                disabled,
            } => {
                if let Some(entry) = state.accounts.get_mut(&account_id) {
                    entry.disabled_in_table = disabled;
                }
            }
            SupervisorMsg::SyncNow(id) => {
                if let Some(entry) = state.accounts.get_mut(&id) {
                    dispatch(entry, &mut state.skipped);
                }
            }
            SupervisorMsg::GetStatus(reply) => {
                let _ = reply.send(status(state));
            }
            SupervisorMsg::LiveView(id, reply) => {
                let entry = state.accounts.get(&id);
                let _ = reply.send(entry.map(|e| (e.status.clone(), e.live.get())));
            }
            SupervisorMsg::PauseTicks(reply) => {
                state.ticking = false;
                let _ = reply.send(state.accounts.values().filter(|e| e.status.syncing).count());
            }
            SupervisorMsg::DrainGuards(timeout, reply) => drain_guards(state, timeout, reply),
            SupervisorMsg::RefreshAccounts => {
                if state.args.follow_accounts_table {
                    refresh_accounts(&myself, state);
                }
            }
            SupervisorMsg::AccountsLoaded(rows) => on_accounts_loaded(&myself, state, rows).await,
            SupervisorMsg::Flush(reply) => {
                if let Some(p) = &state.persistence {
                    p.send(PersistMsg::Flush(reply));
                }
            }
            SupervisorMsg::PersistenceStats(reply) => {
                if let Some(p) = &state.persistence {
                    p.send(PersistMsg::Stats(reply));
                }
            }
            SupervisorMsg::AttachNats(stats) => state.nats = Some(stats),
            SupervisorMsg::Lease(event) => ha::on_lease(&myself, state, event).await,
            SupervisorMsg::ReleaseLeases(reply) => ha::release(state, reply),
            SupervisorMsg::Fenced(writes) => ha::on_fenced(state, writes),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Overridden on purpose: the default would stop the supervisor with any child.
        let (cell, reason) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, Some(err.to_string())),
            SupervisionEvent::ActorTerminated(cell, _, _) => (cell, None),
            _ => return Ok(()),
        };
        on_child_exit(&myself, state, cell, reason).await
    }
}

async fn spawn_persistence(
    myself: &ActorRef<SupervisorMsg>,
    args: &SupervisorArgs,
) -> Result<ActorRef<PersistMsg>, ActorProcessingErr> {
    let pargs = PersistenceArgs {
        db: args.db.clone(),
        config: args.config.persistence.clone(),
        events: args.events.clone(),
        clock: args.clock,
        fenced: ha::fence_sink(myself),
    };
    let (actor, _) = Actor::spawn_linked(None, PersistenceActor, pargs, myself.get_cell()).await?;
    Ok(actor)
}

async fn spawn_retention(
    myself: &ActorRef<SupervisorMsg>,
    args: &SupervisorArgs,
) -> Result<ActorRef<RetentionMsg>, ActorProcessingErr> {
    let rargs = RetentionArgs {
        db: args.db.clone(),
        config: args.config.retention.clone(),
        clock: args.clock,
    };
    let (actor, _) = Actor::spawn_linked(None, RetentionActor, rargs, myself.get_cell()).await?;
    Ok(actor)
}

async fn spawn_scheduler(
    myself: &ActorRef<SupervisorMsg>,
    args: &SupervisorArgs,
) -> Result<ActorRef<super::scheduler::SchedulerMsg>, ActorProcessingErr> {
    let sargs = SchedulerArgs {
        supervisor: myself.clone(),
        config: args.config.scheduler.clone(),
    };
    let (actor, _) = Actor::spawn_linked(None, Scheduler, sargs, myself.get_cell()).await?;
    Ok(actor)
}

/// A child stopped. A failed account actor is a failed sync for its breaker; persistence,
/// retention and the scheduler are restarted at once.
async fn on_child_exit(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    cell: ActorCell,
    failure: Option<String>,
) -> Result<(), ActorProcessingErr> {
    let id = cell.get_id();
    let owner = state
        .accounts
        .iter()
        .find(|(_, e)| e.actor.as_ref().is_some_and(|a| a.get_id() == id))
        .map(|(k, _)| k.clone());
    if let Some(account_id) = owner {
        // The current actor of an account died: a crash, whatever the reason.
        let message = failure.unwrap_or_else(|| "actor stopped unexpectedly".into());
        if let Some(entry) = state.accounts.get_mut(&account_id) {
            entry.actor = None;
        }
        let outcome = SyncOutcome::Failed {
            class: ErrorClass::Crash,
            message,
            retry_after: None,
            broker_answered: false,
        };
        on_outcome(myself, state, &account_id, outcome).await;
        return Ok(());
    }
    let guarded = state
        .accounts
        .iter()
        .find(|(_, e)| {
            e.guard
                .as_ref()
                .and_then(GuardHandle::get)
                .is_some_and(|a| a.get_id() == id)
        })
        .map(|(k, _)| k.clone());
    if let Some(account_id) = guarded {
        tracing::error!(account = %account_id, reason = ?failure, "guard stopped; restarting it");
        audit(
            state,
            Some(&account_id),
            "guard_restarted",
            serde_json::json!({"reason": failure}),
        );
        start_guard(myself, state, &account_id).await;
        return Ok(());
    }
    if state
        .persistence
        .as_ref()
        .and_then(PersistenceHandle::get)
        .is_some_and(|p| p.get_id() == id)
    {
        tracing::error!(reason = ?failure, "persistence stopped; restarting it");
        let actor = spawn_persistence(myself, &state.args).await?;
        if let Some(handle) = &state.persistence {
            handle.swap(Some(actor));
        }
    } else if state.retention.as_ref().is_some_and(|r| r.get_id() == id) {
        tracing::error!(reason = ?failure, "retention stopped; restarting it");
        state.retention = Some(spawn_retention(myself, &state.args).await?);
    } else if state.scheduler.as_ref().is_some_and(|s| s.get_id() == id) {
        tracing::error!(reason = ?failure, "scheduler stopped; restarting it");
        state.scheduler = Some(spawn_scheduler(myself, &state.args).await?);
    } else if ha::is_lease(state, id) {
        tracing::error!(reason = ?failure, "lease actor stopped; every account stops, restarting it");
        ha::on_lease_exit(myself, state).await?;
    }
    Ok(())
}

async fn add_account(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    spec: AccountSpec,
    origin: Origin,
) {
    if state.accounts.contains_key(&spec.id) {
        return;
    }
    let slots = state.args.config.scheduler.spread_slots.max(1);
    let hash = stable_hash(&spec.id);
    let id = spec.id.clone();
    let entry = Entry {
        status: AccountStatus {
            id: id.clone(),
            broker: spec.broker.clone(),
            ..Default::default()
        },
        breaker: Breaker::new(state.args.config.supervision.clone(), hash),
        spec,
        origin,
        actor: None,
        timer: None,
        slot: (hash % u64::from(slots)) as u32,
        round: None,
        guard: None,
        closes: ServiceCloses::default(),
        disabled_in_table: false,
        live: super::LiveSlot::default(),
        owned: None,
    };
    state.accounts.insert(id.clone(), entry);
    start_guard(myself, state, &id).await;
    audit(state, Some(&id), "account_added", serde_json::json!({}));
    if let Err(reason) = start_actor(myself, state, &id).await {
        let entry = state
            .accounts
            .get_mut(&id)
            .map(|e| e.breaker.on_permanent(reason.clone()));
        if let Some(step) = entry {
            apply(myself, state, &id, step, Some(reason)).await;
        }
    }
}

/// Starts (or restarts) the guard actor of account `id` when guards apply to it; the
/// account's handle then points at the new actor.
async fn start_guard(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, id: &str) {
    if !ha::may_run(state, id) {
        return;
    }
    let guards = &state.guards;
    if guards.drawdown_rules(id).is_empty() && guards.market_rules().is_empty() {
        return;
    }
    let Some(entry) = state.accounts.get(id) else {
        return;
    };
    let (Some(connector), Some(persistence)) = (
        state.args.connectors.get(&entry.spec.broker),
        state.persistence.clone(),
    ) else {
        return;
    };
    let unworkable = guards.unworkable_checks(id, connector.broker.quotes_available());
    for problem in &unworkable {
        // An account added while running cannot be refused at start-up: say it loudly;
        // the checks hold its closes (they never pass unchecked).
        tracing::error!(account = %id, "{problem}");
    }
    if !unworkable.is_empty() {
        audit(
            state,
            Some(id),
            "guard_check_unworkable",
            serde_json::json!({"problems": unworkable}),
        );
    }
    let args = GuardArgs {
        account_id: id.to_owned(),
        broker: connector.broker.clone(),
        rules: state.args.rules.clone(),
        config: guards.clone(),
        sinks: state.sinks.clone(),
        db: state.args.db.clone(),
        persistence,
        limiter: state.limiter.clone(),
        timeout: Duration::from_millis(state.args.config.scheduler.sync_timeout_ms),
        closes: entry.closes.clone(),
        clock: state.args.clock,
        fence: ha::fence(state, id),
        fenced: ha::fence_sink(myself),
    };
    match Actor::spawn_linked(None, GuardActor, args, myself.get_cell()).await {
        Ok((actor, _)) => {
            if let Some(entry) = state.accounts.get_mut(id) {
                match &entry.guard {
                    Some(handle) => handle.swap(Some(actor)),
                    None => entry.guard = Some(GuardHandle::new(actor)),
                }
            }
        }
        Err(e) => tracing::error!(account = %id, error = %e, "cannot start the guard actor"),
    }
}

fn remove_account(state: &mut SupervisorState, id: &str) {
    if let Some(mut entry) = state.accounts.remove(id) {
        end_round(state, entry.round.take(), None);
        if let Some(t) = entry.timer.take() {
            t.abort();
        }
        if let Some(actor) = entry.actor.take() {
            actor.stop(Some("account removed".into()));
        }
        if let Some(guard) = entry.guard.take().and_then(|g| g.get()) {
            guard.stop(Some("account removed".into()));
        }
        audit(state, Some(id), "account_removed", serde_json::json!({}));
        tracing::info!(account = %id, "account removed");
    }
}

/// Spawns the account's actor; `Err` (a missing connector) is permanent.
async fn start_actor(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    id: &str,
) -> Result<(), String> {
    if !ha::may_run(state, id) {
        return Ok(());
    }
    let Some(entry) = state.accounts.get(id) else {
        return Ok(());
    };
    let connector = state
        .args
        .connectors
        .get(&entry.spec.broker)
        .cloned()
        .ok_or_else(|| format!("no broker named {:?} is configured", entry.spec.broker))?;
    let Some(persistence) = state.persistence.clone() else {
        return Err("persistence is not running".into());
    };
    let args = UserSyncArgs {
        account_id: id.to_owned(),
        connector,
        rules: state.args.rules.clone(),
        persistence,
        supervisor: myself.clone(),
        limiter: state.limiter.clone(),
        timeout: Duration::from_millis(state.args.config.scheduler.sync_timeout_ms),
        guard: entry.guard.clone(),
        // The guards judge balances and (with market rules) quotes on every snapshot;
        // reconciliation needs neither.
        needs: Needs {
            balances: entry.guard.is_some(),
            quotes: entry.guard.is_some() && !state.guards.market_rules().is_empty(),
            orders: false,
        },
        closes: entry.closes.clone(),
        clock: state.args.clock,
        live: entry.live.clone(),
        fence: ha::fence(state, id),
    };
    let spawned = Actor::spawn_linked(None, UserSyncActor, args, myself.get_cell())
        .await
        .map_err(|e| format!("cannot start the sync actor: {e}"))?;
    if let Some(entry) = state.accounts.get_mut(id) {
        entry.actor = Some(spawned.0);
        entry.status.syncing = false;
    }
    Ok(())
}

fn on_tick(state: &mut SupervisorState, slot: u32) {
    state.ticks += 1;
    if !state.ticking {
        return;
    }
    let round = state.ticks;
    let mut started = 0;
    for entry in state.accounts.values_mut().filter(|e| e.slot == slot) {
        if dispatch(entry, &mut state.skipped) {
            entry.round = Some(round);
            started += 1;
        }
    }
    if started > 0 {
        state.rounds.insert(
            round,
            Round {
                at: Instant::now(),
                left: started,
                slowest: None,
            },
        );
    }
}

/// The syncs one tick started.
#[derive(Debug)]
struct Round {
    /// Dispatched at.
    at: Instant,
    /// Syncs still running.
    left: usize,
    /// The longest successful sync so far.
    slowest: Option<Duration>,
}

/// A sync of `round` ended (`took`: the duration of a successful one), or will never end:
/// closes the round with its last sync.
fn end_round(state: &mut SupervisorState, round: Option<u64>, took: Option<Duration>) {
    let Some(id) = round else { return };
    if let Some(round) = state.rounds.get_mut(&id) {
        round.left -= 1;
        round.slowest = round.slowest.max(took);
        if round.left == 0 {
            state.last_tick_duration = Some(round.at.elapsed());
            state.last_tick_slowest_sync = round.slowest;
            state.tick_duration.observe(round.at.elapsed());
            state.rounds.remove(&id);
        }
    }
}

/// Sends one `Sync` if the breaker allows it and none is running; a busy account skips.
/// Returns whether a sync was started.
fn dispatch(entry: &mut Entry, skipped: &mut u64) -> bool {
    entry.breaker.takes_ticks() && send_sync(entry, skipped)
}

/// Sends one `Sync` unless one is running (then the tick is counted as skipped).
fn send_sync(entry: &mut Entry, skipped: &mut u64) -> bool {
    let Some(actor) = &entry.actor else {
        return false;
    };
    if entry.status.syncing {
        entry.status.skipped_ticks += 1;
        *skipped += 1;
        return false;
    }
    if actor.cast(UserSyncMsg::Sync).is_ok() {
        entry.status.syncing = true;
        entry.round = None;
        return true;
    }
    false
}

async fn on_outcome(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    account_id: &str,
    outcome: SyncOutcome,
) {
    let Some(entry) = state.accounts.get_mut(account_id) else {
        return;
    };
    entry.status.syncing = false;
    let round = entry.round.take();
    let took = match &outcome {
        SyncOutcome::Ok(stats) => Some(stats.duration),
        SyncOutcome::Failed { .. } => None,
    };
    let (step, reason) = match outcome {
        SyncOutcome::Ok(stats) => {
            let s = &mut entry.status;
            s.syncs_ok += 1;
            s.last_sync_at = Some(state.args.clock.now());
            s.last_sync_duration = Some(stats.duration);
            s.sync_duration.observe(stats.duration);
            s.positions = stats.positions;
            s.open_divergences = stats.open_divergences;
            s.held_divergences = stats.held_divergences;
            s.external_positions = stats.external_positions;
            if let Some(n) = stats.external_orders {
                s.external_orders = n;
            }
            s.pending_orders = stats.pending_orders;
            s.equity = Some(stats.equity);
            (entry.breaker.on_success(), None)
        }
        SyncOutcome::Failed {
            class,
            message,
            retry_after,
            broker_answered,
        } => {
            entry.status.syncs_failed += 1;
            let by_class = &mut entry.status.failures_by_class;
            *by_class.entry(class.as_str().to_owned()).or_default() += 1;
            entry.status.last_sync_duration = None;
            entry.status.last_error = Some(format!("{class}: {message}"));
            let step = if broker_answered {
                entry.breaker.on_success()
            } else if class == ErrorClass::Permanent {
                entry.breaker.on_permanent(message.clone())
            } else {
                entry.breaker.on_failure(Instant::now(), retry_after)
            };
            (step, Some(format!("{class}: {message}")))
        }
    };
    end_round(state, round, took);
    apply(myself, state, account_id, step, reason).await;
}

/// Carries out what the breaker decided, and records the transition.
async fn apply(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    id: &str,
    (action, transition): (Action, Option<Transition>),
    reason: Option<String>,
) {
    if let Some(t) = &transition {
        tracing::info!(account = %id, from = t.from, to = t.to, reason = reason.as_deref().unwrap_or(""), "{}", t.event.replace('_', " "));
        state.args.events.send(ReconcilerEvent::BreakerTransition {
            account_id: id.to_owned(),
            from: t.from.to_owned(),
            to: t.to.to_owned(),
            event: t.event.to_owned(),
            reason: reason.clone(),
            at: state.args.clock.now(),
        });
        audit(
            state,
            Some(id),
            t.event,
            serde_json::json!({"from": t.from, "to": t.to, "reason": reason}),
        );
    }
    if let Some(t) = &transition
        && (t.to == "disabled" || t.from == "disabled")
    {
        let disabled = (t.to == "disabled").then(|| reason.clone().unwrap_or_default());
        record_breaker_state(myself, state, id, disabled);
    }
    let Some(entry) = state.accounts.get_mut(id) else {
        return;
    };
    if let Some(t) = &transition {
        entry.status.transitions += 1;
        let by_kind = &mut entry.status.transitions_by_kind;
        *by_kind.entry(t.event.to_owned()).or_default() += 1;
    }
    entry.status.state = entry.breaker.state().name().to_owned();
    entry.status.consecutive_failures = entry.breaker.consecutive_failures();
    entry.status.disabled_reason = match entry.breaker.state() {
        super::breaker::BreakerState::Disabled { reason } => Some(reason.clone()),
        _ => None,
    };
    match action {
        Action::None => {}
        Action::Schedule { delay, generation } => {
            stop_actor(entry, "backing off");
            let account_id = id.to_owned();
            if let Some(old) = entry.timer.take() {
                old.abort();
            }
            entry.timer = Some(myself.send_after(delay, move || SupervisorMsg::Timer {
                account_id,
                generation,
            }));
        }
        Action::Stop => stop_actor(entry, "disabled"),
        Action::Start | Action::Probe => {
            entry.status.restarts += 1;
            stop_actor(entry, "replaced");
            if let Err(e) = start_actor(myself, state, id).await {
                tracing::error!(account = %id, error = %e, "cannot start the sync actor");
                return;
            }
            // The probe: one sync, outside the ticks.
            if matches!(action, Action::Probe)
                && let Some(entry) = state.accounts.get_mut(id)
            {
                send_sync(entry, &mut state.skipped);
            }
        }
    }
}

fn stop_actor(entry: &mut Entry, why: &str) {
    if let Some(actor) = entry.actor.take() {
        actor.stop(Some(why.into()));
    }
    entry.status.syncing = false;
}

/// Appends an audit event; one of an account owned under high availability carries its
/// fence.
fn audit(state: &SupervisorState, account: Option<&str>, kind: &str, detail: serde_json::Value) {
    if let Some(p) = &state.persistence {
        let event = AuditEvent {
            at: state.args.clock.now(),
            account_id: account.map(str::to_owned),
            kind: kind.to_owned(),
            detail,
        };
        p.send(PersistMsg::audit(
            event,
            account.and_then(|a| ha::fence(state, a)),
        ));
    }
}

/// Asks every guard to start nothing new and to finish the round under way; answers in
/// a task of its own, so the supervisor keeps serving meanwhile.
fn drain_guards(state: &SupervisorState, timeout: Duration, reply: RpcReplyPort<usize>) {
    let guards: Vec<_> = state
        .accounts
        .values()
        .filter_map(|e| e.guard.as_ref().and_then(GuardHandle::get))
        .collect();
    tokio::spawn(async move {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let mut calls = tokio::task::JoinSet::new();
        for guard in guards {
            calls.spawn(async move { ractor::call_t!(guard, GuardMsg::Drain, ms).is_ok() });
        }
        let mut silent = 0;
        while let Some(done) = calls.join_next().await {
            if !matches!(done, Ok(true)) {
                silent += 1;
            }
        }
        let _ = reply.send(silent);
    });
}

/// Re-enables account `id` (or resets its tripped breaker); false when it is not
/// supervised here.
async fn enable(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, id: &str) -> bool {
    let Some(entry) = state.accounts.get_mut(id) else {
        return false;
    };
    let step = entry.breaker.enable();
    apply(
        myself,
        state,
        id,
        step,
        Some("enabled by an operator".into()),
    )
    .await;
    true
}

/// Writes the breaker's verdict to the account's row (when it has one), so `accounts
/// list` shows it and `accounts enable` can undo it.
fn record_breaker_state(
    myself: &ActorRef<SupervisorMsg>,
    state: &SupervisorState,
    id: &str,
    disabled: Option<String>,
) {
    let (db, me, account_id) = (state.args.db.clone(), myself.clone(), id.to_owned());
    let at = state.args.clock.now();
    tokio::spawn(async move {
        let written = store::record_breaker_state(&db, &account_id, disabled.as_deref(), at).await;
        match written {
            Ok(true) => {
                let _ = me.cast(SupervisorMsg::BreakerStateRecorded {
                    account_id,
                    disabled: disabled.is_some(),
                });
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(account = %account_id, error = %e, "cannot record the breaker's state in the accounts table")
            }
        }
    });
}

fn refresh_accounts(myself: &ActorRef<SupervisorMsg>, state: &SupervisorState) {
    let db = state.args.db.clone();
    let me = myself.clone();
    tokio::spawn(async move {
        match store::list_accounts(&db).await {
            Ok(rows) => {
                let _ = me.cast(SupervisorMsg::AccountsLoaded(rows));
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the accounts table"),
        }
    });
}

async fn on_accounts_loaded(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    rows: Vec<StoredAccount>,
) {
    let wanted: BTreeMap<String, (String, Option<String>)> = rows
        .into_iter()
        .filter(|r| r.account.enabled)
        .map(|r| (r.account.id, (r.account.broker, r.account.disabled_reason)))
        .collect();
    let gone: Vec<String> = state
        .accounts
        .iter()
        .filter(|(id, e)| e.origin == Origin::Table && !wanted.contains_key(*id))
        .map(|(id, _)| id.clone())
        .collect();
    for id in gone {
        remove_account(state, &id);
    }
    for (id, (broker, reason)) in wanted {
        match state.accounts.get_mut(&id) {
            None => add_account(myself, state, AccountSpec { id, broker }, Origin::Table).await,
            // The row no longer says the breaker disabled it: an operator re-enabled it.
            Some(entry) if entry.disabled_in_table && reason.is_none() => {
                entry.disabled_in_table = false;
                tracing::info!(account = %id, "re-enabled through the accounts table");
                enable(myself, state, &id).await;
            }
            Some(_) => {}
        }
    }
    ha::publish_accounts(state);
}

fn status(state: &SupervisorState) -> Status {
    let accounts: Vec<AccountStatus> = state
        .accounts
        .values()
        .map(|e| {
            let mut s = e.status.clone();
            s.state = e.breaker.state().name().to_owned();
            s
        })
        .collect();
    let max = state.args.config.scheduler.max_in_flight;
    Status {
        scheduler: SchedulerStatus {
            interval: state.args.config.scheduler.interval(),
            ticks: state.ticks,
            skipped_ticks: state.skipped,
            syncs_in_flight: accounts.iter().filter(|a| a.syncing).count(),
            broker_calls_in_flight: max.saturating_sub(state.limiter.available_permits()),
            ticking: state.ticking,
            last_tick_duration: state.last_tick_duration,
            last_tick_slowest_sync: state.last_tick_slowest_sync,
            tick_duration: state.tick_duration.clone(),
        },
        accounts,
        nats: state.nats.as_ref().map(crate::nats::NatsStats::snapshot),
        ha: state.ha.as_ref().map(|h| h.args.stats.snapshot()),
    }
}
