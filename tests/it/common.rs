//! Shared helpers: fresh, migrated databases to test against, isolated per test.
//!
//! Always a private in-memory SQLite database; with `DATABASE_URL` set, also a PostgreSQL
//! database isolated in a schema of its own, so tests run in parallel.

use std::io::Write;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mt5_reconciler::store;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

/// Prefix of the schemas the tests create in PostgreSQL.
const SCHEMA_PREFIX: &str = "it_";
/// Schemas of earlier runs older than this are dropped.
const STALE_AFTER: Duration = Duration::from_secs(3600);

static SCHEMA_SEQ: AtomicU64 = AtomicU64::new(0);
static SKIP_NOTICE: Once = Once::new();

/// A fresh migrated database per backend: `("sqlite", …)` always, `("postgres", …)` when
/// `DATABASE_URL` is set.
pub async fn databases() -> Vec<(String, DatabaseConnection)> {
    let mut dbs = vec![("sqlite".to_owned(), sqlite_memory().await)];
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => dbs.push(("postgres".to_owned(), postgres(&url).await)),
        _ => SKIP_NOTICE.call_once(|| {
            // Straight to stderr: `eprintln!` would be captured by the test harness.
            let _ = writeln!(
                std::io::stderr(),
                "postgres tests skipped: DATABASE_URL not set"
            );
        }),
    }
    dbs
}

/// A private in-memory SQLite database: one connection that is never recycled, since
/// each connection to `sqlite::memory:` is a database of its own.
async fn sqlite_memory() -> DatabaseConnection {
    let mut options = ConnectOptions::new("sqlite::memory:");
    options
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .sqlx_logging(false);
    match store::connect_with(options).await {
        Ok(db) => db,
        Err(e) => panic!("cannot open in-memory sqlite: {e}"),
    }
}

/// A PostgreSQL database isolated in a new schema, migrated.
async fn postgres(url: &str) -> DatabaseConnection {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seq = SCHEMA_SEQ.fetch_add(1, Ordering::Relaxed);
    let schema = format!(
        "{SCHEMA_PREFIX}{}_{}_{seq}",
        now.as_secs(),
        std::process::id()
    );
    let admin = match Database::connect(url).await {
        Ok(db) => db,
        Err(e) => panic!("DATABASE_URL is set but postgres is unreachable: {e}"),
    };
    if seq == 0 {
        drop_stale_schemas(&admin, now).await;
    }
    if let Err(e) = admin
        .execute_unprepared(&format!("CREATE SCHEMA \"{schema}\""))
        .await
    {
        panic!("cannot create schema {schema}: {e}");
    }
    let _ = admin.close().await;

    let mut options = ConnectOptions::new(url);
    options
        .max_connections(4)
        .set_schema_search_path(schema.clone())
        .sqlx_logging(false);
    match store::connect_with(options).await {
        Ok(db) => db,
        Err(e) => panic!("cannot open postgres schema {schema}: {e}"),
    }
}

/// Drops test schemas left by runs that ended more than [`STALE_AFTER`] ago.
async fn drop_stale_schemas(admin: &DatabaseConnection, now: Duration) {
    let sql = format!(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE '{}%'",
        SCHEMA_PREFIX.replace('_', "\\_")
    );
    let Ok(rows) = admin
        .query_all_raw(sea_orm::Statement::from_string(
            admin.get_database_backend(),
            sql,
        ))
        .await
    else {
        return;
    };
    for row in rows {
        let Ok(name) = row.try_get::<String>("", "nspname") else {
            continue;
        };
        let created = name
            .strip_prefix(SCHEMA_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|secs| now.as_secs().saturating_sub(secs) > STALE_AFTER.as_secs()) {
            let _ = admin
                .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                .await;
        }
    }
}
