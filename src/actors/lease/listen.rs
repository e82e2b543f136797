//! `LISTEN` on the lease channel: another instance gave up leases, so claim at once instead
//! of at the next periodic claim. Only an accelerator: a lost notification costs at most
//! one claim period.

use std::time::Duration;

use ractor::ActorRef;
use sea_orm::sqlx::PgPool;
use sea_orm::sqlx::postgres::PgListener;
use tokio::task::JoinHandle;

use super::actor::LeaseMsg;
use crate::store::LEASE_CHANNEL;

/// Listens on its own connection of `pool` and tells `lease` of every notification from
/// another instance than `instance`; reconnects every `retry` while the database is away.
pub fn spawn(
    pool: PgPool,
    instance: String,
    lease: ActorRef<LeaseMsg>,
    retry: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match PgListener::connect_with(&pool).await {
                Ok(mut listener) => match listener.listen(LEASE_CHANNEL).await {
                    Ok(()) => loop {
                        match listener.recv().await {
                            Ok(n) if n.payload() != instance => {
                                if lease.cast(LeaseMsg::Notified).is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "lease notifications interrupted");
                                break;
                            }
                        }
                    },
                    Err(e) => tracing::warn!(error = %e, "cannot listen for lease notifications"),
                },
                Err(e) => tracing::warn!(error = %e, "cannot listen for lease notifications"),
            }
            tokio::time::sleep(retry).await;
        }
    })
}
