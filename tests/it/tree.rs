//! The actor tree driven by messages: on SQLite, and on PostgreSQL when DATABASE_URL is set.
//!
//! Schedules and backoffs run on paused tokio time: the simulated broker sleeps in tokio
//! time, so minutes of ticks pass in milliseconds. Database calls are real; nothing on the
//! sync path waits for them, and the tests flush without a timeout, so a clock that jumps
//! while a query runs cannot make them flaky.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use mt5_reconciler::actors::{
    AccountStatus, PersistenceConfig, ReconcilerEvent, SchedulerConfig, Status, SupervisionConfig,
    SupervisorArgs, SupervisorMsg, TreeConfig,
};
use mt5_reconciler::broker::sim::{Fault, SimBroker, SimConfig};
use mt5_reconciler::broker::{BrokerError, Connector};
use mt5_reconciler::domain::{
    BrokerPosition, LiveRules, Price, ReconcileRules, Side, Volume, reconcile,
};
use mt5_reconciler::service::{self, Reconciler};
use mt5_reconciler::store::{self, DivergenceStatus};
use ractor::OutputPort;
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};

use crate::common;

/// Ten-second ticks, every account in one slot, a touchy breaker.
pub(crate) fn tree_config() -> TreeConfig {
    TreeConfig {
        scheduler: SchedulerConfig {
            interval_ms: 10_000,
            spread_slots: 1,
            max_in_flight: 1_000,
            sync_timeout_ms: 2_000,
            accounts_refresh_secs: 0,
        },
        supervision: SupervisionConfig {
            min_backoff_ms: 1_000,
            max_backoff_ms: 8_000,
            jitter_pct: 10,
            max_failures: 3,
            window_secs: 300,
            open_for_secs: 30,
            max_open_for_secs: 120,
        },
        persistence: PersistenceConfig {
            batch_size: 1_000,
            flush_interval_ms: 50,
            retry_min_ms: 100,
            retry_max_ms: 1_000,
            ..PersistenceConfig::default()
        },
        guards: Default::default(),
        retention: Default::default(),
    }
}

pub(crate) fn sim(accounts: usize, positions: usize, noisy: bool, seed: u64) -> Arc<SimBroker> {
    let config = SimConfig {
        accounts,
        positions_per_account: positions,
        seed,
        ..SimConfig::default()
    };
    let config = if noisy {
        config
    } else {
        config.without_noise()
    };
    Arc::new(SimBroker::new(&config))
}

/// The tree's arguments over every account of `sim`, which is broker and trade source.
pub(crate) fn args(
    db: &DatabaseConnection,
    sim: &Arc<SimBroker>,
    config: TreeConfig,
) -> SupervisorArgs {
    let connector = Connector {
        broker: sim.clone(),
        trades: sim.clone(),
    };
    SupervisorArgs {
        db: db.clone(),
        config,
        rules: Arc::new(ReconcileRules::default()),
        connectors: HashMap::from([("sim".to_owned(), connector)]),
        accounts: sim
            .account_ids()
            .into_iter()
            .map(|id| mt5_reconciler::actors::AccountSpec {
                id,
                broker: "sim".into(),
            })
            .collect(),
        events: Arc::new(OutputPort::default()),
        follow_accounts_table: false,
        // Follows tokio's clock: on paused time, grace windows pass with the ticks.
        clock: mt5_reconciler::clock::Clock::following_tokio(chrono::Utc::now()),
    }
}

pub(crate) async fn start(
    db: &DatabaseConnection,
    sim: &Arc<SimBroker>,
    config: TreeConfig,
) -> Reconciler {
    Reconciler::start(args(db, sim, config))
        .await
        .expect("tree starts")
}

