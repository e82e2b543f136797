//! Brokers: the `Broker` trait that returns domain snapshots, the `TradeSource` trait that
//! returns the bot's open trades, error classification, and one file per adapter.

pub mod db_trades;
pub mod metaapi;
pub mod mt5_export;
pub mod sim;
pub mod symbols;
pub mod unavailable;
pub mod wire;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::domain::{AccountSnapshot, BotTrade, DealLookup, PendingOrder, SymbolTable};

/// A boxed, sendable future: keeps the traits object-safe without a macro crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a failure should be treated by the account's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorClass {
    /// The call did not answer in time.
    Timeout,
    /// Worth retrying later (5xx, 429, connection refused, stale export …).
    Retryable,
    /// Retrying will not help (bad credentials, unknown account, unusable configuration).
    Permanent,
    /// The broker answered with data we cannot use.
    Malformed,
    /// The sync panicked or its actor died.
    Crash,
}

impl ErrorClass {
    /// The snake_case name used in logs, the database and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Retryable => "retryable",
            Self::Permanent => "permanent",
            Self::Malformed => "malformed",
            Self::Crash => "crash",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified broker failure. Messages never contain credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// The call timed out.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A passing failure; `retry_after` is the broker's own recommendation, if it gave one.
    #[error("retryable: {reason}")]
    Retryable {
        /// What happened.
        reason: String,
        /// When the broker asked us to come back.
        retry_after: Option<Duration>,
    },
    /// A failure that retrying will not fix.
    #[error("permanent: {0}")]
    Permanent(String),
    /// The broker's data could not be used; `field` names the offending field.
    #[error("malformed data in {field}: {reason}")]
    Malformed {
        /// The offending field (or a path to it).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl BrokerError {
    /// The delay the broker asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Retryable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The breaker class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Timeout(_) => ErrorClass::Timeout,
            Self::Retryable { .. } => ErrorClass::Retryable,
            Self::Permanent(_) => ErrorClass::Permanent,
            Self::Malformed { .. } => ErrorClass::Malformed,
        }
    }
}

/// What a sync needs of a snapshot besides the positions. A broker whose every part costs
/// a request of its own (MetaApi) reads only these; one that reads everything at once
/// ignores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Fresh balance and equity (the guards'). Without, a broker may answer the last ones
    /// it read, at most a minute old.
    pub balances: bool,
    /// Quotes of the held symbols (the market guards').
    pub quotes: bool,
    /// Pending orders. Without, a broker may leave [`AccountSnapshot::orders`] `None`;
    /// the sync asks [`Broker::pending_orders`] when a trade has no position.
    pub orders: bool,
}

impl Needs {
    /// Everything.
    pub const ALL: Self = Self {
        balances: true,
        quotes: true,
        orders: true,
    };
}

