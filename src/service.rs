//! The service: builds the actor tree from configuration, runs it until a shutdown signal,
//! and stops it gracefully (no new ticks, in-flight syncs finish, everything flushed).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorRef, OutputPort};
use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;

use crate::actors::{
    AccountSpec, HaArgs, ReconcilerEvent, ReconcilerSupervisor, Status, SupervisorArgs,
    SupervisorMsg, TreeConfig,
};
use crate::broker::Connector;
use crate::broker::sim::SimBroker;
use crate::config::Config;

/// How long one call into the tree may take before it is given up.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the service could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The supervisor could not be spawned.
    #[error("cannot start the actor tree: {0}")]
    Spawn(String),
    /// A call into the tree failed or timed out.
    #[error("the actor tree did not answer: {0}")]
    Call(String),
    /// A configured check cannot work (a guard needs quotes the account's broker does not
    /// give): every such problem, each naming the rule, the account and the reason.
    #[error("configured checks that cannot work:\n  {}", .0.join("\n  "))]
    Config(Vec<String>),
    /// The HTTP server could not start (bad address, missing token, port taken).
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    /// NATS is configured but cannot work (bad address, missing secret, unreadable creds
    /// file, missing stream): names the setting.
    #[error("nats: {0}")]
    Nats(#[from] crate::nats::NatsError),
}

/// A running actor tree.
pub struct Reconciler {
    supervisor: ActorRef<SupervisorMsg>,
    handle: JoinHandle<()>,
    events: Arc<OutputPort<ReconcilerEvent>>,
}

/// What a graceful stop achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopReport {
    /// Syncs still running when the grace period ended (0 when all finished).
    pub abandoned_syncs: usize,
    /// Whether everything buffered reached the database.
    pub flushed: bool,
}

impl Reconciler {
    /// Spawns the tree as a root (for `run`, `demo` and tests).
    pub async fn start(args: SupervisorArgs) -> Result<Self, ServiceError> {
        Self::start_with(args, None).await
    }

    /// Spawns the tree as a root sharing its accounts with other instances through leases
    /// (PostgreSQL only): an account's actors run only while this instance owns it.
    pub async fn start_ha(args: SupervisorArgs, ha: HaArgs) -> Result<Self, ServiceError> {
        Self::start_with(args, Some(ha)).await
    }

    async fn start_with(args: SupervisorArgs, ha: Option<HaArgs>) -> Result<Self, ServiceError> {
        let problems: Vec<String> = args
            .accounts
            .iter()
            .filter_map(|a| Some((a, args.connectors.get(&a.broker)?)))
            .flat_map(|(a, c)| {
                let guards = &args.config.guards;
                guards.unworkable_checks(&a.id, c.broker.quotes_available())
            })
            .collect();
        if !problems.is_empty() {
            return Err(ServiceError::Config(problems));
        }
        let events = args.events.clone();
        let (supervisor, handle) = Actor::spawn(None, ReconcilerSupervisor, (args, ha))
            .await
            .map_err(|e| ServiceError::Spawn(e.to_string()))?;
        Ok(Self {
            supervisor,
            handle,
            events,
        })
    }

    /// The supervisor, to send messages to.
    pub fn actor(&self) -> &ActorRef<SupervisorMsg> {
        &self.supervisor
    }

    /// Durable divergence changes; subscribe an actor with [`OutputPort::subscribe`].
    pub fn events(&self) -> &Arc<OutputPort<ReconcilerEvent>> {
        &self.events
    }

    /// The tree's status.
    pub async fn status(&self) -> Result<Status, ServiceError> {
        status(&self.supervisor).await
    }

    /// Writes everything buffered; returns once it is durable.
    pub async fn flush(&self) -> Result<(), ServiceError> {
        flush(&self.supervisor, Some(CALL_TIMEOUT)).await
    }

    /// Frees every lease this instance holds and tells the other instances, which take
    /// the accounts at once; returns how many were freed (0 without high availability).
    /// The tree acts on no account afterwards.
    pub async fn release_leases(&self) -> Result<u64, ServiceError> {
        ractor::call_t!(
            self.supervisor,
            SupervisorMsg::ReleaseLeases,
            CALL_TIMEOUT.as_millis() as u64
        )
        .map_err(|e| ServiceError::Call(e.to_string()))
    }

