//! Scenario `retention`: database bytes per account per day in the steady state, with the
//! default `[retention]` ages, on SQLite (file, WAL) and PostgreSQL.
//!
//! The tree's storage actors (persistence and retention) run on a clock compressed
//! `speed` times (`Clock::following_tokio(start).with_speed(speed)`), for `days`
//! simulated days. A driver paced by that clock sends what the sync actors would send
//! for each account every 10 simulated seconds, with fixed rates so that runs compare:
//!
//! - a sync report of 20–80 ms;
//! - 1 % of syncs fail (`timeout`), each with two audit events (`backoff_started`,
//!   `circuit_closed`), as the breaker writes them;
//! - once an hour each account's divergence set changes: one divergence opens and the
//!   previous one resolves.
//!
//! At the end of every simulated day it prints the bytes in use and per table, and the
//! rows of each table.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use mt5_reconciler::actors::persistence::{Converge, PersistenceActor, PersistenceArgs};
use mt5_reconciler::actors::retention::{RetentionActor, RetentionArgs, RetentionConfig};
use mt5_reconciler::actors::{PersistMsg, PersistenceConfig};
use mt5_reconciler::clock::Clock;
use mt5_reconciler::domain::{Divergence, DivergenceKind, Side, Value};
use mt5_reconciler::store::{Aged, AuditEvent, SyncRunRecord};
use ractor::{Actor, ActorRef, OutputPort};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use crate::Args;

type Res = Result<(), String>;

/// Simulated seconds between two syncs of one account.
const INTERVAL_SECS: i64 = 10;
/// One sync in this many fails.
const FAIL_EVERY: u64 = 100;
/// Syncs per account between two changes of its divergence set (an hour).
const CHANGE_EVERY: u64 = 360;
/// Tables whose bytes are reported.
const TABLES: [&str; 7] = [
    "sync_runs",
    "sync_rollups",
    "divergences",
    "alerts",
    "audit_events",
    "dead_letters",
    "accounts",
];

/// A splitmix64 step: deterministic noise without a dependency.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn divergence(ticket: u64) -> Divergence {
    Divergence::new(
        DivergenceKind::UnexpectedAtBroker,
        "EURUSD".into(),
        Some(ticket),
        None,
        None,
        Some(Value::Side(Side::Buy)),
        None,
    )
}

/// The messages of sync `k` of account `a` at `at`.
fn sync(actor: &ActorRef<PersistMsg>, a: usize, k: u64, at: DateTime<Utc>) -> Res {
    let account = format!("load-{a:05}");
    let noise = mix(((a as u64) << 32) | k);
    let report = SyncRunRecord {
        account_id: account.clone(),
        started_at: at,
        finished_at: at + TimeDelta::milliseconds(50),
        duration: Duration::from_millis(20 + noise % 61),
        positions: 8,
        trades: 8,
        divergences_opened: 0,
        divergences_resolved: 0,
        error_class: None,
        error_message: None,
    };
    let send = |m: PersistMsg| actor.cast(m).map_err(|e| e.to_string());
    if (noise >> 8).is_multiple_of(FAIL_EVERY) {
        let mut failed = report;
        failed.error_class = Some("timeout".into());
        failed.error_message = Some("broker call timed out after 5000 ms".into());
        send(PersistMsg::Report(failed))?;
        for kind in ["backoff_started", "circuit_closed"] {
            send(PersistMsg::Audit(AuditEvent {
                at,
                account_id: Some(account.clone()),
                kind: kind.into(),
                detail: serde_json::json!({"failures": 1, "class": "timeout"}),
            }))?;
        }
        return Ok(());
    }
    // Account `a` changes its set at its own offset within the hour.
    if (k + a as u64).is_multiple_of(CHANGE_EVERY) {
        let ticket = ((a as u64) << 32) | ((k + a as u64) / CHANGE_EVERY);
        return send(PersistMsg::Converge(Box::new(Converge {
            account_id: account,
            at,
            desired: vec![divergence(ticket)],
            held: Vec::new(),
            seq: k,
            ack_to: None,
            report,
            fence: None,
        })));
    }
    send(PersistMsg::Report(report))
}

