//! The bot's trade events in: a durable pull consumer (`[nats.trades]`) whose messages
//! are written to the store and acknowledged only after the write committed.
//!
//! | message | what happens |
//! |---|---|
//! | valid, written (or already so) | acked; `processed` (or `duplicates`) counted |
//! | valid, older version than stored | acked, nothing undone (the store's version rule); `duplicates` |
//! | unreadable or invalid (poison) | terminated (`AckKind::Term`), never redelivered; logged with field and value; `terminated` |
//! | for an account not in the accounts table | terminated likewise |
//! | the database is away | nak'd with a delay: redelivered, at most `max_deliver` times |
//!
//! Deduplication relies on versions, not on a table of event ids: a redelivered event
//! writes what is already stored (`unchanged`) or is older than it (`stale`), and either
//! way changes nothing; this also covers the same trade arriving through a trades file.
//! It needs each event of a trade to carry a higher version than the one before.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use chrono::Utc;
use futures_util::StreamExt;
use sea_orm::DatabaseConnection;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::TradesConsumerConfig;
use super::connect::NatsError;
use super::publisher::NatsStats;
use super::trade_event::{TradeChange, TradeEvent, parse_event};
use crate::store::{self, StoreError, TradeWrite, WriteOutcome};

/// How long the start-up check of the trade stream waits for the server.
const STARTUP_DEADLINE: Duration = Duration::from_secs(5);
/// The pause before a failed write's message is delivered again.
const RETRY_DELAY: Duration = Duration::from_secs(2);

/// A running consumer.
pub struct TradeConsumer {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl TradeConsumer {
    /// Starts consuming (the stream was checked by [`check_stream`] at start-up; while
    /// NATS is away the consumer keeps trying to bind).
    pub fn start(
        js: jetstream::Context,
        config: &TradesConsumerConfig,
        db: DatabaseConnection,
        stats: NatsStats,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(js, config.clone(), db, stats, stopped));
        Self { stop, task }
    }

    /// Stops after the message being written (if any), within `grace`.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// The start-up check of the bot's stream: missing is an error naming
/// `nats.trades.stream`; a server that does not answer yet is a warning.
pub async fn check_stream(
    js: &jetstream::Context,
    config: &TradesConsumerConfig,
) -> Result<(), NatsError> {
    match tokio::time::timeout(STARTUP_DEADLINE, js.get_stream(&config.stream)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if is_not_found(&e) => Err(NatsError(format!(
            "nats.trades.stream = {:?}: no such JetStream stream (the bot's trade events are \
             read from it; it is never created here)",
            config.stream
        ))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "nats trade stream not checked yet");
            Ok(())
        }
        Err(_) => {
            tracing::warn!("nats does not answer yet; trade events wait for it");
            Ok(())
        }
    }
}

fn is_not_found(e: &jetstream::context::GetStreamError) -> bool {
    use async_nats::jetstream::context::GetStreamErrorKind;
    matches!(e.kind(), GetStreamErrorKind::JetStream(j)
        if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}

/// The consumer's settings.
pub fn consumer_config(config: &TradesConsumerConfig) -> pull::Config {
    pull::Config {
        durable_name: Some(config.durable.clone()),
        filter_subject: config.filter_subject.clone(),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(config.ack_wait_secs),
        max_deliver: config.max_deliver,
        ..Default::default()
    }
}

/// Consumes until `stopped` says so; (re)binds to the consumer after any loss.
async fn run(
    js: jetstream::Context,
    config: TradesConsumerConfig,
    db: DatabaseConnection,
    stats: NatsStats,
    mut stopped: watch::Receiver<bool>,
) {
    let mut pause = Duration::from_millis(200);
    while !*stopped.borrow() {
        match messages(&js, &config).await {
            Ok(mut messages) => {
                pause = Duration::from_millis(200);
                loop {
                    let next = tokio::select! {
                        _ = stopped.changed() => return,
                        next = messages.next() => next,
                    };
                    match next {
                        Some(Ok(message)) => handle(&db, &stats, &message).await,
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "nats trade consumer: message stream error");
                        }
                        None => break,
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "nats trade consumer not bound, will retry"),
        }
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

async fn messages(
    js: &jetstream::Context,
    config: &TradesConsumerConfig,
) -> Result<pull::Stream, String> {
    let stream = js
        .get_stream(&config.stream)
        .await
        .map_err(|e| format!("nats.trades.stream = {:?}: {e}", config.stream))?;
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(&config.durable, consumer_config(config))
        .await
        .map_err(|e| format!("nats.trades.durable = {:?}: {e}", config.durable))?;
    consumer.messages().await.map_err(|e| e.to_string())
}

/// Reads, writes and acknowledges one message.
async fn handle(db: &DatabaseConnection, stats: &NatsStats, message: &jetstream::Message) {
    let (seq, pending) = message
        .info()
        .map(|i| (i.stream_sequence, i.pending))
        .unwrap_or_default();
    stats.set_lag(pending);
    let source = format!("nats {} #{seq}", message.subject);
    let event = match parse_event(&source, &message.payload) {
        Ok(e) => e,
        Err(e) => return terminate(stats, message, &e.to_string()).await,
    };
    match apply(db, &event).await {
        Ok(outcome) => {
            if outcome.changed() {
                stats.trade_processed();
            } else {
                stats.trade_duplicate();
            }
            tracing::debug!(event = %event.event_id, account = %event.account, ?outcome, "trade event applied");
            if let Err(e) = message.ack().await {
                // Redelivered later; the write is already there, so it changes nothing.
                tracing::warn!(event = %event.event_id, error = %e, "trade event not acknowledged");
            }
        }
        Err(StoreError::Unstorable {
            field,
            value,
            reason,
        }) => {
            let why = format!(
                "{source}: event {:?}: {field} = {value:?}: {reason}",
                event.event_id
            );
            terminate(stats, message, &why).await;
        }
        Err(e) => {
            tracing::warn!(event = %event.event_id, error = %e, "trade event not written, will be redelivered");
            let _ = message.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await;
        }
    }
}

/// Writes `event` (one transaction); `Ok` once committed.
pub async fn apply(
    db: &DatabaseConnection,
    event: &TradeEvent,
) -> Result<WriteOutcome, StoreError> {
    match &event.change {
        TradeChange::Open(trade) => {
            let write = TradeWrite {
                trade: trade.clone(),
                version: Some(event.version),
            };
            store::upsert_trades(db, &event.account, &[write]).await
        }
        TradeChange::Closed(id) => {
            let done =
                store::close_trade(db, &event.account, id, Some(event.version), Utc::now()).await?;
            Ok(done.unwrap_or_else(|| {
                tracing::warn!(event = %event.event_id, account = %event.account, trade = %id, "closed event for an unknown trade: nothing to close");
                WriteOutcome::default()
            }))
        }
    }
}

async fn terminate(stats: &NatsStats, message: &jetstream::Message, why: &str) {
    stats.trade_terminated();
    tracing::error!(reason = %why, "trade event terminated (not redelivered)");
    if let Err(e) = message.ack_with(AckKind::Term).await {
        tracing::warn!(error = %e, "trade event not terminated; it may come again");
    }
}
