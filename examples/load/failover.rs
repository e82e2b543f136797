//! Scenario `failover`: three service processes share the accounts of one PostgreSQL
//! schema through leases, against the fake MetaApi as a process of its own; one of them is
//! killed with SIGKILL, again and again, and the scenario watches `account_leases` to time
//! how long each of its accounts stays without an owner.
//!
//! It reports, per run: the takeover time of every account the killed instance owned
//! (p50 and max, from the kill until the lease row names another owner; target ≤ 2 × the
//! lease TTL), lease renewals per second (updates of `account_leases` in PostgreSQL's own
//! statistics over a quiet window), and the CPU per account sync of the three instances
//! together against one instance without leases on the same accounts (the overhead of
//! high availability). Only the services' CPU is counted.
//!
//! Defaults: 3,000 accounts, 5 positions each, fetch latency 100–200 ms, interval 10 s, the
//! shipped lease settings (TTL 15 s, renewal and claim every 5 s), three kills. Smoke: 60
//! accounts, TTL 3 s, one kill. Needs PostgreSQL (`--postgres`, else `DATABASE_URL`, else
//! the local default; skipped, saying so, without one) and the release binaries: `cargo
//! build --release --bins --workspace`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fake_metaapi::Fleet;
use fake_metaapi::process::FakeProcess;
use mt5_reconciler::store;
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::Args;
use crate::measure::{cpu_time_of, quantile, verdict};
use crate::metaapi::{Service, TOKEN, TOKEN_ENV, client, free_port, read_status, write_fleet};
use crate::scenarios::{postgres_schema, postgres_url};
use crate::setup::{in_process, release_binary};

type Res = Result<(), String>;

const POSITIONS: usize = 5;

/// Sizes and timing of a run.
struct Plan {
    accounts: usize,
    interval_ms: u64,
    latency: (u64, u64),
    ttl_secs: u64,
    renew_secs: u64,
    claim_secs: u64,
    kills: usize,
    /// Intervals in each measurement window.
    window: u32,
}

fn plan(args: &Args) -> Plan {
    if args.smoke {
        Plan {
            accounts: args.accounts.unwrap_or(60),
            interval_ms: 1_000,
            latency: (5, 10),
            ttl_secs: 3,
            renew_secs: 1,
            claim_secs: 1,
            kills: 1,
            window: 2,
        }
    } else {
        Plan {
            accounts: args.accounts.unwrap_or(3_000),
            interval_ms: 10_000,
            latency: (100, 200),
            ttl_secs: 15,
            renew_secs: 5,
            claim_secs: 5,
            kills: 3,
            window: 3,
        }
    }
}

/// A service instance of the run.
struct Instance {
    id: String,
    port: u16,
    service: Service,
}

impl Instance {
    fn pid(&self) -> String {
        self.service.0.id().to_string()
    }
}

/// The run's folder, database and fake broker.
struct Run<'a> {
    plan: &'a Plan,
    bin: &'a Path,
    dir: &'a Path,
    url: String,
    schema: String,
    fake_url: String,
}

impl Run<'_> {
    /// `config.toml` of instance `id` (`None`: one instance without leases).
    fn config(&self, id: Option<&str>, port: u16) -> String {
        let p = self.plan;
        let sep = if self.url.contains('?') { '&' } else { '?' };
        let app = id.unwrap_or("single");
        let mut c = format!(
            "[database]\nurl = \"{}{sep}options[search_path]={}&application_name={app}\"\n\n\
             [scheduler]\ninterval_ms = {}\nspread_slots = 10\nmax_in_flight = 1024\nsync_timeout_ms = 5000\naccounts_refresh_secs = 5\n\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\nmetrics_per_account = false\n\n\
             [broker]\nenabled = [\"metaapi\"]\n\n\
             [broker.metaapi]\nbase_url = \"{}\"\ntoken_env = \"{TOKEN_ENV}\"\nmax_concurrent_requests = 1024\n",
            self.url, self.schema, p.interval_ms, self.fake_url,
        );
        if let Some(id) = id {
            let _ = write!(
                c,
                "\n[ha]\nenabled = true\ninstance_id = \"{id}\"\nttl_secs = {}\nrenew_secs = {}\nclaim_secs = {}\n",
                p.ttl_secs, p.renew_secs, p.claim_secs
            );
        }
        c
    }

    fn config_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.toml"))
    }

    /// Starts instance `id` (`None`: without leases).
    fn start(&self, id: Option<&str>) -> Result<Instance, String> {
        let name = id.unwrap_or("single");
        let port = free_port()?;
        let path = self.config_path(name);
        std::fs::write(&path, self.config(id, port)).map_err(|e| e.to_string())?;
        let log = self.dir.join(format!("{name}.log"));
        Ok(Instance {
            id: name.to_owned(),
            port,
            service: Service::start(self.bin, &path, &log)?,
        })
    }
}