/// Bytes in use per table (SQLite: `dbstat` when compiled in), and in all.
async fn sizes(db: &DatabaseConnection) -> Result<(u64, Vec<(String, u64)>), String> {
    let backend = db.get_database_backend();
    let scalar = |sql: &str| Statement::from_string(backend, sql.to_owned());
    let query_i64 = async |sql: &str| -> Result<i64, String> {
        let row = db
            .query_one_raw(scalar(sql))
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no row")?;
        row.try_get_by_index::<i64>(0).map_err(|e| e.to_string())
    };
    let mut tables = Vec::new();
    match backend {
        DbBackend::Postgres => {
            for t in TABLES {
                let n = query_i64(&format!("SELECT pg_total_relation_size('{t}')::bigint")).await?;
                tables.push((t.to_owned(), n as u64));
            }
            let total = tables.iter().map(|(_, n)| n).sum();
            Ok((total, tables))
        }
        _ => {
            let pages = query_i64("PRAGMA page_count").await?;
            let free = query_i64("PRAGMA freelist_count").await?;
            let size = query_i64("PRAGMA page_size").await?;
            for t in TABLES {
                // Table and its indexes; dbstat is absent from some SQLite builds.
                let sql = format!(
                    "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = '{t}' \
                     OR name IN (SELECT name FROM sqlite_master WHERE tbl_name = '{t}' AND type = 'index') \
                     OR name LIKE 'sqlite_autoindex_{t}_%'"
                );
                match query_i64(&sql).await {
                    Ok(n) => tables.push((t.to_owned(), n as u64)),
                    Err(_) => break,
                }
            }
            Ok((((pages - free) * size) as u64, tables))
        }
    }
}

async fn rows(db: &DatabaseConnection, table: &str) -> Result<u64, String> {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no row")?;
    row.try_get_by_index::<i64>(0)
        .map(|n| n as u64)
        .map_err(|e| e.to_string())
}

/// How often the run vacuums PostgreSQL's tables: once a simulated hour (360 syncs of an
/// account). Autovacuum's own pace is real time (a look every minute), so at 2,880 times
/// real speed it would see a simulated day every 30 s and let the dead row versions of
/// updated rollups and `last_seen` pile up as they never do on a real clock; a plain
/// VACUUM every simulated hour stands in for it, and is less often than autovacuum
/// would come by in an hour of real time.
const VACUUM_EVERY_SYNCS: u64 = 3_600 / INTERVAL_SECS as u64;

/// A plain `VACUUM` (no lock against writers) of the tables the run writes.
async fn vacuum(db: &DatabaseConnection) -> Res {
    db.execute_unprepared(
        "VACUUM sync_runs, sync_rollups, divergences, audit_events, alerts, dead_letters",
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("vacuum: {e}"))
}

