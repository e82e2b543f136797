//! The dashboard at scale: the fleet overview's load time with N accounts (default
//! 10,000; smoke 50) on the simulated broker, after a first sync round has stored their
//! divergences.
//!
//! Two figures: the data the overview reads when it opens (the page, its script and style,
//! `/api/overview`, the first page of divergences and the divergences per hour, fetched
//! together as the page does), p50 and max over 20 loads; and, when `chromium` and
//! `chromedriver` are installed, the page in headless Chromium from navigation to its
//! first complete render (`body[data-loaded-ms]`, the page's own `performance.now()`),
//! over 5 fresh loads.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mt5_reconciler::actors::{AccountSpec, SchedulerConfig, SupervisorArgs, TreeConfig};
use mt5_reconciler::broker::Connector;
use mt5_reconciler::broker::sim::{SimBroker, SimConfig};
use mt5_reconciler::domain::ReconcileRules;
use mt5_reconciler::http::{self, HttpConfig};
use mt5_reconciler::service::{self, Reconciler};
use ractor::OutputPort;

use crate::Args;
use crate::measure::quantile;
use crate::scenarios::{first_round, sqlite_file};

type Res = Result<(), String>;

/// What the overview fetches when it opens.
const PAGE_LOAD: [&str; 6] = [
    "/",
    "/assets/dashboard.js",
    "/assets/dashboard.css",
    "/api/overview?offset=0&limit=50",
    "/api/divergences?limit=50&acknowledged=no",
    "/api/overview/divergences?range=24h",
];

pub async fn dashboard(args: &Args) -> Res {
    let n = args
        .accounts
        .unwrap_or(if args.smoke { 50 } else { 10_000 });
    let sim = Arc::new(SimBroker::new(&SimConfig {
        accounts: n,
        positions_per_account: 5,
        latency_ms_min: 1,
        latency_ms_max: 5,
        slippage_pct: 30,
        moved_sl_pct: 20,
        ..SimConfig::default()
    }));
    let (db, _dir) = sqlite_file().await?;
    let config = TreeConfig {
        scheduler: SchedulerConfig {
            interval_ms: 10_000,
            spread_slots: 10,
            max_in_flight: 1_000,
            sync_timeout_ms: 30_000,
            accounts_refresh_secs: 0,
        },
        ..TreeConfig::default()
    };
    let tree = Reconciler::start(SupervisorArgs {
        db: db.clone(),
        config,
        rules: Arc::new(ReconcileRules::default()),
        connectors: HashMap::from([(
            "sim".to_owned(),
            Connector {
                broker: sim.clone(),
                trades: sim.clone(),
            },
        )]),
        accounts: (sim.account_ids().into_iter())
            .map(|id| AccountSpec {
                id,
                broker: "sim".into(),
            })
            .collect(),
        events: Arc::new(OutputPort::default()),
        follow_accounts_table: false,
        clock: mt5_reconciler::clock::Clock::real(),
    })
    .await
    .map_err(|e| e.to_string())?;
    first_round(&tree).await?;
    service::flush(tree.actor(), None)
        .await
        .map_err(|e| e.to_string())?;
    let listen = HttpConfig {
        listen: "127.0.0.1:0".into(),
        ..HttpConfig::default()
    };
    let bound = http::bind(&listen, http::Tokens::default())
        .await
        .map_err(|e| e.to_string())?
        .ok_or("http disabled")?;
    let server = bound.serve(tree.actor().clone(), db.clone(), 10);
    let base = format!("http://{}", server.local_addr());
    let result = measure(&base, n, args.smoke).await;
    server.stop().await;
    tree.abort().await;
    result
}

async fn measure(base: &str, n: usize, smoke: bool) -> Res {
    // Plain HTTP on loopback; reqwest still wants a TLS provider named (the one sqlx uses).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let open = || async {
        let t = Instant::now();
        let calls = PAGE_LOAD.map(|p| {
            let req = client.get(format!("{base}{p}"));
            async move {
                let r = req.send().await.map_err(|e| format!("{p}: {e}"))?;
                let ok = r.status().is_success();
                let bytes = r.bytes().await.map_err(|e| format!("{p}: {e}"))?.len();
                if ok {
                    Ok(bytes)
                } else {
                    Err(format!("{p}: HTTP error"))
                }
            }
        });
        let sizes = futures_join(calls).await?;
        Ok::<_, String>((t.elapsed(), sizes.iter().sum::<usize>()))
    };
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..if smoke { 3 } else { 20 } {
        let (t, b) = open().await?;
        times.push(t);
        bytes = b;
    }
    let max = times.iter().max().copied().unwrap_or_default();
    let body = client
        .get(format!("{base}/api/overview?limit=1"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .bytes()
        .await
        .map_err(|e| e.to_string())?;
    let overview: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let attention = &overview["totals"]["needs_attention"];
    println!(
        "dashboard accounts={n} open_divergences={attention} overview_data_p50_ms={:.0} overview_data_max_ms={:.0} bytes={bytes} loads={}",
        ms(quantile(&mut times, 0.5)),
        ms(max),
        times.len()
    );
    match browser_loads(base, if smoke { 1 } else { 5 }).await {
        Ok(mut t) => {
            let max = t.iter().max().copied().unwrap_or_default();
            println!(
                "dashboard accounts={n} overview_in_chromium_p50_ms={:.0} overview_in_chromium_max_ms={:.0} loads={}",
                ms(quantile(&mut t, 0.5)),
                ms(max),
                t.len()
            );
        }
        Err(why) => println!("dashboard accounts={n} overview_in_chromium=skipped ({why})"),
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Every call at once, as the page's `Promise.all`.
async fn futures_join<F: Future<Output = Result<usize, String>>>(
    calls: [F; 6],
) -> Result<Vec<usize>, String> {
    let [a, b, c, d, e, f] = calls;
    let r = tokio::join!(a, b, c, d, e, f);
    [r.0, r.1, r.2, r.3, r.4, r.5].into_iter().collect()
}

/// Loads the overview `loads` times in headless Chromium; each time from navigation to the
/// page's first complete render, as the page measured it.
async fn browser_loads(base: &str, loads: usize) -> Result<Vec<Duration>, String> {
    let installed = |p: &str| {
        Command::new(p)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !installed("chromium") || !installed("chromedriver") {
        return Err("chromium or chromedriver not installed".into());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let mut driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let result = async {
        let addr = format!("127.0.0.1:{port}");
        while tokio::net::TcpStream::connect(&addr).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1800",
        ];
        let mut args: Vec<String> = flags.map(str::to_owned).to_vec();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "args": args }),
        );
        let c = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(caps)
        .connect(&format!("http://{addr}"))
        .await
        .map_err(|e| e.to_string())?;
        let mut times = Vec::new();
        for _ in 0..loads {
            c.goto("about:blank").await.map_err(|e| e.to_string())?;
            c.goto(&format!("{base}/"))
                .await
                .map_err(|e| e.to_string())?;
            let loaded = c
                .wait()
                .at_most(Duration::from_secs(120))
                .for_element(fantoccini::Locator::Css("body[data-loaded-ms]"))
                .await
                .map_err(|e| e.to_string())?;
            let ms = loaded
                .attr("data-loaded-ms")
                .await
                .map_err(|e| e.to_string())?
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or("no load time on the page")?;
            times.push(Duration::from_millis(ms));
        }
        c.close().await.map_err(|e| e.to_string())?;
        Ok(times)
    }
    .await;
    let _ = driver.kill();
    let _ = driver.wait();
    result
}
