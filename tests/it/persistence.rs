//! The PersistenceActor driven directly with messages: what it stores, on SQLite and on
//! PostgreSQL when DATABASE_URL is set.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use mt5_reconciler::actors::PersistenceConfig;
use mt5_reconciler::actors::persistence::{
    Converge, PersistMsg, PersistenceActor, PersistenceArgs,
};
use mt5_reconciler::domain::{Divergence, DivergenceKind, Side, Value};
use mt5_reconciler::store::{self, SyncRunRecord};
use ractor::{ActorRef, OutputPort};
use sea_orm::DatabaseConnection;

use crate::common;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_795_000_000 + secs, 0)
        .single()
        .unwrap_or_default()
}

/// A PersistenceActor over `db` with the default settings.
async fn spawn(db: &DatabaseConnection) -> ActorRef<PersistMsg> {
    spawn_with(db, PersistenceConfig::default()).await
}

async fn spawn_with(db: &DatabaseConnection, config: PersistenceConfig) -> ActorRef<PersistMsg> {
    let args = PersistenceArgs {
        db: db.clone(),
        config,
        events: Arc::new(OutputPort::default()),
        clock: mt5_reconciler::clock::Clock::real(),
        fenced: Default::default(),
    };
    let (actor, _) = ractor::Actor::spawn(None, PersistenceActor, args)
        .await
        .expect("persistence starts");
    actor
}

/// Asks the actor to write everything now.
async fn flush(actor: &ActorRef<PersistMsg>) -> Result<(), String> {
    actor
        .call(PersistMsg::Flush, Some(Duration::from_secs(600)))
        .await
        .expect("flush call")
        .success_or("flush timed out".to_owned())
        .expect("flush reply")
}

fn report(account: &str, at: DateTime<Utc>) -> SyncRunRecord {
    SyncRunRecord {
        duration: Duration::from_millis(5),
        positions: 1,
        ..SyncRunRecord::begun(account, at)
    }
}

/// A position at the broker that the bot does not know.
fn unexpected(symbol: &str, ticket: u64) -> Divergence {
    Divergence::new(
        DivergenceKind::UnexpectedAtBroker,
        symbol.to_owned(),
        Some(ticket),
        None,
        None,
        Some(Value::Side(Side::Buy)),
        None,
    )
}

fn converge(account: &str, at: DateTime<Utc>, desired: Vec<Divergence>) -> PersistMsg {
    PersistMsg::Converge(Box::new(Converge {
        account_id: account.to_owned(),
        at,
        desired,
        held: Vec::new(),
        seq: 1,
        ack_to: None,
        report: report(account, at),
        fence: None,
    }))
}

#[tokio::test]
async fn a_ticket_above_i64_max_is_stored_exactly_alongside_other_accounts() {
    let big = 1u64 << 63;
    for (label, db) in common::databases().await {
        let actor = spawn(&db).await;
        actor
            .cast(converge("acc-big", t(1), vec![unexpected("EURUSD", big)]))
            .unwrap();
        for i in 0..3 {
            let account = format!("acc-{i}");
            actor
                .cast(converge(
                    &account,
                    t(1),
                    vec![unexpected("GBPUSD", 1_000 + i)],
                ))
                .unwrap();
        }
        flush(&actor)
            .await
            .unwrap_or_else(|e| panic!("{label}: flush failed: {e}"));
        let stored = store::open_divergences(&db, "acc-big").await.unwrap();
        assert_eq!(stored.len(), 1, "{label}");
        assert_eq!(stored[0].divergence.ticket, Some(big), "{label}");
        for i in 0..3 {
            let rows = store::open_divergences(&db, &format!("acc-{i}"))
                .await
                .unwrap();
            assert_eq!(rows.len(), 1, "{label}: acc-{i}");
        }
        actor.stop(None);
    }
}

