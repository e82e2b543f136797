//! The soak scenario: the real actor tree on the simulated broker for a long time, with
//! broker failures, two database outages and divergences that come and go, sampled every
//! minute; at the end the stored open divergences are compared with the simulator's truth.
//!
//! Broker failures: a share of snapshot calls (5 % by default) fail at random, a quarter
//! each as a timeout, a 500-like retryable error, a 429 with retry-after and a malformed
//! payload. Database outages: at a third and two thirds of the run, one minute each;
//! SQLite by an exclusive lock held from a second connection, PostgreSQL by a loopback
//! TCP proxy the scenario owns that stops forwarding (the server itself is never
//! touched). Divergences: besides the noise the simulator generated, a few accounts every
//! few seconds gain or lose a manual position (one `unexpected_at_broker` each; at most
//! one per account, so the work stays about the same through the run).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mt5_reconciler::actors::{
    AccountSpec, SchedulerConfig, SupervisionConfig, SupervisorArgs, SupervisorMsg, TreeConfig,
};
use mt5_reconciler::broker::sim::{Fault, SimBroker, SimConfig};
use mt5_reconciler::broker::{BrokerError, Connector};
use mt5_reconciler::domain::{DivergenceKind, LiveRules};
use mt5_reconciler::service::{self, Reconciler};
use mt5_reconciler::store;
use ractor::OutputPort;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

use crate::Args;
use crate::measure::{rss_bytes, verdict};

type Res = Result<(), String>;

/// Tickets of the manual positions the scenario adds (above every generated ticket).
const MANUAL_TICKETS: u64 = 9_000_000_000;

/// The fault mix, with the names the report gives them.
fn fault_mix() -> (Vec<Fault>, [&'static str; 4]) {
    let mix = vec![
        Fault::Timeout,
        Fault::Error(BrokerError::Retryable {
            reason: "simulated HTTP 500".into(),
            retry_after: None,
        }),
        Fault::Error(BrokerError::Retryable {
            reason: "simulated HTTP 429".into(),
            retry_after: Some(Duration::from_secs(3)),
        }),
        Fault::Malformed,
    ];
    (mix, ["timeout", "http500", "http429", "malformed"])
}

/// A tiny deterministic generator for the scenario's own choices.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((u128::from(self.0 >> 11) * u128::from(n)) >> 53) as u64
    }
}

/// How the scenario takes the database away.
enum Outage {
    /// `BEGIN EXCLUSIVE` on a second, one-connection pool.
    Sqlite(DatabaseConnection),
    /// The tree reaches PostgreSQL only through this proxy.
    Postgres(Proxy),
}

impl Outage {
    async fn begin(&self) -> Res {
        match self {
            Self::Sqlite(holder) => holder
                .execute_unprepared("BEGIN EXCLUSIVE")
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Self::Postgres(proxy) => {
                proxy.cut();
                Ok(())
            }
        }
    }

    async fn end(&self) -> Res {
        match self {
            Self::Sqlite(holder) => holder
                .execute_unprepared("ROLLBACK")
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Self::Postgres(proxy) => {
                proxy.restore();
                Ok(())
            }
        }
    }
}

/// A loopback TCP proxy: `cut` closes every connection through it and refuses new ones
/// until `restore`.
struct Proxy {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: String) -> Result<Self, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> =
            Arc::new(std::sync::Mutex::new(Vec::new()));
        let (up2, conns2) = (up.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                if let Ok(mut c) = conns2.lock() {
                    c.retain(|t| !t.is_finished());
                    c.push(task);
                }
            }
        });
        Ok(Self {
            addr,
            up,
            conns,
            accept,
        })
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        if let Ok(mut c) = self.conns.lock() {
            for task in c.drain(..) {
                task.abort();
            }
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// The `host:port` of a PostgreSQL URL, and the URL with `addr` in its place.
fn through(url: &str, addr: Option<std::net::SocketAddr>) -> Result<(String, String), String> {
    let (_, rest) = url
        .split_once("://")
        .ok_or("a PostgreSQL URL without a scheme")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, host) = authority.rsplit_once('@').unwrap_or(("", authority));
    let target = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    let at = if user.is_empty() { "" } else { "@" };
    let via = addr.map_or(target.clone(), |a| a.to_string());
    Ok((target, format!("postgres://{user}{at}{via}/{path}")))
}

