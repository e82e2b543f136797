//! The dashboard in a real browser: headless Chromium loads `/` from a running service on
//! the simulated broker, its script reads the JSON API (with the bearer token taken from
//! the URL fragment), and the accounts, divergences and alerts end up in the DOM.
//!
//! Skipped, with a message, when `chromium` is not installed (`.ci/run` installs it).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mt5_reconciler::store;
use serde_json::Value as Json;

use crate::service_proc::Service;

const CHROMIUM: &str = "chromium";

fn chromium_available() -> bool {
    Command::new(CHROMIUM)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The DOM of `url` after its scripts ran (virtual time lets the page's fetches finish).
fn dump_dom(url: &str, profile: &Path) -> String {
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut dom = String::new();
        let _ = stdout.read_to_string(&mut dom);
        dom
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().expect("reader")
}

#[test]
fn the_dashboard_shows_accounts_divergences_and_alerts_in_a_real_browser() {
    if !chromium_available() {
        let _ = writeln!(
            std::io::stderr(),
            "browser test skipped: `{CHROMIUM}` is not installed (apt-get install chromium)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let token = "browser-token-51ab";
    let config = format!(
        "[database]\nurl = \"sqlite://{}?mode=rwc\"\n\
         [scheduler]\ninterval_ms = 300\nspread_slots = 3\n\
         [broker.sim]\naccounts = 3\nseed = 11\nlatency_ms_min = 1\nlatency_ms_max = 5\n\
         slippage_pct = 40\nmoved_sl_pct = 20\n\
         [http]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"IT_BROWSER_TOKEN\"\n",
        dir.path().join("dash.db").display()
    );
    // A breach whose close is pending: the page offers to cancel it.
    let db_url = format!("sqlite://{}?mode=rwc", dir.path().join("dash.db").display());
    let alert = crate::alerts_ops::record("al-dash", "sim-001", "breach", "pending_close", 0);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = store::connect(&db_url).await.unwrap();
        store::insert_alert(&db, &alert).await.unwrap();
        db.close().await.unwrap();
    });
    let service = Service::start(dir.path(), &config, &[("IT_BROWSER_TOKEN", token)]);
    service.wait_for("/readyz", Some(token), |code, _| code == 200);
    let page = service.wait_for("/api/divergences?limit=50", Some(token), |code, body| {
        code == 200 && body.contains("\"id\":")
    });
    let page: Json = serde_json::from_str(&page).unwrap();
    let divergence_ids: Vec<i64> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|d| d["id"].as_i64())
        .collect();
    assert!(divergence_ids.len() < 50, "the page shows them all");

    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{}/#token={token}", service.local());
    let dom = dump_dom(&url, profile.path());
    let (status, logs) = service.stop();
    assert_eq!(status.code(), Some(0), "{logs:#?}");

    let banner = dom
        .split("<div id=\"banner\"")
        .nth(1)
        .and_then(|rest| rest.split("</div>").next())
        .expect("the banner element");
    assert!(banner.ends_with('>'), "the page shows an error: {banner}");
    for account in ["sim-001", "sim-002", "sim-003"] {
        assert!(
            dom.contains(&format!("data-account=\"{account}\"")),
            "{account} in {dom}"
        );
    }
    assert!(
        dom.contains("badge state-running"),
        "breaker state badges: {dom}"
    );
    for id in &divergence_ids {
        assert!(
            dom.contains(&format!("data-divergence=\"{id}\"")),
            "divergence {id} in {dom}"
        );
    }
    assert!(dom.contains("data-alert=\"al-dash\""), "the alert in {dom}");
    assert!(dom.contains("cancel close"), "its cancel button in {dom}");
    let kind = page["items"][0]["kind"].as_str().expect("kind");
    assert!(dom.contains(kind), "{kind} in {dom}");
}