/// Polls the status (in tokio time) until `cond` holds.
pub(crate) async fn wait_for(
    tree: &Reconciler,
    what: &str,
    cond: impl Fn(&Status) -> bool,
) -> Status {
    let mut last = None;
    for _ in 0..20_000 {
        let s = tree.status().await.expect("status");
        if cond(&s) {
            return s;
        }
        last = Some(s);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gave up waiting for {what}: {last:#?}");
}

/// Waits out the live rules' grace, then two more syncs of every account: what confirms
/// a divergence seen before.
pub(crate) async fn settle(supervisor: &ractor::ActorRef<SupervisorMsg>) {
    let grace = LiveRules::default().grace.num_seconds().unsigned_abs();
    tokio::time::sleep(Duration::from_secs(grace + 1)).await;
    let mut status = service::status(supervisor).await.expect("status");
    let done = status
        .accounts
        .iter()
        .map(|a| a.syncs_ok)
        .min()
        .unwrap_or(0);
    for _ in 0..20_000 {
        if status.accounts.iter().all(|a| a.syncs_ok >= done + 2) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = service::status(supervisor).await.expect("status");
    }
    panic!("gave up waiting for two more syncs: {status:#?}");
}

pub(crate) fn acc<'a>(s: &'a Status, id: &str) -> &'a AccountStatus {
    s.accounts
        .iter()
        .find(|a| a.id == id)
        .unwrap_or_else(|| panic!("no account {id} in {s:#?}"))
}

pub(crate) async fn flush(tree: &Reconciler) {
    service::flush(tree.actor(), None).await.expect("flush");
}

pub(crate) type Key = (String, Option<String>, Option<u64>);

pub(crate) async fn open_keys(db: &DatabaseConnection, account: &str) -> BTreeSet<Key> {
    let rows = store::open_divergences(db, account)
        .await
        .expect("open divergences");
    let keys: BTreeSet<Key> = rows
        .iter()
        .map(|r| {
            (
                r.divergence.kind.to_string(),
                r.divergence.trade_id.clone(),
                r.divergence.ticket,
            )
        })
        .collect();
    assert_eq!(
        keys.len(),
        rows.len(),
        "one open row per divergence on {account}"
    );
    keys
}

/// What `reconcile` says about the simulated account right now.
fn expected_keys(sim: &SimBroker, account: &str) -> BTreeSet<Key> {
    let r = reconcile(
        &sim.trades(account),
        &sim.positions(account),
        &ReconcileRules::default(),
    )
    .expect("reconcile");
    r.divergences
        .iter()
        .map(|d| (d.kind.to_string(), d.trade_id.clone(), d.ticket))
        .collect()
}

pub(crate) async fn all_rows(
    db: &DatabaseConnection,
    account: &str,
) -> Vec<store::StoredDivergence> {
    store::list_divergences(db, account, None)
        .await
        .expect("divergences")
}

/// Positions that agree with the account's trades exactly (the trader fixed everything).
pub(crate) fn mirror(sim: &SimBroker, account: &str) -> Vec<BrokerPosition> {
    let positions = sim.positions(account);
    let template = positions.first().cloned().expect("account has a position");
    sim.trades(account)
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let ticket = t.ticket.unwrap_or(9_000_000_000 + i as u64);
            BrokerPosition {
                ticket,
                identifier: ticket,
                symbol: t.symbol.clone(),
                side: t.side,
                volume: t.volume,
                open_price: t.entry_price,
                sl: t.sl,
                tp: t.tp,
                client_id: Some(t.client_key().to_owned()),
                ..template.clone()
            }
        })
        .collect()
}

fn manual_position(sim: &SimBroker, account: &str, ticket: u64) -> BrokerPosition {
    let template = sim
        .positions(account)
        .first()
        .cloned()
        .expect("account has a position");
    BrokerPosition {
        ticket,
        identifier: ticket,
        symbol: "NZDUSD".into(),
        side: Side::Sell,
        volume: Volume::new(rust_decimal::Decimal::ONE),
        open_price: Price::new(rust_decimal::Decimal::new(60_000, 5)),
        sl: None,
        tp: None,
        client_id: None,
        comment: "manual".into(),
        ..template
    }
}

