//! The dashboard's JSON in-process (SQLite, and PostgreSQL when DATABASE_URL is set):
//! acknowledging a divergence (write token, audited, left out of what needs attention,
//! shown apart), the CSV export with the list's filters, the overview's aggregates and
//! divergences per hour; and `mt5-reconciler acknowledge` against a database file.

use chrono::{TimeDelta, Utc};
use mt5_reconciler::domain::{Divergence, DivergenceKind, Unit, Value};
use mt5_reconciler::http::{Token, Tokens};
use mt5_reconciler::store;
use rust_decimal::Decimal;
use serde_json::Value as Json;

use crate::common;
use crate::http_api::serve_with;
use crate::http_guard::raw;
use crate::service_proc::command;

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

fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, String) {
    let headers = [
        format!("Host: {addr}"),
        format!("Authorization: Bearer {token}"),
        "Content-Type: application/json".to_owned(),
    ];
    raw(addr, method, path, &headers, body)
}

fn parse(text: &str) -> Json {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_divergence_stays_listed_apart_and_needs_no_attention() {
    for (label, db) in common::databases().await {
        let now = Utc::now();
        let a = [slippage(1), slippage(2), slippage(3)];
        store::converge(&db, "acc-a", now, &a).await.unwrap();
        store::converge(&db, "acc-b", now, &[slippage(9)])
            .await
            .unwrap();
        let tokens = Tokens {
            write: Token::new("w"),
            read: Token::new("r"),
        };
        let (tree, server) = serve_with(&db, tokens).await;
        let addr = server.local_addr();
        let list = parse(&call(addr, "GET", "/api/divergences?account=acc-a", "r", "").1);
        let id = list["items"][0]["id"].as_i64().expect("id");
        let path = format!("/api/divergences/{id}/acknowledge");
        let body = r#"{"note": "known manual hedge", "by": "desk"}"#;

        let (code, text) = call(addr, "POST", &path, "r", body);
        assert_eq!(
            code, 403,
            "{label}: the read token cannot acknowledge: {text}"
        );
        let (code, text) = call(addr, "POST", &path, "w", r#"{"note": "  "}"#);
        assert_eq!(code, 422, "{label}: {text}");
        assert!(text.contains("\"field\":\"note\""), "{label}: {text}");
        let (code, text) = call(addr, "POST", "/api/divergences/x1/acknowledge", "w", body);
        assert_eq!(code, 400, "{label}: {text}");
        assert!(text.contains("id = \\\"x1\\\""), "{label}: {text}");
        let (code, _) = call(
            addr,
            "POST",
            "/api/divergences/999999/acknowledge",
            "w",
            body,
        );
        assert_eq!(code, 404, "{label}");

        let (code, text) = call(addr, "POST", &path, "w", body);
        assert_eq!(code, 200, "{label}: {text}");
        let (code, text) = call(addr, "POST", &path, "w", body);
        assert_eq!(code, 409, "{label}: a second time: {text}");
        assert!(text.contains("desk"), "{label}: {text}");

        // Still listed, with its acknowledgement; apart with acknowledged=yes|no.
        let one = parse(&call(addr, "GET", "/api/divergences?account=acc-a", "r", "").1);
        let acked: Vec<&Json> = one["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| !d["acknowledgement"].is_null())
            .collect();
        assert_eq!(acked.len(), 1, "{label}: {one}");
        assert_eq!(acked[0]["acknowledgement"]["note"], "known manual hedge");
        assert_eq!(acked[0]["status"], "open", "{label}: it stays open");
        let yes = parse(&call(addr, "GET", "/api/divergences?acknowledged=yes", "r", "").1);
        assert_eq!(yes["items"].as_array().unwrap().len(), 1, "{label}");
        let no = parse(&call(addr, "GET", "/api/divergences?acknowledged=no", "r", "").1);
        assert_eq!(no["items"].as_array().unwrap().len(), 3, "{label}");
        let (code, text) = call(addr, "GET", "/api/divergences?acknowledged=maybe", "r", "");
        assert_eq!(code, 400, "{label}: {text}");
        assert!(
            text.contains("acknowledged = \\\"maybe\\\""),
            "{label}: {text}"
        );

        // Needs attention: 2 on acc-a, 1 on acc-b.
        let o = parse(&call(addr, "GET", "/api/overview", "r", "").1);
        assert_eq!(o["totals"]["needs_attention"], 3, "{label}: {o}");
        assert_eq!(o["top_open"][0]["account_id"], "acc-a", "{label}: {o}");
        assert_eq!(o["top_open"][0]["open"], 2, "{label}: {o}");
        let counts = store::open_divergence_counts(&db).await.unwrap();
        assert_eq!(counts.iter().map(|c| c.count).sum::<u64>(), 3, "{label}");

        // Audited with who and the note.
        let audit = store::list_audit(&db, Some("acc-a")).await.unwrap();
        let event = audit
            .iter()
            .find(|e| e.kind == "divergence_acknowledged")
            .expect("audited");
        assert_eq!(event.detail["by"], "desk", "{label}");
        assert_eq!(event.detail["note"], "known manual hedge", "{label}");
        assert_eq!(event.detail["divergence"], id, "{label}");

        // The CSV has the same rows as the list, with the acknowledgement.
        let (code, csv) = call(
            addr,
            "GET",
            "/api/divergences/export?account=acc-a",
            "r",
            "",
        );
        assert_eq!(code, 200, "{label}: {csv}");
        let csv = csv.split("\r\n\r\n").nth(1).unwrap_or(&csv).to_owned();
        let lines: Vec<&str> = csv.lines().filter(|l| !l.is_empty()).collect();
        assert!(lines[0].starts_with("id,account_id,kind"), "{label}: {csv}");
        assert_eq!(lines.len(), 4, "{label}: a header and three rows: {csv}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{id},")) && l.contains("desk")),
            "{label}: {csv}"
        );
        let (code, text) = call(addr, "GET", "/api/divergences/export?limit=5", "r", "");
        assert_eq!(code, 400, "{label}: {text}");

        // Opened per hour: four in the current hour, 24 hours in all.
        let h = parse(&call(addr, "GET", "/api/overview/divergences", "r", "").1);
        let hours = h["hours"].as_array().expect("hours");
        assert_eq!(hours.len(), 24, "{label}: {h}");
        assert_eq!(hours[23]["opened"], 4, "{label}: {h}");
        let week = parse(&call(addr, "GET", "/api/overview/divergences?range=7d", "r", "").1);
        assert_eq!(week["hours"].as_array().unwrap().len(), 168, "{label}");
        let (code, _) = call(addr, "GET", "/api/overview/divergences?range=1y", "r", "");
        assert_eq!(code, 400, "{label}");
        let (code, text) = call(addr, "GET", "/api/overview?state=sleepy", "r", "");
        assert_eq!(code, 400, "{label}: {text}");
        assert!(text.contains("state = \\\"sleepy\\\""), "{label}: {text}");

        server.stop().await;
        tree.abort().await;
    }
}

