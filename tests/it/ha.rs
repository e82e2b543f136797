//! High availability on PostgreSQL: lease actors (and whole trees) of several instances in
//! one process share the accounts of one schema; epochs and expiry at the statement level;
//! and SQLite staying single-instance, with two processes.
//!
//! Waits poll with a generous bound and assert only what ends up true, never how long it
//! took.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mt5_reconciler::actors::lease::{
    HaConfig, HaStats, LeaseActor, LeaseArgs, LeaseEvent, LeaseMsg, LeaseSink,
};
use mt5_reconciler::actors::{HaArgs, SchedulerConfig};
use mt5_reconciler::service::Reconciler;
use mt5_reconciler::store::{self, Lease};
use ractor::{Actor, ActorRef};
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::common;
use crate::service_proc::{Service, command, fast_config};

/// Only a hung test reaches it.
const PATIENCE: Duration = Duration::from_secs(120);

fn fast_ha(id: &str) -> HaConfig {
    HaConfig {
        enabled: true,
        instance_id: Some(id.to_owned()),
        ttl_secs: 3,
        renew_secs: 1,
        claim_secs: 1,
    }
}

/// Who owns what, as the lease actors said it, and every moment two instances said they
/// owned the same account.
#[derive(Default)]
struct Ledger {
    owners: BTreeMap<String, BTreeSet<String>>,
    overlaps: Vec<String>,
    /// Every `DatabaseAway` said, in order (true: away, false: back).
    away: Vec<bool>,
}

impl Ledger {
    fn owned_by(&self, instance: &str) -> usize {
        self.owners
            .values()
            .filter(|o| o.contains(instance))
            .count()
    }

    fn owned(&self) -> usize {
        self.owners.values().filter(|o| !o.is_empty()).count()
    }
}

fn sink(ledger: &Arc<Mutex<Ledger>>, instance: &str) -> LeaseSink {
    let (ledger, me) = (ledger.clone(), instance.to_owned());
    Arc::new(move |event| {
        let mut l = ledger.lock().expect("ledger lock");
        match event {
            LeaseEvent::Owned { account, .. } => {
                let owners = l.owners.entry(account.clone()).or_default();
                owners.insert(me.clone());
                if owners.len() > 1 {
                    let said = format!("{account}: {owners:?}");
                    l.overlaps.push(said);
                }
            }
            LeaseEvent::Lost { account } => {
                if let Some(o) = l.owners.get_mut(&account) {
                    o.remove(&me);
                }
            }
            LeaseEvent::DatabaseAway { away, .. } => l.away.push(away),
        }
    })
}

async fn spawn_lease(
    db: &DatabaseConnection,
    ledger: &Arc<Mutex<Ledger>>,
    id: &str,
    accounts: &[String],
) -> ActorRef<LeaseMsg> {
    spawn_counted(db, ledger, HaStats::new(id), accounts).await
}

