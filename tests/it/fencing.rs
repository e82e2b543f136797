//! Fenced writes under high availability: an instance whose lease on an account moved on
//! (another instance claimed it while this one was paused) writes nothing more for it,
//! while the rest of its batch commits. Each instance connects under its own
//! `application_name`, and a probe in the test's schema records any row written for an
//! account by a connection that does not hold its lease.
//!
//! Waits poll with a generous bound and assert only what ends up true.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use mt5_reconciler::actors::lease::HaStats;
use mt5_reconciler::actors::persistence::{
    Converge, PersistMsg, PersistenceActor, PersistenceArgs,
};
use mt5_reconciler::actors::{FenceSink, FencedWrites, HaArgs, PersistenceConfig};
use mt5_reconciler::actors::{HaConfig, SchedulerConfig};
use mt5_reconciler::domain::{Divergence, DivergenceKind, Side, Value};
use mt5_reconciler::service::Reconciler;
use mt5_reconciler::store::{self, AlertRecord, AlertStatus, AuditEvent, Fence, SyncRunRecord};
use ractor::{ActorRef, OutputPort};
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::common;

/// Only a hung test reaches it.
const PATIENCE: Duration = Duration::from_secs(120);

/// Two connections to one fresh schema, named `a` and `b`, with the probe installed;
/// `None` without PostgreSQL.
async fn two_instances() -> Option<(DatabaseConnection, DatabaseConnection)> {
    let (url, schema) = common::postgres_schema().await?;
    let a = common::postgres_as(&url, &schema, "inst-a").await;
    let b = common::postgres_as(&url, &schema, "inst-b").await;
    common::install_stale_write_probe(&a).await;
    Some((a, b))
}

/// Claims `accounts` for `instance` for a minute; their fences, in order.
async fn claim(db: &DatabaseConnection, instance: &str, accounts: &[&str]) -> Vec<Fence> {
    let accounts: Vec<String> = accounts.iter().map(|a| (*a).to_owned()).collect();
    store::ensure_leases(db, &accounts).await.unwrap();
    let leases = store::claim_leases(db, instance, &accounts, 100, Duration::from_secs(60))
        .await
        .unwrap();
    accounts
        .iter()
        .map(|a| {
            let lease = leases.iter().find(|l| &l.account_id == a).expect("claimed");
            Fence {
                instance_id: instance.to_owned(),
                epoch: lease.epoch,
            }
        })
        .collect()
}

/// Moves `account`'s lease to `instance` under the next epoch, as its claim would after
/// the holder's lease expired.
async fn steal(db: &DatabaseConnection, account: &str, instance: &str) {
    db.execute_unprepared(&format!(
        "UPDATE account_leases SET owner = '{instance}', epoch = epoch + 1, \
         expires_at = now() + interval '10 minutes' WHERE account_id = '{account}'"
    ))
    .await
    .unwrap();
}

fn collecting() -> (FenceSink, Arc<Mutex<Vec<FencedWrites>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let to = seen.clone();
    let sink = FenceSink::new(move |w| to.lock().expect("sink lock").push(w));
    (sink, seen)
}

async fn persistence(db: &DatabaseConnection, fenced: FenceSink) -> ActorRef<PersistMsg> {
    let args = PersistenceArgs {
        db: db.clone(),
        config: PersistenceConfig::default(),
        events: Arc::new(OutputPort::default()),
        clock: mt5_reconciler::clock::Clock::real(),
        fenced,
    };
    let (actor, _) = ractor::Actor::spawn(None, PersistenceActor, args)
        .await
        .expect("persistence starts");
    actor
}

fn failed(account: &str) -> SyncRunRecord {
    SyncRunRecord {
        error_class: Some("timeout".into()),
        error_message: Some("broker timed out".into()),
        ..SyncRunRecord::begun(account, Utc::now())
    }
}

fn converge(account: &str, ticket: u64, fence: &Fence) -> PersistMsg {
    let divergence = Divergence::new(
        DivergenceKind::UnexpectedAtBroker,
        "EURUSD".into(),
        Some(ticket),
        None,
        None,
        Some(Value::Side(Side::Buy)),
        None,
    );
    PersistMsg::Converge(Box::new(Converge {
        account_id: account.to_owned(),
        at: Utc::now(),
        desired: vec![divergence],
        held: Vec::new(),
        seq: 1,
        ack_to: None,
        report: SyncRunRecord::begun(account, Utc::now()),
        fence: Some(fence.clone()),
    }))
}

fn audit(account: &str) -> AuditEvent {
    AuditEvent {
        at: Utc::now(),
        account_id: Some(account.to_owned()),
        kind: "guard_breach".into(),
        detail: serde_json::json!({}),
    }
}

async fn count(db: &DatabaseConnection, table: &str, account: &str) -> i64 {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT count(*) AS n FROM {table} WHERE account_id = '{account}'"),
        ))
        .await
        .unwrap()
        .expect("a count");
    row.try_get("", "n").unwrap()
}

async fn flush(actor: &ActorRef<PersistMsg>) {
    actor
        .call(PersistMsg::Flush, Some(PATIENCE))
        .await
        .expect("flush call")
        .success_or("flush timed out".to_owned())
        .expect("flush reply")
        .expect("flush written");
}

