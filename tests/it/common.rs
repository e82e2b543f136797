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

/// A fresh migrated PostgreSQL database in a schema of its own when `DATABASE_URL` is set;
/// `None` (with a notice) otherwise.
pub async fn postgres_only() -> Option<DatabaseConnection> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(postgres(&url).await),
        _ => {
            SKIP_NOTICE.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "postgres tests skipped: DATABASE_URL not set"
                );
            });
            None
        }
    }
}

/// `DATABASE_URL` and a new, empty schema in it, for a process that migrates it itself;
/// `None` (with a notice) when `DATABASE_URL` is not set.
pub async fn postgres_schema() -> Option<(String, String)> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let schema = new_schema(&url).await;
            Some((url, schema))
        }
        _ => {
            SKIP_NOTICE.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "postgres tests skipped: DATABASE_URL not set"
                );
            });
            None
        }
    }
}

/// A private in-memory SQLite database: one connection that is never recycled, since
/// each connection to `sqlite::memory:` is a database of its own.
async fn sqlite_memory() -> DatabaseConnection {
    let mut options = ConnectOptions::new("sqlite::memory:");
    options
        .max_connections(1)
        .min_connections(1)
        .acquire_timeout(PATIENT)
        .idle_timeout(None)
        .max_lifetime(None)
        .sqlx_logging(false);
    match store::connect_with(options).await {
        Ok(db) => db,
        Err(e) => panic!("cannot open in-memory sqlite: {e}"),
    }
}

/// The test pool on `url`, in `schema`: a few connections kept open, patient acquires.
fn schema_options(url: &str, schema: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(4)
        .min_connections(1)
        .acquire_timeout(PATIENT)
        .idle_timeout(None)
        .max_lifetime(None)
        .set_schema_search_path(schema.to_owned())
        .sqlx_logging(false);
    options
}

/// A PostgreSQL database isolated in a new schema, migrated.
async fn postgres(url: &str) -> DatabaseConnection {
    postgres_with(url, store::LockWait::default()).await.0
}

/// Like [`postgres`], with explicit lock waits; also returns the schema name.
async fn postgres_with(url: &str, wait: store::LockWait) -> (DatabaseConnection, String) {
    let schema = new_schema(url).await;
    match store::connect_waiting(schema_options(url, &schema), wait).await {
        Ok(db) => (db, schema),
        Err(e) => panic!("cannot open postgres schema {schema}: {e}"),
    }
}

/// A PostgreSQL database in a new schema, reached through `proxy` (which the test may
/// cut); a cut connection fails within seconds instead of waiting for the pool.
pub async fn postgres_through(url: &str, proxy: &TcpProxy) -> DatabaseConnection {
    let schema = new_schema(url).await;
    let Some(rest) = url.split_once("://").map(|(_, rest)| rest) else {
        panic!("DATABASE_URL without a scheme");
    };
    let (auth, path) = rest.split_once('/').unwrap_or((rest, ""));
    let user = auth.rsplit_once('@').map_or("", |(user, _)| user);
    let at = if user.is_empty() { "" } else { "@" };
    let proxied = format!("postgres://{user}{at}{}/{path}", proxy.addr());
    let mut options = ConnectOptions::new(proxied);
    options
        .max_connections(2)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2))
        .set_schema_search_path(schema.clone())
        .sqlx_logging(false);
    match store::connect_with(options).await {
        Ok(db) => db,
        Err(e) => panic!("cannot open postgres schema {schema} through the proxy: {e}"),
    }
}

/// The `host:port` of a PostgreSQL URL.
pub fn postgres_addr(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    }
}

/// A new, empty schema for one test.
async fn new_schema(url: &str) -> String {
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
    schema
}

/// Pool acquire timeout for tests: under paused tokio time the clock may jump while a
/// real database call is running, so a short timeout would fire spuriously.
const PATIENT: Duration = Duration::from_secs(86_400);

/// A database another connection can lock, to take it away for a while.
pub struct Lockable {
    /// Backend label.
    pub label: String,
    /// The database under test (short lock waits, so writes fail fast while locked).
    pub db: DatabaseConnection,
    holder: DatabaseConnection,
    lock_sql: &'static str,
    _dir: Option<tempfile::TempDir>,
}