async fn spawn_counted(
    db: &DatabaseConnection,
    ledger: &Arc<Mutex<Ledger>>,
    stats: HaStats,
    accounts: &[String],
) -> ActorRef<LeaseMsg> {
    let id = stats.snapshot().instance_id;
    let args = LeaseArgs {
        db: db.clone(),
        config: fast_ha(&id),
        instance_id: id.clone(),
        sink: sink(ledger, &id),
        stats,
        accounts: accounts.to_vec(),
    };
    Actor::spawn(None, LeaseActor, args)
        .await
        .expect("lease actor starts")
        .0
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "gave up: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_thirty_accounts_once_each_and_take_over_from_the_departed() {
    let Some(db) = common::postgres_only().await else {
        return;
    };
    let accounts: Vec<String> = (0..30).map(|i| format!("acc-{i:02}")).collect();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let a = spawn_lease(&db, &ledger, "inst-a", &accounts).await;
    let b = spawn_lease(&db, &ledger, "inst-b", &accounts).await;
    let c = spawn_lease(&db, &ledger, "inst-c", &accounts).await;

    // Everything owned, and about a third each (the surplus moves gradually).
    wait_until("every account owned, ten each", || {
        let l = ledger.lock().unwrap();
        l.owned() == 30
            && ["inst-a", "inst-b", "inst-c"]
                .iter()
                .all(|i| l.owned_by(i) == 10)
    })
    .await;
    let rows = store::list_leases(&db).await.unwrap();
    assert_eq!(rows.iter().filter(|r| r.live).count(), 30);

    // A graceful stop frees the leases and notifies: the others own everything.
    c.stop_and_wait(None, None).await.unwrap();
    wait_until("a and b own all thirty", || {
        let l = ledger.lock().unwrap();
        l.owned() == 30 && l.owned_by("inst-c") == 0
    })
    .await;

    // A crash frees nothing: its leases expire on the database's clock and move.
    b.kill();
    {
        // What a killed instance believed is void: forget it in the ledger.
        let mut l = ledger.lock().unwrap();
        for owners in l.owners.values_mut() {
            owners.remove("inst-b");
        }
    }
    wait_until("a owns all thirty", || {
        ledger.lock().unwrap().owned_by("inst-a") == 30
    })
    .await;
    let rows = store::list_leases(&db).await.unwrap();
    assert!(rows.iter().all(|r| r.owner.as_deref() == Some("inst-a")));

    a.stop_and_wait(None, None).await.unwrap();
    let l = ledger.lock().unwrap();
    assert!(l.overlaps.is_empty(), "owned twice: {:?}", l.overlaps);
    assert_eq!(l.owned(), 0, "a stopped instance owns nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_learned_while_the_first_claim_runs_get_their_lease_rows_and_are_owned() {
    let Some(db) = common::postgres_only().await else {
        return;
    };
    // As `run` does: the lease actor starts before the accounts table is read, so the
    // accounts arrive while its first claim round is under way.
    let accounts: Vec<String> = (0..5).map(|i| format!("late-{i}")).collect();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let a = spawn_lease(&db, &ledger, "inst-late", &[]).await;
    a.cast(LeaseMsg::Accounts(accounts.clone())).unwrap();
    wait_until("the five accounts owned", || {
        ledger.lock().unwrap().owned_by("inst-late") == 5
    })
    .await;
    a.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_away_longer_than_the_lease_stops_every_account_and_raises_the_alarm() {
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => return,
    };
    let proxy = common::TcpProxy::start(common::postgres_addr(&url)).await;
    let db = common::postgres_through(&url, &proxy).await;
    let accounts: Vec<String> = (0..5).map(|i| format!("acc-{i}")).collect();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stats = HaStats::new("alone");
    let lease = spawn_counted(&db, &ledger, stats.clone(), &accounts).await;
    wait_until("all five owned", || ledger.lock().unwrap().owned() == 5).await;
    assert!(!stats.snapshot().database_away);

    proxy.cut();
    wait_until("nothing owned and the alarm raised", || {
        ledger.lock().unwrap().owned() == 0 && stats.snapshot().database_away
    })
    .await;
    assert_eq!(stats.snapshot().owned_accounts, 0);

    proxy.restore();
    wait_until("all five owned again, the alarm cleared", || {
        ledger.lock().unwrap().owned() == 5 && !stats.snapshot().database_away
    })
    .await;
    lease.stop_and_wait(None, None).await.unwrap();
    let l = ledger.lock().unwrap();
    assert!(l.overlaps.is_empty());
    // Said once each way, for the alert sinks that need no database.
    assert_eq!(l.away, [true, false]);
}

async fn expire(db: &DatabaseConnection, account: &str) {
    db.execute_unprepared(&format!(
        "UPDATE account_leases SET expires_at = now() - interval '1 millisecond' \
         WHERE account_id = '{account}'"
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn stale_epochs_cannot_renew_and_epochs_grow_on_every_change_of_owner() {
    let Some(db) = common::postgres_only().await else {
        return;
    };
    let ttl = Duration::from_secs(60);
    let known = vec!["acc-1".to_owned()];
    store::ensure_leases(&db, &known).await.unwrap();

    let first = store::claim_leases(&db, "i1", &known, 5, ttl)
        .await
        .unwrap();
    assert_eq!(
        first,
        vec![Lease {
            account_id: "acc-1".into(),
            epoch: 1
        }]
    );
    assert!(
        store::claim_leases(&db, "i2", &known, 5, ttl)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store::renew_leases(&db, "i1", &first, ttl).await.unwrap(),
        known
    );

    expire(&db, "acc-1").await;
    let second = store::claim_leases(&db, "i2", &known, 5, ttl)
        .await
        .unwrap();
    assert_eq!(second[0].epoch, 2);
    // The former owner's renewal fails: other owner, older epoch.
    assert!(
        store::renew_leases(&db, "i1", &first, ttl)
            .await
            .unwrap()
            .is_empty()
    );
    // So does one with the right owner and a stale epoch.
    let stale = [Lease {
        account_id: "acc-1".into(),
        epoch: 1,
    }];
    assert!(
        store::renew_leases(&db, "i2", &stale, ttl)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store::renew_leases(&db, "i2", &second, ttl).await.unwrap(),
        known
    );

    // A release keeps the epoch; the next claim, even by an earlier owner, increments it.
    assert_eq!(store::release_leases(&db, "i1", &first).await.unwrap(), 0);
    assert_eq!(store::release_leases(&db, "i2", &second).await.unwrap(), 1);
    let third = store::claim_leases(&db, "i1", &known, 5, ttl)
        .await
        .unwrap();
    assert_eq!(third[0].epoch, 3);
    expire(&db, "acc-1").await;
    let fourth = store::claim_leases(&db, "i1", &known, 5, ttl)
        .await
        .unwrap();
    assert_eq!(
        fourth[0].epoch, 4,
        "a renewal of an expired lease is a new claim"
    );
    assert!(
        store::renew_leases(&db, "i1", &third, ttl)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn expiry_is_judged_by_the_database_clock() {
    let Some(db) = common::postgres_only().await else {
        return;
    };
    let known = vec!["acc-1".to_owned()];
    store::ensure_leases(&db, &known).await.unwrap();
    let hour = Duration::from_secs(3600);
    store::claim_leases(&db, "i1", &known, 1, hour)
        .await
        .unwrap();

    // The expiry is the database's now plus the TTL, to the statement.
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT extract(epoch FROM expires_at - now())::float8 AS left_secs \
             FROM account_leases WHERE account_id = 'acc-1'",
        ))
        .await
        .unwrap()
        .unwrap();
    let left: f64 = row.try_get("", "left_secs").unwrap();
    assert!((3500.0..=3600.0).contains(&left), "{left}");

    // Unexpired by the database's clock: nobody else takes it.
    assert!(
        store::claim_leases(&db, "i2", &known, 1, hour)
            .await
            .unwrap()
            .is_empty()
    );
    // Expired by the database's clock (whatever this process's clock says): it moves.
    expire(&db, "acc-1").await;
    let rows = store::list_leases(&db).await.unwrap();
    assert!(!rows[0].live);
    let taken = store::claim_leases(&db, "i2", &known, 1, hour)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_trees_run_each_account_on_its_owner_only_and_the_survivor_takes_all() {
    let Some(db) = common::postgres_only().await else {
        return;
    };
    let sim = crate::tree::sim(6, 2, false, 11);
    let config = || {
        let mut c = crate::tree::tree_config();
        c.scheduler = SchedulerConfig {
            interval_ms: 200,
            ..c.scheduler
        };
        c
    };
    let ha = |id: &str| HaArgs {
        config: fast_ha(id),
        instance_id: id.to_owned(),
        stats: HaStats::new(id),
    };
    let one = Reconciler::start_ha(crate::tree::args(&db, &sim, config()), ha("tree-1"))
        .await
        .unwrap();
    let two = Reconciler::start_ha(crate::tree::args(&db, &sim, config()), ha("tree-2"))
        .await
        .unwrap();

    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (s1, s2) = (one.status().await.unwrap(), two.status().await.unwrap());
        let (h1, h2) = (s1.ha.clone().unwrap(), s2.ha.clone().unwrap());
        if h1.owned_accounts == 3 && h2.owned_accounts == 3 {
            assert_eq!(h1.instance_id, "tree-1");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{h1:?} {h2:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Both know every account; the one leaving frees its leases for the other.
    assert_eq!(one.status().await.unwrap().accounts.len(), 6);
    let report = two.shutdown(Duration::from_secs(5)).await;
    assert!(report.flushed);
    let synced =
        |s: &mt5_reconciler::actors::Status| s.ha.as_ref().is_some_and(|h| h.owned_accounts == 6);
    let mut base: Option<BTreeMap<String, u64>> = None;
    loop {
        let s = one.status().await.unwrap();
        if synced(&s) {
            let now: BTreeMap<String, u64> = s
                .accounts
                .iter()
                .map(|a| (a.id.clone(), a.syncs_ok))
                .collect();
            match &base {
                None => base = Some(now),
                // Every account syncs here now.
                Some(b) if now.iter().all(|(id, n)| *n > b[id]) => break,
                Some(_) => {}
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "{:?}", s.ha);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    one.shutdown(Duration::from_secs(5)).await;
    let rows = store::list_leases(&db).await.unwrap();
    assert!(rows.iter().all(|r| r.owner.is_none()), "{rows:?}");
}

/// A `run` config on the simulated broker's three accounts, sharing them by leases.
fn ha_run_config(url: &str, schema: &str, instance: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!(
        "[database]\nurl = \"{url}{sep}options[search_path]={schema}\"\n\
         [scheduler]\ninterval_ms = 300\nspread_slots = 3\naccounts_refresh_secs = 1\n\
         [broker.sim]\naccounts = 3\nseed = 7\nlatency_ms_min = 1\nlatency_ms_max = 5\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\
         [ha]\nenabled = true\ninstance_id = \"{instance}\"\nttl_secs = 3\nrenew_secs = 1\nclaim_secs = 1\n"
    )
}

fn owned(service: &Service) -> Option<u64> {
    let (code, body) = service.get("/api/status", None);
    if code != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["ha"]["owned_accounts"].as_u64()
}

fn wait_owned(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "gave up: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_runs_on_postgres_share_the_accounts_and_sigterm_hands_them_over() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some((url, schema)) = runtime.block_on(common::postgres_schema()) else {
        return;
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Service::start(dir_a.path(), &ha_run_config(&url, &schema, "proc-a"), &[]);
    let b = Service::start(dir_b.path(), &ha_run_config(&url, &schema, "proc-b"), &[]);
    wait_owned("the three accounts split between the two", || {
        match (owned(&a), owned(&b)) {
            (Some(x), Some(y)) => x + y == 3 && x >= 1 && y >= 1,
            _ => false,
        }
    });
    // The dashboard's overview shows both instances and what each owns (by the leases).
    wait_owned("the overview lists both instances owning the three", || {
        let (code, body) = a.get("/api/overview", None);
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) else {
            return false;
        };
        let Some(instances) = v["ha"]["instances"].as_array() else {
            return false;
        };
        let owned = |id: &str| {
            instances
                .iter()
                .find(|i| i["id"] == id)
                .and_then(|i| i["owned_accounts"].as_u64())
        };
        code == 200
            && v["ha"]["this"]["instance_id"] == "proc-a"
            && matches!((owned("proc-a"), owned("proc-b")), (Some(x), Some(y)) if x + y == 3)
    });

    // SIGTERM: b finishes, frees its leases and notifies; a takes everything.
    let (status, logs) = b.stop();
    assert_eq!(status.code(), Some(0), "{logs:#?}");
    assert!(
        logs.iter().any(|l| l.contains("leases released")),
        "{logs:#?}"
    );
    wait_owned("a owns all three", || owned(&a) == Some(3));
    let (status, _) = a.stop();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_second_run_on_the_same_sqlite_file_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = fast_config(dir.path(), "");
    let first = Service::start(dir.path(), &config, &[]);
    let second = command(dir.path(), &["run", "--config", "config.toml"], &[]);
    assert_ne!(second.code, 0);
    assert!(
        second.stderr.contains("in use by another instance")
            && second.stderr.contains("single-instance"),
        "{}",
        second.stderr
    );
    let (status, _) = first.stop();
    assert_eq!(status.code(), Some(0));

    // Enabling leases on SQLite is refused at start-up, naming the setting.
    let with_ha = format!("{config}[ha]\nenabled = true\n");
    std::fs::write(dir.path().join("ha.toml"), with_ha).unwrap();
    let refused = command(dir.path(), &["run", "--config", "ha.toml"], &[]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("ha.enabled = true"),
        "{}",
        refused.stderr
    );
}
