//! The alert sinks against real servers, in real time: a webhook (a local axum server that
//! fails the first POST) receives the alert JSON after a retry; NATS (the server on
//! 127.0.0.1:4222, skipped with a message when none answers) carries it on the account's
//! subject; a NATS server that does not answer at start-up leaves the sinks working.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use chrono::{DateTime, TimeZone, Utc};
use futures_util::StreamExt;
use mt5_reconciler::guards::config::{NatsConfig, WebhookConfig};
use mt5_reconciler::guards::{Alert, Sinks};
use rust_decimal::Decimal;
use serde_json::Value as Json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Where our machines run a NATS server.
const NATS: &str = "127.0.0.1:4222";

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
    let sinks = Sinks::new(&webhook, &NatsConfig::default()).await;
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

/// The next message of `messages`.
async fn next(messages: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(PATIENCE, messages.next())
        .await
        .expect("a message arrives")
        .expect("the subscription stays open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_carries_the_alert_on_the_account_subject() {
    let connect = async_nats::ConnectOptions::new()
        .name("it-sub")
        .connection_timeout(Duration::from_secs(2))
        .connect(NATS);
    let client = match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(client)) => client,
        _ => {
            // Straight to stderr: `eprintln!` would be captured by the test harness.
            let _ = writeln!(std::io::stderr(), "nats test skipped: no server on {NATS}");
            return;
        }
    };

    // A subject of our own, so parallel runs on the shared server do not cross; the `.`
    // of the account id is escaped into the one account token.
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let unique = format!("{}-{nanos}", std::process::id());
    let account = format!("it.{unique}");
    let subject = format!("mt5r.alerts.it~2E{unique}");
    let mut messages = client.subscribe(subject.clone()).await.expect("subscribe");
    // The server holds the subscription once a message published after it on the same
    // connection comes back.
    client
        .publish(subject.clone(), "probe".into())
        .await
        .expect("publish the probe");
    assert_eq!(&next(&mut messages).await.payload[..], b"probe");

    let nats = NatsConfig {
        address: NATS.into(),
        ..NatsConfig::default()
    };
    let sinks = Sinks::new(&WebhookConfig::default(), &nats).await;
    sinks.send(&breach(&account));

    let message = next(&mut messages).await;
    assert_eq!(message.subject.as_str(), subject);
    let body: Json = serde_json::from_slice(&message.payload).expect("JSON payload");
    assert_alert_json(&body, &account);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_server_that_does_not_answer_leaves_the_sinks_working() {
    // A port nothing listens on: bound, then released.
    let address = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let nats = NatsConfig {
        address,
        max_attempts: 1,
        ..NatsConfig::default()
    };
    let sinks = tokio::time::timeout(PATIENCE, Sinks::new(&WebhookConfig::default(), &nats))
        .await
        .expect("the sinks are made without waiting for the server");
    // Logged; the delivery fails in its own task, without holding up the sender.
    sinks.send(&breach("acc-away"));
}