/// Reads an account's state at its broker. Implementations return domain types, never
/// wire types, and must never turn a failed read into an empty account.
pub trait Broker: Send + Sync + 'static {
    /// The account's balance, equity and open positions.
    fn snapshot<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<AccountSnapshot, BrokerError>>;

    /// The account's open positions and what `needs` asks for besides (see [`Needs`]).
    fn snapshot_for<'a>(
        &'a self,
        account: &'a str,
        _needs: Needs,
    ) -> BoxFuture<'a, Result<AccountSnapshot, BrokerError>> {
        self.snapshot(account)
    }

    /// The account's pending orders, for a snapshot read without them; `None` when the
    /// broker does not report orders.
    fn pending_orders<'a>(
        &'a self,
        _account: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<PendingOrder>>, BrokerError>> {
        Box::pin(async { Ok(None) })
    }

    /// Closes one whole position by ticket. A broker that cannot close positions answers
    /// `Permanent`. Callers check the account before retrying a close that timed out, so
    /// an implementation need not be idempotent itself.
    fn close_position<'a>(
        &'a self,
        account: &'a str,
        ticket: u64,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            Err(BrokerError::Permanent(format!(
                "this broker cannot close positions (account {account}, ticket {ticket})"
            )))
        })
    }

    /// Cancels one pending order by ticket. A broker that cannot cancel orders answers
    /// `Permanent`; cancelling an order that is already gone is not an error.
    fn cancel_order<'a>(
        &'a self,
        account: &'a str,
        ticket: u64,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            Err(BrokerError::Permanent(format!(
                "this broker cannot cancel orders (account {account}, order {ticket})"
            )))
        })
    }

    /// The symbol specifications the broker has given for `account` so far, keyed by its
    /// spelling of each symbol; `None` when it gives none. They rank below the configured
    /// symbols and above the FX-name rule ([`ReconcileRules::with_broker_symbols`]).
    ///
    /// [`ReconcileRules::with_broker_symbols`]: crate::domain::ReconcileRules::with_broker_symbols
    fn symbols(&self, _account: &str) -> Option<SymbolTable> {
        None
    }

    /// Whether the broker may still describe `symbol` (its spelling) on `account` although
    /// the last [`Broker::symbols`] did not: its specification is being fetched, failed for
    /// a passing reason and will be asked again, or has arrived since. An unknown pip size
    /// of such a symbol is worth another sync; of any other, only configuration helps.
    fn symbol_pending(&self, _account: &str, _symbol: &str) -> bool {
        false
    }

    /// The deals of the position `position_id` (its identifier) on `account`, for the
    /// close reason of a position that vanished or shrank. A broker without per-position
    /// history answers [`DealLookup::Unsupported`]; an empty `Found` is a history that may
    /// still lag (asked again on later syncs), never proof that no deal exists.
    fn position_deals<'a>(
        &'a self,
        _account: &'a str,
        _position_id: u64,
    ) -> BoxFuture<'a, Result<DealLookup, BrokerError>> {
        Box::pin(async { Ok(DealLookup::Unsupported) })
    }

    /// Whether this broker's snapshots carry [`AccountSnapshot::quotes`] (bid, ask and the
    /// quote's time) for the symbols the account holds. A broker that answers false never
    /// fills them, so spread and quote-age checks on its accounts can only hold. A broker
    /// that answers true may still leave out a symbol whose quote it could not read.
    fn quotes_available(&self) -> bool {
        false
    }
}

/// `account`'s snapshot, asked under the global cap on broker calls in flight
/// (`limiter`) and within `timeout`.
pub async fn snapshot_within(
    broker: &dyn Broker,
    account: &str,
    limiter: &tokio::sync::Semaphore,
    timeout: Duration,
) -> Result<AccountSnapshot, BrokerError> {
    snapshot_for_within(broker, account, Needs::ALL, limiter, timeout).await
}

/// Like [`snapshot_within`], reading what `needs` asks for.
pub async fn snapshot_for_within(
    broker: &dyn Broker,
    account: &str,
    needs: Needs,
    limiter: &tokio::sync::Semaphore,
    timeout: Duration,
) -> Result<AccountSnapshot, BrokerError> {
    let _permit = acquire(limiter).await?;
    tokio::time::timeout(timeout, broker.snapshot_for(account, needs))
        .await
        .map_err(|_| BrokerError::Timeout(format!("no snapshot within {timeout:?}")))?
}

/// `account`'s pending orders ([`Broker::pending_orders`]) under the same cap and
/// `timeout`.
pub async fn pending_orders_within(
    broker: &dyn Broker,
    account: &str,
    limiter: &tokio::sync::Semaphore,
    timeout: Duration,
) -> Result<Option<Vec<PendingOrder>>, BrokerError> {
    let _permit = acquire(limiter).await?;
    tokio::time::timeout(timeout, broker.pending_orders(account))
        .await
        .map_err(|_| BrokerError::Timeout(format!("no pending orders within {timeout:?}")))?
}

async fn acquire(
    limiter: &tokio::sync::Semaphore,
) -> Result<tokio::sync::SemaphorePermit<'_>, BrokerError> {
    limiter.acquire().await.map_err(|_| BrokerError::Retryable {
        reason: "shutting down".into(),
        retry_after: None,
    })
}

/// Where the bot's open trades come from (the `bot_trades` table, or a host's own source).
pub trait TradeSource: Send + Sync + 'static {
    /// The trades the bot believes are open on `account`.
    fn open_trades<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<Vec<BotTrade>, BrokerError>>;
}

/// An account's way to the world: its broker and the source of its bot trades.
#[derive(Clone)]
pub struct Connector {
    /// Reads positions and equity.
    pub broker: std::sync::Arc<dyn Broker>,
    /// Reads the bot's open trades.
    pub trades: std::sync::Arc<dyn TradeSource>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Connector")
    }
}
