//! Migrations on large tables: builds the schema up to the migration before
//! `m20261203_000001_u64_tickets`, fills `divergences` and `bot_trades` with many rows by
//! bulk inserts in SQL, then applies the remaining migrations one by one while a second
//! connection keeps inserting divergences, and reports how long each migration took and
//! how the writer fared. Then it times the later copy of `ticket` into `ticket_u64` in
//! batches by key, with the writer still running.
//!
//! `cargo run --release --example migrate_large -- --rows 10000000` (both backends;
//! `--db sqlite` or `--db postgres` for one). PostgreSQL: `--postgres URL`, else
//! DATABASE_URL, else `postgres://postgres@127.0.0.1:5432/test`; the example creates a
//! database of its own (`migrate_large_<pid>`) on that server and drops it at the end.
//! SQLite: a file in a temporary directory (`--dir` to choose where), removed at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Times the migrations on large divergences and bot_trades tables")]
struct Args {
    /// Rows in each of `divergences` and `bot_trades`.
    #[arg(long, default_value_t = 10_000_000)]
    rows: u64,
    /// sqlite, postgres or both.
    #[arg(long, default_value = "both")]
    db: String,
    /// PostgreSQL server (a database is created on it and dropped afterwards).
    #[arg(long)]
    postgres: Option<String>,
    /// Directory of the SQLite file (default: a temporary directory).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Rows per batch of the copy into `ticket_u64`.
    #[arg(long, default_value_t = 10_000)]
    batch: u64,
    /// Batches of the copy to time (the full copy is extrapolated from them).
    #[arg(long, default_value_t = 20)]
    batches: u64,
    /// Pause after each batch of the copy, in milliseconds (lets other writers in).
    #[arg(long, default_value_t = 0)]
    pause_ms: u64,
}

type Res<T> = Result<T, String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The migration that adds `ticket_u64`: everything before it is set up first.
const FIRST_MEASURED: &str = "m20261203_000001_u64_tickets";
/// Rows per bulk insert statement.
const CHUNK: u64 = 1_000_000;
/// Accounts the rows are spread over.
const ACCOUNTS: u64 = 1_000;

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut failed = false;
    if matches!(args.db.as_str(), "sqlite" | "both")
        && let Err(e) = sqlite(&args).await
    {
        eprintln!("error: sqlite: {e}");
        failed = true;
    }
    if matches!(args.db.as_str(), "postgres" | "both")
        && let Err(e) = postgres(&args).await
    {
        eprintln!("error: postgres: {e}");
        failed = true;
    }
    if failed {
        std::process::exit(1);
    }
}

async fn sqlite_conn(url: &str) -> Res<DatabaseConnection> {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(1)
        .min_connections(1)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(60))
        });
    Database::connect(options).await.map_err(err)
}

async fn sqlite(args: &Args) -> Res<()> {
    let tmp = tempfile::Builder::new()
        .prefix("migrate_large")
        .tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))
        .map_err(err)?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        tmp.path().join("large.db").display()
    );
    let db = sqlite_conn(&url).await?;
    let writer = sqlite_conn(&url).await?;
    run("sqlite", &db, &writer, args).await
}

