//! The HTTP side of `run`: liveness and readiness probes, the JSON status API, the
//! divergence listing, the risk guards' alerts, Prometheus metrics and a self-refreshing
//! dashboard.
//!
//! | path | what | token |
//! |---|---|---|
//! | `/healthz` | the process is alive | never |
//! | `/` | the dashboard's fleet overview (a static page over the JSON API) | never (it holds no data) |
//! | `/accounts/{id}`, `/assets/dashboard.js` | the account page, the pages' script | never (no data) |
//! | `/api/overview`, `/api/overview/divergences` | fleet totals, accounts most in need, pending alerts, one page of accounts; divergences per hour | when set |
//! | `/api/accounts/{id}/live`, `…/history`, `…/equity` | the account page's data | when set |
//! | `/api/divergences/export` | the divergence list as CSV | when set |
//! | `POST /api/divergences/{id}/acknowledge` | acknowledge a divergence with a note | write |
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

mod account_page;
mod accounts;
mod acks;
mod alerts;
mod api;
mod body;
pub mod config;
mod error;
mod export;
mod guard;
mod metrics;
mod openapi;
mod overview;
mod pages;
mod server;
mod trades;
pub mod views;

pub use config::{
    DEFAULT_LISTEN, DEFAULT_READ_TOKEN_ENV, DEFAULT_TOKEN_ENV, HttpConfig, HttpError, Token,
    Tokens, check_tokens, resolve_tokens,
};
pub use server::{Bound, HttpServer, bind};