/// The database of the run: the tree's connection, how to take it away, and what to
/// clean up afterwards.
struct Backend {
    label: &'static str,
    db: DatabaseConnection,
    outage: Outage,
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: the admin connection and the schema to drop.
    drop_schema: Option<(DatabaseConnection, String)>,
}

async fn sqlite_backend() -> Result<Backend, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("soak.db").display());
    let db = store::connect(&url).await.map_err(|e| e.to_string())?;
    let mut options = ConnectOptions::new(url.as_str());
    options
        .max_connections(1)
        .min_connections(1)
        .sqlx_logging(false);
    let holder = Database::connect(options)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Backend {
        label: "sqlite",
        db,
        outage: Outage::Sqlite(holder),
        _dir: Some(dir),
        drop_schema: None,
    })
}

async fn postgres_backend(url: &str) -> Result<Backend, String> {
    let admin = Database::connect(url)
        .await
        .map_err(|e| store::redact_url(&e.to_string()))?;
    let schema = format!("soak_{}", std::process::id());
    admin
        .execute_unprepared(&format!("CREATE SCHEMA \"{schema}\""))
        .await
        .map_err(|e| e.to_string())?;
    let (target, _) = through(url, None)?;
    let proxy = Proxy::start(target).await?;
    let (_, proxied) = through(url, Some(proxy.addr))?;
    let mut options = ConnectOptions::new(proxied);
    options
        .max_connections(4)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2))
        .set_schema_search_path(schema.clone())
        .sqlx_logging(false);
    let db = store::connect_with(options)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Backend {
        label: "postgres",
        db,
        outage: Outage::Postgres(proxy),
        _dir: None,
        drop_schema: Some((admin, schema)),
    })
}

/// One sample of the run.
struct Sample {
    at_min: f64,
    rss: u64,
    tasks: usize,
    queued: Option<usize>,
    ok: u64,
    failed: u64,
    db_away: bool,
}

/// (syncs ok, syncs failed, failures by class) over every account.
fn totals(s: &mt5_reconciler::actors::Status) -> (u64, u64, BTreeMap<String, u64>) {
    let mut by_class = BTreeMap::new();
    for a in &s.accounts {
        for (k, v) in &a.failures_by_class {
            *by_class.entry(k.clone()).or_insert(0) += v;
        }
    }
    (
        s.accounts.iter().map(|a| a.syncs_ok).sum(),
        s.accounts.iter().map(|a| a.syncs_failed).sum(),
        by_class,
    )
}

/// Removes `id`'s manual position if it has one, else adds one; `open` holds the manual
/// tickets open. An account holds at most one, so the work (positions, open divergences)
/// stays about the same through the run and memory can be judged flat or not: a random
/// walk of adds and removes would grow it for as long as the run lasts.
fn toggle_manual(sim: &SimBroker, id: &str, next: &mut u64, open: &mut Vec<u64>) {
    let mut positions = sim.positions(id);
    if let Some(ticket) = open.pop() {
        positions.retain(|p| p.ticket != ticket);
    } else {
        let Some(first) = positions.first() else {
            return;
        };
        let mut manual = first.clone();
        *next += 1;
        (
            manual.ticket,
            manual.identifier,
            manual.client_id,
            manual.comment,
        ) = (*next, *next, None, "manual".into());
        manual.symbol = "NZDCAD".into();
        positions.push(manual);
        open.push(*next);
    }
    sim.set_positions(id, positions);
}

type Key = (DivergenceKind, Option<String>, Option<u64>);