impl Lockable {
    /// Takes every table away from other connections until [`Lockable::unlock`].
    pub async fn lock(&self) {
        if let Err(e) = self.holder.execute_unprepared(self.lock_sql).await {
            panic!("cannot lock the {} database: {e}", self.label);
        }
    }

    /// Gives the tables back.
    pub async fn unlock(&self) {
        if let Err(e) = self.holder.execute_unprepared("COMMIT").await {
            panic!("cannot unlock the {} database: {e}", self.label);
        }
    }
}

/// Lockable databases: an SQLite file always, PostgreSQL when `DATABASE_URL` is set.
pub async fn lockable_databases() -> Vec<Lockable> {
    let wait = store::LockWait {
        sqlite_busy: Duration::from_millis(20),
        postgres_lock: Some(Duration::from_millis(20)),
        ..store::LockWait::default()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("locked.db").display()
    );
    let mut options = ConnectOptions::new(url.clone());
    options
        .max_connections(1)
        .min_connections(1)
        .acquire_timeout(PATIENT)
        .idle_timeout(None)
        .max_lifetime(None)
        .sqlx_logging(false);
    let db = store::connect_waiting(options, wait)
        .await
        .expect("sqlite file");
    let holder = single(&url, None).await;
    let mut out = vec![Lockable {
        label: "sqlite".into(),
        db,
        holder,
        lock_sql: "BEGIN EXCLUSIVE",
        _dir: Some(dir),
    }];
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let (db, schema) = postgres_with(&url, wait).await;
            let holder = single(&url, Some(schema)).await;
            out.push(Lockable {
                label: "postgres".into(),
                db,
                holder,
                lock_sql: "BEGIN; LOCK TABLE divergences, sync_runs, audit_events, alerts, bot_trades, trade_revisions IN ACCESS EXCLUSIVE MODE",
                _dir: None,
            });
        }
        _ => SKIP_NOTICE.call_once(|| {
            let _ = writeln!(
                std::io::stderr(),
                "postgres tests skipped: DATABASE_URL not set"
            );
        }),
    }
    out
}

/// A one-connection pool (a lock must be taken and released on the same connection).
async fn single(url: &str, schema: Option<String>) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(1)
        .min_connections(1)
        .acquire_timeout(PATIENT)
        .sqlx_logging(false);
    if let Some(schema) = schema {
        options.set_schema_search_path(schema);
    }
    Database::connect(options).await.expect("holder connection")
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

/// The kinds of an account's audit events, oldest first.
pub async fn audit_kinds(db: &DatabaseConnection, account: &str) -> Vec<String> {
    store::list_audit(db, Some(account))
        .await
        .expect("audit trail")
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// A loopback TCP proxy the test owns, to take a server away without touching it: `cut`
/// closes every connection through it and refuses new ones until `restore`.
pub struct TcpProxy {
    addr: std::net::SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards to `target` (`host:port`).
    pub async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy port");
        let addr = listener.local_addr().expect("proxy address");
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (up2, conns2) = (up.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().expect("proxy connections").push(task);
            }
        });
        Self {
            addr,
            up,
            conns,
            accept,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for task in self.conns.lock().expect("proxy connections").drain(..) {
            task.abort();
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// A source of the bot's trades that always fails (a bot database that cannot be read).
pub struct BrokenTrades;

impl mt5_reconciler::broker::TradeSource for BrokenTrades {
    fn open_trades<'a>(
        &'a self,
        _account: &'a str,
    ) -> mt5_reconciler::broker::BoxFuture<
        'a,
        Result<Vec<mt5_reconciler::domain::BotTrade>, mt5_reconciler::broker::BrokerError>,
    > {
        Box::pin(async {
            Err(mt5_reconciler::broker::BrokerError::Retryable {
                reason: "bot_trades unreadable".into(),
                retry_after: None,
            })
        })
    }
}

/// A maximum-loss rule for every account: initial balance 10 000, warn at 4 %, breach at
/// 5 % (named `max-loss`).
pub fn max_loss_rule() -> mt5_reconciler::guards::config::DrawdownConfig {
    mt5_reconciler::guards::config::DrawdownConfig {
        name: "max-loss".into(),
        accounts: vec!["*".into()],
        kind: "max_loss".into(),
        reference: None,
        reset_at: None,
        time_zone: None,
        initial_balance: Some(rust_decimal::Decimal::from(10_000)),
        basis: None,
        warn: "4%".into(),
        breach: "5%".into(),
    }
}

/// Claims the pending close of alert `id` as another closer (another instance) would:
/// whether the claim was won.
pub async fn claim_elsewhere(db: &DatabaseConnection, id: &str) -> bool {
    store::transition_alert(
        db,
        id,
        &[store::AlertStatus::PendingClose],
        store::AlertStatus::Closing,
        chrono::Utc::now(),
    )
    .await
    .expect("claim")
}

/// A connection to `schema` (of PostgreSQL at `url`) that names itself `instance` as its
/// `application_name` (given in the URL, as an instance's configuration would), migrated.
/// With [`install_stale_write_probe`], every row it writes is checked against the lease
/// of the row's account.
pub async fn postgres_as(url: &str, schema: &str, instance: &str) -> DatabaseConnection {
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}application_name={instance}");
    match store::connect_with(schema_options(&url, schema)).await {
        Ok(db) => db,
        Err(e) => panic!("cannot open postgres schema {schema} as {instance}: {e}"),
    }
}