async fn postgres(args: &Args) -> Res<()> {
    let url = args
        .postgres
        .clone()
        .or_else(|| {
            std::env::var("DATABASE_URL")
                .ok()
                .filter(|u| u.starts_with("postgres"))
        })
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("migrate_large_{}", std::process::id());
    let admin = Database::connect(url.as_str()).await.map_err(err)?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .map_err(err)?;
    let (server, _) = url.rsplit_once('/').ok_or("a URL without a database")?;
    let own = format!("{server}/{name}");
    let result = async {
        let db = Database::connect(own.as_str()).await.map_err(err)?;
        let writer = Database::connect(own.as_str()).await.map_err(err)?;
        let r = run("postgres", &db, &writer, args).await;
        db.close().await.map_err(err)?;
        writer.close().await.map_err(err)?;
        r
    }
    .await;
    let dropped = admin
        .execute_unprepared(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .await;
    result.and(dropped.map(|_| ()).map_err(err))
}

/// A value of `x` in SQL text: the same expressions on both backends except these.
struct Dialect {
    account: &'static str,
    now: &'static str,
    padded_ticket: &'static str,
}

fn dialect(backend: DbBackend) -> Dialect {
    if backend == DbBackend::Postgres {
        Dialect {
            account: "'acc-' || lpad((x % 1000)::text, 4, '0')",
            now: "now()",
            padded_ticket: "lpad(ticket::text, 20, '0')",
        }
    } else {
        Dialect {
            account: "printf('acc-%04d', x % 1000)",
            now: "'2026-12-03 00:00:00+00:00'",
            padded_ticket: "printf('%020d', ticket)",
        }
    }
}

/// `SELECT … FROM` a series of `x` from `lo` to `hi` inclusive.
fn series(backend: DbBackend, lo: u64, hi: u64) -> (String, String) {
    if backend == DbBackend::Postgres {
        (
            String::new(),
            format!("generate_series({lo}, {hi}) AS g(x)"),
        )
    } else {
        (
            format!(
                "WITH RECURSIVE g(x) AS (SELECT {lo} UNION ALL SELECT x + 1 FROM g WHERE x < {hi}) "
            ),
            "g".into(),
        )
    }
}

async fn fill(db: &DatabaseConnection, rows: u64) -> Res<()> {
    let backend = db.get_database_backend();
    let d = dialect(backend);
    let (with, from) = series(backend, 0, ACCOUNTS - 1);
    db.execute_unprepared(&format!(
        "{with}INSERT INTO accounts (id, name, broker, enabled, created_at, updated_at) \
         SELECT {acc}, {acc}, 'sim', true, {now}, {now} FROM {from}",
        acc = d.account,
        now = d.now
    ))
    .await
    .map_err(err)?;
    let mut lo = 1;
    while lo <= rows {
        let hi = (lo + CHUNK - 1).min(rows);
        let (with, from) = series(backend, lo, hi);
        // A tenth open, the rest resolved: the shape of a table that has run for months.
        db.execute_unprepared(&format!(
            "{with}INSERT INTO divergences (account_id, fingerprint, kind, symbol, ticket, \
             trade_id, expected, actual, delta, unit, status, first_seen, last_seen, resolved_at) \
             SELECT {acc}, 'fp-' || x, 'entry_slippage', 'EURUSD', 1000000 + x, 't-' || x, \
             '1.10000', '1.10080', '8', 'pips', \
             CASE WHEN x % 10 = 0 THEN 'open' ELSE 'resolved' END, {now}, {now}, \
             CASE WHEN x % 10 = 0 THEN NULL ELSE {now} END FROM {from}",
            acc = d.account,
            now = d.now
        ))
        .await
        .map_err(err)?;
        db.execute_unprepared(&format!(
            "{with}INSERT INTO bot_trades (account_id, trade_id, symbol, side, volume, \
             entry_price, sl, tp, ticket, client_id, opened_at, status, closed_at) \
             SELECT {acc}, 't-' || x, 'EURUSD', 'buy', '0.10', '1.10000', '1.09000', NULL, \
             1000000 + x, 'c-' || x, {now}, \
             CASE WHEN x % 10 = 0 THEN 'open' ELSE 'closed' END, \
             CASE WHEN x % 10 = 0 THEN NULL ELSE {now} END FROM {from}",
            acc = d.account,
            now = d.now
        ))
        .await
        .map_err(err)?;
        lo = hi + 1;
    }
    if backend == DbBackend::Postgres {
        db.execute_unprepared("ANALYZE").await.map_err(err)?;
    } else {
        db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
            .await
            .map_err(err)?;
    }
    Ok(())
}

/// One insert of the concurrent writer: when it started and how long it took.
type Insert = (Instant, Duration);

/// Inserts single divergences on `db`, one statement (and transaction) at a time, until
/// `stop`; every insert's start and duration.
fn spawn_writer(
    db: DatabaseConnection,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Res<Vec<Insert>>> {
    tokio::spawn(async move {
        let now = dialect(db.get_database_backend()).now;
        let mut out = Vec::new();
        let mut k: u64 = 0;
        while !stop.load(Ordering::SeqCst) {
            k += 1;
            let t = Instant::now();
            db.execute_unprepared(&format!(
                "INSERT INTO divergences (account_id, fingerprint, kind, symbol, ticket, \
                 status, first_seen, last_seen) VALUES ('acc-0001', 'writer-{k}', \
                 'missing_at_broker', 'EURUSD', {k}, 'open', {now}, {now})"
            ))
            .await
            .map_err(err)?;
            out.push((t, t.elapsed()));
        }
        Ok(out)
    })
}

/// Inserts that ended within `from..to`, and the longest insert that overlapped it.
fn during(inserts: &[Insert], from: Instant, to: Instant) -> (usize, Duration) {
    let done = inserts
        .iter()
        .filter(|(t, d)| *t + *d >= from && *t + *d <= to)
        .count();
    let longest = inserts
        .iter()
        .filter(|(t, d)| *t <= to && *t + *d >= from)
        .map(|(_, d)| *d)
        .max()
        .unwrap_or_default();
    (done, longest)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn run(
    label: &str,
    db: &DatabaseConnection,
    writer: &DatabaseConnection,
    args: &Args,
) -> Res<()> {
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let before = names
        .iter()
        .position(|n| n == FIRST_MEASURED)
        .ok_or("the u64 tickets migration is not in the migrator")?;
    Migrator::up(db, Some(before as u32)).await.map_err(err)?;
    let t = Instant::now();
    fill(db, args.rows).await?;
    println!(
        "migrate_large db={label} rows_divergences={} rows_bot_trades={} fill_s={:.1}",
        args.rows,
        args.rows,
        t.elapsed().as_secs_f64()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let task = spawn_writer(writer.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut windows = Vec::new();
    for name in &names[before..] {
        let t = Instant::now();
        Migrator::up(db, Some(1)).await.map_err(err)?;
        windows.push((name.clone(), t, Instant::now()));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The later copy into the new column: short transactions by key range, oldest first.
    let padded = dialect(db.get_database_backend()).padded_ticket;
    let mut batch_times = Vec::new();
    let copy_from = Instant::now();
    for b in 0..args.batches {
        let lo = 1 + b * args.batch;
        let hi = lo + args.batch - 1;
        let t = Instant::now();
        db.execute_unprepared(&format!(
            "UPDATE divergences SET ticket_u64 = {padded} \
             WHERE id BETWEEN {lo} AND {hi} AND ticket IS NOT NULL AND ticket_u64 IS NULL"
        ))
        .await
        .map_err(err)?;
        batch_times.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
    }
    let copy_to = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let inserts = task.await.map_err(err)??;

    let first = windows
        .first()
        .map(|w| w.1)
        .ok_or("no migration to apply")?;
    let baseline: Vec<Duration> = inserts
        .iter()
        .filter(|(t, d)| *t + *d < first)
        .map(|(_, d)| *d)
        .collect();
    let base_max = baseline.iter().max().copied().unwrap_or_default();
    let base_mean = baseline.iter().sum::<Duration>() / baseline.len().max(1) as u32;
    println!(
        "migrate_large db={label} writer_before: inserts={} mean_ms={:.2} max_ms={:.1}",
        baseline.len(),
        ms(base_mean),
        ms(base_max)
    );
    for (name, from, to) in &windows {
        let (done, longest) = during(&inserts, *from, *to);
        println!(
            "migrate_large db={label} migration={name} took_ms={:.1} writer_inserts_completed_during={done} writer_longest_insert_overlapping_ms={:.1}",
            ms(*to - *from),
            ms(longest)
        );
    }
    let all_from = first;
    let all_to = windows.last().map_or(first, |w| w.2);
    let (done, longest) = during(&inserts, all_from, all_to);
    println!(
        "migrate_large db={label} all_remaining_migrations took_ms={:.1} writer_inserts_completed_during={done} writer_longest_insert_overlapping_ms={:.1}",
        ms(all_to - all_from),
        ms(longest)
    );
    let mean = batch_times.iter().sum::<Duration>() / batch_times.len().max(1) as u32;
    let max = batch_times.iter().max().copied().unwrap_or_default();
    let (done, longest) = during(&inserts, copy_from, copy_to);
    println!(
        "migrate_large db={label} copy_batches={} batch_rows={} pause_ms={} batch_mean_ms={:.1} batch_max_ms={:.1} full_copy_estimate_s={:.0} writer_inserts_completed_during={done} writer_longest_insert_overlapping_ms={:.1}",
        batch_times.len(),
        args.batch,
        args.pause_ms,
        ms(mean),
        ms(max),
        (mean.as_secs_f64() + args.pause_ms as f64 / 1e3) * args.rows as f64
            / args.batch.max(1) as f64,
        ms(longest)
    );
    Ok(())
}
