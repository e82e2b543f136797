//! The scenarios of the load harness, each printing one line per figure.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use mt5_reconciler::actors::persistence::{Converge, PersistenceActor, PersistenceArgs};
use mt5_reconciler::actors::{
    AccountSpec, PersistMsg, PersistenceConfig, ReconcilerEvent, SchedulerConfig, Status,
    SupervisionConfig, SupervisorArgs, TreeConfig,
};
use mt5_reconciler::broker::sim::{SimBroker, SimConfig};
use mt5_reconciler::broker::{Broker, Connector};
use mt5_reconciler::domain::{Divergence, DivergenceKind, LiveRules, ReconcileRules, Value};
use mt5_reconciler::guards::GuardsConfig;
use mt5_reconciler::guards::config::DrawdownConfig;
use mt5_reconciler::service::{self, Reconciler};
use mt5_reconciler::store::{self, SyncRunRecord};
use ractor::{Actor, ActorProcessingErr, ActorRef, OutputPort};
use rust_decimal::Decimal;
use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection};

use crate::Args;
use crate::measure::{CloseClock, Timed, cpu_time, quantile, rss_bytes, verdict};

type Res = Result<(), String>;

fn n_accounts(args: &Args) -> usize {
    args.accounts
        .unwrap_or(if args.smoke { 50 } else { 10_000 })
}

fn sim_config(accounts: usize, positions: usize, latency: (u64, u64)) -> SimConfig {
    SimConfig {
        accounts,
        positions_per_account: positions,
        latency_ms_min: latency.0,
        latency_ms_max: latency.1,
        ..SimConfig::default()
    }
}

fn tree_config(interval_ms: u64, slots: u32, cap: usize) -> TreeConfig {
    TreeConfig {
        scheduler: SchedulerConfig {
            interval_ms,
            spread_slots: slots,
            max_in_flight: cap,
            sync_timeout_ms: 30_000,
            accounts_refresh_secs: 0,
        },
        supervision: SupervisionConfig::default(),
        persistence: PersistenceConfig::default(),
        guards: Default::default(),
        retention: Default::default(),
    }
}

/// An SQLite file in a temporary directory (WAL, as `run` uses it).
pub async fn sqlite_file() -> Result<(DatabaseConnection, tempfile::TempDir), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("load.db").display());
    let db = store::connect(&url).await.map_err(|e| e.to_string())?;
    Ok((db, dir))
}

struct Running {
    tree: Reconciler,
    timed: Arc<Timed>,
    _dir: tempfile::TempDir,
}

async fn start(
    sim: &Arc<SimBroker>,
    config: TreeConfig,
    events: Arc<OutputPort<ReconcilerEvent>>,
    live: LiveRules,
) -> Result<Running, String> {
    let timed = Arc::new(Timed::new(sim.clone()));
    let (tree, dir) = start_on(sim, timed.clone(), config, events, live).await?;
    Ok(Running {
        tree,
        timed,
        _dir: dir,
    })
}

/// The tree over every account of `sim`, its snapshots and closes going to `broker`.
async fn start_on(
    sim: &Arc<SimBroker>,
    broker: Arc<dyn Broker>,
    config: TreeConfig,
    events: Arc<OutputPort<ReconcilerEvent>>,
    live: LiveRules,
) -> Result<(Reconciler, tempfile::TempDir), String> {
    let (db, dir) = sqlite_file().await?;
    let args = SupervisorArgs {
        db,
        config,
        rules: Arc::new(ReconcileRules {
            live,
            ..ReconcileRules::default()
        }),
        connectors: HashMap::from([(
            "sim".to_owned(),
            Connector {
                broker,
                trades: sim.clone(),
            },
        )]),
        accounts: sim
            .account_ids()
            .into_iter()
            .map(|id| AccountSpec {
                id,
                broker: "sim".into(),
            })
            .collect(),
        events,
        follow_accounts_table: false,
        clock: mt5_reconciler::clock::Clock::real(),
    };
    let tree = Reconciler::start(args).await.map_err(|e| e.to_string())?;
    Ok((tree, dir))
}