#[tokio::test]
async fn a_sync_records_exactly_the_scripted_divergences_once_and_resolves_them_when_fixed() {
    for db in common::databases().await {
        let (label, db) = db;
        let sim = sim(4, 12, true, 7);
        let ids = sim.account_ids();
        let injected: usize = ids.iter().map(|a| sim.injected(a).len()).sum();
        assert!(injected > 0, "the seed must produce some noise");
        tokio::time::pause();
        let tree = start(&db, &sim, tree_config()).await;
        // Two syncs: a missing or unexpected position is raised once two confirm it.
        wait_for(&tree, "two syncs of every account", |s| {
            s.accounts.iter().all(|a| a.syncs_ok >= 2)
        })
        .await;
        flush(&tree).await;
        for id in &ids {
            let want: BTreeSet<Key> = sim
                .injected(id)
                .into_iter()
                .map(|i| (i.kind.to_string(), i.trade_id, i.ticket))
                .collect();
            assert_eq!(open_keys(&db, id).await, want, "{label}: {id}");
        }

        // More syncs with nothing changed: no new divergence row.
        let before: usize = futures_len(&db, &ids).await;
        wait_for(&tree, "three more syncs", |s| {
            s.accounts.iter().all(|a| a.syncs_ok >= 5)
        })
        .await;
        flush(&tree).await;
        assert_eq!(
            futures_len(&db, &ids).await,
            before,
            "{label}: no row per tick"
        );
        let runs: u64 = store::list_rollups(&db, None)
            .await
            .unwrap()
            .iter()
            .map(|r| r.syncs)
            .sum();
        assert!(
            runs >= 4 * ids.len() as u64,
            "{label}: every sync counted in its hour, got {runs}"
        );

        // The trader fixes one account: its divergences resolve, once.
        let fixed = ids
            .iter()
            .find(|a| !sim.injected(a).is_empty())
            .unwrap()
            .clone();
        let count = sim.injected(&fixed).len();
        sim.set_positions(&fixed, mirror(&sim, &fixed));
        let done = acc(&tree.status().await.unwrap(), &fixed).syncs_ok;
        wait_for(&tree, "a sync after the fix", |s| {
            acc(s, &fixed).syncs_ok >= done + 2
        })
        .await;
        flush(&tree).await;
        assert!(open_keys(&db, &fixed).await.is_empty(), "{label}");
        let rows = all_rows(&db, &fixed).await;
        assert_eq!(rows.len(), count, "{label}: resolving adds no row");
        assert!(
            rows.iter()
                .all(|r| r.status == DivergenceStatus::Resolved && r.resolved_at.is_some())
        );
        tree.abort().await;
        tokio::time::resume();
    }
}

async fn futures_len(db: &DatabaseConnection, ids: &[String]) -> usize {
    let mut n = 0;
    for id in ids {
        n += all_rows(db, id).await.len();
    }
    n
}