#[tokio::test]
async fn divergences_resolved_per_hour_land_in_the_hour_they_resolved() {
    for (label, db) in common::databases().await {
        let now = Utc::now();
        let earlier = now - TimeDelta::hours(3);
        store::converge(&db, "acc-a", earlier, &[slippage(1), slippage(2)])
            .await
            .unwrap();
        store::converge(&db, "acc-a", now, &[slippage(2)])
            .await
            .unwrap();
        let hours = store::divergences_per_hour(&db, now - TimeDelta::hours(23), now)
            .await
            .unwrap();
        assert_eq!(hours.len(), 24, "{label}");
        let at = |h: usize| (hours[h].opened, hours[h].resolved);
        assert_eq!(at(20), (2, 0), "{label}: {hours:?}");
        assert_eq!(at(23), (0, 1), "{label}: {hours:?}");
    }
}

#[test]
fn the_cli_acknowledges_with_a_note_and_refuses_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("ack.db").display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(async {
        let db = store::connect(&url).await.unwrap();
        store::converge(&db, "acc-a", Utc::now(), &[slippage(1)])
            .await
            .unwrap();
        let page = store::query_divergences(&db, &store::DivergenceFilter::default())
            .await
            .unwrap();
        db.close().await.unwrap();
        page.items[0].id
    });
    let env = [("MT5R_DATABASE__URL", url.as_str())];
    let id_text = id.to_string();
    let out = command(dir.path(), &["acknowledge", &id_text, "--note", " "], &env);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("note = "), "{}", out.stderr);
    let args = [
        "acknowledge",
        &id_text,
        "--note",
        "partial fill accepted",
        "--by",
        "desk",
    ];
    let out = command(dir.path(), &args, &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = command(dir.path(), &args, &env);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("was acknowledged by desk"),
        "{}",
        out.stderr
    );
    let out = command(
        dir.path(),
        &["divergences", "--acknowledged", "yes", "--format", "json"],
        &env,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("partial fill accepted"),
        "{}",
        out.stdout
    );
}
