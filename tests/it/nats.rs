//! Events out on NATS JetStream, against the server on 127.0.0.1:4222 (each test skips,
//! saying so, when none answers). Every test uses a stream and subjects of its own and
//! deletes its stream at the end. Real time: tests wait for outcomes (bounded polling)
//! and assert on outcomes and counters, never on how long something took.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use futures_util::StreamExt;
use mt5_reconciler::actors::ReconcilerEvent;
use mt5_reconciler::guards::config::WebhookConfig;
use mt5_reconciler::guards::{Alert, Sinks};
use mt5_reconciler::nats::{Nats, NatsConfig, Publisher};
use ractor::OutputPort;
use serde_json::Value as Json;

use crate::tree;

/// Where our machines run a NATS server with JetStream.
pub const NATS: &str = "127.0.0.1:4222";

/// A JetStream context on [`NATS`], or `None` (after saying so) when no server answers.
pub async fn jetstream_or_skip(test: &str) -> Option<jetstream::Context> {
    let connect = async_nats::ConnectOptions::new()
        .name("it")
        .connection_timeout(Duration::from_secs(2))
        .connect(NATS);
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(client)) => Some(jetstream::new(client)),
        _ => {
            // Straight to stderr: `eprintln!` would be captured by the test harness.
            let _ = writeln!(
                std::io::stderr(),
                "{test} skipped: no NATS server on {NATS}"
            );
            None
        }
    }
}

/// A name no other test or run uses (letters, digits, `_`).
pub fn unique(tag: &str) -> String {
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!("{tag}_{}_{nanos}", std::process::id())
}

/// Polls `cond` (every 20 ms, at most 30 s).
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1_500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("gave up waiting for {what}");
}

fn config(prefix: &str, stream: &str) -> NatsConfig {
    NatsConfig {
        servers: vec![NATS.into()],
        subject_prefix: prefix.into(),
        stream: stream.into(),
        create_stream: true,
        ack_timeout_ms: 2_000,
        ..NatsConfig::default()
    }
}

fn alert(account: &str, kind: &str) -> Alert {
    Alert {
        id: "al-00000000000000a1".into(),
        account_id: account.into(),
        kind: kind.into(),
        rule: "daily-5pct".into(),
        loss: Some(rust_decimal::Decimal::new(5_125, 1)),
        reference: Some(rust_decimal::Decimal::from(10_000)),
        close_at: None,
        message: format!("daily-5pct breached on {account}"),
        at: chrono::Utc::now(),
    }
}

/// Every message of `stream`, in order (an ephemeral consumer).
async fn read_all(js: &jetstream::Context, stream: &str, n: usize) -> Vec<(String, Json)> {
    let stream = js.get_stream(stream).await.expect("stream");
    let consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config::default())
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut out = Vec::new();
    while out.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .expect("a message arrives")
            .expect("open")
            .expect("message");
        let body: Json = serde_json::from_slice(&m.payload).expect("JSON");
        out.push((m.subject.to_string(), body));
        m.ack().await.expect("ack");
    }
    out
}

/// Divergences, breaker transitions, alerts and close outcomes reach the stream (created
/// here because the configuration says so), on their subjects, as the documented JSON,
/// each acknowledged by the stream; alerts come through the alert sinks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trees_events_arrive_on_jetstream_with_acks() {
    let Some(js) = jetstream_or_skip("nats out").await else {
        return;
    };
    let (prefix, stream) = (unique("itp"), unique("IT_OUT"));
    let config = config(&prefix, &stream);
    let nats = Nats::start(&config)
        .await
        .expect("nats starts")
        .expect("on");
    let stats = nats.stats().clone();
    let port = Arc::new(OutputPort::<ReconcilerEvent>::default());
    let publisher = Publisher::start(js.clone(), &config, &port, stats.clone())
        .await
        .expect("publisher");
    let sinks = Sinks::new(&WebhookConfig::default(), port.clone());
    let divergence: mt5_reconciler::domain::Divergence =
        serde_json::from_value(serde_json::json!({
            "kind": "entry_slippage", "symbol": "EURUSD", "ticket": 7, "trade_id": "t-7",
            "expected": null, "actual": null, "delta": "7", "unit": "pips", "fingerprint": "fp-7"
        }))
        .expect("divergence");
    let events = [
        ReconcilerEvent::DivergenceOpened {
            account_id: "eu.live 1".into(),
            divergence,
        },
        ReconcilerEvent::BreakerTransition {
            account_id: "acc-b".into(),
            from: "running".into(),
            to: "open".into(),
            event: "circuit_opened".into(),
            reason: Some("retryable: HTTP 500".into()),
            at: chrono::Utc::now(),
        },
        ReconcilerEvent::DivergenceResolved {
            account_id: "eu.live 1".into(),
            fingerprint: "fp-7".into(),
        },
    ];
    for e in events {
        port.send(e);
        // One at a time: the port holds a few events for its subscribers, no more.
        let before = stats.snapshot().events_published;
        eventually("the event published", || {
            stats.snapshot().events_published > before
        })
        .await;
    }
    sinks.send(&alert("acc-b", "breach"));
    eventually("the alert published", || {
        stats.snapshot().events_published == 4
    })
    .await;
    sinks.send(&alert("acc-b", "close_confirmed"));
    eventually("the close outcome published", || {
        stats.snapshot().events_published == 5
    })
    .await;

    let got = read_all(&js, &stream, 5).await;
    let subjects: Vec<&str> = got.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        subjects,
        [
            format!("{prefix}.divergence.opened.eu~2Elive~201"),
            format!("{prefix}.breaker.circuit_opened.acc-b"),
            format!("{prefix}.divergence.resolved.eu~2Elive~201"),
            format!("{prefix}.alert.breach.acc-b"),
            format!("{prefix}.alert.close_confirmed.acc-b"),
        ]
    );
    let (_, opened) = &got[0];
    assert_eq!(opened["type"], "divergence.opened", "{opened}");
    assert_eq!(opened["account"], "eu.live 1", "{opened}");
    assert_eq!(opened["data"]["kind"], "entry_slippage", "{opened}");
    assert_eq!(
        opened["data"]["delta"], "7",
        "decimals as strings: {opened}"
    );
    assert!(
        opened["id"].as_str().is_some_and(|s| !s.is_empty()),
        "{opened}"
    );
    assert_eq!(got[1].1["data"]["to"], "open");
    assert_eq!(got[3].1["data"]["loss"], "512.5");
    assert_eq!(got[4].1["type"], "alert.close_confirmed");
    let s = stats.snapshot();
    assert_eq!(
        (s.events_queued, s.events_dropped, s.events_failed),
        (5, 0, 0),
        "{s:?}"
    );
    publisher.stop(Duration::from_secs(5)).await;
    js.delete_stream(&stream).await.expect("delete stream");
}

