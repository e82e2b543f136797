//! The HTTP side of `run`: the JSON API, metrics and readiness in-process (SQLite, and
//! PostgreSQL when DATABASE_URL is set); the bearer-token rule against the real binary.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use mt5_reconciler::actors::{SchedulerConfig, SupervisorArgs, TreeConfig};
use mt5_reconciler::domain::{Divergence, DivergenceKind, ReconcileRules, Unit, Value};
use mt5_reconciler::http::{self, HttpConfig};
use mt5_reconciler::service::Reconciler;
use mt5_reconciler::store;
use ractor::OutputPort;
use rust_decimal::Decimal;
use sea_orm::DatabaseConnection;
use serde_json::Value as Json;

use crate::alerts_ops::record;
use crate::common;
use crate::service_proc::{Service, command, fast_config, get, post};

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_795_000_000 + secs, 0)
        .single()
        .unwrap_or_default()
}

fn missing(trade_id: &str) -> Divergence {
    Divergence::new(
        DivergenceKind::MissingAtBroker,
        "EURUSD".to_owned(),
        None,
        Some(trade_id.to_owned()),
        Some(Value::Number(Decimal::new(5, 1))),
        None,
        None,
    )
}

fn slippage(ticket: u64) -> Divergence {
    Divergence::new(
        DivergenceKind::EntrySlippage,
        "EURUSD".to_owned(),
        Some(ticket),
        Some(format!("t{ticket}")),
        Some(Value::Number(Decimal::new(108_500, 5))),
        Some(Value::Number(Decimal::new(108_570, 5))),
        Some((Decimal::new(7, 0), Unit::Pips)),
    )
}

/// acc-a: one missing trade (resolved at t(20)) and one slippage (open), first seen t(0);
/// acc-b: two missing trades and one slippage, all open, first seen t(10).
async fn seed(db: &DatabaseConnection) {
    let a = [missing("a1"), slippage(1)];
    store::converge(db, "acc-a", t(0), &a).await.unwrap();
    let b = [missing("b1"), missing("b2"), slippage(2)];
    store::converge(db, "acc-b", t(10), &b).await.unwrap();
    store::converge(db, "acc-a", t(20), &[slippage(1)])
        .await
        .unwrap();
}

/// An empty tree (no accounts) that ticks fast, and the HTTP server in front of it.
pub(crate) async fn serve(db: &DatabaseConnection) -> (Reconciler, http::HttpServer) {
    serve_with(db, http::Tokens::default()).await
}

/// [`serve`] with these tokens.
pub(crate) async fn serve_with(
    db: &DatabaseConnection,
    tokens: http::Tokens,
) -> (Reconciler, http::HttpServer) {
    let config = TreeConfig {
        scheduler: SchedulerConfig {
            interval_ms: 50,
            spread_slots: 1,
            ..SchedulerConfig::default()
        },
        ..TreeConfig::default()
    };
    let args = SupervisorArgs {
        db: db.clone(),
        config,
        rules: Arc::new(ReconcileRules::default()),
        connectors: HashMap::new(),
        accounts: Vec::new(),
        events: Arc::new(OutputPort::default()),
        follow_accounts_table: false,
        clock: mt5_reconciler::clock::Clock::real(),
    };
    let tree = Reconciler::start(args).await.expect("tree starts");
    let http_config = HttpConfig {
        listen: "127.0.0.1:0".into(),
        ..HttpConfig::default()
    };
    let bound = http::bind(&http_config, tokens)
        .await
        .unwrap()
        .expect("enabled");
    let server = bound.serve(tree.actor().clone(), db.clone(), 1);
    (tree, server)
}

