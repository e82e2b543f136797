//! Scenario `metaapi`: the service binary on the path real users run, against the fake
//! MetaApi as a process of its own, side by side with the same binary on the simulated
//! broker. Both run `mt5-reconciler run` on an SQLite file with accounts and trades set up
//! by the bulk imports; only the service process's CPU and memory are counted.
//!
//! Per path and size it reports CPU per account sync, resident bytes per account, HTTP
//! requests per sync and connections opened while measuring (MetaApi), and the tick wall
//! time against the slowest sync of that tick. Sizes: 1,000, 10,000 and 50,000 accounts
//! (`--accounts N` for one; smoke: 20). Needs the release binaries: `cargo build --release
//! --bins --workspace` (the fake is built on demand otherwise).
//!
//! Interval 10 s in 10 slots, fetch latency 100–200 ms, 20 positions per account; the
//! measurement window is six intervals after every account has synced once and one more
//! interval has passed.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fake_metaapi::process::FakeProcess;
use fake_metaapi::{Fleet, Stats};
use serde_json::Value as Json;

use crate::Args;
use crate::measure::{cpu_time_of, rss_bytes_of, verdict};
use crate::setup::{in_process, release_binary};

type Res = Result<(), String>;

pub(crate) const TOKEN: &str = "load-metaapi-token";
pub(crate) const TOKEN_ENV: &str = "LOAD_METAAPI_TOKEN";
const POSITIONS: usize = 20;
/// Requests in flight to the fake at most.
const MAX_CONNECTIONS: usize = 4_096;

/// The sizes to run.
fn sizes(args: &Args) -> Vec<usize> {
    match (args.accounts, args.smoke) {
        (Some(n), _) => vec![n],
        (None, true) => vec![20],
        (None, false) => vec![1_000, 10_000, 50_000],
    }
}

/// The broker path measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Sim,
    MetaApi,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Self::Sim => "sim",
            Self::MetaApi => "metaapi",
        }
    }
}

/// Timing of a run: interval, fetch latency, intervals measured.
struct Pace {
    interval_ms: u64,
    latency: (u64, u64),
    window: u64,
}

fn pace(args: &Args) -> Pace {
    if args.smoke {
        Pace {
            interval_ms: 1_000,
            latency: (5, 10),
            window: 2,
        }
    } else {
        Pace {
            interval_ms: 10_000,
            latency: (100, 200),
            window: 6,
        }
    }
}

/// `config.toml` of a run: the database in `dir`, HTTP on `port`, the broker of `path`.
fn config(dir: &Path, port: u16, path: Route, n: usize, pace: &Pace, fake: Option<&str>) -> String {
    // Every account of a slot may be in flight at once, each with its requests.
    let per_slot = n.div_ceil(10).max(64);
    let mut c = format!(
        "[database]\nurl = \"sqlite://{}?mode=rwc\"\n\n[scheduler]\ninterval_ms = {}\nspread_slots = 10\nmax_in_flight = {}\nsync_timeout_ms = 5000\n\n[http]\nlisten = \"127.0.0.1:{port}\"\nmetrics_per_account = false\n\n",
        dir.join("service.db").display(),
        pace.interval_ms,
        per_slot * 2,
    );
    match path {
        Route::Sim => {
            let _ = write!(
                c,
                "[broker]\nenabled = [\"sim\"]\n\n[broker.sim]\naccounts = {n}\npositions_per_account = {POSITIONS}\nlatency_ms_min = {}\nlatency_ms_max = {}\nslippage_pct = 0\npartial_volume_pct = 0\nmoved_sl_pct = 0\nmanual_position_pct = 0\nclosed_by_sl_pct = 0\n",
                pace.latency.0, pace.latency.1
            );
        }
        Route::MetaApi => {
            let _ = write!(
                c,
                "[broker]\nenabled = [\"metaapi\"]\n\n[broker.metaapi]\nbase_url = \"{}\"\ntoken_env = \"{TOKEN_ENV}\"\nmax_concurrent_requests = {}\n",
                fake.unwrap_or_default(),
                // Below the open-files limit of both processes (20,000 here): each request
                // in flight holds a connection.
                (per_slot * 4).min(MAX_CONNECTIONS),
            );
        }
    }
    c
}

