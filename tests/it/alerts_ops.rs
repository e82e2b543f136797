//! `mt5-reconciler alerts list|cancel`, run as processes against a temp SQLite file whose
//! alerts are stored with `store::insert_alert`: listing and filters in table and JSON, a
//! cancel that lands once, and the refusals (already cancelled, detect-only, closed,
//! unknown, database away).

use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use mt5_reconciler::store::{self, AlertRecord};
use rust_decimal::Decimal;
use serde_json::Value as Json;

use crate::service_proc::{Out, command};

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_795_000_000 + secs, 0)
        .single()
        .unwrap_or_default()
}

/// A `kind` alert (`warn` or `breach`) of `account` raised at `t(secs)` in `status`; one
/// that closes is due 10 s later.
pub fn record(id: &str, account: &str, kind: &str, status: &str, secs: i64) -> AlertRecord {
    AlertRecord {
        id: id.to_owned(),
        account_id: account.to_owned(),
        kind: kind.to_owned(),
        rule: "max-loss".to_owned(),
        loss: Some(Decimal::new(5_005, 1)),
        reference: Some(Decimal::from(10_000)),
        message: format!("max-loss on {account}"),
        close_at: (status != "alerted").then(|| t(secs + 10)),
        status: status.parse().expect("an alert status"),
        created_at: t(secs),
    }
}

/// A directory with a `config.toml` whose database is `alerts.db` in it.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        format!("[database]\nurl = \"{}\"\n", db_url(dir.path())),
    )
    .unwrap();
    dir
}

fn db_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("alerts.db").display())
}

/// Stores `alerts` in the directory's database.
async fn seed(dir: &Path, alerts: &[AlertRecord]) {
    let db = store::connect(&db_url(dir)).await.unwrap();
    for a in alerts {
        store::insert_alert(&db, a).await.unwrap();
    }
    db.close().await.unwrap();
}

async fn status_of(dir: &Path, id: &str) -> Option<String> {
    let db = store::connect(&db_url(dir)).await.unwrap();
    let status = store::alert_status(&db, id).await.unwrap();
    db.close().await.unwrap();
    status.map(|s| s.to_string())
}

fn run(dir: &Path, args: &[&str]) -> Out {
    command(dir, args, &[])
}

fn ok_json(dir: &Path, args: &[&str]) -> Json {
    let out = run(dir, args);
    assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", out.stdout))
}

fn ids(page: &Json) -> Vec<&str> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| a["id"].as_str().expect("id"))
        .collect()
}