#[tokio::test]
async fn a_sync_that_changes_nothing_still_moves_last_seen_and_a_failed_one_does_not() {
    for (label, db) in common::databases().await {
        let actor = spawn(&db).await;
        actor
            .cast(converge("acc-1", t(0), vec![unexpected("EURUSD", 11)]))
            .unwrap();
        flush(&actor).await.unwrap();
        // The unchanged syncs that follow send only their reports.
        actor
            .cast(PersistMsg::Report(report("acc-1", t(120))))
            .unwrap();
        flush(&actor).await.unwrap();
        let mut failed = report("acc-1", t(300));
        failed.error_class = Some("timeout".to_owned());
        failed.error_message = Some("no snapshot within 5s".to_owned());
        actor.cast(PersistMsg::Report(failed)).unwrap();
        flush(&actor).await.unwrap();
        let open = store::open_divergences(&db, "acc-1").await.unwrap();
        assert_eq!(
            (open[0].first_seen, open[0].last_seen),
            (t(0), t(120)),
            "{label}"
        );

        // Gone at the next good sync: resolved then, last seen before.
        actor.cast(converge("acc-1", t(400), vec![])).unwrap();
        flush(&actor).await.unwrap();
        let rows = store::list_divergences(&db, "acc-1", None).await.unwrap();
        assert_eq!(
            (rows[0].last_seen, rows[0].resolved_at),
            (t(120), Some(t(400))),
            "{label}"
        );
        actor.stop(None);
    }
}

fn audit(account: &str, kind: &str, at: DateTime<Utc>) -> PersistMsg {
    PersistMsg::Audit(store::AuditEvent {
        at,
        account_id: Some(account.to_owned()),
        kind: kind.to_owned(),
        detail: serde_json::json!({ "n": 1 }),
    })
}

/// What one poisoned flush sends: five healthy accounts, an account with one storable
/// and one refused divergence (PostgreSQL refuses U+0000 in text), a sync report whose
/// count is beyond `INTEGER`, and (on PostgreSQL) an audit event the database refuses.
fn poisoned_batch(actor: &ActorRef<PersistMsg>, postgres: bool, at: DateTime<Utc>) {
    for i in 0..5 {
        let account = format!("acc-{i}");
        actor
            .cast(converge(
                &account,
                at,
                vec![unexpected("GBPUSD", 1_000 + i)],
            ))
            .unwrap();
        actor.cast(audit(&account, "probe", at)).unwrap();
    }
    let mut desired = vec![unexpected("USDJPY", 77)];
    if postgres {
        desired.push(unexpected("EUR\u{0}USD", 78));
    }
    actor.cast(converge("acc-poison", at, desired)).unwrap();
    // A failed sync (kept as a row) whose count does not fit; the next one only counts.
    let mut huge = report("acc-huge", at);
    huge.positions = usize::MAX;
    huge.error_class = Some("retryable".into());
    huge.error_message = Some("broker busy".into());
    actor.cast(PersistMsg::Report(huge)).unwrap();
    actor
        .cast(PersistMsg::Report(report("acc-huge", at)))
        .unwrap();
    if postgres {
        actor.cast(audit("acc-poison", "bad\u{0}kind", at)).unwrap();
    }
}

