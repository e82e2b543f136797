//! The dashboard in a real browser: headless Chromium, driven through chromedriver
//! (WebDriver), loads the fleet overview and an account page from a running service on
//! the simulated broker. The pages must show what the JSON API returns: the accounts, the
//! positions, trades and divergences, as many chart points as the API has samples; and an
//! acknowledgement made on the page must change what the API returns. A screenshot of
//! each page is saved under `target/tmp/dashboard/` (not committed).
//!
//! Skipped, with a message, when `chromium` or `chromedriver` is not installed (`.ci/run`
//! installs both).

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use mt5_reconciler::store;
use serde_json::{Value as Json, json};

use crate::service_proc::Service;

const CHROMIUM: &str = "chromium";
const CHROMEDRIVER: &str = "chromedriver";
const TOKEN: &str = "browser-token-51ab";
/// Generous bound for the browser to start or a page to render; only a hang reaches it.
const PATIENCE: Duration = Duration::from_secs(120);

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Says why the test did not run (straight to stderr: the harness captures `eprintln!`).
fn skipped() -> bool {
    for program in [CHROMIUM, CHROMEDRIVER] {
        if !installed(program) {
            let _ = writeln!(
                std::io::stderr(),
                "browser test skipped: `{program}` is not installed (apt-get install chromium chromium-driver)"
            );
            return true;
        }
    }
    false
}

/// chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
        let deadline = Instant::now() + PATIENCE;
        // Listening is enough: the session request waits for it to be ready.
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session with the flags that work here and a new empty profile.
async fn browser(driver: &Driver, profile: &Path) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1800",
    ]
    .map(str::to_owned)
    .into_iter()
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect::<Vec<_>>();
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), json!({ "args": args }));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

/// Opens `url` and waits until its script has rendered once (`body[data-loaded]`).
async fn open(c: &Client, url: &str) {
    c.goto(url).await.expect("navigates");
    c.wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("body[data-loaded='true']"))
        .await
        .expect("the page renders");
}

/// The values of `attr` of every element matching `css`, read in one script run (the
/// pages re-render every few seconds: no element is held across calls).
async fn attrs(c: &Client, css: &str, attr: &str) -> Vec<String> {
    let script = "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.getAttribute(arguments[1]));";
    let v = c
        .execute(script, vec![json!(css), json!(attr)])
        .await
        .expect("the script runs");
    serde_json::from_value(v).expect("a list of strings")
}

async fn banner(c: &Client) -> String {
    let v = c
        .execute(
            "const b = document.getElementById('banner'); return b.style.display === 'block' ? b.textContent : '';",
            vec![],
        )
        .await
        .expect("the script runs");
    v.as_str().unwrap_or_default().to_owned()
}

async fn screenshot(c: &Client, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    let png = c.screenshot().await.expect("a screenshot");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).expect("screenshot written");
    path
}

