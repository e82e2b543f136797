//! Opening the database: connect, tune SQLite, run the migrations.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use super::error::{StoreError, redact_text, redact_url};

/// The database's own deadlines: how long a statement waits for a lock held by someone
/// else, and how long it may run, before it fails (and its caller retries later). They
/// bound every database call of the sync, guard and persistence paths without a timer of
/// this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockWait {
    /// SQLite's busy timeout.
    pub sqlite_busy: Duration,
    /// PostgreSQL's `lock_timeout` (`None` = the server's default: wait forever).
    pub postgres_lock: Option<Duration>,
    /// PostgreSQL's `statement_timeout` (`None` = the server's default: no limit).
    pub postgres_statement: Option<Duration>,
}

impl Default for LockWait {
    fn default() -> Self {
        Self {
            sqlite_busy: Duration::from_secs(5),
            postgres_lock: Some(Duration::from_secs(5)),
            postgres_statement: Some(Duration::from_secs(30)),
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
    let settings: Vec<(&str, String)> = [
        ("lock_timeout", wait.postgres_lock),
        ("statement_timeout", wait.postgres_statement),
    ]
    .into_iter()
    .filter_map(|(name, d)| d.map(|d| (name, format!("{}ms", d.as_millis()))))
    .collect();
    if !settings.is_empty() {
        options.map_sqlx_postgres_opts(move |o| {
            o.options(settings.iter().map(|(k, v)| (*k, v.as_str())))
        });
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
