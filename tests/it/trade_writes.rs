//! Versioned trade writes and the per-account change marker, on every backend; and a
//! running tree that sees a write at its next sync.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use mt5_reconciler::actors::{AccountSpec, Status, SupervisorArgs, SupervisorMsg};
use mt5_reconciler::broker::db_trades::DbTrades;
use mt5_reconciler::broker::{Connector, TradeSource};
use mt5_reconciler::domain::{BotTrade, Price, ReconcileRules, Side, Volume};
use mt5_reconciler::service::Reconciler;
use mt5_reconciler::store::{self, TradeWrite, WriteOutcome, entities};
use ractor::OutputPort;
use rust_decimal::Decimal;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
};

use crate::common::databases;
use crate::tree::{sim, tree_config};

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + secs, 0).unwrap()
}

fn trade(account: &str, id: &str, price: &str) -> BotTrade {
    BotTrade {
        id: id.to_owned(),
        account: account.to_owned(),
        symbol: "EURUSD".to_owned(),
        side: Side::Buy,
        volume: Volume::new(Decimal::new(10, 2)),
        entry_price: Price::new(price.parse().unwrap()),
        sl: None,
        tp: None,
        ticket: None,
        client_id: None,
        opened_at: Some(t(0)),
    }
}

/// Adds `id` to the accounts table (trades need their account).
async fn add_account(db: &DatabaseConnection, id: &str) {
    let account = store::Account {
        id: id.to_owned(),
        name: id.to_owned(),
        broker: "sim".to_owned(),
        enabled: true,
        disabled_reason: None,
    };
    store::upsert_account(db, &account, t(0)).await.unwrap();
}

fn w(trade: BotTrade, version: Option<u64>) -> TradeWrite {
    TradeWrite { trade, version }
}

fn outcome(written: usize, unchanged: usize, stale: usize, closed: usize) -> WriteOutcome {
    WriteOutcome {
        written,
        unchanged,
        stale,
        closed,
    }
}

async fn open(db: &DatabaseConnection, account: &str) -> Vec<(String, String, u64)> {
    store::open_trades_versioned(db, account)
        .await
        .unwrap()
        .into_iter()
        .map(|(t, v)| (t.id, t.entry_price.to_string(), v))
        .collect()
}

fn row(id: &str, price: &str, version: u64) -> (String, String, u64) {
    (id.to_owned(), price.to_owned(), version)
}

#[tokio::test]
async fn a_late_lower_version_is_stale_and_a_retry_is_unchanged() {
    for (label, db) in databases().await {
        let a = "tw-versions";
        add_account(&db, a).await;
        let first = store::upsert_trades(&db, a, &[w(trade(a, "t1", "1.1"), Some(5))]).await;
        assert_eq!(first.unwrap(), outcome(1, 0, 0, 0), "{label}");
        let revision = store::trades_revision(&db, a).await.unwrap();
        assert_eq!(revision, Some(1), "{label}");

        // The same write again: a retry changes nothing, not even the marker.
        let again = store::upsert_trades(&db, a, &[w(trade(a, "t1", "1.1"), Some(5))]).await;
        assert_eq!(again.unwrap(), outcome(0, 1, 0, 0), "{label}");
        assert_eq!(store::trades_revision(&db, a).await.unwrap(), revision);

        // A newer version applies; a late older one is stale and not applied.
        let newer = store::upsert_trades(&db, a, &[w(trade(a, "t1", "1.2"), Some(7))]).await;
        assert_eq!(newer.unwrap(), outcome(1, 0, 0, 0), "{label}");
        let late = store::upsert_trades(&db, a, &[w(trade(a, "t1", "1.3"), Some(6))]).await;
        assert_eq!(late.unwrap(), outcome(0, 0, 1, 0), "{label}");
        assert_eq!(open(&db, a).await, vec![row("t1", "1.2", 7)], "{label}");
        assert_eq!(store::trades_revision(&db, a).await.unwrap(), Some(2));

        // Without a version a write applies and keeps the stored version.
        let plain = store::upsert_trades(&db, a, &[w(trade(a, "t1", "1.4"), None)]).await;
        assert_eq!(plain.unwrap(), outcome(1, 0, 0, 0), "{label}");
        assert_eq!(open(&db, a).await, vec![row("t1", "1.4", 7)], "{label}");
        assert_eq!(store::trades_revision(&db, a).await.unwrap(), Some(3));
    }
}