#[tokio::test]
async fn a_failing_account_backs_off_trips_probes_and_recovers_while_50_others_sync_every_tick() {
    for (label, db) in common::databases().await {
        let sim = sim(51, 3, false, 1);
        let flaky = "sim-051".to_owned();
        let outage = BrokerError::Retryable {
            reason: "bridge down".into(),
            retry_after: None,
        };
        sim.set_fault(&flaky, Some(Fault::Error(outage)));
        tokio::time::pause();
        let tree = start(&db, &sim, tree_config()).await;

        let s = wait_for(&tree, "the breaker to open", |s| {
            acc(s, &flaky).state == "open"
        })
        .await;
        assert_eq!(
            acc(&s, &flaky).syncs_failed,
            3,
            "{label}: trips after max_failures"
        );
        // Stays open through several failed probes.
        let probes_before = sim.snapshot_calls(&flaky);
        let t0 = s.scheduler.ticks;
        let s = wait_for(&tree, "20 more ticks", |s| s.scheduler.ticks >= t0 + 20).await;
        let probes = sim.snapshot_calls(&flaky) - probes_before;
        // open_for 30 s, then 60 s, then 120 s (capped): 200 s of ticks hold 2 or 3 probes.
        assert!(
            (1..=3).contains(&probes),
            "{label}: probes, not hammering: {probes}"
        );
        assert_ne!(acc(&s, &flaky).state, "running", "{label}");
        assert!(
            s.scheduler.last_tick_duration.is_some(),
            "{label}: tick rounds complete"
        );
        for a in s.accounts.iter().filter(|a| a.id != flaky) {
            assert_eq!(a.syncs_failed, 0, "{label}: {}", a.id);
            assert_eq!(a.skipped_ticks, 0, "{label}: {}", a.id);
            let missed = s.scheduler.ticks - a.syncs_ok - u64::from(a.syncing);
            assert_eq!(missed, 0, "{label}: {} synced on every tick", a.id);
        }

        // The bridge comes back: the next probe closes the breaker.
        sim.set_fault(&flaky, None);
        wait_for(&tree, "the breaker to close", |s| {
            acc(s, &flaky).state == "running"
        })
        .await;
        flush(&tree).await;
        let kinds = common::audit_kinds(&db, &flaky).await;
        for kind in [
            "backoff_started",
            "actor_restarted",
            "circuit_opened",
            "circuit_half_open",
            "circuit_closed",
        ] {
            assert!(
                kinds.iter().any(|k| k == kind),
                "{label}: {kind} in {kinds:?}"
            );
        }
        assert_eq!(
            kinds.last().map(String::as_str),
            Some("circuit_closed"),
            "{label}"
        );
        tree.abort().await;
        tokio::time::resume();
    }
}

#[tokio::test]
async fn a_panic_in_one_accounts_sync_leaves_the_others_untouched() {
    for (label, db) in common::databases().await {
        let sim = sim(5, 4, false, 3);
        sim.set_fault("sim-003", Some(Fault::Panic));
        tokio::time::pause();
        let tree = start(&db, &sim, tree_config()).await;
        let s = wait_for(&tree, "four syncs of the healthy accounts", |s| {
            s.accounts
                .iter()
                .filter(|a| a.id != "sim-003")
                .all(|a| a.syncs_ok >= 4)
        })
        .await;
        let sick = acc(&s, "sim-003");
        assert!(sick.syncs_failed >= 1, "{label}: {sick:?}");
        assert!(
            sick.last_error
                .as_deref()
                .is_some_and(|e| e.starts_with("crash")),
            "{label}: {sick:?}"
        );
        for a in s.accounts.iter().filter(|a| a.id != "sim-003") {
            assert_eq!(
                (a.syncs_failed, a.skipped_ticks, a.state.as_str()),
                (0, 0, "running"),
                "{label}: {a:?}"
            );
        }
        tree.abort().await;
        tokio::time::resume();
    }
}

#[tokio::test]
async fn a_permanent_error_disables_the_account_without_restarts() {
    for (label, db) in common::databases().await {
        let sim = sim(2, 3, false, 4);
        sim.push_faults(
            "sim-001",
            [Fault::Error(BrokerError::Permanent(
                "401 unauthorized".into(),
            ))],
        );
        tokio::time::pause();
        let tree = start(&db, &sim, tree_config()).await;
        let s = wait_for(&tree, "the account disabled", |s| {
            acc(s, "sim-001").state == "disabled"
        })
        .await;
        let calls = sim.snapshot_calls("sim-001");
        let t0 = s.scheduler.ticks;
        let s = wait_for(&tree, "ten more ticks", |s| s.scheduler.ticks >= t0 + 10).await;
        let a = acc(&s, "sim-001");
        assert_eq!(
            sim.snapshot_calls("sim-001"),
            calls,
            "{label}: not called again"
        );
        assert_eq!((a.restarts, a.syncs_failed), (0, 1), "{label}: {a:?}");
        assert!(
            a.disabled_reason
                .as_deref()
                .is_some_and(|r| r.contains("401")),
            "{label}: {a:?}"
        );
        assert!(acc(&s, "sim-002").syncs_ok >= 10, "{label}");

        // An operator re-enables it: it syncs again.
        tree.actor()
            .cast(SupervisorMsg::EnableAccount("sim-001".into()))
            .unwrap();
        wait_for(&tree, "a sync after enabling", |s| {
            acc(s, "sim-001").syncs_ok >= 1
        })
        .await;
        tree.abort().await;
        tokio::time::resume();
    }
}

