//! The operator commands over the configured database, run as processes against a temp
//! SQLite file: `accounts`, `trades import`, `divergences`, environment overrides, and a
//! running service that follows the accounts table.

use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use mt5_reconciler::domain::{Divergence, DivergenceKind, Unit, Value};
use mt5_reconciler::store;
use rust_decimal::Decimal;
use serde_json::Value as Json;

use crate::service_proc::{Out, Service, command, fast_config};

/// A directory with a `config.toml` whose database is `ops.db` in it.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let url = db_url(dir.path());
    std::fs::write(
        dir.path().join("config.toml"),
        format!("[database]\nurl = \"{url}\"\n"),
    )
    .unwrap();
    dir
}

fn db_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("ops.db").display())
}

fn run(dir: &Path, args: &[&str]) -> Out {
    command(dir, args, &[])
}

fn ok_json(dir: &Path, args: &[&str]) -> Json {
    let out = run(dir, args);
    assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", out.stdout))
}

#[test]
fn accounts_are_added_listed_disabled_by_remove_and_enabled_again() {
    let dir = workdir();
    let d = dir.path();
    let out = run(
        d,
        &[
            "accounts", "add", "acc-1", "--broker", "sim", "--name", "Desk 1",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("account acc-1 added"), "{}", out.stdout);
    assert_eq!(
        run(d, &["accounts", "add", "acc-2", "--broker", "sim"]).code,
        0
    );

    let list = ok_json(d, &["accounts", "list", "--format", "json"]);
    assert_eq!(list[0]["id"], "acc-1");
    assert_eq!(list[0]["name"], "Desk 1");
    assert_eq!(list[0]["enabled"], true);
    assert_eq!(list[1]["name"], "acc-2", "the name defaults to the id");

    assert_eq!(run(d, &["accounts", "remove", "acc-1"]).code, 0);
    let list = ok_json(d, &["accounts", "list", "--format", "json"]);
    assert_eq!(list[0]["enabled"], false);
    assert!(list[0]["disabled_reason"].is_string(), "{list}");

    assert_eq!(run(d, &["accounts", "enable", "acc-1"]).code, 0);
    let list = ok_json(d, &["accounts", "list", "--format", "json"]);
    assert_eq!(list[0]["enabled"], true);
    assert_eq!(list[0]["disabled_reason"], Json::Null);

    let table = run(d, &["accounts", "list", "--format", "table"]);
    assert!(table.stdout.starts_with("ID"), "{}", table.stdout);
    assert!(table.stdout.contains("Desk 1"), "{}", table.stdout);

    let unknown = run(d, &["accounts", "remove", "nope"]);
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("nope"), "{}", unknown.stderr);
    let bad = run(d, &["accounts", "add", "x", "--broker", "ctrader"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("ctrader"), "{}", bad.stderr);
}

const TRADES: &str = r#"[
  {"id": "t1", "symbol": "EURUSD", "side": "buy", "volume": "0.10", "entry_price": "1.08512", "sl": "1.08000"},
  {"id": "t2", "symbol": "USDJPY", "side": "sell", "volume": 1, "entry_price": 150.125, "ticket": 42}
]"#;

#[tokio::test]
async fn trades_import_into_a_known_account_exactly_and_refuses_bad_files() {
    let dir = workdir();
    let d = dir.path();
    std::fs::write(d.join("trades.json"), TRADES).unwrap();
    let args = ["trades", "import", "trades.json", "--account", "acc-1"];

    let unknown = run(d, &args);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("accounts add acc-1"),
        "{}",
        unknown.stderr
    );

    assert_eq!(
        run(d, &["accounts", "add", "acc-1", "--broker", "sim"]).code,
        0
    );
    let out = run(d, &args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("imported 2 trades"), "{}", out.stdout);
    assert_eq!(run(d, &args).code, 0, "a second import updates in place");

    let db = store::connect(&db_url(d)).await.unwrap();
    let trades = store::open_trades(&db, "acc-1").await.unwrap();
    assert_eq!(trades.len(), 2);
    assert_eq!(trades[0].entry_price.to_string(), "1.08512");
    assert_eq!(
        trades[0].sl.map(|p| p.to_string()).as_deref(),
        Some("1.08000")
    );
    assert_eq!(trades[1].ticket, Some(42));

    std::fs::write(d.join("bad.json"), r#"[{"id": "t3", "symbol": "EURUSD", "side": "buy", "volume": 1, "entry_price": 1, "stop_loss": 1}]"#).unwrap();
    let bad = run(d, &["trades", "import", "bad.json", "--account", "acc-1"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("stop_loss"), "{}", bad.stderr);
}

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_795_000_000 + secs, 0)
        .single()
        .unwrap_or_default()
}