/// The soak: see the module documentation. `--minutes` (default 60), `--accounts`
/// (default 1,000), `--db sqlite|postgres`. With `--smoke` a "minute" lasts 5 seconds.
pub async fn soak(args: &Args) -> Res {
    let n = args.accounts.unwrap_or(if args.smoke { 20 } else { 1_000 });
    let minutes = args
        .minutes
        .unwrap_or(if args.smoke { 4 } else { 60 })
        .max(1);
    let minute = if args.smoke {
        Duration::from_secs(5)
    } else {
        Duration::from_secs(60)
    };
    let total = minute * minutes as u32;
    let warm_up = (minute * 10).min(total / 6);
    let outage_len = minute.min(total / 6);
    let interval_ms = if args.smoke { 500 } else { 10_000 };
    let fail_per_mille = args.fail_per_mille.unwrap_or(50);
    // As `mt5-reconciler run` does.
    #[cfg(not(feature = "mimalloc"))]
    mt5_reconciler::memory::spawn_trim(minute.min(mt5_reconciler::memory::TRIM_EVERY));

    let backend = match args.db.as_deref().unwrap_or("sqlite") {
        "sqlite" => sqlite_backend().await?,
        "postgres" => postgres_backend(&crate::scenarios::postgres_url(args)).await?,
        other => return Err(format!("--db {other:?}: sqlite or postgres")),
    };

    let sim = Arc::new(SimBroker::new(&SimConfig {
        accounts: n,
        positions_per_account: 20,
        latency_ms_min: 20,
        latency_ms_max: 80,
        ..SimConfig::default()
    }));
    let ids = sim.account_ids();
    let config = TreeConfig {
        scheduler: SchedulerConfig {
            interval_ms,
            spread_slots: 10,
            max_in_flight: n,
            // A timeout fault never answers: the sync gives up after this.
            sync_timeout_ms: 5_000,
            accounts_refresh_secs: 0,
        },
        supervision: SupervisionConfig::default(),
        persistence: Default::default(),
        guards: Default::default(),
        retention: Default::default(),
    };
    let tree = Reconciler::start(SupervisorArgs {
        db: backend.db.clone(),
        config,
        rules: Arc::new(Default::default()),
        connectors: HashMap::from([(
            "sim".to_owned(),
            Connector {
                broker: sim.clone(),
                trades: sim.clone(),
            },
        )]),
        accounts: ids
            .iter()
            .map(|id| AccountSpec {
                id: id.clone(),
                broker: "sim".into(),
            })
            .collect(),
        events: Arc::new(OutputPort::default()),
        follow_accounts_table: false,
        clock: mt5_reconciler::clock::Clock::real(),
    })
    .await
    .map_err(|e| e.to_string())?;
    crate::scenarios::first_round(&tree).await?;
    let (mix, names) = fault_mix();
    sim.set_random_faults(fail_per_mille, mix);
    println!(
        "# soak db={} accounts={n} positions=20 minutes={minutes} minute_s={} interval_ms={interval_ms} broker_latency=20-80ms sync_timeout_ms=5000 fail_per_mille={fail_per_mille} ({}) outages=2x{}s warm_up_s={}",
        backend.label,
        minute.as_secs(),
        names.join("/"),
        outage_len.as_secs(),
        warm_up.as_secs()
    );

    let t0 = Instant::now();
    let outages = [total / 3, total * 2 / 3];
    let mut away_until: Option<Instant> = None;
    let mut next_outage = 0;
    let mut outages_done = 0;
    let mut rng = Lcg(0x50a6);
    let mut manual: HashMap<String, Vec<u64>> = HashMap::new();
    let mut next_ticket = MANUAL_TICKETS;
    let mut toggles = 0u64;
    let mut samples: Vec<Sample> = Vec::new();
    let mut next_sample = Duration::ZERO;
    let step = minute / 12; // mutations every 5 s (a smoke "minute": every ~0.4 s)
    let handle = tokio::runtime::Handle::current();
    loop {
        let now = t0.elapsed();
        if let Some(until) = away_until
            && Instant::now() >= until
        {
            backend.outage.end().await?;
            away_until = None;
            outages_done += 1;
            println!(
                "soak minute={:.1} database back",
                now.as_secs_f64() / minute.as_secs_f64()
            );
        }
        if next_outage < outages.len() && now >= outages[next_outage] {
            backend.outage.begin().await?;
            away_until = Some(Instant::now() + outage_len);
            next_outage += 1;
            println!(
                "soak minute={:.1} database away for {}s",
                t0.elapsed().as_secs_f64() / minute.as_secs_f64(),
                outage_len.as_secs()
            );
        }
        if now >= next_sample {
            let s = tree.status().await.map_err(|e| e.to_string())?;
            let (ok, failed, _) = totals(&s);
            let queued = ractor::call_t!(tree.actor(), SupervisorMsg::PersistenceStats, 5_000)
                .ok()
                .map(|p| p.queued);
            let sample = Sample {
                at_min: now.as_secs_f64() / minute.as_secs_f64(),
                rss: rss_bytes(),
                tasks: handle.metrics().num_alive_tasks(),
                queued,
                ok,
                failed,
                db_away: away_until.is_some(),
            };
            let (d_ok, d_failed) = samples
                .last()
                .map_or((ok, failed), |p| (ok - p.ok, failed - p.failed));
            println!(
                "soak minute={:.0} rss_mib={:.1} tokio_tasks={} persistence_queued={} syncs_ok={d_ok} syncs_failed={d_failed} db={}",
                sample.at_min,
                sample.rss as f64 / 1_048_576.0,
                sample.tasks,
                sample
                    .queued
                    .map_or("n/a (no answer in 5 s)".into(), |q| q.to_string()),
                if sample.db_away { "away" } else { "up" }
            );
            samples.push(sample);
            next_sample += minute;
        }
        if now >= total && away_until.is_none() {
            break;
        }
        for _ in 0..5 {
            let id = &ids[rng.below(ids.len() as u64) as usize];
            toggle_manual(
                &sim,
                id,
                &mut next_ticket,
                manual.entry(id.clone()).or_default(),
            );
            toggles += 1;
        }
        tokio::time::sleep(step).await;
    }

    let during = tree.status().await.map_err(|e| e.to_string())?;
    let (ok, failed, by_class) = totals(&during);

    // The end check: no more faults or changes; once the live rules' grace has passed
    // since the last change, every account syncs twice more (what confirms a divergence
    // and looks up a close), then everything buffered is made durable and compared with
    // the simulator's truth.
    let drawn = sim.random_faults_drawn();
    sim.set_random_faults(0, Vec::new());
    let settle = Instant::now();
    let grace = LiveRules::default().grace.to_std().unwrap_or_default();
    tokio::time::sleep(grace + Duration::from_secs(1)).await;
    let base = tree.status().await.map_err(|e| e.to_string())?;
    let base: HashMap<String, u64> = base
        .accounts
        .iter()
        .map(|a| (a.id.clone(), a.syncs_ok))
        .collect();
    let settled = crate::scenarios::poll(&tree, Duration::from_millis(500), |s| {
        s.accounts
            .iter()
            .all(|a| a.syncs_ok >= base.get(&a.id).copied().unwrap_or(0) + 2)
    })
    .await;
    let flush = service::flush(tree.actor(), None).await;
    let settle_s = settle.elapsed().as_secs_f64();

    let (mut truth_n, mut stored_n, mut lost, mut duplicated, mut spurious) = (0, 0, 0, 0, 0);
    for id in &ids {
        let mut truth: BTreeMap<Key, u32> = BTreeMap::new();
        for i in sim.injected(id) {
            *truth.entry((i.kind, i.trade_id, i.ticket)).or_default() += 1;
        }
        for t in manual.get(id).into_iter().flatten() {
            *truth
                .entry((DivergenceKind::UnexpectedAtBroker, None, Some(*t)))
                .or_default() += 1;
        }
        let stored = store::open_divergences(&backend.db, id)
            .await
            .map_err(|e| e.to_string())?;
        let mut seen: BTreeMap<Key, u32> = BTreeMap::new();
        for s in stored {
            let d = s.divergence;
            *seen.entry((d.kind, d.trade_id, d.ticket)).or_default() += 1;
        }
        truth_n += truth.values().sum::<u32>();
        stored_n += seen.values().sum::<u32>();
        for (k, want) in &truth {
            let got = seen.get(k).copied().unwrap_or(0);
            lost += want.saturating_sub(got);
            duplicated += got.saturating_sub(*want);
        }
        for (k, got) in &seen {
            if !truth.contains_key(k) {
                spurious += got;
                if spurious <= 5 {
                    println!("soak spurious account={id} divergence={k:?}");
                }
            }
        }
    }
    let after: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at_min * minute.as_secs_f64() >= warm_up.as_secs_f64())
        .collect();
    let rss_ref = after.first().map_or(0, |s| s.rss) as f64;
    let (rss_min, rss_max) = after
        .iter()
        .fold((u64::MAX, 0), |(lo, hi), s| (lo.min(s.rss), hi.max(s.rss)));
    let rss_last = after.last().map_or(0, |s| s.rss) as f64;
    let rss_flat = rss_ref > 0.0
        && after
            .iter()
            .all(|s| (s.rss as f64 - rss_ref).abs() <= rss_ref * 0.05);
    let task_ref = after.first().map_or(0, |s| s.tasks) as f64;
    let (task_min, task_max) = after.iter().fold((usize::MAX, 0), |(lo, hi), s| {
        (lo.min(s.tasks), hi.max(s.tasks))
    });
    let tasks_flat = after
        .iter()
        .all(|s| (s.tasks as f64 - task_ref).abs() <= (task_ref * 0.05).max(10.0));
    let mib = |b: f64| b / 1_048_576.0;
    let injected: Vec<String> = names
        .iter()
        .zip(&drawn)
        .map(|(n, c)| format!("{n}:{c}"))
        .collect();
    let seen_classes: Vec<String> = by_class.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    let all_ok = lost == 0
        && duplicated == 0
        && spurious == 0
        && settled.is_ok()
        && flush.is_ok()
        && outages_done == 2;
    println!(
        "soak db={} accounts={n} minutes={minutes} syncs_ok={ok} syncs_failed={failed} fail_share_pct={:.2} faults_injected={} ({}) failures_seen_by_class={} outages={outages_done} (figures up to here: the soak itself) manual_toggles={toggles} settle_s={settle_s:.1}{}{}",
        backend.label,
        failed as f64 * 100.0 / (ok + failed).max(1) as f64,
        drawn.iter().sum::<u64>(),
        injected.join(","),
        seen_classes.join(","),
        if settled.is_err() {
            " SETTLE_TIMEOUT"
        } else {
            ""
        },
        flush
            .as_ref()
            .err()
            .map_or(String::new(), |e| format!(" FLUSH_FAILED={e}")),
    );
    println!(
        "soak rss_mib first={:.1} after_warm_up(start/end/min/max)={:.1}/{:.1}/{:.1}/{:.1} flat_within_5pct={} tokio_tasks first={} after_warm_up(start/end/min/max)={}/{}/{task_min}/{task_max} tasks_flat={}",
        mib(samples.first().map_or(0, |s| s.rss) as f64),
        mib(rss_ref),
        mib(rss_last),
        mib(rss_min as f64),
        mib(rss_max as f64),
        verdict(rss_flat),
        samples.first().map_or(0, |s| s.tasks),
        task_ref,
        after.last().map_or(0, |s| s.tasks),
        verdict(tasks_flat),
    );
    println!(
        "soak divergences truth={truth_n} stored_open={stored_n} lost={lost} duplicated={duplicated} spurious={spurious} {}",
        verdict(all_ok)
    );
    tree.abort().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), backend.db.close_by_ref()).await;
    if let Some((admin, schema)) = &backend.drop_schema
        && let Err(e) = admin
            .execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await
    {
        eprintln!("warning: schema {schema} left behind: {e}");
    }
    if all_ok {
        Ok(())
    } else {
        Err("soak: divergences lost, duplicated or spurious, or the run did not settle".into())
    }
}