#[tokio::test]
async fn removing_an_account_during_its_backoff_means_no_restart_afterwards() {
    for (label, db) in common::databases().await {
        let sim = sim(2, 3, false, 5);
        let outage = BrokerError::Retryable {
            reason: "down".into(),
            retry_after: None,
        };
        sim.set_fault("sim-001", Some(Fault::Error(outage)));
        tokio::time::pause();
        let tree = start(&db, &sim, tree_config()).await;
        let s = wait_for(&tree, "a backoff", |s| {
            acc(s, "sim-001").state == "backing_off"
        })
        .await;
        tree.actor()
            .cast(SupervisorMsg::RemoveAccount("sim-001".into()))
            .unwrap();
        let calls = sim.snapshot_calls("sim-001");
        let t0 = s.scheduler.ticks;
        let s = wait_for(&tree, "ten more ticks", |s| s.scheduler.ticks >= t0 + 10).await;
        assert!(s.accounts.iter().all(|a| a.id != "sim-001"), "{label}");
        assert_eq!(
            sim.snapshot_calls("sim-001"),
            calls,
            "{label}: no restart, no call"
        );
        flush(&tree).await;
        let kinds = common::audit_kinds(&db, "sim-001").await;
        assert_eq!(
            kinds.last().map(String::as_str),
            Some("account_removed"),
            "{label}: {kinds:?}"
        );
        tree.abort().await;
        tokio::time::resume();
    }
}

#[tokio::test]
async fn the_database_goes_away_and_returns_nothing_lost_nothing_duplicated() {
    for db in common::lockable_databases().await {
        let label = db.label.clone();
        let sim = sim(3, 10, true, 11);
        let ids = sim.account_ids();
        tokio::time::pause();
        let tree = start(&db.db, &sim, tree_config()).await;
        // Past the grace and the confirming syncs, so that every divergence of the
        // generated books is raised before the outage.
        settle(tree.actor()).await;
        flush(&tree).await;
        let rows_before = futures_len(&db.db, &ids).await;

        db.lock().await;
        let probe = store::AuditEvent {
            at: chrono::Utc::now(),
            account_id: None,
            kind: "probe".into(),
            detail: serde_json::json!({}),
        };
        assert!(
            store::append_audit(&db.db, &probe).await.is_err(),
            "{label}: the database is really away"
        );
        // While it is away: one account is fixed, another gets a manual position.
        sim.set_positions(&ids[0], mirror(&sim, &ids[0]));
        let mut with_manual = sim.positions(&ids[1]);
        with_manual.push(manual_position(&sim, &ids[1], 8_888_888));
        sim.set_positions(&ids[1], with_manual);
        let done = tree
            .status()
            .await
            .unwrap()
            .accounts
            .iter()
            .map(|a| a.syncs_ok)
            .min()
            .unwrap();
        wait_for(&tree, "syncs during the outage", |s| {
            s.accounts.iter().all(|a| a.syncs_ok >= done + 3)
        })
        .await;
        db.unlock().await;

        flush(&tree).await;
        for id in &ids {
            assert_eq!(
                open_keys(&db.db, id).await,
                expected_keys(&sim, id),
                "{label}: {id}"
            );
        }
        assert_eq!(
            futures_len(&db.db, &ids).await,
            rows_before + 1,
            "{label}: only the manual position is new"
        );
        assert!(open_keys(&db.db, &ids[0]).await.is_empty(), "{label}");
        tree.abort().await;
        tokio::time::resume();
    }
}