pub(crate) async fn poll(
    tree: &Reconciler,
    every: Duration,
    cond: impl Fn(&Status) -> bool,
) -> Result<Status, String> {
    for _ in 0..6_000 {
        let s = tree.status().await.map_err(|e| e.to_string())?;
        if cond(&s) {
            return Ok(s);
        }
        tokio::time::sleep(every).await;
    }
    Err("gave up waiting".into())
}

/// Waits until every account has synced once.
pub(crate) async fn first_round(tree: &Reconciler) -> Res {
    poll(tree, Duration::from_millis(100), |s| {
        s.accounts.iter().all(|a| a.syncs_ok >= 1)
    })
    .await
    .map(|_| ())
}

/// Waits until everything buffered is durable (no timeout: the scenarios time it).
async fn flush(tree: &Reconciler) -> Res {
    service::flush(tree.actor(), None)
        .await
        .map_err(|e| e.to_string())
}

fn synced(s: &Status) -> u64 {
    s.accounts.iter().map(|a| a.syncs_ok).sum()
}

/// 1. One tick over N accounts: its wall time against the slowest and the mean fetch.
pub async fn tick_at_scale(args: &Args) -> Res {
    let n = n_accounts(args);
    let latency = if args.smoke { (5, 10) } else { (100, 200) };
    let sim = Arc::new(SimBroker::new(&sim_config(n, 20, latency)));
    let cap_c = if args.smoke { 10 } else { 1_000 };
    for cap in [None, Some(cap_c)] {
        let config = tree_config(3_600_000, 1, cap.unwrap_or(n));
        let run = start(
            &sim,
            config,
            Arc::new(OutputPort::default()),
            LiveRules::default(),
        )
        .await?;
        let s = poll(&run.tree, Duration::from_millis(50), |s| {
            s.scheduler.last_tick_duration.is_some()
        })
        .await?;
        let wall = s.scheduler.last_tick_duration.unwrap_or_default();
        let fetch = run.timed.take();
        match cap {
            None => {
                let ratio = wall.as_secs_f64() / fetch.max.as_secs_f64();
                println!(
                    "tick accounts={n} positions=20 latency={}-{}ms cap=none tick_wall_ms={:.0} max_fetch_ms={:.0} tick_wall/max_fetch={ratio:.2} target<=1.25 {}",
                    latency.0,
                    latency.1,
                    wall.as_secs_f64() * 1e3,
                    fetch.max.as_secs_f64() * 1e3,
                    verdict(ratio <= 1.25)
                );
            }
            Some(c) => {
                let ideal = (n.div_ceil(c)) as f64 * fetch.mean().as_secs_f64();
                let ratio = wall.as_secs_f64() / ideal;
                println!(
                    "tick accounts={n} positions=20 latency={}-{}ms cap={c} tick_wall_ms={:.0} mean_fetch_ms={:.1} tick_wall/(ceil(N/C)*mean)={ratio:.2} target<=1.1 {}",
                    latency.0,
                    latency.1,
                    wall.as_secs_f64() * 1e3,
                    fetch.mean().as_secs_f64() * 1e3,
                    verdict(ratio <= 1.1)
                );
            }
        }
        run.tree.abort().await;
    }
    Ok(())
}

/// 2. CPU per account sync with a broker that answers at once.
pub async fn cpu_per_sync(args: &Args) -> Res {
    let n = n_accounts(args);
    let sim = Arc::new(SimBroker::new(&sim_config(n, 20, (0, 0))));
    let interval = if args.smoke { 200 } else { 1_000 };
    let run = start(
        &sim,
        tree_config(interval, 10, n),
        Arc::new(OutputPort::default()),
        LiveRules::default(),
    )
    .await?;
    first_round(&run.tree).await?;
    flush(&run.tree).await?;
    let s0 = run.tree.status().await.map_err(|e| e.to_string())?;
    let cpu0 = cpu_time();
    tokio::time::sleep(Duration::from_millis(
        interval * if args.smoke { 2 } else { 5 },
    ))
    .await;
    let s1 = run.tree.status().await.map_err(|e| e.to_string())?;
    flush(&run.tree).await?;
    let cpu = cpu_time() - cpu0;
    let syncs = synced(&s1) - synced(&s0);
    let per = cpu.as_secs_f64() * 1e6 / syncs.max(1) as f64;
    println!(
        "cpu accounts={n} positions=20 latency=0 syncs={syncs} cpu_ms={} cpu_per_sync_us={per:.1} target<=20 {}",
        cpu.as_millis(),
        verdict(per <= 20.0)
    );
    run.tree.abort().await;
    Ok(())
}