fn missing(trade_id: &str) -> Divergence {
    let volume = Some(Value::Number(Decimal::new(25, 2)));
    let kind = DivergenceKind::MissingAtBroker;
    Divergence::new(
        kind,
        "EURUSD".into(),
        None,
        Some(trade_id.into()),
        volume,
        None,
        None,
    )
}

fn slippage(ticket: u64) -> Divergence {
    Divergence::new(
        DivergenceKind::EntrySlippage,
        "GBPUSD".to_owned(),
        Some(ticket),
        None,
        Some(Value::Number(Decimal::new(126_500, 5))),
        Some(Value::Number(Decimal::new(126_620, 5))),
        Some((Decimal::new(12, 0), Unit::Pips)),
    )
}

#[tokio::test]
async fn divergences_lists_with_filters_in_table_and_json() {
    let dir = workdir();
    let d = dir.path();
    let db = store::connect(&db_url(d)).await.unwrap();
    store::converge(&db, "acc-a", t(0), &[missing("a1"), slippage(7)])
        .await
        .unwrap();
    store::converge(&db, "acc-b", t(10), &[missing("b1")])
        .await
        .unwrap();
    store::converge(&db, "acc-a", t(20), &[slippage(7)])
        .await
        .unwrap();
    drop(db);

    let all = ok_json(d, &["divergences", "--format", "json"]);
    assert_eq!(all["items"].as_array().map(Vec::len), Some(3), "{all}");
    let b = ok_json(
        d,
        &["divergences", "--account", "acc-b", "--format", "json"],
    );
    assert_eq!(b["items"][0]["trade_id"], "b1", "{b}");
    let resolved = ok_json(
        d,
        &["divergences", "--status", "resolved", "--format", "json"],
    );
    assert_eq!(resolved["items"][0]["trade_id"], "a1", "{resolved}");
    let since = t(5).to_rfc3339();
    let recent = ok_json(d, &["divergences", "--since", &since, "--format", "json"]);
    assert_eq!(
        recent["items"].as_array().map(Vec::len),
        Some(1),
        "{recent}"
    );
    let page = ok_json(d, &["divergences", "--limit", "2", "--format", "json"]);
    let before = page["next_before"].as_i64().expect("a second page");
    let rest = ok_json(
        d,
        &[
            "divergences",
            "--before",
            &before.to_string(),
            "--format",
            "json",
        ],
    );
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(1), "{rest}");

    let table = run(
        d,
        &[
            "divergences",
            "--kind",
            "entry_slippage",
            "--format",
            "table",
        ],
    );
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.contains("entry_slippage"), "{}", table.stdout);
    assert!(table.stdout.contains("+12 pips"), "{}", table.stdout);
    assert!(table.stdout.contains("1 divergences"), "{}", table.stdout);

    let bad = run(
        d,
        &["divergences", "--kind", "slipped", "--status", "closed"],
    );
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("kind") && bad.stderr.contains("status"),
        "{}",
        bad.stderr
    );
}

#[test]
fn environment_overrides_reach_the_commands_and_every_bad_one_is_reported() {
    let dir = workdir();
    let d = dir.path();
    let other = format!("sqlite://{}?mode=rwc", d.join("other.db").display());
    let env = [("MT5R_DATABASE__URL", other.as_str())];
    let out = command(d, &["accounts", "add", "acc-9", "--broker", "sim"], &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        d.join("other.db").exists(),
        "the override chose the database"
    );
    assert!(!d.join("ops.db").exists());

    let env = [
        ("MT5R_SCHEDULER__INTERVALL_MS", "5"),
        ("MT5R_HTTP__LISTEN", "nowhere"),
        ("MT5R_SCHEDULER__MAX_IN_FLIGHT", "0"),
    ];
    let out = command(d, &["accounts", "list"], &env);
    assert_eq!(out.code, 2, "{}", out.stderr);
    for part in [
        "MT5R_SCHEDULER__INTERVALL_MS (scheduler.intervall_ms)",
        "http.listen = \"nowhere\"",
        "scheduler.max_in_flight",
    ] {
        assert!(out.stderr.contains(part), "{part} in {}", out.stderr);
    }
}

#[test]
fn a_running_service_follows_the_accounts_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let service = Service::start(d, &fast_config(d, ""), &[]);
    let has = |id: &str| {
        let id = format!("\"id\":\"{id}\"");
        move |code: u16, body: &str| code == 200 && body.contains(&id)
    };
    service.wait_for("/api/status", None, has("sim-001"));

    let out = run(d, &["accounts", "add", "desk-7", "--broker", "sim"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    service.wait_for("/api/status", None, has("desk-7"));

    let out = run(d, &["accounts", "remove", "desk-7"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let gone = has("desk-7");
    service.wait_for("/api/status", None, |code, body| {
        code == 200 && !gone(code, body)
    });

    let (status, logs) = service.stop();
    assert_eq!(status.code(), Some(0), "{logs:#?}");
}