fn json(server: &http::HttpServer, path: &str) -> Json {
    let (code, body) = get(server.local_addr(), path, None);
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn ids(page: &Json) -> Vec<i64> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| d["id"].as_i64().expect("id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn divergences_are_filtered_and_paged_newest_first_without_gaps_or_repeats() {
    for (label, db) in common::databases().await {
        seed(&db).await;
        let (tree, server) = serve(&db).await;

        let all = json(&server, "/api/divergences");
        let all_ids = ids(&all);
        assert_eq!(all_ids.len(), 5, "{label}: {all}");
        assert!(
            all_ids.windows(2).all(|w| w[0] > w[1]),
            "{label}: newest first"
        );
        assert_eq!(all["next_before"], Json::Null);

        let mut paged = Vec::new();
        let mut path = "/api/divergences?limit=2".to_owned();
        loop {
            let page = json(&server, &path);
            paged.extend(ids(&page));
            match page["next_before"].as_i64() {
                Some(before) => path = format!("/api/divergences?limit=2&before={before}"),
                None => break,
            }
        }
        assert_eq!(paged, all_ids, "{label}: pages cover everything once");

        let count = |q: &str| ids(&json(&server, &format!("/api/divergences?{q}"))).len();
        assert_eq!(count("account=acc-b"), 3, "{label}");
        assert_eq!(count("status=resolved"), 1, "{label}");
        assert_eq!(count("account=acc-a&status=open"), 1, "{label}");
        assert_eq!(count("kind=entry_slippage"), 2, "{label}");
        let since = t(5).to_rfc3339().replace('+', "%2B");
        assert_eq!(count(&format!("since={since}")), 3, "{label}");
        let first = &json(&server, "/api/divergences?status=resolved")["items"][0];
        assert_eq!(first["trade_id"], "a1", "{label}: {first}");
        assert_eq!(first["expected"], "0.5", "{label}: decimals as strings");

        let (code, body) = get(
            server.local_addr(),
            "/api/divergences?kind=nope&limit=0",
            None,
        );
        assert_eq!(code, 400, "{label}: {body}");
        assert!(
            body.contains("kind") && body.contains("limit"),
            "{label}: {body}"
        );
        let (code, _) = get(server.local_addr(), "/api/divergences?colour=red", None);
        assert_eq!(code, 400, "{label}: unknown parameters are refused");

        server.stop().await;
        tree.shutdown(std::time::Duration::from_secs(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_metrics_and_readiness_report_what_is_stored_and_running() {
    for (label, db) in common::databases().await {
        seed(&db).await;
        let (tree, server) = serve(&db).await;

        let status = json(&server, "/api/status");
        assert_eq!(status["totals"]["open_divergences"], 4, "{label}: {status}");
        assert_eq!(status["totals"]["open_by_kind"]["missing_at_broker"], 2);
        assert!(status["scheduler"]["interval"].is_number(), "{status}");
        assert!(status["persistence"]["queued"].is_number(), "{status}");

        let (code, metrics) = get(server.local_addr(), "/metrics", None);
        assert_eq!(code, 200);
        for line in [
            "mt5r_open_divergences{account=\"acc-b\",kind=\"missing_at_broker\"} 2",
            "mt5r_open_divergences{account=\"acc-a\",kind=\"entry_slippage\"} 1",
            "mt5r_database_up 1",
            "# TYPE mt5r_sync_duration_seconds histogram",
            "# TYPE mt5r_persistence_flush_duration_seconds histogram",
        ] {
            assert!(
                metrics.lines().any(|l| l == line),
                "{label}: no {line:?} in\n{metrics}"
            );
        }
        assert!(
            !metrics.contains("acc-a\",kind=\"missing_at_broker"),
            "resolved is not open"
        );

        // No accounts: ready once a full interval of ticks went by.
        let addr = server.local_addr();
        let mut ready = None;
        for _ in 0..2_000 {
            let (code, body) = get(addr, "/readyz", None);
            if code == 200 {
                ready = Some(body);
                break;
            }
            assert_eq!(code, 503, "{body}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let ready: Json = serde_json::from_str(&ready.expect("ready in time")).unwrap();
        assert_eq!(ready["database"], "ok");
        assert_eq!(ready["first_round"], "done");

        server.stop().await;
        tree.shutdown(std::time::Duration::from_secs(5)).await;
    }
}

fn alert_ids(page: &Json) -> Vec<&str> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| a["id"].as_str().expect("id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_listed_and_a_pending_close_is_cancelled_once_over_http() {
    for (label, db) in common::databases().await {
        for a in [
            record("al-warn", "acc-a", "warn", "alerted", 0),
            record("al-detect", "acc-b", "breach", "alerted", 5),
            record("al-pending", "acc-a", "breach", "pending_close", 10),
        ] {
            store::insert_alert(&db, &a).await.unwrap();
        }
        let (tree, server) = serve(&db).await;
        let addr = server.local_addr();

        let all = json(&server, "/api/alerts");
        assert_eq!(
            alert_ids(&all),
            ["al-pending", "al-detect", "al-warn"],
            "{label}: newest first: {all}"
        );
        assert_eq!(all["items"][0]["cancellable"], true, "{label}");
        assert_eq!(all["items"][0]["loss"], "500.5", "{label}: {all}");
        let a = json(&server, "/api/alerts?account=acc-a&limit=1");
        assert_eq!(alert_ids(&a), ["al-pending"], "{label}: {a}");
        for bad in ["/api/alerts?limit=0", "/api/alerts?colour=red"] {
            assert_eq!(get(addr, bad, None).0, 400, "{label}: {bad}");
        }

        let (code, body) = post(addr, "/api/alerts/al-pending/cancel", None);
        assert_eq!(code, 200, "{label}: {body}");
        let body: Json = serde_json::from_str(&body).unwrap();
        assert_eq!(body["cancelled"], true, "{label}: {body}");
        assert_eq!(
            store::alert_status(&db, "al-pending").await.unwrap(),
            Some(store::AlertStatus::Cancelled),
            "{label}"
        );

        for (id, status) in [("al-pending", "cancelled"), ("al-detect", "alerted")] {
            let (code, body) = post(addr, &format!("/api/alerts/{id}/cancel"), None);
            assert_eq!(code, 409, "{label}: {id}: {body}");
            let body: Json = serde_json::from_str(&body).unwrap();
            assert_eq!(body["status"], status, "{label}: {body}");
            assert!(body["error"].is_string(), "{label}: {body}");
        }
        let (code, body) = post(addr, "/api/alerts/al-nope/cancel", None);
        assert_eq!(code, 404, "{label}: {body}");
        let (code, body) = post(addr, "/api/accounts/acc-a/enforcement/cancel", None);
        assert_eq!(code, 409, "{label}: nothing left on acc-a: {body}");
        assert_eq!(
            store::alert_status(&db, "al-detect").await.unwrap(),
            Some(store::AlertStatus::Alerted),
            "{label}: a refused cancel changes nothing"
        );

        let after = json(&server, "/api/alerts?account=acc-a");
        assert_eq!(after["items"][0]["status"], "cancelled", "{label}: {after}");
        assert_eq!(after["items"][0]["cancellable"], false, "{label}");

        server.stop().await;
        tree.shutdown(std::time::Duration::from_secs(5)).await;
    }
}

/// The guarded paths: everything but /healthz and the dashboard page.
const GUARDED: [&str; 5] = [
    "/readyz",
    "/api/status",
    "/api/divergences",
    "/api/alerts",
    "/metrics",
];

/// The operator's one write, guarded like the reads.
const CANCEL: &str = "/api/alerts/al-unknown/cancel";

#[test]
fn beyond_loopback_run_refuses_to_start_without_a_token_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = fast_config(
        dir.path(),
        "listen = \"0.0.0.0:0\"\ntoken_env = \"IT_TOKEN_THAT_IS_NOT_SET\"\n",
    );
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let out = command(dir.path(), &["run", "--config", "config.toml"], &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("IT_TOKEN_THAT_IS_NOT_SET"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("not a loopback address"),
        "{}",
        out.stderr
    );
    assert!(
        !dir.path().join("service.db").exists(),
        "refused before the database"
    );
}

#[test]
fn beyond_loopback_every_endpoint_but_healthz_requires_the_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = "it-token-3f9a7c";
    let config = fast_config(
        dir.path(),
        "listen = \"0.0.0.0:0\"\ntoken_env = \"IT_HTTP_TOKEN\"\n",
    );
    let service = Service::start(dir.path(), &config, &[("IT_HTTP_TOKEN", token)]);
    assert!(!service.addr.ip().is_loopback(), "{}", service.addr);

    assert_eq!(service.get("/healthz", None).0, 200);
    let (code, page) = service.get("/", None);
    assert_eq!(code, 200, "the static page holds no data");
    assert!(page.contains("<table id=\"accounts\">"));
    assert!(page.contains("<table id=\"alerts\">"));
    assert_eq!(
        post(service.local(), CANCEL, None).0,
        401,
        "cancel without a token"
    );
    assert_eq!(
        post(service.local(), CANCEL, Some(token)).0,
        404,
        "cancel with it"
    );
    for path in GUARDED {
        assert_eq!(service.get(path, None).0, 401, "{path} without a token");
        assert_eq!(
            service.get(path, Some("it-token-3f9a7")).0,
            401,
            "{path} wrong token"
        );
    }
    service.wait_for("/readyz", Some(token), |code, _| code == 200);
    for path in GUARDED {
        assert_eq!(
            service.get(path, Some(token)).0,
            200,
            "{path} with the token"
        );
    }
    let (status, logs) = service.stop();
    assert_eq!(status.code(), Some(0), "{logs:#?}");
}

#[test]
fn on_loopback_without_a_token_everything_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &fast_config(dir.path(), ""), &[]);
    let seen: BTreeSet<u16> = GUARDED.iter().map(|p| service.get(p, None).0).collect();
    assert!(!seen.contains(&401), "{seen:?}");
    assert_eq!(post(service.local(), CANCEL, None).0, 404);
    let (status, _) = service.stop();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_account_is_enabled_over_http_and_an_unknown_one_is_404() {
    for (label, db) in common::databases().await {
        let (tree, server) = serve(&db).await;
        let addr = server.local_addr();
        // No such connector: the account is disabled at once.
        tree.actor()
            .cast(mt5_reconciler::actors::SupervisorMsg::AddAccount(
                mt5_reconciler::actors::AccountSpec {
                    id: "acc-x".into(),
                    broker: "nope".into(),
                },
            ))
            .unwrap();
        let disabled = |s: &Json| s["accounts"][0]["state"] == "disabled";
        let start = std::time::Instant::now();
        while !disabled(&json(&server, "/api/status")) {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "{label}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let before = json(&server, "/api/status")["accounts"][0]["transitions"].clone();
        let (code, body) = post(addr, "/api/accounts/acc-x/enable", None);
        assert_eq!(code, 200, "{label}: {body}");
        let after = json(&server, "/api/status")["accounts"][0]["transitions"].clone();
        assert_ne!(before, after, "{label}: the breaker moved");
        let (code, body) = post(addr, "/api/accounts/acc-nope/enable", None);
        assert_eq!(code, 404, "{label}: {body}");
        server.stop().await;
        tree.shutdown(std::time::Duration::from_secs(5)).await;
    }
}