#[tokio::test]
async fn killed_mid_run_and_started_again_open_divergences_are_neither_duplicated_nor_lost() {
    for (label, db) in common::databases().await {
        let sim = sim(3, 10, true, 13);
        let ids = sim.account_ids();
        tokio::time::pause();
        let first = start(&db, &sim, tree_config()).await;
        wait_for(&first, "two syncs", |s| {
            s.accounts.iter().all(|a| a.syncs_ok >= 2)
        })
        .await;
        flush(&first).await;
        let rows_before = futures_len(&db, &ids).await;
        // A change is seen, and the process dies before anything is flushed.
        let mut with_manual = sim.positions(&ids[2]);
        with_manual.push(manual_position(&sim, &ids[2], 7_777_777));
        sim.set_positions(&ids[2], with_manual);
        first
            .actor()
            .cast(SupervisorMsg::SyncNow(ids[2].clone()))
            .unwrap();
        first.abort().await;

        let second = start(&db, &sim, tree_config()).await;
        // Two syncs: a missing or unexpected position is raised once two confirm it.
        wait_for(&second, "two syncs after the restart", |s| {
            s.accounts.iter().all(|a| a.syncs_ok >= 2)
        })
        .await;
        flush(&second).await;
        for id in &ids {
            assert_eq!(
                open_keys(&db, id).await,
                expected_keys(&sim, id),
                "{label}: {id}"
            );
        }
        assert_eq!(
            futures_len(&db, &ids).await,
            rows_before + 1,
            "{label}: nothing duplicated"
        );
        second.abort().await;
        tokio::time::resume();
    }
}

#[tokio::test]
async fn a_graceful_stop_flushes_everything_queued() {
    for (label, db) in common::databases().await {
        let sim = sim(4, 8, true, 17);
        let ids = sim.account_ids();
        let mut config = tree_config();
        // Nothing is written until the stop.
        config.persistence.flush_interval_ms = 3_600_000;
        config.persistence.batch_size = 1_000_000;
        let tree = start(&db, &sim, config).await;
        // Two syncs: a missing or unexpected position is raised once two confirm it.
        let s = wait_for(&tree, "two syncs", |s| {
            s.accounts.iter().all(|a| a.syncs_ok >= 2)
        })
        .await;
        let runs_before = store::entities::sync_run::Entity::find()
            .count(&db)
            .await
            .unwrap();
        assert_eq!(runs_before, 0, "{label}: nothing written before the stop");
        let report = tree.shutdown(Duration::from_secs(10)).await;
        assert!(report.flushed, "{label}: {report:?}");
        assert_eq!(report.abandoned_syncs, 0, "{label}");
        let synced: u64 = s.accounts.iter().map(|a| a.syncs_ok).sum();
        // Every sync is counted in its hour's rollup on the way out.
        let runs: u64 = store::list_rollups(&db, None)
            .await
            .unwrap()
            .iter()
            .map(|r| r.syncs)
            .sum();
        assert!(
            runs >= synced,
            "{label}: {runs} syncs counted for {synced} syncs"
        );
        for id in &ids {
            assert_eq!(
                open_keys(&db, id).await,
                expected_keys(&sim, id),
                "{label}: {id}"
            );
        }
    }
}

/// A host platform's actor: forwards durable divergence events into a shared list.
struct Host;

struct HostArgs {
    tree: SupervisorArgs,
    seen: Arc<std::sync::Mutex<Vec<ReconcilerEvent>>>,
}

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl ractor::Actor for Host {
    type Msg = ReconcilerEvent;
    type State = (
        Arc<std::sync::Mutex<Vec<ReconcilerEvent>>>,
        ractor::ActorRef<SupervisorMsg>,
    );
    type Arguments = HostArgs;

    async fn pre_start(
        &self,
        myself: ractor::ActorRef<ReconcilerEvent>,
        args: HostArgs,
    ) -> Result<Self::State, ractor::ActorProcessingErr> {
        args.tree.events.subscribe(myself.clone(), Some);
        let (tree, _) = service::spawn_linked(args.tree, myself.get_cell()).await?;
        Ok((args.seen, tree))
    }

    async fn handle(
        &self,
        _myself: ractor::ActorRef<ReconcilerEvent>,
        event: ReconcilerEvent,
        state: &mut Self::State,
    ) -> Result<(), ractor::ActorProcessingErr> {
        state.0.lock().unwrap().push(event);
        Ok(())
    }
}

