//! The webhook sink against a real server, in real time: a local axum server that fails
//! the first POST receives the alert JSON after a retry; the alert also goes to the tree's
//! event port (which the NATS publisher reads: see `nats`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use chrono::{DateTime, TimeZone, Utc};
use mt5_reconciler::actors::ReconcilerEvent;
use mt5_reconciler::guards::config::WebhookConfig;
use mt5_reconciler::guards::{Alert, Sinks};
use ractor::OutputPort;
use rust_decimal::Decimal;
use serde_json::Value as Json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Only a hung delivery reaches this bound; nothing is asserted about timing.
const PATIENCE: Duration = Duration::from_secs(60);

fn at() -> DateTime<Utc> {
    Utc.timestamp_opt(1_795_000_000, 0)
        .single()
        .unwrap_or_default()
}

fn breach(account: &str) -> Alert {
    Alert {
        id: "al-00000000000000a1".into(),
        account_id: account.into(),
        kind: "breach".into(),
        rule: "daily-5pct".into(),
        loss: Some(Decimal::new(5_125, 1)),
        reference: Some(Decimal::from(10_000)),
        close_at: Some(at() + chrono::Duration::seconds(10)),
        message: format!("daily-5pct breached on {account}"),
        at: at(),
    }
}

/// The fields every sink must carry, as the JSON says them.
fn assert_alert_json(body: &Json, account: &str) {
    assert_eq!(body["id"], "al-00000000000000a1", "{body}");
    assert_eq!(body["account_id"], account, "{body}");
    assert_eq!(body["kind"], "breach", "{body}");
    assert_eq!(body["rule"], "daily-5pct", "{body}");
    assert_eq!(body["loss"], "512.5", "decimals as strings: {body}");
    assert_eq!(body["reference"], "10000", "{body}");
    let close_at = body["close_at"].as_str().expect("close_at");
    let close_at = DateTime::parse_from_rfc3339(close_at).expect("RFC 3339");
    assert_eq!(close_at, at() + chrono::Duration::seconds(10), "{body}");
    let raised = DateTime::parse_from_rfc3339(body["at"].as_str().expect("at")).expect("at");
    assert_eq!(raised, at(), "{body}");
    assert_eq!(
        body["message"],
        format!("daily-5pct breached on {account}"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_gets_the_alert_json_after_a_failed_first_post() {
    // Answers 500 to the first POST and 200 to the rest; hands every request to the test.
    let (seen, mut requests) = mpsc::unbounded_channel::<(u32, Option<String>, String)>();
    let hits = Arc::new(AtomicU32::new(0));
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let (hits, seen) = (hits.clone(), seen.clone());
            async move {
                let n = hits.fetch_add(1, Ordering::SeqCst) + 1;
                let kind = headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let _ = seen.send((n, kind, body));
                if n == 1 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let webhook = WebhookConfig {
        url: format!("http://{addr}/hook"),
        max_attempts: 3,
        backoff_ms: 10,
    };
    let port = Arc::new(OutputPort::<ReconcilerEvent>::default());
    let sinks = Sinks::new(&webhook, port.clone());
    sinks.send(&breach("acc-hook"));

    let mut received = Vec::new();
    while received.len() < 2 {
        match tokio::time::timeout(PATIENCE, requests.recv()).await {
            Ok(Some(r)) => received.push(r),
            Ok(None) | Err(_) => panic!("the webhook got {} POSTs, not 2", received.len()),
        }
    }
    for (n, kind, body) in &received {
        assert_eq!(kind.as_deref(), Some("application/json"), "POST {n}");
        let body: Json = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_alert_json(&body, "acc-hook");
    }
    assert_eq!(
        received.iter().map(|r| r.0).collect::<Vec<_>>(),
        [1, 2],
        "delivered on the retry after the 500"
    );
    server.abort();
}
