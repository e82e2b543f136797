//! The bot's trade events in through a durable pull consumer, against the NATS server on
//! 127.0.0.1:4222 (skipped, saying so, when none answers), on SQLite and PostgreSQL. Each
//! test makes its own stream and subjects and deletes the stream at the end.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use futures_util::StreamExt;
use mt5_reconciler::nats::trades_in::{apply, consumer_config};
use mt5_reconciler::nats::{NatsStats, TradeConsumer, TradesConsumerConfig, parse_event};
use mt5_reconciler::store;
use sea_orm::DatabaseConnection;

use crate::common;
use crate::nats::{eventually, jetstream_or_skip, unique};

/// A stream `name` on `<prefix>.>`, and the consumer settings that read `<prefix>.trades.>`.
async fn trade_stream(js: &jetstream::Context, name: &str, prefix: &str) -> TradesConsumerConfig {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![format!("{prefix}.>")],
        ..Default::default()
    })
    .await
    .expect("create the trade stream");
    TradesConsumerConfig {
        stream: name.into(),
        durable: "mt5r-it".into(),
        filter_subject: format!("{prefix}.trades.>"),
        max_deliver: 5,
        ack_wait_secs: 1,
    }
}

async fn register(db: &DatabaseConnection, account: &str) {
    let row = store::Account {
        id: account.to_owned(),
        name: account.to_owned(),
        broker: "metaapi".into(),
        enabled: true,
        disabled_reason: None,
    };
    store::upsert_account(db, &row, chrono::Utc::now())
        .await
        .expect("account");
}

fn event(id: &str, kind: &str, account: &str, trade: &str, volume: &str, version: u64) -> String {
    format!(
        r#"{{"event_id": "{id}", "type": "{kind}", "account": "{account}",
        "trade": {{"id": "{trade}", "symbol": "EURUSD", "side": "buy", "volume": "{volume}",
        "entry_price": "1.08512", "ticket": 4242}}, "version": {version}}}"#
    )
}

async fn publish(js: &jetstream::Context, subject: &str, body: String) {
    js.publish(subject.to_owned(), body.into())
        .await
        .expect("publish")
        .await
        .expect("stored");
}

/// Opened, modified, a late older event and a close land in the database, each message
/// acknowledged after its write; the late event undoes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trade_events_are_written_and_acknowledged() {
    let Some(js) = jetstream_or_skip("nats trades in").await else {
        return;
    };
    for (label, db) in common::databases().await {
        let (name, prefix) = (unique("IT_TRADES"), unique("itt"));
        let config = trade_stream(&js, &name, &prefix).await;
        let account = unique("acc");
        register(&db, &account).await;
        let subject = format!("{prefix}.trades.{account}");
        for body in [
            event("e1", "opened", &account, "t-1", "0.10", 1),
            event("e2", "opened", &account, "t-2", "0.20", 1),
            event("e3", "modified", &account, "t-1", "0.30", 2),
            // Late: an older version of t-1 must not undo e3.
            event("e1-late", "modified", &account, "t-1", "0.10", 1),
            event("e4", "closed", &account, "t-2", "0.20", 2),
        ] {
            publish(&js, &subject, body).await;
        }
        let stats = NatsStats::default();
        let consumer = TradeConsumer::start(js.clone(), &config, db.clone(), stats.clone());
        eventually("five events handled", || {
            let s = stats.snapshot();
            s.trades_processed + s.trades_duplicates + s.trades_terminated == 5
        })
        .await;
        let s = stats.snapshot();
        assert_eq!(
            (s.trades_processed, s.trades_duplicates, s.trades_terminated),
            (4, 1, 0),
            "{label}: {s:?}"
        );
        let open = store::open_trades_versioned(&db, &account)
            .await
            .expect("trades");
        let open: Vec<(String, String, u64)> = open
            .into_iter()
            .map(|(t, v)| (t.id, t.volume.to_string(), v))
            .collect();
        assert_eq!(open, [("t-1".to_owned(), "0.30".to_owned(), 2)], "{label}");
        consumer.stop(Duration::from_secs(5)).await;
        let mut info = js
            .get_stream(&name)
            .await
            .expect("stream")
            .get_consumer::<jetstream::consumer::pull::Config>(&config.durable)
            .await
            .expect("durable consumer");
        let info = info.info().await.expect("info");
        assert_eq!(
            (info.num_ack_pending, info.num_pending),
            (0, 0),
            "{label}: every message acked"
        );
        js.delete_stream(&name).await.expect("delete");
    }
}

