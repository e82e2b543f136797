//! Retention and rollups on SQLite and on PostgreSQL when DATABASE_URL is set: what the
//! persistence actor keeps as raw sync rows and folds into hourly rollups, and what the
//! retention actor deletes (exactly what is past its age, in bounded batches).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use mt5_reconciler::actors::PersistenceConfig;
use mt5_reconciler::actors::persistence::{
    Converge, PersistMsg, PersistenceActor, PersistenceArgs,
};
use mt5_reconciler::actors::retention::{
    PassSummary, RetentionActor, RetentionArgs, RetentionConfig, RetentionMsg,
};
use mt5_reconciler::clock::Clock;
use mt5_reconciler::domain::{Divergence, DivergenceKind, Side, Value};
use mt5_reconciler::guards::AlertStatus;
use mt5_reconciler::store::{
    self, Aged, AlertRecord, AuditEvent, DeadLetter, SyncRollup, SyncRunRecord,
};
use ractor::{ActorRef, OutputPort};
use sea_orm::{DatabaseConnection, EntityTrait};

use crate::common;

/// The "now" of every test here.
fn now() -> DateTime<Utc> {
    "2026-12-03T12:00:00Z".parse().unwrap_or_default()
}

fn days_ago(days: i64) -> DateTime<Utc> {
    now() - TimeDelta::days(days)
}

fn run(account: &str, at: DateTime<Utc>, ms: u64, class: Option<&str>) -> SyncRunRecord {
    SyncRunRecord {
        duration: Duration::from_millis(ms),
        positions: 1,
        trades: 1,
        error_class: class.map(str::to_owned),
        error_message: class.map(|c| format!("{c} at {at}")),
        ..SyncRunRecord::begun(account, at)
    }
}

fn unexpected(ticket: u64) -> Divergence {
    Divergence::new(
        DivergenceKind::UnexpectedAtBroker,
        "EURUSD".to_owned(),
        Some(ticket),
        None,
        None,
        Some(Value::Side(Side::Buy)),
        None,
    )
}

async fn persistence(db: &DatabaseConnection) -> ActorRef<PersistMsg> {
    let args = PersistenceArgs {
        db: db.clone(),
        config: PersistenceConfig::default(),
        events: Arc::new(OutputPort::default()),
        clock: Clock::following_tokio(now()),
        fenced: Default::default(),
    };
    let (actor, _) = ractor::Actor::spawn(None, PersistenceActor, args)
        .await
        .expect("persistence starts");
    actor
}

async fn flush(actor: &ActorRef<PersistMsg>) {
    actor
        .call(PersistMsg::Flush, Some(Duration::from_secs(120)))
        .await
        .expect("flush call")
        .success_or("flush timed out".to_owned())
        .expect("flush reply")
        .expect("flushed");
}

/// Rows of `table`.
async fn rows(db: &DatabaseConnection, table: &str) -> u64 {
    use sea_orm::{ConnectionTrait, Statement};
    let sql = format!("SELECT COUNT(*) AS n FROM {table}");
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("count")
        .expect("a row");
    let n: i64 = row.try_get("", "n").expect("n");
    n as u64
}

