//! Opening the database: connect, tune SQLite, run the migrations.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use super::error::{StoreError, redact_text, redact_url};

/// How long SQLite waits for a lock before reporting the database busy.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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
pub async fn connect_with(mut options: ConnectOptions) -> Result<DatabaseConnection, StoreError> {
    let url = options.get_url().to_owned();
    options.map_sqlx_sqlite_opts(|o| {
        o.journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(true)
    });
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