#[tokio::test]
async fn rows_the_database_refuses_go_to_dead_letters_once_and_never_block_other_accounts() {
    for (label, db) in common::databases().await {
        let postgres = label == "postgres";
        let actor = spawn(&db).await;
        poisoned_batch(&actor, postgres, t(1));
        flush(&actor)
            .await
            .unwrap_or_else(|e| panic!("{label}: flush failed: {e}"));

        for i in 0..5 {
            let account = format!("acc-{i}");
            let open = store::open_divergences(&db, &account).await.unwrap();
            assert_eq!(open.len(), 1, "{label}: {account}");
            assert_eq!(
                common::audit_kinds(&db, &account).await,
                ["probe"],
                "{label}: {account}"
            );
        }
        let open = store::open_divergences(&db, "acc-poison").await.unwrap();
        assert_eq!(open.len(), 1, "{label}: the storable divergence is stored");
        assert_eq!(open[0].divergence.symbol, "USDJPY", "{label}");

        let runs = sync_runs(&db).await;
        let poison_run = runs
            .iter()
            .find(|r| r.account_id == "acc-poison")
            .expect("a report for the poisoned account");
        let huge_runs: Vec<_> = runs.iter().filter(|r| r.account_id == "acc-huge").collect();
        assert_eq!(
            huge_runs.len(),
            1,
            "{label}: the failed sync stands as a bare row, the other is only counted"
        );
        let counted: u64 = store::list_rollups(&db, Some("acc-huge"))
            .await
            .unwrap()
            .iter()
            .map(|r| r.syncs)
            .sum();
        assert_eq!(counted, 2, "{label}: both of acc-huge's syncs are counted");
        let marked = huge_runs
            .iter()
            .find(|r| r.error_class.is_some())
            .expect("the refused report is marked");
        assert_eq!(marked.error_class.as_deref(), Some("malformed"), "{label}");
        let message = marked.error_message.clone().unwrap_or_default();
        assert!(
            message.contains("sync_runs.positions") && message.contains(&usize::MAX.to_string()),
            "{label}: {message}"
        );
        if postgres {
            assert_eq!(
                poison_run.error_class.as_deref(),
                Some("malformed"),
                "{label}"
            );
            let message = poison_run.error_message.clone().unwrap_or_default();
            assert!(
                message.contains("divergences.symbol") && message.contains(r#""EUR\0USD""#),
                "{label}: {message}"
            );
        } else {
            assert_eq!(poison_run.error_class, None, "{label}");
        }

        let letters = store::list_dead_letters(&db).await.unwrap();
        let mut kinds: Vec<(&str, &str)> = letters
            .iter()
            .map(|l| (l.account_id.as_deref().unwrap_or(""), l.kind.as_str()))
            .collect();
        kinds.sort();
        let mut want = vec![("acc-huge", "sync_run")];
        if postgres {
            want.extend([("acc-poison", "audit_event"), ("acc-poison", "divergence")]);
        }
        want.sort();
        assert_eq!(kinds, want, "{label}: {letters:#?}");
        assert!(letters.iter().all(|l| l.count == 1), "{label}");

        // The same poison again, as a sender re-sends it every sync: no new row.
        poisoned_batch(&actor, postgres, t(2));
        flush(&actor)
            .await
            .unwrap_or_else(|e| panic!("{label}: second flush failed: {e}"));
        let again = store::list_dead_letters(&db).await.unwrap();
        assert_eq!(again.len(), letters.len(), "{label}: de-duplicated");
        assert!(again.iter().all(|l| l.count == 2), "{label}: {again:#?}");
        assert!(
            again.iter().all(|l| l.last_seen > l.first_seen),
            "{label}: {again:#?}"
        );
        actor.stop(None);
    }
}

async fn sync_runs(db: &DatabaseConnection) -> Vec<store::entities::sync_run::Model> {
    use sea_orm::EntityTrait;
    store::entities::sync_run::Entity::find()
        .all(db)
        .await
        .expect("sync runs")
}

/// How a test takes the database away: an exclusive SQLite lock, or a cut proxy in front
/// of PostgreSQL (the shared server itself is never touched).
enum Outage {
    Locked(common::Lockable),
    Proxied(common::TcpProxy, DatabaseConnection),
}

impl Outage {
    async fn all() -> Vec<Outage> {
        let mut out = Vec::new();
        for db in common::lockable_databases().await {
            if db.label == "sqlite" {
                out.push(Outage::Locked(db));
            }
        }
        if let Ok(url) = std::env::var("DATABASE_URL")
            && !url.is_empty()
        {
            let proxy = common::TcpProxy::start(common::postgres_addr(&url)).await;
            let db = common::postgres_through(&url, &proxy).await;
            out.push(Outage::Proxied(proxy, db));
        }
        out
    }

    fn label(&self) -> &'static str {
        match self {
            Outage::Locked(_) => "sqlite",
            Outage::Proxied(..) => "postgres",
        }
    }

    fn db(&self) -> &DatabaseConnection {
        match self {
            Outage::Locked(l) => &l.db,
            Outage::Proxied(_, db) => db,
        }
    }

    async fn begin(&self) {
        match self {
            Outage::Locked(l) => l.lock().await,
            Outage::Proxied(p, _) => p.cut(),
        }
    }

    async fn end(&self) {
        match self {
            Outage::Locked(l) => l.unlock().await,
            Outage::Proxied(p, _) => p.restore(),
        }
    }
}