/// One backend: `days` simulated days of `accounts` accounts.
async fn footprint_on(label: &str, db: DatabaseConnection, args: &Args) -> Res {
    let postgres = db.get_database_backend() == sea_orm::DbBackend::Postgres;
    let accounts = args.accounts.unwrap_or(if args.smoke { 20 } else { 100 });
    let (days, speed) = if args.smoke { (2, 86_400) } else { (8, 2_880) };
    let start: DateTime<Utc> = "2026-12-03T00:00:00Z".parse().map_err(|e| format!("{e}"))?;
    let clock = Clock::following_tokio(start).with_speed(speed);
    let retention = RetentionConfig {
        // A pass every simulated 48 minutes at speed 2,880 (every 300 s of real time
        // would be 10 simulated days).
        interval_secs: 1,
        ..RetentionConfig::default()
    };
    let pargs = PersistenceArgs {
        db: db.clone(),
        config: PersistenceConfig::default(),
        events: Arc::new(OutputPort::default()),
        clock,
        fenced: Default::default(),
    };
    let (persist, persist_handle) = Actor::spawn(None, PersistenceActor, pargs)
        .await
        .map_err(|e| e.to_string())?;
    let rargs = RetentionArgs {
        db: db.clone(),
        config: retention.clone(),
        clock,
    };
    let (pruner, pruner_handle) = Actor::spawn(None, RetentionActor, rargs)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "retention backend={label} accounts={accounts} days={days} speed={speed} interval_s={INTERVAL_SECS} fail_every={FAIL_EVERY} change_every_syncs={CHANGE_EVERY} ages_days=sync_runs:{} rollups:{} resolved:{} alerts:{} audit:{} dead_letters:{}",
        retention.sync_runs_days,
        retention.sync_rollups_days,
        retention.resolved_divergences_days,
        retention.alerts_days,
        retention.audit_events_days,
        retention.dead_letters_days,
    );
    let per_day = (86_400 / INTERVAL_SECS) as u64;
    let mut k: u64 = 0;
    let mut max_lag = TimeDelta::zero();
    let mut previous: Option<u64> = None;
    for day in 1..=days {
        while k < per_day * day {
            let at = start + TimeDelta::seconds(INTERVAL_SECS * k as i64);
            let now = clock.now();
            if at > now {
                let wait = (at - now).to_std().unwrap_or_default() / speed;
                tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
                continue;
            }
            max_lag = max_lag.max(now - at);
            for a in 0..accounts {
                sync(&persist, a, k, at)?;
            }
            k += 1;
            if postgres && k.is_multiple_of(VACUUM_EVERY_SYNCS) {
                vacuum(&db).await?;
            }
        }
        // Everything of the day durable (rollups included), then measured.
        persist
            .call(PersistMsg::Flush, Some(Duration::from_secs(600)))
            .await
            .map_err(|e| e.to_string())?
            .success_or("flush timed out")?
            .map_err(|e| e.to_string())?;
        let (total, tables) = sizes(&db).await?;
        let mut counts = Vec::new();
        for t in Aged::ALL {
            counts.push(rows(&db, t.table()).await?);
        }
        let per_account = total as f64 / accounts as f64;
        let growth = previous
            .as_ref()
            .map(|b| (total as f64 - *b as f64) / accounts as f64);
        let table_text: Vec<String> = tables
            .iter()
            .map(|(t, n)| format!("{t}:{:.0}", *n as f64 / accounts as f64))
            .collect();
        let row_text: Vec<String> = Aged::ALL
            .iter()
            .zip(&counts)
            .map(|(t, n)| format!("{}:{n}", t.table()))
            .collect();
        println!(
            "retention backend={label} day={day} bytes_per_account={per_account:.0} growth_per_account_day={} tables_bytes_per_account={} rows={} clock_lag_s={}",
            growth.map_or("-".into(), |g| format!("{g:.0}")),
            if table_text.is_empty() {
                "n/a".into()
            } else {
                table_text.join(",")
            },
            row_text.join(","),
            max_lag.num_seconds(),
        );
        previous = Some(total);
    }
    if let Some(total) = previous {
        let per_account = total as f64 / accounts as f64;
        println!(
            "retention backend={label} steady_bytes_per_account={per_account:.0} target<=1048576 {}",
            crate::measure::verdict(per_account <= 1_048_576.0)
        );
    }
    pruner.stop(None);
    persist.stop(None);
    let _ = pruner_handle.await;
    let _ = persist_handle.await;
    Ok(())
}

/// 8. Bytes per account per day with the default retention, SQLite then PostgreSQL.
pub async fn retention_footprint(args: &Args) -> Res {
    let (db, _dir) = crate::scenarios::sqlite_file().await?;
    footprint_on("sqlite", db, args).await?;
    match crate::scenarios::postgres_schema(args).await? {
        Some((db, admin, schema)) => {
            let result = footprint_on("postgres", db, args).await;
            let _ = admin
                .execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                .await;
            result
        }
        None => Ok(()),
    }
}
