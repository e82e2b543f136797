//! Opening the database: connect, tune SQLite, run the migrations.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use super::error::{StoreError, redact_text, redact_url};

/// How long a write waits for a lock held by someone else before it fails (and the
/// persistence actor retries later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockWait {
    /// SQLite's busy timeout.
    pub sqlite_busy: Duration,
    /// PostgreSQL's `lock_timeout` (`None` = the server's default: wait forever).
    pub postgres_lock: Option<Duration>,
}

impl Default for LockWait {
    fn default() -> Self {
        Self {
            sqlite_busy: Duration::from_secs(5),
            postgres_lock: None,
        }
    }
}

/// Opens the database at `url` (`sqlite://…` or `postgres://…`) and brings its schema up
/// to date. SQL statement logging is off; the password never appears in logs or errors.
pub async fn connect(url: &str) -> Result<DatabaseConnection, StoreError> {
    let mut options = ConnectOptions::new(url);
    options.sqlx_logging(false);
    connect_with(options).await
}

/// Like [`connect`], with the caller's options (pool size, PostgreSQL search path, …).
///
/// For SQLite, turns on WAL journaling, a busy timeout and foreign keys; sea-orm keeps a
/// single pooled connection unless `max_connections` is set.
pub async fn connect_with(options: ConnectOptions) -> Result<DatabaseConnection, StoreError> {
    connect_waiting(options, LockWait::default()).await
}

/// Like [`connect_with`], with explicit lock waits.
pub async fn connect_waiting(
    mut options: ConnectOptions,
    wait: LockWait,
) -> Result<DatabaseConnection, StoreError> {
    let url = options.get_url().to_owned();
    options.map_sqlx_sqlite_opts(move |o| {
        o.journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(wait.sqlite_busy)
            .foreign_keys(true)
    });
    if let Some(lock) = wait.postgres_lock {
        let value = format!("{}ms", lock.as_millis());
        options.map_sqlx_postgres_opts(move |o| o.options([("lock_timeout", value.as_str())]));
    }
    let db = Database::connect(options)
        .await
        .map_err(|e| StoreError::Connect {
            url: redact_url(&url),
            message: redact_text(&e.to_string(), &url),
        })?;
    Migrator::up(&db, None)
        .await
        .map_err(StoreError::Migration)?;
    tracing::info!(database = %redact_url(&url), "database ready");
    Ok(db)
}
