//! NATS in the running service: connected and checked before the tree starts, then
//! attached to it (the publisher subscribes to its events, the status shows the counters,
//! the trade consumer starts), and stopped after it.

use std::time::Duration;

use async_nats::jetstream;
use sea_orm::DatabaseConnection;

use super::config::NatsConfig;
use super::connect::{NatsError, check_stream, connect, hosts};
use super::publisher::{NatsStats, Publisher};
use super::trades_in::TradeConsumer;
use crate::actors::SupervisorMsg;
use crate::service::Reconciler;

/// A connected NATS, before the tree runs.
pub struct Nats {
    js: jetstream::Context,
    stats: NatsStats,
}

/// NATS attached to a running tree.
pub struct RunningNats {
    publisher: Publisher,
    consumer: Option<TradeConsumer>,
}

impl Nats {
    /// `None` when `[nats]` is off. Errors name the setting that cannot work.
    pub async fn start(config: &NatsConfig) -> Result<Option<Self>, NatsError> {
        if !config.enabled() {
            return Ok(None);
        }
        let client = connect(config).await?;
        let js = jetstream::new(client);
        check_stream(&js, config).await?;
        if config.trades.enabled() {
            super::trades_in::check_stream(&js, &config.trades).await?;
        }
        tracing::info!(servers = %hosts(config), stream = %config.stream, "nats configured");
        Ok(Some(Self {
            js,
            stats: NatsStats::default(),
        }))
    }

    /// The counters.
    pub fn stats(&self) -> &NatsStats {
        &self.stats
    }

    /// Publishes `reconciler`'s events, shows the counters in its status and, when
    /// `[nats.trades]` is set, consumes the bot's trade events into `db`.
    pub async fn attach(
        self,
        reconciler: &Reconciler,
        config: &NatsConfig,
        db: &DatabaseConnection,
    ) -> Result<RunningNats, NatsError> {
        let publisher = Publisher::start(
            self.js.clone(),
            config,
            reconciler.events(),
            self.stats.clone(),
        )
        .await
        .map_err(|e| NatsError(format!("cannot start the publisher: {e}")))?;
        let _ = reconciler
            .actor()
            .cast(SupervisorMsg::AttachNats(self.stats.clone()));
        let consumer = if config.trades.enabled() {
            Some(TradeConsumer::start(
                self.js,
                &config.trades,
                db.clone(),
                self.stats,
            ))
        } else {
            None
        };
        Ok(RunningNats {
            publisher,
            consumer,
        })
    }
}

impl RunningNats {
    /// Stops the consumer (a message being written is finished first) and lets the
    /// publisher send what is queued, each within `grace`.
    pub async fn stop(self, grace: Duration) {
        if let Some(c) = self.consumer {
            c.stop(grace).await;
        }
        self.publisher.stop(grace).await;
    }
}
