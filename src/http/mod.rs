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
//! | `/metrics` | Prometheus text | when set |
//!
//! See [`config`] for the token rule.

mod alerts;
mod api;
pub mod config;
mod metrics;
mod server;
pub mod views;

pub use config::{
    DEFAULT_LISTEN, DEFAULT_TOKEN_ENV, HttpConfig, HttpError, Token, check_token, resolve_token,
};
pub use server::{Bound, HttpServer, bind};