#[tokio::test]
async fn only_failures_and_changes_stay_rows_and_every_sync_counts_in_its_hour() {
    for (label, db) in common::databases().await {
        let actor = persistence(&db).await;
        let hour = now() - TimeDelta::minutes(30);
        // 97 quiet syncs of 10 to 106 ms, two failures, one sync that opens a divergence.
        for i in 0..97 {
            actor
                .cast(PersistMsg::Report(run("acc-1", hour, 10 + i, None)))
                .unwrap();
        }
        actor
            .cast(PersistMsg::Report(run(
                "acc-1",
                hour,
                5_000,
                Some("timeout"),
            )))
            .unwrap();
        actor
            .cast(PersistMsg::Report(run("acc-1", hour, 3, Some("crash"))))
            .unwrap();
        actor
            .cast(PersistMsg::Converge(Box::new(Converge {
                account_id: "acc-1".to_owned(),
                at: hour,
                desired: vec![unexpected(7)],
                held: Vec::new(),
                seq: 1,
                ack_to: None,
                report: run("acc-1", hour, 40, None),
                fence: None,
            })))
            .unwrap();
        // The previous hour: one quiet sync.
        actor
            .cast(PersistMsg::Report(run(
                "acc-1",
                hour - TimeDelta::hours(1),
                8,
                None,
            )))
            .unwrap();
        flush(&actor).await;

        let raw = store::entities::sync_run::Entity::find()
            .all(&db)
            .await
            .unwrap();
        let mut kept: Vec<(Option<&str>, i32)> = raw
            .iter()
            .map(|r| (r.error_class.as_deref(), r.divergences_opened))
            .collect();
        kept.sort();
        assert_eq!(
            kept,
            [(None, 1), (Some("crash"), 0), (Some("timeout"), 0)],
            "{label}: failures and the change only"
        );

        let rollups = store::list_rollups(&db, Some("acc-1")).await.unwrap();
        assert_eq!(rollups.len(), 2, "{label}: one row per hour");
        let r = &rollups[1];
        assert_eq!(r.hour, store::hour_of(hour), "{label}");
        assert_eq!(r.syncs, 100, "{label}");
        assert_eq!((r.failed("timeout"), r.failed("crash")), (1, 1), "{label}");
        assert_eq!(r.failed_total(), 2, "{label}");
        assert_eq!(r.buckets.iter().sum::<u64>(), 100, "{label}");
        assert_eq!(r.max_ms, 5_000, "{label}");
        assert_eq!(
            r.p50(),
            Some(100),
            "{label}: the 50th is 57 ms, in (50, 100]"
        );
        assert_eq!(
            r.p99(),
            Some(200),
            "{label}: the 99th is 106 ms, in (100, 200]"
        );
        assert_eq!(r.percentile(1.0), Some(5_000), "{label}");
        assert_eq!(rollups[0].syncs, 1, "{label}");
        actor.stop(None);
    }
}

#[tokio::test]
async fn two_rollups_of_one_hour_merge_by_adding_their_buckets() {
    for (label, db) in common::databases().await {
        let hour = store::hour_of(now());
        let mut first = SyncRollup::new("acc-1", hour);
        for ms in [4, 4, 30, 900] {
            first.observe(&run("acc-1", hour, ms, None));
        }
        let mut second = SyncRollup::new("acc-1", hour);
        for ms in [4, 12_000] {
            second.observe(&run("acc-1", hour, ms, Some("retryable")));
        }
        // One instance, then another (or a replay) writing the same hour.
        store::add_rollups(&db, std::slice::from_ref(&first))
            .await
            .unwrap();
        store::add_rollups(&db, std::slice::from_ref(&second))
            .await
            .unwrap();
        // And two of the same key in one write.
        store::add_rollups(&db, &[first.clone(), first.clone()])
            .await
            .unwrap();

        let mut want = first.clone();
        want.merge(&second);
        want.merge(&first);
        want.merge(&first);
        let stored = store::list_rollups(&db, None).await.unwrap();
        assert_eq!(stored, [want.clone()], "{label}");
        assert_eq!(want.syncs, 14, "{label}");
        assert_eq!(want.buckets[2], 7, "{label}: 4 ms, 7 times, in (2, 5]");
        assert_eq!(want.max_ms, 12_000, "{label}");
        assert_eq!(want.p99(), Some(12_000), "{label}: capped by the maximum");
        assert_eq!(want.failed("retryable"), 2, "{label}");
    }
}

