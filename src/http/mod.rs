//! The HTTP side of `run`: liveness and readiness probes, the JSON status API, the
//! divergence listing, the risk guards' alerts, Prometheus metrics and a self-refreshing
//! dashboard.
//!
//! | path | what | token |
//! |---|---|---|
//! | `/healthz` | the process is alive | never |
//! | `/` | the dashboard (a static page over the JSON API) | never (it holds no data) |
//! | `/readyz` | database reachable, supervisor answering, first sync round done | when set |
//! | `/api/status` | per-account health, scheduler and persistence figures | when set |
//! | `/api/divergences` | stored divergences, filtered, newest first, paginated | when set |
//! | `/api/alerts` | the guards' alerts, newest first, with their status | when set |
//! | `POST /api/alerts/{id}/cancel` | cancel a pending automatic close | when set |
//! | `GET /api/accounts`, `POST /api/accounts`, `DELETE /api/accounts/{id}` | accounts | read / write |
//! | `POST /api/accounts/{id}/enable` | re-enable an account in the running service | write |
//! | `GET/PUT/POST /api/accounts/{id}/trades`, `POST …/trades/{trade_id}/close` | the bot's trades | read / write |
//! | `/metrics` | Prometheus text | when set |
//!
//! See [`config`] for the token rule; without tokens, `guard` checks `Host` and `Origin`.
//! Every error answer has one JSON shape (`error`).

mod accounts;
mod alerts;
mod api;
mod body;
pub mod config;
mod error;
mod guard;
mod metrics;
mod openapi;
mod server;
mod trades;
pub mod views;

pub use config::{
    DEFAULT_LISTEN, DEFAULT_READ_TOKEN_ENV, DEFAULT_TOKEN_ENV, HttpConfig, HttpError, Token,
    Tokens, check_tokens, resolve_tokens,
};
pub use server::{Bound, HttpServer, bind};