async fn stats(actor: &ActorRef<PersistMsg>) -> mt5_reconciler::actors::status::PersistenceStats {
    actor
        .call(PersistMsg::Stats, Some(Duration::from_secs(600)))
        .await
        .expect("stats call")
        .success_or(())
        .expect("stats reply")
}

/// How many syncs a stored report stands for ("folded N syncs …", else one).
fn syncs_in(run: &store::entities::sync_run::Model) -> u64 {
    run.error_message
        .as_deref()
        .and_then(|m| m.strip_prefix("folded "))
        .and_then(|m| m.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

#[tokio::test]
async fn six_hundred_ticks_without_a_database_keep_the_buffer_bounded_and_lose_nothing() {
    const ACCOUNTS: u64 = 1_000;
    const TICKS: u64 = 600;
    let config = PersistenceConfig {
        batch_size: 1_000,
        flush_interval_ms: 50,
        // No retry during the outage: the test counts ticks, not time.
        retry_min_ms: 3_600_000,
        retry_max_ms: 3_600_000,
        max_buffered_reports: 5_000,
        max_buffered_audits: 2_000,
    };
    for outage in Outage::all().await {
        let label = outage.label();
        let db = outage.db().clone();
        let actor = spawn_with(&db, config.clone()).await;
        outage.begin().await;

        let (mut failed_reports, mut transitions, mut closes) = (0u64, 0u64, 0u64);
        let mut largest = 0;
        for tick in 0..TICKS {
            let at = t(tick as i64);
            for a in 0..ACCOUNTS {
                let account = format!("acc-{a}");
                // The state changes every tick: only the latest may be kept.
                let desired = vec![unexpected("EURUSD", a * 10 + tick % 2)];
                actor.cast(converge(&account, at, desired)).unwrap();
                if a % 7 == 0 {
                    let mut failed = report(&account, at);
                    failed.error_class = Some("timeout".into());
                    failed.error_message = Some(format!("no snapshot at tick {tick}"));
                    actor.cast(PersistMsg::Report(failed)).unwrap();
                    failed_reports += 1;
                }
                if a % 10 == 0 {
                    actor.cast(audit(&account, "backoff_started", at)).unwrap();
                    transitions += 1;
                }
            }
            if tick % 100 == 0 {
                actor.cast(audit("acc-0", "close_attempt", at)).unwrap();
                closes += 1;
            }
            if tick % 50 == 49 {
                let s = stats(&actor).await;
                let b = s.buffer;
                assert!(s.retrying, "{label}: tick {tick}: the database is away");
                assert!(b.converges <= ACCOUNTS as usize, "{label}: {b:?}");
                assert!(b.reports <= 5_000, "{label}: {b:?}");
                assert!(b.folded_reports <= 2 * ACCOUNTS as usize, "{label}: {b:?}");
                assert!(b.audits <= 2_000 + closes as usize, "{label}: {b:?}");
                assert!(b.folded_audits <= ACCOUNTS as usize / 10, "{label}: {b:?}");
                assert_eq!(s.queued, b.total(), "{label}");
                largest = largest.max(s.queued);
            }
        }
        assert!(
            largest < 12_000,
            "{label}: at most {largest} items buffered"
        );

        outage.end().await;
        let before = stats(&actor).await;
        flush(&actor)
            .await
            .unwrap_or_else(|e| panic!("{label}: flush after the outage: {e}"));
        let after = stats(&actor).await;
        assert_eq!(after.queued, 0, "{label}");
        let transactions = after.flush_duration.count - before.flush_duration.count;
        assert!(
            transactions as usize >= before.queued.div_ceil(1_000) && transactions >= 2,
            "{label}: {} items replayed in {transactions} transactions",
            before.queued
        );

        // Every account's latest state, once.
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let open = store::entities::divergence::Entity::find()
            .filter(store::entities::divergence::Column::Status.eq("open"))
            .all(&db)
            .await
            .unwrap();
        assert_eq!(open.len(), ACCOUNTS as usize, "{label}");
        for row in &open {
            let a: u64 = row.account_id["acc-".len()..].parse().unwrap();
            let want = format!("{:020}", a * 10 + (TICKS - 1) % 2);
            assert_eq!(row.ticket_u64.as_deref(), Some(want.as_str()), "{label}");
        }
        // Every sync counted in its hour's rollup, folded or not.
        let rollups = store::list_rollups(&db, None).await.unwrap();
        let syncs: u64 = rollups.iter().map(|r| r.syncs).sum();
        assert_eq!(syncs, ACCOUNTS * TICKS + failed_reports, "{label}");
        let timeouts: u64 = rollups.iter().map(|r| r.failed("timeout")).sum();
        assert_eq!(
            timeouts, failed_reports,
            "{label}: error classes survive folding"
        );
        // Every failure kept as a row too, one by one or folded.
        let runs = sync_runs(&db).await;
        let failed: u64 = runs
            .iter()
            .filter(|r| r.error_class.as_deref() == Some("timeout"))
            .map(syncs_in)
            .sum();
        assert_eq!(failed, failed_reports, "{label}: failures stay rows");
        // Every audit event, one by one or folded; the rare kinds one by one.
        let events = store::list_audit(&db, None).await.unwrap();
        let backoffs: u64 = events
            .iter()
            .filter(|e| e.kind == "backoff_started")
            .map(|e| e.detail["folded"].as_u64().unwrap_or(1))
            .sum();
        assert_eq!(backoffs, transitions, "{label}");
        let close_rows = events.iter().filter(|e| e.kind == "close_attempt").count();
        assert_eq!(close_rows as u64, closes, "{label}");
        actor.stop(None);
    }
}

#[tokio::test]
async fn quiet_syncs_during_an_outage_take_no_place_in_the_buffer_and_are_all_counted() {
    const ACCOUNTS: u64 = 1_000;
    const TICKS: u64 = 60;
    let config = PersistenceConfig {
        batch_size: 1_000,
        flush_interval_ms: 50,
        retry_min_ms: 3_600_000,
        retry_max_ms: 3_600_000,
        max_buffered_reports: 5_000,
        max_buffered_audits: 2_000,
    };
    for outage in Outage::all().await {
        let label = outage.label();
        let db = outage.db().clone();
        let actor = spawn_with(&db, config.clone()).await;
        // Every account has one open divergence, stored before the outage.
        for a in 0..ACCOUNTS {
            let desired = vec![unexpected("EURUSD", a + 1)];
            actor
                .cast(converge(&format!("acc-{a}"), t(0), desired))
                .unwrap();
        }
        flush(&actor)
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        outage.begin().await;
        for tick in 1..=TICKS {
            for a in 0..ACCOUNTS {
                // Unchanged: only the report is sent.
                let at = t(tick as i64 * 10);
                actor
                    .cast(PersistMsg::Report(report(&format!("acc-{a}"), at)))
                    .unwrap();
            }
        }
        let during = stats(&actor).await;
        assert_eq!(
            (during.buffer.reports, during.buffer.folded_reports),
            (0, 0),
            "{label}: quiet syncs wait only as counts and one sighting per account"
        );
        outage.end().await;
        flush(&actor)
            .await
            .unwrap_or_else(|e| panic!("{label}: flush after the outage: {e}"));
        let rollups = store::list_rollups(&db, None).await.unwrap();
        let syncs: u64 = rollups.iter().map(|r| r.syncs).sum();
        assert_eq!(syncs, ACCOUNTS * (TICKS + 1), "{label}");
        for a in [0, ACCOUNTS / 2, ACCOUNTS - 1] {
            let open = store::open_divergences(&db, &format!("acc-{a}"))
                .await
                .unwrap();
            assert_eq!(
                open[0].last_seen,
                t(TICKS as i64 * 10),
                "{label}: acc-{a}: the latest sighting moved last_seen"
            );
        }
        actor.stop(None);
    }
}