/// Spawns [`Host`] over `tree`; the host, its join handle and the tree's supervisor.
async fn spawn_host(
    tree: SupervisorArgs,
    seen: Arc<std::sync::Mutex<Vec<ReconcilerEvent>>>,
) -> (
    ractor::ActorRef<ReconcilerEvent>,
    ractor::concurrency::JoinHandle<()>,
    ractor::ActorRef<SupervisorMsg>,
) {
    let (host, handle) = ractor::Actor::spawn(None, Host, HostArgs { tree, seen })
        .await
        .unwrap();
    let supervisor = host
        .get_children()
        .into_iter()
        .next()
        .map(ractor::ActorRef::<SupervisorMsg>::from)
        .expect("the tree is linked under the host");
    (host, handle, supervisor)
}

#[tokio::test]
async fn a_host_embeds_the_tree_drives_it_with_messages_and_receives_durable_events() {
    for (label, db) in common::databases().await {
        let sim = sim(3, 10, true, 19);
        let mut tree = args(&db, &sim, tree_config());
        // The host starts with one account and adds another at run time.
        tree.accounts.truncate(1);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        tokio::time::pause();
        let (host, handle, supervisor) = spawn_host(tree, seen.clone()).await;
        let added = "sim-002".to_owned();
        supervisor
            .cast(SupervisorMsg::AddAccount(
                mt5_reconciler::actors::AccountSpec {
                    id: added.clone(),
                    broker: "sim".into(),
                },
            ))
            .unwrap();
        supervisor
            .cast(SupervisorMsg::SyncNow(added.clone()))
            .unwrap();
        let mut status = service::status(&supervisor).await.unwrap();
        for _ in 0..10_000 {
            if status.accounts.len() == 2 && status.accounts.iter().all(|a| a.syncs_ok >= 1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            status = service::status(&supervisor).await.unwrap();
        }
        service::flush(&supervisor, None).await.unwrap();
        let opened: BTreeSet<Key> = seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                ReconcilerEvent::DivergenceOpened {
                    account_id,
                    divergence,
                } if *account_id == added => Some((
                    divergence.kind.to_string(),
                    divergence.trade_id.clone(),
                    divergence.ticket,
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            opened,
            expected_keys(&sim, &added),
            "{label}: one event per durable divergence"
        );
        assert!(!opened.is_empty(), "{label}");

        supervisor
            .cast(SupervisorMsg::RemoveAccount(added.clone()))
            .unwrap();
        let status = service::status(&supervisor).await.unwrap();
        assert_eq!(
            status
                .accounts
                .iter()
                .map(|a| a.id.as_str())
                .collect::<Vec<_>>(),
            ["sim-001"]
        );
        host.stop(None);
        handle.await.unwrap();
        tokio::time::resume();
    }
}

#[tokio::test]
async fn the_service_follows_the_accounts_table_without_a_restart() {
    for (label, db) in common::databases().await {
        let sim = sim(3, 4, false, 23);
        let mut tree = args(&db, &sim, tree_config());
        tree.accounts.truncate(1);
        tree.follow_accounts_table = true;
        tokio::time::pause();
        let reconciler = Reconciler::start(tree).await.unwrap();
        let row = |id: &str, enabled| store::Account {
            id: id.into(),
            name: id.into(),
            broker: "sim".into(),
            enabled,
            disabled_reason: None,
        };
        store::upsert_account(&db, &row("sim-003", true), chrono::Utc::now())
            .await
            .unwrap();
        reconciler
            .actor()
            .cast(SupervisorMsg::RefreshAccounts)
            .unwrap();
        wait_for(&reconciler, "the new account syncing", |s| {
            s.accounts
                .iter()
                .any(|a| a.id == "sim-003" && a.syncs_ok >= 1)
        })
        .await;

        store::upsert_account(&db, &row("sim-003", false), chrono::Utc::now())
            .await
            .unwrap();
        reconciler
            .actor()
            .cast(SupervisorMsg::RefreshAccounts)
            .unwrap();
        let s = wait_for(&reconciler, "the disabled account gone", |s| {
            s.accounts.iter().all(|a| a.id != "sim-003")
        })
        .await;
        // A configured account is not touched by the table.
        assert_eq!(
            s.accounts.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            ["sim-001"],
            "{label}"
        );
        reconciler.abort().await;
        tokio::time::resume();
    }
}

#[tokio::test]
async fn an_operator_re_enables_a_breaker_disabled_account_through_the_table() {
    for (label, db) in common::databases().await {
        let sim = sim(2, 3, false, 31);
        let mut tree = args(&db, &sim, tree_config());
        tree.accounts.clear();
        tree.follow_accounts_table = true;
        let row = store::Account {
            id: "sim-002".into(),
            name: "sim-002".into(),
            broker: "sim".into(),
            enabled: true,
            disabled_reason: None,
        };
        store::upsert_account(&db, &row, chrono::Utc::now())
            .await
            .unwrap();
        let bad = BrokerError::Permanent("invalid credentials".into());
        sim.set_fault("sim-002", Some(Fault::Error(bad)));
        tokio::time::pause();
        let reconciler = Reconciler::start(tree).await.unwrap();
        wait_for(&reconciler, "the account disabled", |s| {
            s.accounts
                .iter()
                .any(|a| a.id == "sim-002" && a.state == "disabled")
        })
        .await;
        tokio::time::resume();
        // The table shows it, so `accounts list` does.
        let start = std::time::Instant::now();
        loop {
            let rows = store::list_accounts(&db).await.unwrap();
            let reason = rows
                .iter()
                .find(|r| r.account.id == "sim-002")
                .and_then(|r| r.account.disabled_reason.clone());
            if reason.is_some_and(|r| r.contains("invalid credentials")) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{label}: the table never showed the breaker's reason: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The operator fixes the credentials and runs `accounts enable sim-002`.
        sim.set_fault("sim-002", None);
        store::upsert_account(&db, &row, chrono::Utc::now())
            .await
            .unwrap();
        tokio::time::pause();
        reconciler
            .actor()
            .cast(SupervisorMsg::RefreshAccounts)
            .unwrap();
        wait_for(&reconciler, "the account syncing again", |s| {
            s.accounts
                .iter()
                .any(|a| a.id == "sim-002" && a.state == "running" && a.syncs_ok >= 1)
        })
        .await;
        reconciler.abort().await;
        tokio::time::resume();
    }
}

#[tokio::test]
async fn every_divergence_of_a_large_flush_reaches_a_subscriber_of_the_events() {
    let (label, db) = common::databases().await.swap_remove(0);
    // Noisy books on many accounts: one flush opens hundreds of divergences at once.
    let sim = sim(40, 40, true, 23);
    let ids = sim.account_ids();
    let tree = args(&db, &sim, tree_config());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    tokio::time::pause();
    let (host, handle, supervisor) = spawn_host(tree, seen.clone()).await;
    settle(&supervisor).await;
    service::flush(&supervisor, None).await.unwrap();
    // Let the subscriber's mailbox drain.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    let mut stored = 0;
    for id in &ids {
        stored += all_rows(&db, id).await.len();
    }
    let opened = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, ReconcilerEvent::DivergenceOpened { .. }))
        .count();
    assert!(stored > 200, "{label}: {stored}");
    assert_eq!(opened, stored, "{label}: one event per stored divergence");
    host.stop(None);
    handle.await.unwrap();
    tokio::time::resume();
}