#[tokio::test]
async fn a_lost_accounts_buffered_items_are_dropped_and_the_rest_of_the_batch_commits() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let fences = claim(&a, "inst-a", &["acc-x", "acc-y"]).await;
    let (fx, fy) = (&fences[0], &fences[1]);
    let (sink, seen) = collecting();
    let actor = persistence(&a, sink).await;

    // Instance a was paused: meanwhile b took acc-x.
    steal(&b, "acc-x", "inst-b").await;
    for msg in [
        converge("acc-x", 1, fx),
        PersistMsg::report(failed("acc-x"), Some(fx.clone())),
        PersistMsg::audit(audit("acc-x"), Some(fx.clone())),
        converge("acc-y", 2, fy),
        PersistMsg::report(failed("acc-y"), Some(fy.clone())),
        PersistMsg::audit(audit("acc-y"), Some(fy.clone())),
    ] {
        actor.cast(msg).unwrap();
    }
    flush(&actor).await;

    for table in ["divergences", "sync_runs", "audit_events"] {
        assert_eq!(
            count(&a, table, "acc-x").await,
            0,
            "{table} of the lost account"
        );
    }
    assert_eq!(count(&a, "divergences", "acc-y").await, 1);
    assert_eq!(
        count(&a, "sync_runs", "acc-y").await,
        2,
        "the converge's and the failure"
    );
    assert_eq!(count(&a, "audit_events", "acc-y").await, 1);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].out.account_id, "acc-x");
    assert_eq!(seen[0].out.epoch, fx.epoch);
    assert_eq!(seen[0].out.lease_owner.as_deref(), Some("inst-b"));
    assert_eq!(seen[0].out.lease_epoch, Some(fx.epoch + 1));
    assert_eq!(seen[0].items, 3);

    // Dropped, not retried: nothing is left to write and nothing more is reported.
    let (depth, retrying) = actor
        .call(PersistMsg::QueueDepth, Some(PATIENCE))
        .await
        .unwrap()
        .success_or("no answer")
        .unwrap();
    assert_eq!((depth, retrying), (0, false));
    assert!(common::stale_writes(&a).await.is_empty());
    actor.stop(None);
}

fn alert(account: &str) -> AlertRecord {
    AlertRecord {
        id: format!("{account}-breach"),
        account_id: account.to_owned(),
        kind: "breach".into(),
        rule: "max_loss".into(),
        loss: None,
        reference: None,
        message: "breached".into(),
        close_at: None,
        status: AlertStatus::Alerted,
        created_at: Utc::now(),
    }
}

#[tokio::test]
async fn a_guard_write_for_a_lost_account_is_refused_and_one_still_held_is_written() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let fences = claim(&a, "inst-a", &["acc-x", "acc-y"]).await;
    steal(&b, "acc-x", "inst-b").await;

    let r = alert("acc-x");
    let refused = store::write_fenced(&a, "acc-x", Some(&fences[0]), async |txn| {
        store::insert_alert(txn, &r).await
    })
    .await
    .unwrap();
    let out = refused.expect_err("the lease moved on");
    assert_eq!(
        (out.epoch, out.lease_owner.as_deref()),
        (fences[0].epoch, Some("inst-b"))
    );
    let refused = store::write_fenced(&a, "acc-x", Some(&fences[0]), async |txn| {
        store::save_guard_state(txn, "acc-x", "{}", Utc::now()).await
    })
    .await
    .unwrap();
    assert!(refused.is_err());
    assert_eq!(count(&a, "alerts", "acc-x").await, 0);
    assert_eq!(count(&a, "guard_state", "acc-x").await, 0);

    let r = alert("acc-y");
    let written = store::write_fenced(&a, "acc-y", Some(&fences[1]), async |txn| {
        store::insert_alert(txn, &r).await
    })
    .await
    .unwrap();
    assert_eq!(written, Ok(true));
    assert_eq!(count(&a, "alerts", "acc-y").await, 1);
    assert!(common::stale_writes(&a).await.is_empty());
}

#[tokio::test]
async fn without_a_fence_a_write_goes_through_as_before() {
    for (label, db) in common::databases().await {
        let r = alert("acc-1");
        let written = store::write_fenced(&db, "acc-1", None, async |txn| {
            store::insert_alert(txn, &r).await
        })
        .await
        .unwrap();
        assert_eq!(written, Ok(true), "{label}");
        let stored = store::list_alerts(&db, Some("acc-1"), 10).await.unwrap();
        assert_eq!(stored.len(), 1, "{label}");
    }
}

fn fast_ha(id: &str, renew_secs: u64) -> HaArgs {
    HaArgs {
        config: HaConfig {
            enabled: true,
            instance_id: Some(id.to_owned()),
            ttl_secs: 3 * renew_secs,
            renew_secs,
            claim_secs: 1,
        },
        instance_id: id.to_owned(),
        stats: HaStats::new(id),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_whose_lease_was_taken_between_renewals_writes_nothing_more_and_drops_the_account() {
    let Some((url, schema)) = common::postgres_schema().await else {
        return;
    };
    let db = common::postgres_as(&url, &schema, "tree-1").await;
    common::install_stale_write_probe(&db).await;
    let sim = crate::tree::sim(3, 2, false, 5);
    let mut config = crate::tree::tree_config();
    config.scheduler = SchedulerConfig {
        interval_ms: 200,
        ..config.scheduler
    };
    // Renewals far apart: the lease actor does not notice the theft before a write does.
    let tree = Reconciler::start_ha(crate::tree::args(&db, &sim, config), fast_ha("tree-1", 60))
        .await
        .unwrap();
    let ha = || async { tree.status().await.unwrap().ha.unwrap() };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while ha().await.owned_accounts < 3 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", ha().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let victim = sim.account_ids()[0].clone();
    steal(&db, &victim, "tree-2").await;

    while ha().await.fenced_writes == 0 || ha().await.owned_accounts != 2 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", ha().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        let kinds = common::audit_kinds(&db, &victim).await;
        if kinds.iter().any(|k| k == "lease_lost") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{kinds:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tree.shutdown(Duration::from_secs(5)).await;
    let stale = common::stale_writes(&db).await;
    assert!(stale.is_empty(), "{stale:?}");
}