/// 3. Resident memory per account actor holding 20 positions.
pub async fn memory_per_account(args: &Args) -> Res {
    let n = n_accounts(args);
    let sim = Arc::new(SimBroker::new(&sim_config(n, 20, (1, 5))));
    let rss0 = rss_bytes();
    let run = start(
        &sim,
        tree_config(3_600_000, 1, n),
        Arc::new(OutputPort::default()),
        LiveRules::default(),
    )
    .await?;
    first_round(&run.tree).await?;
    flush(&run.tree).await?;
    let rss1 = rss_bytes();
    let per = rss1.saturating_sub(rss0) as f64 / n as f64;
    println!(
        "memory accounts={n} positions=20 rss_before_mib={:.1} rss_after_mib={:.1} bytes_per_account={per:.0} target<=32768 {}",
        rss0 as f64 / 1048576.0,
        rss1 as f64 / 1048576.0,
        verdict(per <= 32768.0)
    );
    run.tree.abort().await;
    Ok(())
}

fn divergence(account: usize, i: usize) -> Divergence {
    let ticket = (account * 1_000 + i) as u64;
    Divergence::new(
        DivergenceKind::UnexpectedAtBroker,
        "EURUSD".into(),
        Some(ticket),
        None,
        None,
        Some(Value::Number(Decimal::new(10 + i as i64, 2))),
        None,
    )
}

/// Sends every account's desired set through a PersistenceActor and waits until durable.
async fn persist_round(
    actor: &ActorRef<PersistMsg>,
    accounts: usize,
    per: usize,
) -> Result<Duration, String> {
    let t = Instant::now();
    for a in 0..accounts {
        let now = Utc::now();
        let report = SyncRunRecord {
            account_id: format!("load-{a:05}"),
            started_at: now,
            finished_at: now,
            duration: Duration::ZERO,
            positions: per,
            trades: 0,
            divergences_opened: 0,
            divergences_resolved: 0,
            error_class: None,
            error_message: None,
        };
        let desired = (0..per).map(|i| divergence(a, i)).collect();
        let c = Converge {
            account_id: report.account_id.clone(),
            at: now,
            desired,
            held: Vec::new(),
            seq: 1,
            ack_to: None,
            report,
            fence: None,
        };
        actor
            .cast(PersistMsg::Converge(Box::new(c)))
            .map_err(|e| e.to_string())?;
    }
    actor
        .call(PersistMsg::Flush, None)
        .await
        .map_err(|e| e.to_string())?
        .success_or("flush failed")?
        .map_err(|e| e.to_string())?;
    Ok(t.elapsed())
}

async fn persistence_on(label: &str, db: DatabaseConnection, args: &Args, target: f64) -> Res {
    let (accounts, per) = if args.smoke { (20, 10) } else { (1_000, 50) };
    let pargs = PersistenceArgs {
        db,
        config: PersistenceConfig::default(),
        events: Arc::new(OutputPort::default()),
        clock: mt5_reconciler::clock::Clock::real(),
        fenced: Default::default(),
    };
    let (actor, handle) = Actor::spawn(None, PersistenceActor, pargs)
        .await
        .map_err(|e| e.to_string())?;
    let opened = persist_round(&actor, accounts, per).await?;
    // Resolve all of them: every account converges to an empty set.
    let resolved = persist_round(&actor, accounts, 0).await?;
    let changes = (accounts * per) as f64;
    for (what, d) in [("open", opened), ("resolve", resolved)] {
        let rate = changes / d.as_secs_f64();
        println!(
            "persistence backend={label} phase={what} accounts={accounts} changes={changes} seconds={:.3} changes_per_s={rate:.0} target>={target} {}",
            d.as_secs_f64(),
            verdict(rate >= target)
        );
    }
    actor.stop(None);
    let _ = handle.await;
    Ok(())
}