/// A message written but not acknowledged (the process died between the two) comes
/// again; the second write changes nothing, not even the account's change marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_after_a_crash_before_the_ack_changes_nothing() {
    let Some(js) = jetstream_or_skip("nats redelivery").await else {
        return;
    };
    for (label, db) in common::databases().await {
        let (name, prefix) = (unique("IT_REDELIVER"), unique("itr"));
        let config = trade_stream(&js, &name, &prefix).await;
        let account = unique("acc");
        register(&db, &account).await;
        let subject = format!("{prefix}.trades.{account}");
        publish(
            &js,
            &subject,
            event("e1", "opened", &account, "t-1", "0.10", 1),
        )
        .await;

        // The crashed process: takes the message through the durable consumer, writes it,
        // and never acknowledges.
        let durable: jetstream::consumer::PullConsumer = js
            .get_stream(&name)
            .await
            .expect("stream")
            .get_or_create_consumer(&config.durable, consumer_config(&config))
            .await
            .expect("durable");
        let mut batch = durable
            .fetch()
            .max_messages(1)
            .messages()
            .await
            .expect("fetch");
        let message = batch.next().await.expect("one").expect("message");
        let e = parse_event("it", &message.payload).expect("event");
        let first = apply(&db, &e).await.expect("written");
        assert!(first.changed(), "{label}");
        drop(message);
        let marker = store::trades_revision(&db, &account).await.expect("marker");

        let stats = NatsStats::default();
        let consumer = TradeConsumer::start(js.clone(), &config, db.clone(), stats.clone());
        eventually("the redelivery", || stats.snapshot().trades_duplicates == 1).await;
        consumer.stop(Duration::from_secs(5)).await;
        assert_eq!(stats.snapshot().trades_processed, 0, "{label}");
        assert_eq!(
            store::trades_revision(&db, &account).await.expect("marker"),
            marker,
            "{label}"
        );
        assert_eq!(
            store::open_trades(&db, &account).await.expect("open").len(),
            1,
            "{label}"
        );
        js.delete_stream(&name).await.expect("delete");
    }
}

/// Unreadable JSON, an invalid field and an unknown account are terminated (never
/// redelivered), and the events after them are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_terminated_and_the_rest_flows() {
    let Some(js) = jetstream_or_skip("nats poison").await else {
        return;
    };
    let db = common::databases().await.remove(0).1;
    let (name, prefix) = (unique("IT_POISON"), unique("itx"));
    let config = trade_stream(&js, &name, &prefix).await;
    let account = unique("acc");
    register(&db, &account).await;
    let subject = format!("{prefix}.trades.{account}");
    for body in [
        "{not json".to_owned(),
        event("e-bad", "opened", &account, "t-1", "-1", 1),
        event("e-who", "opened", "nobody-knows-me", "t-1", "0.10", 1),
        event("e-ok", "opened", &account, "t-2", "0.10", 1),
    ] {
        publish(&js, &subject, body).await;
    }
    let stats = NatsStats::default();
    let consumer = TradeConsumer::start(js.clone(), &config, db.clone(), stats.clone());
    eventually("four events handled", || {
        let s = stats.snapshot();
        s.trades_processed + s.trades_terminated == 4
    })
    .await;
    consumer.stop(Duration::from_secs(5)).await;
    let s = stats.snapshot();
    assert_eq!((s.trades_processed, s.trades_terminated), (1, 3), "{s:?}");
    let open = store::open_trades(&db, &account).await.expect("open");
    assert_eq!(
        open.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["t-2"]
    );
    let mut durable = js
        .get_stream(&name)
        .await
        .expect("stream")
        .get_consumer::<jetstream::consumer::pull::Config>(&config.durable)
        .await
        .expect("durable");
    let info = durable.info().await.expect("info");
    assert_eq!(
        (info.num_ack_pending, info.num_redelivered),
        (0, 0),
        "terminated, not waiting to come again"
    );
    js.delete_stream(&name).await.expect("delete");
}