#[tokio::test]
async fn replace_closes_absent_trades_never_deletes_and_reopens_by_version() {
    for (label, db) in databases().await {
        let a = "tw-replace";
        add_account(&db, a).await;
        let set = [
            w(trade(a, "t1", "1.1"), Some(1)),
            w(trade(a, "t2", "1.2"), Some(1)),
        ];
        let first = store::replace_open_trades(&db, a, &set, t(10))
            .await
            .unwrap();
        assert_eq!(first, outcome(2, 0, 0, 0), "{label}");

        // t2 left the open set: closed, still stored.
        let second = store::replace_open_trades(&db, a, &set[..1], t(20)).await;
        assert_eq!(second.unwrap(), outcome(0, 1, 0, 1), "{label}");
        assert_eq!(open(&db, a).await, vec![row("t1", "1.1", 1)], "{label}");
        let rows = entities::bot_trade::Entity::find()
            .filter(entities::bot_trade::Column::AccountId.eq(a))
            .count(&db)
            .await
            .unwrap();
        assert_eq!(rows, 2, "{label}: nothing is deleted");
        let closed = entities::bot_trade::Entity::find()
            .filter(entities::bot_trade::Column::TradeId.eq("t2"))
            .filter(entities::bot_trade::Column::AccountId.eq(a))
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (closed.status.as_str(), closed.closed_at),
            ("closed", Some(t(20)))
        );

        // The same replace again changes nothing.
        let again = store::replace_open_trades(&db, a, &set[..1], t(30)).await;
        assert_eq!(again.unwrap(), outcome(0, 1, 0, 0), "{label}");
        assert_eq!(store::trades_revision(&db, a).await.unwrap(), Some(2));

        // Re-sent as open with a lower version: stale, stays closed; with its version: reopens.
        let mut v0 = set.to_vec();
        v0[1].version = Some(0);
        let stale = store::replace_open_trades(&db, a, &v0, t(40)).await;
        assert_eq!(stale.unwrap(), outcome(0, 1, 1, 0), "{label}");
        assert_eq!(open(&db, a).await.len(), 1, "{label}");
        let reopened = store::replace_open_trades(&db, a, &set, t(50)).await;
        assert_eq!(reopened.unwrap(), outcome(1, 1, 0, 0), "{label}");
        assert_eq!(open(&db, a).await.len(), 2, "{label}");

        // An empty open set closes everything.
        let empty = store::replace_open_trades(&db, a, &[], t(60)).await;
        assert_eq!(empty.unwrap(), outcome(0, 0, 0, 2), "{label}");
        assert!(open(&db, a).await.is_empty(), "{label}");
    }
}

#[tokio::test]
async fn close_trade_is_idempotent_and_the_marker_moves_only_on_change() {
    for (label, db) in databases().await {
        let a = "tw-close";
        assert_eq!(store::trades_revision(&db, a).await.unwrap(), None);
        // Nothing to close, nothing written: the account still has no marker.
        let none = store::close_trade(&db, a, "t1", None, t(1)).await.unwrap();
        assert_eq!(none, None, "{label}");
        let nothing = store::replace_open_trades(&db, a, &[], t(1)).await.unwrap();
        assert_eq!(nothing, outcome(0, 0, 0, 0), "{label}");
        assert_eq!(store::trades_revision(&db, a).await.unwrap(), None);

        let unknown = store::upsert_trades(&db, a, &[w(trade(a, "t1", "1.1"), Some(3))]).await;
        let text = unknown.unwrap_err().to_string();
        assert!(
            text.contains("bot_trades.account_id") && text.contains(a),
            "{text}"
        );
        assert_eq!(store::trades_revision(&db, a).await.unwrap(), None);
        add_account(&db, a).await;
        store::upsert_trades(&db, a, &[w(trade(a, "t1", "1.1"), Some(3))])
            .await
            .unwrap();
        let stale = store::close_trade(&db, a, "t1", Some(2), t(2))
            .await
            .unwrap();
        assert_eq!(stale, Some(outcome(0, 0, 1, 0)), "{label}");
        assert_eq!(store::trades_revision(&db, a).await.unwrap(), Some(1));
        let closed = store::close_trade(&db, a, "t1", Some(3), t(3))
            .await
            .unwrap();
        assert_eq!(closed, Some(outcome(0, 0, 0, 1)), "{label}");
        assert_eq!(store::trades_revision(&db, a).await.unwrap(), Some(2));
        let retry = store::close_trade(&db, a, "t1", Some(3), t(4))
            .await
            .unwrap();
        assert_eq!(retry, Some(outcome(0, 1, 0, 0)), "{label}");
        assert_eq!(store::trades_revision(&db, a).await.unwrap(), Some(2));
        assert!(open(&db, a).await.is_empty(), "{label}");

        // The import path moves the marker too.
        store::import_trades(&db, a, &[trade(a, "t9", "1.9")])
            .await
            .unwrap();
        assert_eq!(store::trades_revision(&db, a).await.unwrap(), Some(3));
    }
}