/// 4. Divergence changes per second into SQLite (file, WAL) and PostgreSQL on loopback.
pub async fn persistence_rate(args: &Args) -> Res {
    let (db, _dir) = sqlite_file().await?;
    persistence_on("sqlite", db, args, 50_000.0).await?;
    let Some((db, admin, schema)) = postgres_schema(args).await? else {
        return Ok(());
    };
    let result = persistence_on("postgres", db, args, 20_000.0).await;
    let _ = admin
        .execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await;
    result
}

/// `--postgres`, else DATABASE_URL when it names PostgreSQL, else the local server.
pub(crate) fn postgres_url(args: &Args) -> String {
    args.postgres
        .clone()
        .or_else(|| {
            std::env::var("DATABASE_URL")
                .ok()
                .filter(|u| u.starts_with("postgres"))
        })
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A migrated PostgreSQL database in a schema of its own (`--postgres`, else
/// `DATABASE_URL`, else the local default), with an admin connection and the schema's
/// name to drop it afterwards; `None` (and a line saying so) when none answers.
pub async fn postgres_schema(
    args: &Args,
) -> Result<Option<(DatabaseConnection, DatabaseConnection, String)>, String> {
    let url = postgres_url(args);
    let schema = format!("load_{}", std::process::id());
    let admin = match sea_orm::Database::connect(url.as_str()).await {
        Ok(db) => db,
        Err(e) => {
            println!(
                "backend=postgres skipped: {}",
                store::redact_url(&e.to_string())
            );
            return Ok(None);
        }
    };
    admin
        .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .map_err(|e| e.to_string())?;
    admin
        .execute_unprepared(&format!("CREATE SCHEMA \"{schema}\""))
        .await
        .map_err(|e| e.to_string())?;
    let mut options = ConnectOptions::new(url.as_str());
    options
        .set_schema_search_path(schema.clone())
        .sqlx_logging(false);
    let db = store::connect_with(options)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some((db, admin, schema)))
}

/// Records when each watched ticket's divergence was committed.
struct Collector;

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for Collector {
    type Msg = ReconcilerEvent;
    type State = Arc<Mutex<HashMap<u64, Instant>>>;
    type Arguments = Arc<Mutex<HashMap<u64, Instant>>>;

    async fn pre_start(
        &self,
        _m: ActorRef<Self::Msg>,
        seen: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(seen)
    }

    async fn handle(
        &self,
        _m: ActorRef<Self::Msg>,
        e: ReconcilerEvent,
        seen: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let ReconcilerEvent::DivergenceOpened { divergence, .. } = e
            && divergence.kind == DivergenceKind::UnexpectedAtBroker
            && let Some(ticket) = divergence.ticket
        {
            seen.lock()
                .map_err(|e| e.to_string())?
                .entry(ticket)
                .or_insert_with(Instant::now);
        }
        Ok(())
    }
}

/// 5. From a position changing at the broker to its divergence committed.
///
/// Every snapshot is judged alone (`LiveRules::immediate()`).
pub async fn detection_latency(args: &Args) -> Res {
    let (n, interval, samples) = if args.smoke {
        (20, 200, 5)
    } else {
        (1_000, 1_000, 100)
    };
    let sim = Arc::new(SimBroker::new(&sim_config(n, 20, (20, 80))));
    let events = Arc::new(OutputPort::default());
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let (collector, ch) = Actor::spawn(None, Collector, seen.clone())
        .await
        .map_err(|e| e.to_string())?;
    events.subscribe(collector.clone(), Some);
    // The pipeline alone: grace and confirmation add their own, known delay (measured by
    // the accuracy scenario against the rules' bound).
    let run = start(
        &sim,
        tree_config(interval, 10, n),
        events,
        LiveRules::immediate(),
    )
    .await?;
    first_round(&run.tree).await?;
    let ids = sim.account_ids();
    let mut changed: Vec<(u64, Instant)> = Vec::with_capacity(samples);
    for k in 0..samples {
        let id = &ids[(k * 7919) % ids.len()];
        let ticket = 9_000_000_000 + k as u64;
        let mut positions = sim.positions(id);
        let mut manual = positions[0].clone();
        (
            manual.ticket,
            manual.identifier,
            manual.client_id,
            manual.comment,
        ) = (ticket, ticket, None, "manual".into());
        manual.symbol = "NZDCAD".into();
        positions.push(manual);
        sim.set_positions(id, positions);
        changed.push((ticket, Instant::now()));
        tokio::time::sleep(Duration::from_millis(interval * 97 / 1000)).await;
    }
    tokio::time::sleep(Duration::from_millis(interval * 3)).await;
    let seen = seen.lock().map_err(|e| e.to_string())?.clone();
    let mut lat: Vec<Duration> = changed
        .iter()
        .filter_map(|(t, at)| seen.get(t).map(|s| s.duration_since(*at)))
        .collect();
    let missing = samples - lat.len();
    let (p50, p99) = (quantile(&mut lat, 0.5), quantile(&mut lat, 0.99));
    let target = Duration::from_millis(interval + 200);
    println!(
        "latency accounts={n} interval_ms={interval} broker_latency=20-80ms samples={samples} missing={missing} p50_ms={} p99_ms={} target<={} {}",
        p50.as_millis(),
        p99.as_millis(),
        target.as_millis(),
        verdict(missing == 0 && p99 <= target)
    );
    run.tree.abort().await;
    collector.stop(None);
    let _ = ch.await;
    Ok(())
}

/// 6. Accounts per 10-second cycle: the replaced design (5 calls in flight) against ours.
pub async fn seed_comparison(args: &Args) -> Res {
    let n = n_accounts(args);
    let cycle = if args.smoke { 500 } else { 10_000 };
    let latency = if args.smoke { (5, 10) } else { (100, 200) };
    let sim = Arc::new(SimBroker::new(&sim_config(n, 20, latency)));
    for (label, cap) in [("seed_cap5", 5), ("uncapped", n)] {
        let run = start(
            &sim,
            tree_config(3_600_000, 1, cap),
            Arc::new(OutputPort::default()),
            LiveRules::default(),
        )
        .await?;
        let t = Instant::now();
        tokio::time::sleep(Duration::from_millis(cycle)).await;
        let s = run.tree.status().await.map_err(|e| e.to_string())?;
        let done = s.accounts.iter().filter(|a| a.syncs_ok >= 1).count();
        println!(
            "seed config={label} accounts={n} latency={}-{}ms cycle_ms={cycle} accounts_per_cycle={done} measured_over_ms={}",
            latency.0,
            latency.1,
            t.elapsed().as_millis()
        );
        run.tree.abort().await;
    }
    Ok(())
}

/// p50, p99 and max of `samples`, in milliseconds, as `p50/p99/max`.
fn spread_ms(samples: &mut [Duration]) -> String {
    let max = samples.iter().max().copied().unwrap_or_default();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "{:.0}/{:.0}/{:.0}",
        ms(quantile(samples, 0.5)),
        ms(quantile(samples, 0.99)),
        ms(max)
    )
}

