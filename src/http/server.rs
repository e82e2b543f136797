//! The server: binds early (so `run` fails fast on a taken port or a missing token), serves
//! once the actor tree is up, and stops with the service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use ractor::ActorRef;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::config::{HttpConfig, HttpError, Tokens};
use super::error::{ApiError, json_errors};
use super::{
    account_page, accounts, acks, alerts, api, body, export, guard, metrics, openapi, overview,
    pages, trades,
};
use crate::actors::SupervisorMsg;

/// How long a stopping server waits for open requests.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What the handlers share.
#[derive(Clone)]
pub(super) struct AppState(pub(super) Arc<Shared>);

/// The handlers' dependencies.
pub(super) struct Shared {
    pub(super) supervisor: ActorRef<SupervisorMsg>,
    pub(super) db: DatabaseConnection,
    pub(super) tokens: Tokens,
    /// The bound port, which a token-less request's `Host` must name.
    pub(super) port: u16,
    /// Slots per interval: a first round is done once that many ticks went by.
    pub(super) slots: u32,
    /// Whether `/metrics` labels series by account (else they are summed over accounts).
    pub(super) metrics_per_account: bool,
    /// Latched once the first sync round is done, so readiness does not flap when an
    /// account is added later.
    pub(super) first_round_done: AtomicBool,
}

/// A bound listener, not serving yet.
pub struct Bound {
    listener: TcpListener,
    addr: SocketAddr,
    tokens: Tokens,
    metrics_per_account: bool,
}

/// Binds `config.listen`; `None` when `[http] enabled = false`. `tokens` come from
/// [`super::resolve_tokens`] (or a test).
pub async fn bind(config: &HttpConfig, tokens: Tokens) -> Result<Option<Bound>, HttpError> {
    if !config.enabled {
        return Ok(None);
    }
    let tokens = super::check_tokens(config, tokens)?;
    let addr = config.addr()?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| HttpError::Bind { addr, source })?;
    Ok(Some(Bound {
        listener,
        addr,
        tokens,
        metrics_per_account: config.metrics_per_account,
    }))
}

impl Bound {
    /// The address actually bound (the port is chosen by the system for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts serving the tree behind `supervisor`, whose scheduler has `slots` slots.
    pub fn serve(
        self,
        supervisor: ActorRef<SupervisorMsg>,
        db: DatabaseConnection,
        slots: u32,
    ) -> HttpServer {
        let state = AppState(Arc::new(Shared {
            supervisor,
            db,
            tokens: self.tokens,
            port: self.addr.port(),
            slots: slots.max(1),
            metrics_per_account: self.metrics_per_account,
            first_round_done: AtomicBool::new(false),
        }));
        let auth = state.0.tokens.any();
        let app = router(state);
        let (stop, stopped) = oneshot::channel::<()>();
        let addr = self.addr;
        let task = tokio::spawn(async move {
            let served = axum::serve(self.listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "http server failed");
            }
        });
        tracing::info!(%addr, auth, "http server listening");
        HttpServer {
            addr,
            stop: Some(stop),
            task,
        }
    }
}

/// A running server.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl HttpServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets open requests finish (a few seconds at most), then returns.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(STOP_GRACE, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
        tracing::info!("http server stopped");
    }
}

/// Every documented route, before the guard and the state: the router and the OpenAPI
/// document are split from this one list.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(api::readyz))
        .routes(routes!(api::status))
        .routes(routes!(api::divergences))
        .routes(routes!(export::export))
        .routes(routes!(acks::acknowledge))
        .routes(routes!(overview::overview))
        .routes(routes!(overview::per_hour))
        .routes(routes!(account_page::live))
        .routes(routes!(account_page::history))
        .routes(routes!(account_page::equity))
        .routes(routes!(alerts::list))
        .routes(routes!(alerts::cancel))
        .routes(routes!(accounts::list, accounts::add))
        .routes(routes!(accounts::remove))
        .routes(routes!(api::enable_account))
        .routes(routes!(alerts::cancel_account))
        .routes(routes!(trades::list, trades::replace, trades::upsert))
        .routes(routes!(trades::close))
        .routes(routes!(metrics::handler))
        .routes(routes!(openapi::serve))
}

/// The unguarded routes: `/healthz` and the dashboard's static pages and script.
fn open_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::healthz))
        .routes(routes!(api::dashboard))
        .routes(routes!(pages::account))
        .routes(routes!(pages::script))
        .routes(routes!(pages::style))
}

/// The whole document: every route of [`router`].
pub(super) fn document() -> utoipa::openapi::OpenApi {
    let (_, guarded) = routes().split_for_parts();
    let (_, open) = open_routes().split_for_parts();
    openapi::finish(guarded.merge_from(open))
}

/// Every route; the guard (tokens, or the loopback Host/Origin check) covers all but
/// `/healthz` and the static dashboard page. Every error answer is JSON.
fn router(state: AppState) -> Router {
    let (guarded, _) = routes()
        .route_layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .split_for_parts();
    let (open, _) = open_routes().split_for_parts();
    open.merge(guarded)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(body::MAX_BODY))
        .layer(middleware::from_fn(json_errors))
        .with_state(state)
}