#[tokio::test]
async fn versions_round_trip_exactly_across_the_whole_u64_range() {
    for (label, db) in databases().await {
        let a = "tw-u64";
        add_account(&db, a).await;
        for version in [0, i64::MAX as u64, 1 << 63, u64::MAX] {
            let out = store::upsert_trades(&db, a, &[w(trade(a, "t1", "1.1"), Some(version))])
                .await
                .unwrap();
            assert_eq!(out, outcome(1, 0, 0, 0), "{label}: {version}");
            assert_eq!(
                open(&db, a).await,
                vec![row("t1", "1.1", version)],
                "{label}"
            );
            let again = store::upsert_trades(&db, a, &[w(trade(a, "t1", "1.2"), Some(version))])
                .await
                .unwrap();
            assert_eq!(again, outcome(1, 0, 0, 0), "{label}: {version}");
            if version > 0 {
                // One below is stale: the comparison is numeric at every magnitude.
                let below = w(trade(a, "t1", "1.3"), Some(version - 1));
                let stale = store::upsert_trades(&db, a, &[below]).await.unwrap();
                assert_eq!(stale, outcome(0, 0, 1, 0), "{label}: {version}");
            }
            store::upsert_trades(&db, a, &[w(trade(a, "t1", "1.1"), Some(version))])
                .await
                .unwrap();
        }
    }
}

/// Waits (every 20 ms, at most 15 s) until `cond` holds for the account's status.
async fn wait_for(tree: &Reconciler, what: &str, cond: impl Fn(&Status) -> bool) {
    for _ in 0..750 {
        if cond(&tree.status().await.expect("status")) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("gave up waiting for {what}");
}

fn seen(s: &Status) -> (u64, usize) {
    let a = &s.accounts[0];
    (a.syncs_ok, a.open_divergences + a.held_divergences)
}

#[tokio::test]
async fn trades_kept_in_memory_are_read_again_only_once_their_moved_marker_is_read() {
    let ids = |v: Vec<BotTrade>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    for (label, db) in databases().await {
        add_account(&db, "acc").await;
        let write = |id: &'static str| {
            let db = db.clone();
            async move {
                store::upsert_trades(&db, "acc", &[w(trade("acc", id, "1.1"), None)])
                    .await
                    .unwrap()
            }
        };
        write("t1").await;
        // Markers kept for an hour: after the first read, a sync asks the database nothing.
        let kept = DbTrades::with_markers_max_age(db.clone(), Duration::from_secs(3600));
        assert_eq!(
            ids(kept.open_trades("acc").await.unwrap()),
            ["t1"],
            "{label}"
        );
        write("t2").await;
        assert_eq!(
            ids(kept.open_trades("acc").await.unwrap()),
            ["t1"],
            "{label}: the kept trades, until the markers are read again"
        );
        // Markers read on every call: each write is seen by the next read.
        let fresh = DbTrades::with_markers_max_age(db.clone(), Duration::ZERO);
        assert_eq!(
            ids(fresh.open_trades("acc").await.unwrap()),
            ["t1", "t2"],
            "{label}"
        );
        write("t3").await;
        assert_eq!(
            ids(fresh.open_trades("acc").await.unwrap()),
            ["t1", "t2", "t3"],
            "{label}: the changed marker is read"
        );
        // A writer's plain SQL moves the marker with the database's own spelling of now.
        write("t4").await;
        db.execute_unprepared(
            "UPDATE trade_revisions SET revision = revision + 1, \
             changed_at = CURRENT_TIMESTAMP WHERE account_id = 'acc'",
        )
        .await
        .unwrap();
        assert_eq!(
            ids(fresh.open_trades("acc").await.unwrap()),
            ["t1", "t2", "t3", "t4"],
            "{label}: a marker moved by plain SQL is read"
        );
    }
}