#[tokio::test]
async fn alerts_are_listed_newest_first_filtered_in_table_and_json() {
    let dir = workdir();
    let d = dir.path();
    seed(
        d,
        &[
            record("al-warn", "acc-a", "warn", "alerted", 0),
            record("al-b-breach", "acc-b", "breach", "alerted", 5),
            record("al-pending", "acc-a", "breach", "pending_close", 10),
        ],
    )
    .await;

    let all = ok_json(d, &["alerts", "list", "--format", "json"]);
    assert_eq!(ids(&all), ["al-pending", "al-b-breach", "al-warn"], "{all}");
    let newest = &all["items"][0];
    assert_eq!(newest["account_id"], "acc-a");
    assert_eq!(newest["kind"], "breach");
    assert_eq!(newest["rule"], "max-loss");
    assert_eq!(newest["loss"], "500.5", "decimals as strings: {newest}");
    assert_eq!(newest["reference"], "10000");
    assert_eq!(newest["status"], "pending_close");
    assert_eq!(newest["cancellable"], true);
    assert!(newest["close_at"].is_string(), "{newest}");
    assert_eq!(all["items"][2]["close_at"], Json::Null, "detect-only");
    assert_eq!(all["items"][2]["cancellable"], false);

    let b = ok_json(
        d,
        &["alerts", "list", "--account", "acc-b", "--format", "json"],
    );
    assert_eq!(ids(&b), ["al-b-breach"], "{b}");
    let one = ok_json(d, &["alerts", "list", "--limit", "1", "--format", "json"]);
    assert_eq!(ids(&one), ["al-pending"], "{one}");

    let table = run(d, &["alerts", "list", "--format", "table"]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.starts_with("ID"), "{}", table.stdout);
    for part in [
        "al-pending",
        "pending_close",
        "500.5",
        "3 alerts, 1 pending a close",
    ] {
        assert!(table.stdout.contains(part), "{part} in {}", table.stdout);
    }
    let none = run(
        d,
        &["alerts", "list", "--account", "nobody", "--format", "table"],
    );
    assert_eq!(none.stdout.trim(), "no alerts");

    let bad = run(d, &["alerts", "list", "--limit", "0"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--limit 0"), "{}", bad.stderr);
}

#[tokio::test]
async fn cancel_lands_once_on_a_pending_close_and_refuses_everything_else() {
    let dir = workdir();
    let d = dir.path();
    seed(
        d,
        &[
            record("al-pending", "acc-a", "breach", "pending_close", 0),
            record("al-detect", "acc-b", "breach", "alerted", 1),
            record("al-ended", "acc-c", "breach", "ended", 2),
        ],
    )
    .await;

    let out = run(d, &["alerts", "cancel", "al-pending"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("cancelled"), "{}", out.stdout);
    assert_eq!(
        status_of(d, "al-pending").await.as_deref(),
        Some("cancelled")
    );

    for (id, says) in [
        ("al-pending", "already cancelled"),
        ("al-detect", "detect-only"),
        ("al-ended", "breach is over"),
        ("al-nope", "no alert \"al-nope\""),
    ] {
        let out = run(d, &["alerts", "cancel", id]);
        assert_eq!(out.code, 1, "{id}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{id}: {says} in {}", out.stderr);
    }
    assert_eq!(
        status_of(d, "al-ended").await.as_deref(),
        Some("ended"),
        "a refused cancel changes nothing"
    );
    assert_eq!(status_of(d, "al-detect").await.as_deref(), Some("alerted"));
}

#[tokio::test]
async fn cancel_by_account_stops_every_enforcement_of_it_and_audits_who() {
    let dir = workdir();
    let d = dir.path();
    seed(
        d,
        &[
            record("al-closed", "acc-a", "breach", "closed", 0),
            record("al-failed", "acc-a", "breach", "failed", 1),
            record("al-warn", "acc-a", "warn", "alerted", 2),
            record("al-other", "acc-b", "breach", "pending_close", 3),
        ],
    )
    .await;
    let out = run(
        d,
        &[
            "alerts",
            "cancel",
            "--account",
            "acc-a",
            "--by",
            "desk-1",
            "--reason",
            "hedged",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    for (id, status) in [
        ("al-closed", "cancelled"),
        ("al-failed", "cancelled"),
        ("al-warn", "alerted"),
        ("al-other", "pending_close"),
    ] {
        assert_eq!(status_of(d, id).await.as_deref(), Some(status), "{id}");
    }
    let db = store::connect(&db_url(d)).await.unwrap();
    let trail = store::list_audit(&db, Some("acc-a")).await.unwrap();
    db.close().await.unwrap();
    let cancels: Vec<_> = trail
        .iter()
        .filter(|e| e.kind == "close_cancelled")
        .collect();
    assert_eq!(cancels.len(), 2, "{trail:?}");
    assert!(
        cancels
            .iter()
            .all(|e| e.detail["by"] == "desk-1" && e.detail["reason"] == "hedged"),
        "{cancels:?}"
    );
    let again = run(d, &["alerts", "cancel", "--account", "acc-a"]);
    assert_eq!(again.code, 1, "nothing left to cancel: {}", again.stderr);
}

#[test]
fn alerts_exit_3_when_the_database_is_away() {
    let dir = tempfile::tempdir().unwrap();
    let away = dir.path().join("no-such-dir").join("alerts.db");
    std::fs::write(
        dir.path().join("config.toml"),
        format!("[database]\nurl = \"sqlite://{}\"\n", away.display()),
    )
    .unwrap();
    for args in [&["alerts", "list"][..], &["alerts", "cancel", "al-1"]] {
        let out = run(dir.path(), args);
        assert_eq!(out.code, 3, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("database"), "{}", out.stderr);
    }
}
