//! The MetaApi adapter: reads MT5 accounts through MetaApi's REST API, the usual way to
//! reach MetaTrader 5 from Linux.
//!
//! - positions: `GET {base}/users/current/accounts/{accountId}/positions`;
//! - account information: `GET {base}/users/current/accounts/{accountId}/account-information`;
//! - symbol specification: `GET {base}/users/current/accounts/{accountId}/symbols/{symbol}/specification`,
//!   fetched once per symbol and cached per account ([`MetaApiBroker::symbol_table`]),
//!   and offered to the pip rules through [`crate::broker::Broker::symbols`];
//! - current prices: `GET {base}/users/current/accounts/{accountId}/symbols/{symbol}/current-price`
//!   for each symbol the account holds, fetched with every snapshot into
//!   [`crate::domain::AccountSnapshot::quotes`]; a symbol whose price cannot be read has
//!   no quote (the snapshot itself does not fail);
//! - pending orders: `GET {base}/users/current/accounts/{accountId}/orders`, fetched with
//!   every snapshot into [`crate::domain::AccountSnapshot::orders`] (a trade whose order
//!   is still pending must be told from a missing one at every sync);
//! - the margin mode: `marginMode` of the account information, into
//!   [`crate::domain::AccountSnapshot::margin_mode`];
//! - a position's deals: `GET {base}/users/current/accounts/{accountId}/history-deals/position/{positionId}`,
//!   only when asked ([`crate::broker::Broker::position_deals`]: a position that vanished
//!   or shrank), never with every snapshot;
//! - closing a position: `POST {base}/users/current/accounts/{accountId}/trade` with
//!   `actionType: POSITION_CLOSE_ID` ([`close_result`] classifies the answer);
//! - cancelling a pending order: the same endpoint with `actionType: ORDER_CANCEL`
//!   ([`cancel_result`]).
//!
//! A snapshot costs `3 + n` requests, sent together: positions, account information,
//! orders, and the current price of each of the `n` symbols held at the last snapshot (a
//! symbol held for the first time costs one more, after them). The snapshot fails when
//! any of the first three fails: positions without their orders are a partial reading.
//!
//! The token travels in the `auth-token` header and comes from an environment variable
//! named in the configuration; it never appears in a log line, an error or the database.
//! Failures are classified as described in [`http`] and [`classify`].

mod broker;
pub mod classify;
mod config;
pub mod http;
mod payload;
mod trade;

#[cfg(test)]
mod tests;

pub use broker::{MetaApiBroker, from_config};
pub use config::{DEFAULT_BASE_URL, DEFAULT_TOKEN_ENV, MetaApiConfig, Token, TokenError};
pub use http::SetupError;
pub use payload::{
    Balances, account_information, cancel_result, close_result, current_price, orders,
    position_deals, positions, symbol_specification,
};