    /// Stops at once, without flushing: what a crash or `kill -9` leaves behind.
    pub async fn abort(self) {
        self.supervisor.kill();
        let _ = self.handle.await;
    }

    /// Stops gracefully: no new ticks, in-flight syncs may finish within `grace`, guards
    /// start no new close round and finish (verify and record) the one under way, the
    /// buffer is flushed (retrying while the database is away, within `grace`), the leases
    /// (with high availability) are freed for the other instances, then the tree stops.
    pub async fn shutdown(self, grace: Duration) -> StopReport {
        let deadline = tokio::time::Instant::now() + grace;
        let _ = ractor::call_t!(
            self.supervisor,
            SupervisorMsg::PauseTicks,
            CALL_TIMEOUT.as_millis() as u64
        );
        let mut abandoned = 0;
        loop {
            match status(&self.supervisor).await {
                Ok(s) if s.scheduler.syncs_in_flight == 0 => {
                    abandoned = 0;
                    break;
                }
                Ok(s) => abandoned = s.scheduler.syncs_in_flight,
                Err(_) => break,
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Guards send nothing new; closes already sent are verified and recorded first.
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let silent = ractor::call_t!(
            self.supervisor,
            SupervisorMsg::DrainGuards,
            u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(100),
            left
        );
        if !matches!(silent, Ok(0)) {
            tracing::warn!(guards = ?silent, "some guards did not finish their close round before the stop");
        }
        let mut flushed = false;
        while !flushed {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            flushed = flush(&self.supervisor, Some(left.max(Duration::from_millis(100))))
                .await
                .is_ok();
            if flushed || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Err(e) = self.release_leases().await {
            tracing::warn!(error = %e, "cannot release the leases; they expire");
        }
        self.supervisor.stop(Some("shutdown".into()));
        let _ = self.handle.await;
        StopReport {
            abandoned_syncs: abandoned,
            flushed,
        }
    }
}

/// Spawns the tree linked under a host's actor: the host receives its supervision events.
pub async fn spawn_linked(
    args: SupervisorArgs,
    parent: ActorCell,
) -> Result<(ActorRef<SupervisorMsg>, JoinHandle<()>), ServiceError> {
    Actor::spawn_linked(None, ReconcilerSupervisor, (args, None), parent)
        .await
        .map_err(|e| ServiceError::Spawn(e.to_string()))
}

/// Asks the tree to write everything buffered and waits until it is durable, or until
/// `timeout` (`None`: no limit; for tests under paused time, where the clock may jump
/// while a real database call runs).
pub async fn flush(
    supervisor: &ActorRef<SupervisorMsg>,
    timeout: Option<Duration>,
) -> Result<(), ServiceError> {
    supervisor
        .call(SupervisorMsg::Flush, timeout)
        .await
        .map_err(|e| ServiceError::Call(e.to_string()))?
        .success_or(ServiceError::Call("flush timed out".into()))?
        .map_err(ServiceError::Call)
}

/// Asks `supervisor` for its status.
pub async fn status(supervisor: &ActorRef<SupervisorMsg>) -> Result<Status, ServiceError> {
    ractor::call_t!(
        supervisor,
        SupervisorMsg::GetStatus,
        CALL_TIMEOUT.as_millis() as u64
    )
    .map_err(|e| ServiceError::Call(e.to_string()))
}

/// The connectors and accounts a configuration describes. Returns the simulated broker
/// too, when enabled, so callers (the demo, tests) can script it. Real brokers (`metaapi`,
/// `mt5_export`) read the bot's trades from `db`.
pub fn from_config(
    config: &Config,
    db: &DatabaseConnection,
) -> (
    HashMap<String, Connector>,
    Vec<AccountSpec>,
    Option<Arc<SimBroker>>,
) {
    let mut connectors = HashMap::new();
    let mut accounts: Vec<AccountSpec> = Vec::new();
    let mut sim = None;
    for name in &config.broker.enabled {
        if name == "sim" {
            let broker = Arc::new(SimBroker::new(&config.broker.sim));
            accounts.extend(broker.account_ids().into_iter().map(|id| AccountSpec {
                id,
                broker: "sim".into(),
            }));
            connectors.insert(
                name.clone(),
                Connector {
                    broker: broker.clone(),
                    trades: broker.clone(),
                },
            );
            sim = Some(broker);
        } else if name == "metaapi" || name == "mt5_export" {
            let broker: Arc<dyn crate::broker::Broker> = if name == "metaapi" {
                crate::broker::metaapi::from_config(&config.broker.metaapi, &config.accounts)
            } else {
                Arc::new(crate::broker::mt5_export::Mt5ExportBroker::new(
                    &config.broker.mt5_export,
                ))
            };
            let trades = Arc::new(crate::broker::db_trades::DbTrades::new(db.clone()));
            connectors.insert(name.clone(), Connector { broker, trades });
        }
    }
    for a in &config.accounts {
        if !accounts.iter().any(|x| x.id == a.id) {
            accounts.push(AccountSpec {
                id: a.id.clone(),
                broker: a.broker.clone(),
            });
        }
    }
    (connectors, accounts, sim)
}

/// The tree settings of a configuration.
pub fn tree_config(config: &Config) -> TreeConfig {
    TreeConfig {
        scheduler: config.scheduler.clone(),
        supervision: config.supervision.clone(),
        persistence: config.persistence.clone(),
        guards: config.guards.clone(),
        retention: config.retention.clone(),
    }
}

/// Runs the service until `shutdown` resolves, then stops it gracefully.
pub async fn run(
    config: &Config,
    db: DatabaseConnection,
    shutdown: impl Future<Output = ()>,
) -> Result<StopReport, ServiceError> {
    let (connectors, accounts, _sim) = from_config(config, &db);
    // Bound before the tree starts: a missing token or a taken port fails fast.
    let tokens = crate::http::resolve_tokens(&config.http)?;
    let listener = crate::http::bind(&config.http, tokens).await?;
    let http_db = db.clone();
    let trades_db = db.clone();
    // Connected (in the background) and checked before the tree starts: a NATS that
    // cannot work fails the start-up, naming its setting.
    let nats = crate::nats::Nats::start(&config.nats).await?;
    let args = SupervisorArgs {
        db,
        config: tree_config(config),
        rules: Arc::new(config.reconcile_rules(None)),
        connectors,
        accounts,
        events: Arc::new(OutputPort::default()),
        follow_accounts_table: true,
        clock: config.clock.clock(),
    };
    if config.clock.offset_secs != 0 {
        tracing::warn!(
            offset_secs = config.clock.offset_secs,
            "the wall clock is skewed by configuration"
        );
    }
    let reconciler = if config.ha.enabled {
        let ha = HaArgs::new(config.ha.clone());
        tracing::info!(instance = %ha.instance_id, ttl_secs = config.ha.ttl_secs, "high availability: accounts are shared by leases");
        Reconciler::start_ha(args, ha).await?
    } else {
        Reconciler::start(args).await?
    };
    let grace = Duration::from_millis(config.scheduler.sync_timeout_ms) + Duration::from_secs(5);
    let nats = match nats {
        Some(n) => match n.attach(&reconciler, &config.nats, &trades_db).await {
            Ok(running) => Some(running),
            Err(e) => {
                reconciler.shutdown(grace).await;
                return Err(e.into());
            }
        },
        None => None,
    };
    let slots = config.scheduler.spread_slots;
    let http = listener.map(|l| l.serve(reconciler.actor().clone(), http_db, slots));
    shutdown.await;
    tracing::info!("shutting down: no new syncs, flushing");
    if let Some(http) = http {
        http.stop().await;
    }
    let report = reconciler.shutdown(grace).await;
    if let Some(nats) = nats {
        nats.stop(Duration::from_secs(5)).await;
    }
    Ok(report)
}