/// With NATS away, the publisher's channel fills and events are dropped and counted,
/// while every account keeps syncing: publishing never holds up a sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_nats_drops_counted_events_and_never_stops_syncs() {
    // A port nothing listens on: bound, then released.
    let address = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let config = NatsConfig {
        servers: vec![address],
        channel_capacity: 1,
        max_attempts: 20,
        ack_timeout_ms: 60_000,
        ..NatsConfig::default()
    };
    let nats = Nats::start(&config)
        .await
        .expect("starts without a server")
        .expect("on");
    let db = crate::common::databases().await.remove(0).1;
    let sim = tree::sim(4, 6, true, 7);
    let mut tc = tree::tree_config();
    tc.scheduler.interval_ms = 100;
    let reconciler = tree::start(&db, &sim, tc).await;
    let running = nats
        .attach(&reconciler, &config, &db)
        .await
        .expect("attached");
    let s = tree::wait_for(&reconciler, "syncs and drops", |s| {
        let n = s.nats.clone().unwrap_or_default();
        n.events_dropped > 0 && s.accounts.iter().all(|a| a.syncs_ok >= 5)
    })
    .await;
    let n = s.nats.expect("the status shows the nats counters");
    assert_eq!(n.events_published, 0, "{n:?}");
    assert!(
        n.events_queued <= 2,
        "one in the channel, one being tried: {n:?}"
    );
    reconciler.shutdown(Duration::from_secs(5)).await;
    running.stop(Duration::from_millis(100)).await;
}

/// A configured NATS that cannot work stops the start-up, naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_that_cannot_work_fails_the_start_naming_the_setting() {
    let base = NatsConfig {
        servers: vec!["127.0.0.1:1".into()],
        ..NatsConfig::default()
    };
    let cases = [
        (
            NatsConfig {
                token_env: "MT5R_IT_NATS_TOKEN_NOT_SET".into(),
                ..base.clone()
            },
            "nats.token_env: environment variable MT5R_IT_NATS_TOKEN_NOT_SET is not set",
        ),
        (
            NatsConfig {
                creds_file: "/nonexistent/mt5r.creds".into(),
                ..base.clone()
            },
            "nats.creds_file = \"/nonexistent/mt5r.creds\": cannot read it",
        ),
        (
            NatsConfig {
                ca_file: "/nonexistent/ca.pem".into(),
                ..base.clone()
            },
            "nats.ca_file = \"/nonexistent/ca.pem\": cannot read it",
        ),
        (
            NatsConfig {
                servers: vec!["ws://127.0.0.1:4222".into()],
                ..base.clone()
            },
            "nats.servers[0] = \"ws://127.0.0.1:4222\"",
        ),
    ];
    for (config, says) in cases {
        let e = Nats::start(&config).await.err().expect(says).to_string();
        assert!(e.contains(says), "{says:?} not in {e}");
    }
    let creds = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(creds.path(), "not a creds file").expect("write");
    let config = NatsConfig {
        creds_file: creds.path().display().to_string(),
        ..base.clone()
    };
    let e = Nats::start(&config)
        .await
        .err()
        .expect("bad creds")
        .to_string();
    assert!(e.contains("not a NATS creds file"), "{e}");

    let Some(_) = jetstream_or_skip("nats missing stream").await else {
        return;
    };
    let stream = unique("IT_MISSING");
    let config = NatsConfig {
        create_stream: false,
        ..config_for_missing(&stream)
    };
    let e = Nats::start(&config)
        .await
        .err()
        .expect("missing stream")
        .to_string();
    assert!(
        e.contains(&format!(
            "nats.stream = {stream:?}: no such JetStream stream"
        )),
        "{e}"
    );

    // The events stream may be created; the bot's trade stream never is.
    let (events, trades) = (unique("IT_CREATED"), unique("IT_NO_TRADES"));
    let mut config = config_for_missing(&events);
    config.trades.stream = trades.clone();
    let e = Nats::start(&config)
        .await
        .err()
        .expect("missing trade stream")
        .to_string();
    assert!(
        e.contains(&format!(
            "nats.trades.stream = {trades:?}: no such JetStream stream"
        )),
        "{e}"
    );
    if let Some(js) = jetstream_or_skip("cleanup").await {
        js.delete_stream(&events)
            .await
            .expect("delete the created stream");
    }
}

fn config_for_missing(stream: &str) -> NatsConfig {
    config(&unique("itm"), stream)
}