/// Rows on both sides of every age of the default configuration, dated from [`now`].
async fn aged_rows(db: &DatabaseConnection) {
    let mut runs: Vec<SyncRunRecord> = (0..10)
        .map(|i| {
            run(
                "acc-1",
                days_ago(8) + TimeDelta::seconds(i),
                5,
                Some("timeout"),
            )
        })
        .collect();
    runs.push(run("acc-1", days_ago(6), 5, Some("timeout")));
    runs.push(run("acc-1", days_ago(6), 5, Some("crash")));
    store::record_sync_runs(db, &runs).await.unwrap();

    let rollups = [
        SyncRollup::new("acc-1", days_ago(402)),
        SyncRollup::new("acc-2", days_ago(402)),
        SyncRollup::new("acc-1", days_ago(399)),
    ];
    store::add_rollups(db, &rollups).await.unwrap();

    // Two divergences resolved 91 days ago, one 89 days ago, one open for 500 days.
    store::converge(
        db,
        "acc-1",
        days_ago(500),
        &[unexpected(1), unexpected(2), unexpected(3), unexpected(4)],
    )
    .await
    .unwrap();
    store::converge(db, "acc-1", days_ago(91), &[unexpected(3), unexpected(4)])
        .await
        .unwrap();
    store::converge(db, "acc-1", days_ago(89), &[unexpected(4)])
        .await
        .unwrap();

    for (i, status) in AlertStatus::ALL.into_iter().enumerate() {
        insert_alert(db, &format!("old-{i}"), status, days_ago(401)).await;
    }
    insert_alert(db, "recent-ended", AlertStatus::Ended, days_ago(10)).await;

    let events: Vec<AuditEvent> = [401, 401, 1]
        .into_iter()
        .map(|d| AuditEvent {
            at: days_ago(d),
            account_id: Some("acc-1".to_owned()),
            kind: "probe".to_owned(),
            detail: serde_json::json!({ "days_ago": d }),
        })
        .collect();
    store::append_audits(db, &events).await.unwrap();

    let letters: Vec<DeadLetter> = [401, 2]
        .into_iter()
        .map(|d| {
            let event = AuditEvent {
                at: days_ago(d),
                account_id: Some("acc-1".to_owned()),
                kind: format!("refused-{d}"),
                detail: serde_json::json!({}),
            };
            DeadLetter::audit(&event, "refused", days_ago(d))
        })
        .collect();
    store::record_dead_letters(db, &letters).await.unwrap();
    // Equity samples: two past the 30 days, one within.
    for days in [31, 40, 29] {
        let sample = store::EquitySample {
            account_id: "acc-1".into(),
            at: days_ago(days),
            equity: rust_decimal::dec!(1000),
            balance: rust_decimal::dec!(1000),
            reference: None,
            warn_equity: None,
            breach_equity: None,
        };
        store::record_equity_sample(db, &sample).await.unwrap();
    }
}

async fn insert_alert(db: &DatabaseConnection, id: &str, status: AlertStatus, at: DateTime<Utc>) {
    let alert = AlertRecord {
        id: id.to_owned(),
        account_id: "acc-1".to_owned(),
        kind: "breach".to_owned(),
        rule: "daily".to_owned(),
        loss: None,
        reference: None,
        message: "a breach".to_owned(),
        close_at: None,
        status,
        created_at: at,
    };
    assert!(store::insert_alert(db, &alert).await.unwrap());
}