/// 7. From an equity crossing to the close request, with automatic close.
///
/// Times, per account, from its equity crossing the breach level to the first close
/// request and to every position closed. No alert lead: the service's own reaction time
/// (the next scheduled sync, evaluation, the stored alert, the claim, the round's fresh
/// snapshot, the closes). Two patterns: breaches spread over five seconds, and every
/// account breaching at once.
pub async fn close_reaction(args: &Args) -> Res {
    let (positions, interval, latency, spread_over) = if args.smoke {
        (3, 200, (5, 10), 200)
    } else {
        (10, 1_000, (20, 80), 5_000)
    };
    let n = args.accounts.unwrap_or(if args.smoke { 20 } else { 1_000 });
    let balance = Decimal::from(10_000);
    let loss = Decimal::from(600); // 6 % of the initial balance: past the 5 % breach
    for pattern in ["spread", "burst"] {
        let sim = Arc::new(SimBroker::new(
            &SimConfig {
                balance,
                ..sim_config(n, positions, latency)
            }
            .without_noise(),
        ));
        let ids = sim.account_ids();
        for id in &ids {
            for p in sim.positions(id) {
                sim.update_position(id, p.ticket, |p| {
                    (p.profit, p.swap) = (Decimal::ZERO, Decimal::ZERO)
                });
            }
        }
        let mut config = tree_config(interval, 10, n);
        config.guards = GuardsConfig {
            alert_lead_secs: 0,
            auto_close: vec!["*".into()],
            drawdown: vec![DrawdownConfig {
                name: "max-loss".into(),
                accounts: vec!["*".into()],
                kind: "max_loss".into(),
                reference: None,
                reset_at: None,
                time_zone: None,
                initial_balance: Some(balance),
                basis: None,
                warn: "4%".into(),
                breach: "5%".into(),
            }],
            ..GuardsConfig::default()
        };
        // 5 % of 10,000 below the balance: a snapshot at or under it shows the breach.
        let clock = Arc::new(CloseClock::new(sim.clone(), Decimal::from(9_500)));
        let (tree, _dir) = start_on(
            &sim,
            clock.clone(),
            config,
            Arc::new(OutputPort::default()),
            LiveRules::default(),
        )
        .await?;
        first_round(&tree).await?;
        let gap = match pattern {
            "spread" => Duration::from_micros(spread_over * 1_000 / n.max(1) as u64),
            _ => Duration::ZERO,
        };
        let mut crossed: Vec<(String, Instant)> = Vec::with_capacity(n);
        let t0 = Instant::now();
        for (k, id) in ids.iter().enumerate() {
            let due = t0 + gap * k as u32;
            let now = Instant::now();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
            let first = sim.positions(id)[0].ticket;
            // Stamped just before the change: no snapshot can show it earlier.
            crossed.push((id.clone(), Instant::now()));
            sim.update_position(id, first, |p| p.profit = -loss);
        }
        // Until every position is closed, or 20 intervals after the last crossing.
        let deadline = Instant::now() + Duration::from_millis(interval * 20);
        while Instant::now() < deadline && ids.iter().any(|id| !sim.positions(id).is_empty()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stamps = clock.stamps();
        let (mut seen, mut react, mut first, mut all) = (vec![], vec![], vec![], vec![]);
        for (id, at) in &crossed {
            let Some(s) = stamps.get(id) else { continue };
            if let Some(t) = s.breach_seen {
                seen.push(t.saturating_duration_since(*at));
                if let Some(c) = s.first_close {
                    react.push(c.saturating_duration_since(t));
                }
            }
            if let Some(c) = s.first_close {
                first.push(c.saturating_duration_since(*at));
            }
            if let Some(c) = s.closed.get(positions - 1) {
                all.push(c.saturating_duration_since(*at));
            }
        }
        println!(
            "close pattern={pattern} accounts={n} positions={positions} interval_ms={interval} slots=10 broker_latency={}-{}ms alert_lead_secs=0 breaches_over_ms={} \
             missing_first_close={} missing_all_closed={} \
             crossing_to_first_close_ms(p50/p99/max)={} crossing_to_all_closed_ms(p50/p99/max)={} \
             crossing_to_snapshot_ms(p50/p99/max)={} snapshot_to_first_close_ms(p50/p99/max)={}",
            latency.0,
            latency.1,
            crossed
                .last()
                .map_or(0, |(_, at)| at.duration_since(t0).as_millis()),
            n - first.len(),
            n - all.len(),
            spread_ms(&mut first),
            spread_ms(&mut all),
            spread_ms(&mut seen),
            spread_ms(&mut react),
        );
        tree.abort().await;
        if first.is_empty() {
            return Err(format!("{pattern}: no close request seen for any account"));
        }
    }
    Ok(())
}