/// The live owners of the leases now: (account, owner) of every live lease.
async fn owners(db: &DatabaseConnection) -> Result<Vec<(String, String)>, String> {
    Ok(store::list_leases(db)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|r| r.live)
        .filter_map(|r| Some((r.account_id, r.owner?)))
        .collect())
}

/// Waits (at most 5 minutes) until every account has a live lease and each of `ids`
/// owns at least one.
async fn settled(db: &DatabaseConnection, ids: &[&str], n: usize) -> Res {
    let started = Instant::now();
    loop {
        let now = owners(db).await?;
        let every_one = ids.iter().all(|id| now.iter().any(|(_, o)| o == id));
        if now.len() == n && every_one {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err(format!(
                "after 5 minutes {} of {n} accounts have a live lease",
                now.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Updates of `account_leases` so far, as PostgreSQL's statistics count them.
async fn lease_updates(db: &DatabaseConnection, schema: &str) -> Result<i64, String> {
    db.execute_unprepared("SELECT pg_stat_clear_snapshot()")
        .await
        .map_err(|e| e.to_string())?;
    let row = db
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT n_tup_upd FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'account_leases'",
            [schema.into()],
        ))
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no statistics for account_leases")?;
    row.try_get("", "n_tup_upd").map_err(|e| e.to_string())
}

/// CPU per account sync of `instances` together over `window` intervals, and the syncs.
async fn cpu_per_sync(
    client: &reqwest::Client,
    instances: &[&Instance],
    interval: Duration,
    window: u32,
) -> Result<(f64, u64), String> {
    let mut before = Vec::new();
    for i in instances {
        before.push((
            read_status(client, i.port).await?.syncs,
            cpu_time_of(&i.pid()),
        ));
    }
    tokio::time::sleep(interval * window).await;
    let (mut syncs, mut cpu) = (0, Duration::ZERO);
    for (i, (s0, c0)) in instances.iter().zip(before) {
        syncs += read_status(client, i.port).await?.syncs - s0;
        cpu += cpu_time_of(&i.pid()) - c0;
    }
    Ok((cpu.as_secs_f64() * 1e6 / syncs.max(1) as f64, syncs))
}

/// Kills the instance owning the most accounts with SIGKILL and times, per account it
/// owned, until another instance holds its lease. Returns the takeover times.
async fn kill_one(
    db: &DatabaseConnection,
    instances: &mut Vec<Instance>,
) -> Result<(String, Vec<Duration>), String> {
    let now = owners(db).await?;
    let count = |id: &str| now.iter().filter(|(_, o)| o == id).count();
    let victim = (0..instances.len())
        .max_by_key(|&k| count(&instances[k].id))
        .ok_or("no instance to kill")?;
    let mut killed = instances.remove(victim);
    let mut waiting: Vec<String> = now
        .iter()
        .filter(|(_, o)| *o == killed.id)
        .map(|(a, _)| a.clone())
        .collect();
    let at = Instant::now();
    killed.service.0.kill().map_err(|e| e.to_string())?;
    let _ = killed.service.0.wait();
    let mut took = Vec::with_capacity(waiting.len());
    while !waiting.is_empty() {
        if at.elapsed() > Duration::from_secs(300) {
            return Err(format!(
                "{} accounts of {} had no new owner 5 minutes after the kill",
                waiting.len(),
                killed.id
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now: std::collections::HashMap<String, String> =
            owners(db).await?.into_iter().collect();
        let elapsed = at.elapsed();
        waiting.retain(|a| match now.get(a) {
            Some(owner) if *owner != killed.id => {
                took.push(elapsed);
                false
            }
            _ => true,
        });
    }
    Ok((killed.id, took))
}

/// The scenario: see the module documentation.
pub async fn failover(args: &Args) -> Res {
    let Some((db, admin, schema)) = postgres_schema(args).await? else {
        println!("failover skipped: no PostgreSQL");
        return Ok(());
    };
    let result = run(args, &db, &schema).await;
    if let Err(e) = admin
        .execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
    {
        eprintln!("warning: schema {schema} left behind: {e}");
    }
    result
}

async fn run(args: &Args, db: &DatabaseConnection, schema: &str) -> Res {
    let bin = release_binary().ok_or(
        "the service binary is not built next to this harness: run `cargo build --release --bins --workspace`",
    )?;
    let plan = plan(args);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let result = run_in(args, db, schema, &bin, &plan, dir.path()).await;
    if result.is_err() {
        // The instances' logs say why.
        let kept = dir.keep();
        eprintln!(
            "failover: the instances' logs are kept in {}",
            kept.display()
        );
    }
    result
}

async fn run_in(
    args: &Args,
    db: &DatabaseConnection,
    schema: &str,
    bin: &Path,
    plan: &Plan,
    dir: &Path,
) -> Res {
    let n = plan.accounts;
    let fleet = Fleet::new("ma-", n, POSITIONS);
    let fake = FakeProcess::spawn_fleet("ma-", n, POSITIONS, plan.latency, TOKEN)?;
    let run = Run {
        plan,
        bin,
        dir,
        url: postgres_url(args),
        schema: schema.to_owned(),
        fake_url: fake.base_url.clone(),
    };
    // Migrates the schema and imports the fleet's accounts and trades.
    write_fleet(dir, &fleet)?;
    let setup = run.config_path("setup");
    std::fs::write(&setup, run.config(None, 0)).map_err(|e| e.to_string())?;
    let setup = setup.to_string_lossy().into_owned();
    for (what, file) in [("accounts", "accounts.jsonl"), ("trades", "trades.jsonl")] {
        let file = dir.join(file).to_string_lossy().into_owned();
        in_process(&["mt5-reconciler", what, "import", &file, "--config", &setup]).await?;
    }
    let client = client()?;
    let interval = Duration::from_millis(plan.interval_ms);

    // One instance without leases: the baseline CPU per sync.
    let single = run.start(None)?;
    wait_synced(&client, &single, n).await?;
    tokio::time::sleep(interval).await;
    let (base_us, base_syncs) = cpu_per_sync(&client, &[&single], interval, plan.window).await?;
    drop(single);

    // Three instances with leases.
    let mut instances = Vec::new();
    for id in ["fo-1", "fo-2", "fo-3"] {
        instances.push(run.start(Some(id))?);
    }
    settled(db, &["fo-1", "fo-2", "fo-3"], n).await?;
    tokio::time::sleep(interval).await;
    let updates0 = lease_updates(db, schema).await?;
    let quiet = Instant::now();
    let all: Vec<&Instance> = instances.iter().collect();
    let (ha_us, ha_syncs) = cpu_per_sync(&client, &all, interval, plan.window).await?;
    let renewals =
        (lease_updates(db, schema).await? - updates0) as f64 / quiet.elapsed().as_secs_f64();

    let mut takeovers = Vec::new();
    let mut lines = Vec::new();
    for round in 1..=plan.kills {
        let (killed, mut took) = kill_one(db, &mut instances).await?;
        lines.push(format!(
            "failover kill={round} instance={killed} accounts_moved={} takeover_p50_ms={} takeover_max_ms={}",
            took.len(),
            quantile(&mut took, 0.5).as_millis(),
            quantile(&mut took, 1.0).as_millis(),
        ));
        takeovers.extend(took);
        // A replacement joins, and the share settles before the next kill.
        let id = format!("fo-{}", round + 3);
        instances.push(run.start(Some(&id))?);
        let ids: Vec<&str> = instances.iter().map(|i| i.id.as_str()).collect();
        settled(db, &ids, n).await?;
        tokio::time::sleep(interval).await;
    }
    for line in lines {
        println!("{line}");
    }
    let max = quantile(&mut takeovers, 1.0);
    let target = Duration::from_secs(2 * plan.ttl_secs);
    println!(
        "failover accounts={n} instances=3 positions={POSITIONS} latency={}-{}ms interval_ms={} ttl_secs={} renew_secs={} claim_secs={} kills={} takeover_p50_ms={} takeover_max_ms={} target<={} {} lease_renewals_per_s={renewals:.0} cpu_per_sync_us_single={base_us:.1} ({base_syncs} syncs) cpu_per_sync_us_ha={ha_us:.1} ({ha_syncs} syncs) ha_overhead_per_sync_us={:.1}",
        plan.latency.0,
        plan.latency.1,
        plan.interval_ms,
        plan.ttl_secs,
        plan.renew_secs,
        plan.claim_secs,
        plan.kills,
        quantile(&mut takeovers, 0.5).as_millis(),
        max.as_millis(),
        target.as_millis(),
        verdict(!takeovers.is_empty() && max <= target),
        ha_us - base_us,
    );
    drop(instances);
    drop(fake);
    Ok(())
}

/// Waits (at most 5 minutes) until every account has synced once on `instance`.
async fn wait_synced(client: &reqwest::Client, instance: &Instance, n: usize) -> Res {
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if read_status(client, instance.port)
            .await
            .is_ok_and(|r| r.synced_accounts >= n)
        {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err(format!(
                "{}: not every account synced within 5 minutes",
                instance.id
            ));
        }
    }
}