/// Starts a retention actor at [`now`] and waits (bounded) for its first pass.
async fn one_pass(db: &DatabaseConnection, config: RetentionConfig) -> PassSummary {
    let args = RetentionArgs {
        db: db.clone(),
        config,
        clock: Clock::following_tokio(now()),
    };
    let (actor, handle) = ractor::Actor::spawn(None, RetentionActor, args)
        .await
        .expect("retention starts");
    let mut summary = None;
    // A guard against hanging only: the pass usually ends within milliseconds.
    for _ in 0..3_000 {
        summary = actor
            .call(RetentionMsg::LastPass, Some(Duration::from_secs(10)))
            .await
            .expect("last pass call")
            .success_or(())
            .expect("reply");
        if summary.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    actor.stop(None);
    handle.await.expect("retention stops");
    summary.expect("a pass finished")
}

#[tokio::test]
async fn a_pass_removes_exactly_what_is_past_its_age_in_bounded_batches() {
    for (label, db) in common::databases().await {
        aged_rows(&db).await;
        let config = RetentionConfig {
            batch_size: 3,
            batch_pause_ms: 0,
            ..RetentionConfig::default()
        };
        let summary = one_pass(&db, config).await;
        let removed: Vec<(Aged, u64)> = summary.removed.clone();
        assert_eq!(
            removed,
            [
                (Aged::SyncRuns, 10),
                (Aged::SyncRollups, 2),
                (Aged::ResolvedDivergences, 2),
                (Aged::Alerts, 3),
                (Aged::AuditEvents, 2),
                (Aged::DeadLetters, 1),
                (Aged::EquitySamples, 2),
            ],
            "{label}"
        );
        // At most 3 rows per statement, and one more that finds fewer to end a table.
        let want: u64 = removed.iter().map(|(_, n)| n / 3 + 1).sum();
        assert_eq!(summary.statements, want, "{label}");

        assert_eq!(rows(&db, "sync_runs").await, 2, "{label}");
        assert_eq!(rows(&db, "sync_rollups").await, 1, "{label}");
        let divergences = store::list_divergences(&db, "acc-1", None).await.unwrap();
        let mut left: Vec<(u64, String)> = divergences
            .iter()
            .map(|d| (d.divergence.ticket.unwrap_or(0), d.status.to_string()))
            .collect();
        left.sort();
        assert_eq!(
            left,
            [(3, "resolved".to_owned()), (4, "open".to_owned())],
            "{label}: the open one stays, however old"
        );
        let mut alerts: Vec<String> = store::list_alerts(&db, None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        alerts.sort();
        let mut want_alerts: Vec<String> = AlertStatus::ALL
            .into_iter()
            .enumerate()
            .filter(|(_, s)| s.enforcing())
            .map(|(i, _)| format!("old-{i}"))
            .collect();
        want_alerts.push("recent-ended".to_owned());
        want_alerts.sort();
        assert_eq!(alerts, want_alerts, "{label}: enforcing alerts stay");
        assert_eq!(rows(&db, "audit_events").await, 1, "{label}");
        assert_eq!(rows(&db, "dead_letters").await, 1, "{label}");
        assert_eq!(rows(&db, "equity_samples").await, 1, "{label}");
    }
}

#[tokio::test]
async fn a_batch_never_deletes_more_than_its_limit() {
    for (label, db) in common::databases().await {
        aged_rows(&db).await;
        let mut removed = Vec::new();
        loop {
            let n = store::prune_batch(&db, Aged::SyncRuns, days_ago(7), 4)
                .await
                .unwrap();
            removed.push(n);
            if n < 4 {
                break;
            }
        }
        assert_eq!(removed, [4, 4, 2], "{label}");
    }
}

#[tokio::test]
async fn zero_keeps_rows_forever() {
    for (label, db) in common::databases().await {
        aged_rows(&db).await;
        let before: Vec<u64> = table_counts(&db).await;
        let summary = one_pass(&db, RetentionConfig::forever()).await;
        assert!(summary.removed.is_empty(), "{label}: {summary:?}");
        assert_eq!(summary.statements, 0, "{label}");
        assert_eq!(table_counts(&db).await, before, "{label}");

        // Forever for one kind only.
        let config = RetentionConfig {
            audit_events_days: 0,
            batch_pause_ms: 0,
            ..RetentionConfig::default()
        };
        let summary = one_pass(&db, config).await;
        assert_eq!(summary.removed_from(Aged::AuditEvents), 0, "{label}");
        assert_eq!(summary.removed_from(Aged::SyncRuns), 10, "{label}");
        assert_eq!(rows(&db, "audit_events").await, 3, "{label}");
    }
}

async fn table_counts(db: &DatabaseConnection) -> Vec<u64> {
    let mut out = Vec::new();
    for table in Aged::ALL {
        out.push(rows(db, table.table()).await);
    }
    out
}