/// `accounts.jsonl` and `trades.jsonl`: the fleet's accounts, each with a trade per
/// position it holds.
pub(crate) fn write_fleet(dir: &Path, fleet: &Fleet) -> Result<(), String> {
    let mut accounts = String::new();
    let mut trades = String::new();
    let one = fleet.trades_json();
    for id in fleet.account_ids() {
        let _ = writeln!(accounts, r#"{{"id":"{id}","broker":"metaapi"}}"#);
        let _ = writeln!(trades, r#"{{"account":"{id}","trades":[{one}]}}"#);
    }
    let io = |e: std::io::Error| e.to_string();
    std::fs::write(dir.join("accounts.jsonl"), accounts).map_err(io)?;
    std::fs::write(dir.join("trades.jsonl"), trades).map_err(io)
}

/// A free port on 127.0.0.1.
pub(crate) fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// A plain HTTP client (reqwest is built without a TLS provider of its own; loopback
/// needs none).
pub(crate) fn client() -> Result<reqwest::Client, String> {
    // reqwest is built without a TLS provider; the process-wide one serves plain HTTP too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())
}

pub(crate) async fn get(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let r = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    r.text().await.map_err(|e| format!("GET {url}: {e}"))
}

/// The service process; killed when dropped.
pub(crate) struct Service(pub(crate) Child);

impl Service {
    /// Starts `bin run --config config` with the fake's token, warnings and errors logged
    /// to `log`.
    pub(crate) fn start(bin: &Path, config: &Path, log: &Path) -> Result<Self, String> {
        let log = std::fs::File::create(log).map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .args(["run", "--config"])
            .arg(config)
            .env(TOKEN_ENV, TOKEN)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        Ok(Self(child))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A reading of the service's status: syncs so far, accounts synced at least once,
/// failed syncs, skipped ticks, the last tick's wall time and slowest sync (ms).
#[derive(Debug, Default)]
pub(crate) struct Reading {
    pub(crate) syncs: u64,
    pub(crate) synced_accounts: usize,
    pub(crate) failed: u64,
    skipped: u64,
    tick_ms: Option<f64>,
    slowest_ms: Option<f64>,
    /// The most frequent last error over the accounts, and how many accounts it names.
    top_error: Option<(String, usize)>,
}

pub(crate) async fn read_status(client: &reqwest::Client, port: u16) -> Result<Reading, String> {
    let text = get(client, &format!("http://127.0.0.1:{port}/api/status")).await?;
    let s: Json = serde_json::from_str(&text).map_err(|e| format!("status: {e}"))?;
    let accounts = s["accounts"].as_array().cloned().unwrap_or_default();
    let sch = &s["scheduler"];
    Ok(Reading {
        syncs: accounts.iter().filter_map(|a| a["syncs_ok"].as_u64()).sum(),
        synced_accounts: accounts
            .iter()
            .filter(|a| a["syncs_ok"].as_u64().unwrap_or(0) > 0)
            .count(),
        failed: accounts
            .iter()
            .filter_map(|a| a["syncs_failed"].as_u64())
            .sum(),
        skipped: sch["skipped_ticks"].as_u64().unwrap_or(0),
        tick_ms: sch["last_tick_duration"].as_f64(),
        slowest_ms: sch["last_tick_slowest_sync"].as_f64(),
        top_error: top_error(&accounts),
    })
}

fn top_error(accounts: &[Json]) -> Option<(String, usize)> {
    let mut counts = std::collections::HashMap::<&str, usize>::new();
    for a in accounts {
        if let Some(e) = a["last_error"].as_str() {
            // Without the account's own path, so equal causes count together.
            let cause = e.split(": GET ").next().unwrap_or(e);
            *counts.entry(cause).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(e, n)| (e.to_owned(), n))
}

/// Runs one path at one size and prints its line.
async fn one(args: &Args, bin: &Path, path: Route, n: usize) -> Res {
    let pace = pace(args);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let fleet = Fleet::new("ma-", n, POSITIONS);
    let fake = match path {
        Route::MetaApi => Some(FakeProcess::spawn_fleet(
            "ma-",
            n,
            POSITIONS,
            pace.latency,
            TOKEN,
        )?),
        Route::Sim => None,
    };
    let port = free_port()?;
    let config_path = dir.path().join("config.toml");
    std::fs::write(
        &config_path,
        config(
            dir.path(),
            port,
            path,
            n,
            &pace,
            fake.as_ref().map(|f| f.base_url.as_str()),
        ),
    )
    .map_err(|e| e.to_string())?;
    let config_arg = config_path.to_string_lossy().into_owned();
    if path == Route::MetaApi {
        write_fleet(dir.path(), &fleet)?;
        for (what, file) in [("accounts", "accounts.jsonl"), ("trades", "trades.jsonl")] {
            let file = dir.path().join(file).to_string_lossy().into_owned();
            in_process(&[
                "mt5-reconciler",
                what,
                "import",
                &file,
                "--config",
                &config_arg,
            ])
            .await?;
        }
    }
    let mut service = Service::start(bin, &config_path, &dir.path().join("service.log"))?;
    let pid = service.0.id().to_string();
    let log_tail = || {
        let text = std::fs::read_to_string(dir.path().join("service.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    let client = client()?;
    // Until every account has synced once, then one more interval.
    let interval = Duration::from_millis(pace.interval_ms);
    let mut ready = false;
    let mut synced = 0;
    for _ in 0..180 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(Some(status)) = service.0.try_wait() {
            return Err(format!(
                "{}: the service exited ({status}):\n{}",
                path.name(),
                log_tail()
            ));
        }
        if let Ok(r) = read_status(&client, port).await {
            synced = r.synced_accounts;
            if synced >= n {
                ready = true;
                break;
            }
        }
    }
    if !ready {
        // A service that cannot keep up is measured as it is: its failures are the figure.
        println!(
            "# {}: {synced} of {n} accounts synced within 3 minutes; measuring anyway",
            path.name()
        );
    }
    tokio::time::sleep(interval).await;
    let stats = |f: &Option<FakeProcess>| {
        let f = f.as_ref().map(|f| f.stats_url());
        let client = client.clone();
        async move {
            match f {
                Some(url) => Stats::from_json(&get(&client, &url).await?),
                None => Ok(Stats::default()),
            }
        }
    };
    let r0 = read_status(&client, port).await?;
    let f0 = stats(&fake).await?;
    let cpu0 = cpu_time_of(&pid);
    tokio::time::sleep(interval * pace.window as u32).await;
    let cpu = cpu_time_of(&pid) - cpu0;
    let rss = rss_bytes_of(&pid);
    let f1 = stats(&fake).await?;
    let r1 = read_status(&client, port).await?;
    let syncs = r1.syncs - r0.syncs;
    let per_sync_us = cpu.as_secs_f64() * 1e6 / syncs.max(1) as f64;
    let per_account = rss as f64 / n as f64;
    let ratio = match (r1.tick_ms, r1.slowest_ms) {
        (Some(t), Some(s)) if s > 0.0 => t / s,
        _ => f64::NAN,
    };
    let (cpu_target, rss_target) = match path {
        Route::Sim => (10.0, f64::INFINITY),
        Route::MetaApi => (100.0, 24_576.0),
    };
    let mut line = format!(
        "metaapi path={} accounts={n} positions={POSITIONS} latency={}-{}ms interval_ms={} syncs={syncs} failed={} skipped_ticks={} cpu_ms={} cpu_per_sync_us={per_sync_us:.1} target<={cpu_target} {} rss_mib={:.1} bytes_per_account={per_account:.0}",
        path.name(),
        pace.latency.0,
        pace.latency.1,
        pace.interval_ms,
        r1.failed - r0.failed,
        r1.skipped - r0.skipped,
        cpu.as_millis(),
        verdict(per_sync_us <= cpu_target),
        rss as f64 / 1_048_576.0,
    );
    if path == Route::MetaApi {
        let requests = f1.total_requests() - f0.total_requests();
        let _ = write!(
            line,
            " target<={rss_target} {} requests_per_sync={:.2} positions_requests={} connections_opened_while_measuring={} connections_total={}",
            verdict(per_account <= rss_target),
            requests as f64 / syncs.max(1) as f64,
            f1.requests_to("positions") - f0.requests_to("positions"),
            f1.connections - f0.connections,
            f1.connections,
        );
    }
    let _ = write!(
        line,
        " tick_wall_ms={:.0} slowest_sync_ms={:.0} tick_wall/slowest_sync={ratio:.2} target<=1.1 {}",
        r1.tick_ms.unwrap_or(f64::NAN),
        r1.slowest_ms.unwrap_or(f64::NAN),
        verdict(ratio <= 1.1)
    );
    if let (Some((error, accounts)), true) = (&r1.top_error, r1.failed > r0.failed) {
        let _ = write!(
            line,
            " accounts_synced={} last_error_of_{accounts}_accounts={error:?}",
            r1.synced_accounts
        );
    }
    println!("{line}");
    drop(service);
    drop(fake);
    Ok(())
}

/// The scenario: see the module documentation.
pub async fn metaapi(args: &Args) -> Res {
    let bin = release_binary().ok_or(
        "the service binary is not built next to this harness: run `cargo build --release --bins --workspace` (or without --release for a debug harness)",
    )?;
    for n in sizes(args) {
        for path in [Route::Sim, Route::MetaApi] {
            one(args, &bin, path, n).await?;
        }
    }
    Ok(())
}