fn api(service: &Service, path: &str) -> Json {
    let (code, body) = service.get(path, Some(TOKEN));
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn set<I: IntoIterator<Item = String>>(items: I) -> BTreeSet<String> {
    items.into_iter().collect()
}

#[test]
fn the_pages_show_what_the_api_returns_and_acknowledge_through_it_in_a_real_browser() {
    if skipped() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}?mode=rwc", dir.path().join("dash.db").display());
    let config = format!(
        "[database]\nurl = \"{db_url}\"\n\
         [scheduler]\ninterval_ms = 300\nspread_slots = 3\n\
         [broker.sim]\naccounts = 3\nseed = 11\nlatency_ms_min = 1\nlatency_ms_max = 5\n\
         slippage_pct = 40\nmoved_sl_pct = 20\n\
         [[guards.drawdown]]\nname = \"daily-5pct\"\nkind = \"daily_loss\"\n\
         accounts = [\"sim-001\", \"sim-002\"]\nwarn = \"4%\"\nbreach = \"5%\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"IT_BROWSER_TOKEN\"\n"
    );
    // A breach whose close is pending, on an account without guards: the overview counts
    // it down and offers to cancel it.
    let alert = crate::alerts_ops::record("al-dash", "sim-003", "breach", "pending_close", 0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = store::connect(&db_url).await.unwrap();
        store::insert_alert(&db, &alert).await.unwrap();
        db.close().await.unwrap();
    });
    let service = Service::start(dir.path(), &config, &[("IT_BROWSER_TOKEN", TOKEN)]);
    service.wait_for("/readyz", Some(TOKEN), |code, _| code == 200);
    service.wait_for("/api/accounts/sim-001/equity", Some(TOKEN), |code, body| {
        code == 200 && body.contains("\"equity\":")
    });
    service.wait_for(
        "/api/divergences?account=sim-001",
        Some(TOKEN),
        |code, body| code == 200 && body.contains("\"id\":"),
    );
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let base = format!("http://{}", service.local());

    rt.block_on(async {
        let c = browser(&driver, profile.path()).await;

        // The fleet overview.
        open(&c, &format!("{base}/#token={TOKEN}")).await;
        assert_eq!(banner(&c).await, "", "the overview shows an error");
        let overview = api(&service, "/api/overview");
        let accounts = set(overview["accounts"]["items"]
            .as_array()
            .expect("accounts")
            .iter()
            .map(|a| a["id"].as_str().expect("id").to_owned()));
        assert_eq!(
            set(attrs(&c, "#accounts tr[data-account]", "data-account").await),
            accounts
        );
        let hours = api(&service, "/api/overview/divergences")["hours"]
            .as_array()
            .expect("hours")
            .len();
        assert_eq!(
            attrs(&c, "#fleet-chart g[data-bar]", "data-bar")
                .await
                .len(),
            hours
        );
        assert_eq!(
            attrs(&c, "#alerts tr[data-alert]", "data-alert").await,
            ["al-dash"]
        );
        assert_eq!(
            attrs(&c, "#alerts button[data-cancel]", "data-cancel").await,
            ["al-dash"]
        );
        let listed = api(&service, "/api/divergences?acknowledged=no&limit=50");
        let ids = set(listed["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|d| d["id"].to_string()));
        assert_eq!(
            set(attrs(&c, "#divergences tr[data-divergence]", "data-divergence").await),
            ids
        );
        let shot = screenshot(&c, "overview").await;
        eprintln!("screenshot: {}", shot.display());

        // The account page: the same positions, trades, pairs and divergences as the API.
        // Views are kept while read: the first read asks for one, the next sync fills it.
        service.wait_for("/api/accounts/sim-001/live", Some(TOKEN), |code, body| {
            code == 200 && serde_json::from_str::<Json>(body).is_ok_and(|v| !v["live"].is_null())
        });
        open(&c, &format!("{base}/accounts/sim-001")).await;
        assert_eq!(banner(&c).await, "", "the account page shows an error");
        let live = api(&service, "/api/accounts/sim-001/live");
        let live = &live["live"];
        let trades = set(live["trades"]
            .as_array()
            .expect("trades")
            .iter()
            .map(|t| t["id"].as_str().expect("id").to_owned()));
        let positions = set(live["positions"]
            .as_array()
            .expect("positions")
            .iter()
            .map(|p| p["ticket"].to_string()));
        // The page re-reads every few seconds: compare with the API read just before.
        assert_eq!(
            set(attrs(&c, "#book tr[data-trade]", "data-trade").await),
            trades
        );
        assert_eq!(
            set(attrs(&c, "#book tr[data-position]", "data-position").await),
            positions
        );
        let methods = set(live["matched"]
            .as_array()
            .expect("matched")
            .iter()
            .map(|m| m["method"].as_str().expect("method").to_owned()));
        assert_eq!(
            set(attrs(&c, "#book tr[data-method]", "data-method").await),
            methods
        );
        let open_divs = api(
            &service,
            "/api/divergences?status=open&limit=1000&account=sim-001",
        );
        let open_ids = set(open_divs["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|d| d["id"].to_string()));
        assert!(!open_ids.is_empty());
        let shown = set(attrs(&c, "[data-divergence]", "data-divergence").await);
        assert_eq!(shown, open_ids);
        let samples = api(&service, "/api/accounts/sim-001/equity?hours=24")["samples"]
            .as_array()
            .expect("samples")
            .len();
        let dots = attrs(
            &c,
            "#equity-chart circle[data-point='equity']",
            "data-point",
        )
        .await;
        assert_eq!(dots.len(), samples, "one point per equity sample");
        let rules = attrs(&c, "#guard-rules [data-rule]", "data-rule").await;
        assert_eq!(rules, ["daily-5pct"], "what the guards remember");
        assert_eq!(
            attrs(&c, "#breaker rect[data-span]", "data-span")
                .await
                .first()
                .map(String::as_str),
            Some("running")
        );
        let shot = screenshot(&c, "account").await;
        eprintln!("screenshot: {}", shot.display());

        // Acknowledge one from the page (its prompt answered by a stand-in).
        let target = open_ids.iter().next().expect("an open divergence").clone();
        c.execute("window.prompt = () => 'known manual hedge';", vec![])
            .await
            .expect("the script runs");
        let button = format!("#other button[data-ack='{target}']");
        c.find(Locator::Css(&button))
            .await
            .expect("its acknowledge button")
            .click()
            .await
            .expect("clicked");
        let acked = service.wait_for(
            "/api/divergences?acknowledged=yes&account=sim-001",
            Some(TOKEN),
            |code, body| code == 200 && body.contains(&format!("\"id\":{target},")),
        );
        assert!(acked.contains("known manual hedge"), "{acked}");
        assert!(acked.contains("\"by\":\"dashboard\""), "{acked}");
        // And the page shows it apart, acknowledged, once it re-reads.
        let row = format!("#other tr.acked[data-divergence='{target}']");
        c.wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(&row))
            .await
            .expect("the acknowledged row");
        screenshot(&c, "account-acknowledged").await;
        c.close().await.expect("the session ends");
    });
    drop(driver);
    let (status, logs) = service.stop();
    assert_eq!(status.code(), Some(0), "{logs:#?}");
}
