//! The tree's events out to JetStream, never holding up a sync: a forwarder actor takes
//! each event from the tree's `OutputPort` and puts it on a bounded channel without
//! waiting (a full channel drops the event and counts it); a task of its own publishes
//! from the channel, waits for the stream's acknowledgement, and retries a bounded number
//! of times with the same `Nats-Msg-Id`, so the stream stores a retried event once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef, OutputPort};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::config::NatsConfig;
use super::connect::{EnsureError, ensure_stream};
use super::events::OutEvent;
use crate::actors::ReconcilerEvent;

/// Longest pause between two attempts at one event.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Counters of the NATS side, shared by the publisher, the trade consumer and the status.
#[derive(Debug, Clone, Default)]
pub struct NatsStats(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    published: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    processed: AtomicU64,
    duplicates: AtomicU64,
    terminated: AtomicU64,
    lag: AtomicU64,
}

/// The NATS counters, as the status shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NatsStatus {
    /// Events put on the publisher's channel.
    pub events_queued: u64,
    /// Events the stream acknowledged.
    pub events_published: u64,
    /// Events dropped because the channel was full (NATS slow or away).
    pub events_dropped: u64,
    /// Events given up after every attempt failed.
    pub events_failed: u64,
    /// Trade events written and acknowledged.
    pub trades_processed: u64,
    /// Trade events already applied (a redelivery, or an older version): acknowledged, not
    /// written again.
    pub trades_duplicates: u64,
    /// Trade events terminated as poison (unreadable or invalid).
    pub trades_terminated: u64,
    /// Trade events the consumer has not been delivered yet (its last reading).
    pub trades_lag: u64,
}

impl NatsStats {
    /// What the counters say now.
    pub fn snapshot(&self) -> NatsStatus {
        let c = &self.0;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NatsStatus {
            events_queued: get(&c.queued),
            events_published: get(&c.published),
            events_dropped: get(&c.dropped),
            events_failed: get(&c.failed),
            trades_processed: get(&c.processed),
            trades_duplicates: get(&c.duplicates),
            trades_terminated: get(&c.terminated),
            trades_lag: get(&c.lag),
        }
    }

    /// Counts for the trade consumer.
    pub fn trade_processed(&self) {
        self.0.processed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts for the trade consumer.
    pub fn trade_duplicate(&self) {
        self.0.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts for the trade consumer.
    pub fn trade_terminated(&self) {
        self.0.terminated.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts for the trade consumer.
    pub fn set_lag(&self, lag: u64) {
        self.0.lag.store(lag, Ordering::Relaxed);
    }
}

/// A running publisher.
pub struct Publisher {
    forwarder: ActorRef<ReconcilerEvent>,
    task: JoinHandle<()>,
}

impl Publisher {
    /// Subscribes to `events` and publishes each event through `js` as `config` says.
    pub async fn start(
        js: jetstream::Context,
        config: &NatsConfig,
        events: &OutputPort<ReconcilerEvent>,
        stats: NatsStats,
    ) -> Result<Self, ractor::SpawnErr> {
        let (tx, rx) = mpsc::channel(config.channel_capacity);
        let (forwarder, _) = Actor::spawn(None, Forwarder, (tx, stats.clone())).await?;
        events.subscribe(forwarder.clone(), Some);
        let task = tokio::spawn(publish_all(js, config.clone(), rx, stats));
        Ok(Self { forwarder, task })
    }

    /// Stops taking events, then lets the task publish what is queued, within `grace`.
    pub async fn stop(self, grace: Duration) {
        self.forwarder.stop(None);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
            tracing::warn!("nats publisher stopped with events still queued");
        }
    }
}

/// Puts events on the channel, never waiting.
struct Forwarder;

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for Forwarder {
    type Msg = ReconcilerEvent;
    type State = (mpsc::Sender<ReconcilerEvent>, NatsStats);
    type Arguments = (mpsc::Sender<ReconcilerEvent>, NatsStats);

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: Self::Msg,
        (tx, stats): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match tx.try_send(event) {
            Ok(()) => {
                stats.0.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                let dropped = stats.0.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // Once, then every thousandth: the log must not flood while NATS is away.
                if dropped == 1 || dropped.is_multiple_of(1_000) {
                    tracing::warn!(dropped, "nats publisher behind: event dropped");
                }
            }
        }
        Ok(())
    }
}

/// Publishes every event of `rx`, one after the other, until the channel closes.
async fn publish_all(
    js: jetstream::Context,
    config: NatsConfig,
    mut rx: mpsc::Receiver<ReconcilerEvent>,
    stats: NatsStats,
) {
    let instance = format!(
        "{:x}{:x}",
        Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        std::process::id()
    );
    let mut seq = 0u64;
    let mut stream_ready = false;
    while let Some(event) = rx.recv().await {
        seq += 1;
        let out = OutEvent::of(&event, format!("{instance}-{seq}"), Utc::now());
        if publish_one(&js, &config, &out, &mut stream_ready).await {
            stats.0.published.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.0.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(event = %out.id, kind = %out.kind, account = %out.account, "nats publish gave up");
        }
    }
}

/// Up to `max_attempts` attempts at `out`; true once the stream acknowledged it.
async fn publish_one(
    js: &jetstream::Context,
    config: &NatsConfig,
    out: &OutEvent,
    stream_ready: &mut bool,
) -> bool {
    let Ok(body) = serde_json::to_vec(out) else {
        return false;
    };
    let subject = out.subject(&config.subject_prefix);
    let ack_timeout = Duration::from_millis(config.ack_timeout_ms);
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=config.max_attempts {
        let result = async {
            if !*stream_ready {
                match tokio::time::timeout(ack_timeout, ensure_stream(js, config)).await {
                    Ok(Ok(())) => *stream_ready = true,
                    Ok(Err(EnsureError::Fatal(e) | EnsureError::Unreachable(e))) => {
                        return Err(e);
                    }
                    Err(_) => return Err("no answer".into()),
                }
            }
            let publish = PublishMessage::build()
                .payload(body.clone().into())
                .message_id(&out.id);
            let ack = js
                .send_publish(subject.clone(), publish)
                .await
                .map_err(|e| e.to_string())?;
            match tokio::time::timeout(ack_timeout, ack).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no acknowledgement".into()),
            }
        }
        .await;
        match result {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(event = %out.id, attempt, error = %e, "nats publish failed, will retry");
            }
        }
        if attempt < config.max_attempts {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_BACKOFF);
        }
    }
    false
}