/// Tables whose rows belong to an account and must only be written by its owner.
pub const PROBED_TABLES: [&str; 7] = [
    "divergences",
    "sync_runs",
    "alerts",
    "guard_state",
    "audit_events",
    "equity_samples",
    "service_closes",
];

/// Installs, in `db`'s schema (PostgreSQL), a `stale_writes` table and triggers on
/// [`PROBED_TABLES`] that record every insert or update of a row whose account is not
/// held, unexpired, by the writing connection's `application_name` (see [`postgres_as`]).
/// Audit events of an instance's own view are exempt: every instance records the accounts
/// it supervises (`account_added`, `account_removed`) whoever owns them, and that it lost
/// a lease (`lease_lost`) after the fact. Read the table with [`stale_writes`].
pub async fn install_stale_write_probe(db: &DatabaseConnection) {
    db.execute_unprepared(
        "CREATE TABLE stale_writes ( \
           id BIGSERIAL PRIMARY KEY, table_name TEXT NOT NULL, kind TEXT, account_id TEXT NOT NULL, \
           writer TEXT NOT NULL, lease_owner TEXT, written_at TIMESTAMPTZ NOT NULL DEFAULT now()); \
         CREATE FUNCTION stale_write_probe() RETURNS trigger LANGUAGE plpgsql AS $$ \
         DECLARE holder TEXT; \
         BEGIN \
           IF NEW.account_id IS NULL THEN RETURN NEW; END IF; \
           IF TG_TABLE_NAME = 'audit_events' THEN \
             IF NEW.kind IN ('account_added', 'account_removed', 'lease_lost') THEN \
               RETURN NEW; \
             END IF; \
           END IF; \
           SELECT owner INTO holder FROM account_leases \
             WHERE account_id = NEW.account_id AND expires_at > now(); \
           IF holder IS DISTINCT FROM current_setting('application_name') THEN \
             INSERT INTO stale_writes (table_name, kind, account_id, writer, lease_owner) \
             VALUES (TG_TABLE_NAME, to_jsonb(NEW) ->> 'kind', NEW.account_id, \
                     current_setting('application_name'), holder); \
           END IF; \
           RETURN NEW; \
         END $$;",
    )
    .await
    .expect("stale write probe: table and function");
    for table in PROBED_TABLES {
        db.execute_unprepared(&format!(
            "CREATE TRIGGER stale_write_probe AFTER INSERT OR UPDATE ON {table} \
             FOR EACH ROW EXECUTE FUNCTION stale_write_probe()"
        ))
        .await
        .unwrap_or_else(|e| panic!("stale write probe on {table}: {e}"));
    }
}

/// What the probe caught: (table, account, writer, lease owner then), oldest first.
pub async fn stale_writes(
    db: &DatabaseConnection,
) -> Vec<(String, String, String, Option<String>)> {
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT table_name, account_id, writer, lease_owner FROM stale_writes ORDER BY id",
        ))
        .await
        .expect("read stale_writes");
    rows.iter()
        .map(|r| {
            (
                r.try_get("", "table_name").expect("table_name"),
                r.try_get("", "account_id").expect("account_id"),
                r.try_get("", "writer").expect("writer"),
                r.try_get("", "lease_owner").expect("lease_owner"),
            )
        })
        .collect()
}
