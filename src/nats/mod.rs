//! NATS JetStream, in and out: the tree's events published to a stream (never blocking a
//! sync), and the bot's trade events read from a durable pull consumer into the store.
//! One client per process.

pub mod config;
pub mod connect;
pub mod events;
pub mod publisher;
pub mod service;
pub mod trade_event;
pub mod trades_in;

pub use config::{NatsConfig, TradesConsumerConfig};
pub use connect::{NatsError, connect};
pub use events::OutEvent;
pub use publisher::{NatsStats, NatsStatus, Publisher};
pub use service::{Nats, RunningNats};
pub use trade_event::{TradeChange, TradeEvent, parse_event};
pub use trades_in::TradeConsumer;
