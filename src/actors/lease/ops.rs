//! The lease actor's database work, run off the actor (a handler never waits on the
//! database) on connections of its own, each bounded by a timeout.

use std::time::Duration;

use sea_orm::sqlx::PgPool;
use sea_orm::sqlx::postgres::PgPoolOptions;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, SqlxPostgresConnector, Statement};

use super::share::fair_share;
use crate::store::{self, Lease, StoreError};

/// Connections reserved for lease traffic: a busy main pool never delays a renewal. One
/// of them is the listener's.
const RESERVED_CONNECTIONS: u32 = 3;

/// A pool of its own on the database of `db`, with the same settings and search path.
pub async fn reserve(db: &DatabaseConnection) -> Result<(DatabaseConnection, PgPool), StoreError> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_setting('search_path') AS search_path",
        ))
        .await?;
    let search_path: Option<String> = match row {
        Some(r) => r.try_get("", "search_path").ok(),
        None => None,
    };
    let pool = db.get_postgres_connection_pool();
    let mut options = (*pool.connect_options()).clone();
    if let Some(path) = search_path {
        options = options.options([("search_path", path)]);
    }
    let reserved = PgPoolOptions::new()
        .max_connections(RESERVED_CONNECTIONS)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options);
    Ok((
        SqlxPostgresConnector::from_sqlx_postgres_pool(reserved.clone()),
        reserved,
    ))
}

/// What a claim round found.
#[derive(Debug)]
pub struct Claimed {
    /// Live instances, this one included.
    pub live: u64,
    /// Leases taken.
    pub leases: Vec<Lease>,
}

/// Heartbeat, lease rows for the accounts (when `ensure`), then claims up to this
/// instance's fair share less the `owned` leases it holds.
pub async fn claim_round(
    db: DatabaseConnection,
    instance: String,
    known: Vec<String>,
    ensure: bool,
    owned: usize,
    ttl: Duration,
) -> Result<Claimed, String> {
    bounded(ttl, async {
        let live = store::heartbeat(&db, &instance, ttl).await?;
        if ensure {
            store::ensure_leases(&db, &known).await?;
        }
        let want = fair_share(known.len(), live).saturating_sub(owned);
        let leases = store::claim_leases(&db, &instance, &known, want as u64, ttl).await?;
        Ok(Claimed { live, leases })
    })
    .await
}

/// Renews every lease of `held` in one statement, then the heartbeat. Returns the
/// accounts renewed and the live instances.
pub async fn renew_round(
    db: DatabaseConnection,
    instance: String,
    held: Vec<Lease>,
    ttl: Duration,
) -> Result<(Vec<String>, u64), String> {
    bounded(ttl, async {
        let renewed = store::renew_leases(&db, &instance, &held, ttl).await?;
        let live = store::heartbeat(&db, &instance, ttl).await?;
        Ok((renewed, live))
    })
    .await
}

/// Frees `leases` and tells the other instances.
pub async fn release(
    db: DatabaseConnection,
    instance: String,
    leases: Vec<Lease>,
    ttl: Duration,
) -> Result<u64, String> {
    bounded(ttl, async {
        let n = store::release_leases(&db, &instance, &leases).await?;
        store::notify_leases(&db, &instance).await?;
        Ok(n)
    })
    .await
}

/// Shutdown: frees every lease of the instance, marks it stopping, tells the others.
pub async fn release_all(
    db: DatabaseConnection,
    instance: String,
    ttl: Duration,
) -> Result<u64, String> {
    bounded(ttl, store::release_all_leases(&db, &instance)).await
}

async fn bounded<T>(
    limit: Duration,
    work: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
    }
}