#[tokio::test]
async fn the_first_read_keeps_every_accounts_trades_in_one_pass_and_a_bad_row_spoils_only_its_account()
 {
    let ids = |v: &[BotTrade]| v.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
    let prices = |v: &[BotTrade]| {
        v.iter()
            .map(|t| t.entry_price.to_string())
            .collect::<Vec<_>>()
    };
    for (label, db) in databases().await {
        for (account, trades) in [("a1", 2), ("a2", 2), ("a3", 1), ("a4", 1)] {
            add_account(&db, account).await;
            let writes: Vec<_> = (1..=trades)
                .map(|i| w(trade(account, &format!("t{i}"), "1.1"), None))
                .collect();
            store::upsert_trades(&db, account, &writes).await.unwrap();
        }
        db.execute_unprepared("UPDATE bot_trades SET side = 'sideways' WHERE account_id = 'a3'")
            .await
            .unwrap();
        // Pages of two rows: the pass crosses accounts in the middle of a page.
        let source =
            DbTrades::with_markers_max_age(db.clone(), Duration::from_secs(3600)).with_warm_page(2);
        let first = source.open_trades("a1").await.unwrap();
        assert_eq!(ids(&first), ["t1", "t2"], "{label}");
        // Plain SQL that leaves the markers alone: what the others get now is what the
        // first read kept for them, not a read of their own.
        db.execute_unprepared(
            "UPDATE bot_trades SET entry_price = '9.9' WHERE account_id IN ('a2', 'a4')",
        )
        .await
        .unwrap();
        let a2 = source.open_trades("a2").await.unwrap();
        assert_eq!(
            (ids(&a2), prices(&a2)),
            (
                vec!["t1".to_owned(), "t2".to_owned()],
                vec!["1.1".to_owned(), "1.1".to_owned()]
            ),
            "{label}"
        );
        let a4 = source.open_trades("a4").await.unwrap();
        assert_eq!(prices(&a4), ["1.1"], "{label}");
        // The bad row left its account out of the pass: its own read reports it.
        let error = source.open_trades("a3").await.unwrap_err().to_string();
        assert!(error.contains("sideways"), "{label}: {error}");
    }
}

#[tokio::test]
async fn a_write_is_seen_by_the_later_syncs_of_a_running_tree() {
    for (label, db) in databases().await {
        // A broker without positions: every open trade of the bot is missing there.
        let broker = sim(1, 0, false, 7);
        let account = broker.account_ids()[0].clone();
        add_account(&db, &account).await;
        let args = SupervisorArgs {
            db: db.clone(),
            config: tree_config(),
            rules: Arc::new(ReconcileRules::default()),
            connectors: HashMap::from([(
                "sim".to_owned(),
                Connector {
                    broker: broker.clone(),
                    trades: Arc::new(DbTrades::new(db.clone())),
                },
            )]),
            accounts: vec![AccountSpec {
                id: account.clone(),
                broker: "sim".into(),
            }],
            events: Arc::new(OutputPort::default()),
            follow_accounts_table: false,
            clock: mt5_reconciler::clock::Clock::real(),
        };
        let tree = Reconciler::start(args).await.expect("tree starts");
        let sync = || {
            tree.actor()
                .cast(SupervisorMsg::SyncNow(account.clone()))
                .expect("sync now")
        };
        wait_for(&tree, "a first sync", |s| seen(s).0 >= 1).await;
        assert_eq!(seen(&tree.status().await.unwrap()).1, 0, "{label}");

        let mut old = trade(&account, "t1", "1.1");
        old.opened_at = Some(Utc::now() - chrono::Duration::hours(1));
        store::upsert_trades(&db, &account, &[w(old, Some(1))])
            .await
            .unwrap();
        let before = seen(&tree.status().await.unwrap()).0;
        sync();
        wait_for(&tree, "the written trade", |s| {
            seen(s).0 > before && seen(s).1 == 1
        })
        .await;

        store::replace_open_trades(&db, &account, &[], Utc::now())
            .await
            .unwrap();
        let before = seen(&tree.status().await.unwrap()).0;
        sync();
        wait_for(&tree, "the closed trade", |s| {
            seen(s).0 > before && seen(s).1 == 0
        })
        .await;
        tree.abort().await;
    }
}
