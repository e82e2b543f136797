//! Storage tests on SQLite, and on PostgreSQL when DATABASE_URL is set.

use chrono::{DateTime, SubsecRound, TimeZone, Utc};
use migration::{Migrator, MigratorTrait};
use mt5_reconciler::domain::{
    BotTrade, Divergence, DivergenceKind, Price, Side, Unit, Value, Volume,
};
use mt5_reconciler::store::{
    self, Account, AuditEvent, DiffOutcome, DivergenceDiff, DivergenceStatus, StoreError,
    SyncRunRecord, entities,
};
use rust_decimal::{Decimal, dec};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    TransactionTrait,
};

use crate::common::databases;

/// The decimals that must survive storage bit for bit, scale included.
const DECIMALS: [&str; 6] = [
    "1.08512",
    "0.00001",
    "123456789.123456789",
    "2420.07",
    "0.1",
    "1.08500",
];

fn t(secs: i64) -> DateTime<Utc> {
    // Nanoseconds on purpose: the store keeps whole microseconds on every backend.
    Utc.timestamp_opt(1_795_000_000 + secs, 123_456_789)
        .single()
        .unwrap_or_default()
}

fn d(text: &str) -> Decimal {
    text.parse()
        .unwrap_or_else(|e| panic!("bad literal {text}: {e}"))
}

async fn add_account(db: &DatabaseConnection, id: &str) {
    let account = Account {
        id: id.to_owned(),
        name: format!("Account {id}"),
        broker: "sim".to_owned(),
        enabled: true,
        disabled_reason: None,
    };
    store::upsert_account(db, &account, t(0)).await.unwrap();
}

fn trade(account: &str, id: &str, price: &str, volume: &str) -> BotTrade {
    BotTrade {
        id: id.to_owned(),
        account: account.to_owned(),
        symbol: "EURUSD".to_owned(),
        side: Side::Buy,
        volume: Volume::new(d(volume)),
        entry_price: Price::new(d(price)),
        sl: Some(Price::new(d(price))),
        tp: None,
        ticket: Some(9_000_000_001),
        client_id: Some(format!("c-{id}")),
        opened_at: Some(t(1).trunc_subsecs(6)),
    }
}

fn missing(trade_id: &str, volume: Decimal) -> Divergence {
    Divergence::new(
        DivergenceKind::MissingAtBroker,
        "EURUSD".to_owned(),
        None,
        Some(trade_id.to_owned()),
        Some(Value::Number(volume)),
        None,
        None,
    )
}

fn slippage(ticket: u64, expected: &str, actual: &str, delta: &str) -> Divergence {
    Divergence::new(
        DivergenceKind::EntrySlippage,
        "EURUSD".to_owned(),
        Some(ticket),
        Some(format!("t{ticket}")),
        Some(Value::Number(d(expected))),
        Some(Value::Number(d(actual))),
        Some((d(delta), Unit::Pips)),
    )
}

fn diff(
    account: &str,
    at: DateTime<Utc>,
    opened: Vec<Divergence>,
    resolved: &[&str],
) -> DivergenceDiff {
    DivergenceDiff {
        account_id: account.to_owned(),
        at,
        opened,
        resolved: resolved.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[tokio::test]
async fn trade_decimals_round_trip_exactly() {
    for (label, db) in databases().await {
        add_account(&db, "acc-1").await;
        let trades: Vec<BotTrade> = DECIMALS
            .iter()
            .enumerate()
            .map(|(i, v)| trade("acc-1", &format!("t{i}"), v, v))
            .collect();
        assert_eq!(
            store::import_trades(&db, "acc-1", &trades).await.unwrap(),
            6
        );
        let back = store::open_trades(&db, "acc-1").await.unwrap();
        assert_eq!(back, trades, "{label}");
        for (a, b) in back.iter().zip(&trades) {
            assert_eq!(
                a.entry_price.to_string(),
                b.entry_price.to_string(),
                "{label}"
            );
            assert_eq!(a.volume.get().scale(), b.volume.get().scale(), "{label}");
            assert_eq!(
                a.sl.map(|p| p.to_string()),
                b.sl.map(|p| p.to_string()),
                "{label}"
            );
        }
    }
}

#[tokio::test]
async fn divergence_decimals_round_trip_exactly() {
    for (label, db) in databases().await {
        let opened: Vec<Divergence> = DECIMALS
            .iter()
            .enumerate()
            .map(|(i, v)| slippage(i as u64 + 1, v, v, &format!("-{v}")))
            .chain([missing("t9", dec!(0.10))])
            .collect();
        let at = t(5);
        let outcome = store::apply_diff(&db, &diff("acc-1", at, opened.clone(), &[]))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            DiffOutcome {
                opened: 7,
                resolved: 0
            },
            "{label}"
        );
        let back = store::open_divergences(&db, "acc-1").await.unwrap();
        let back: Vec<Divergence> = back.into_iter().map(|s| s.divergence).collect();
        assert_eq!(back, opened, "{label}");
        for (a, b) in back.iter().zip(&opened) {
            assert_eq!(
                a.expected.map(|v| v.to_string()),
                b.expected.map(|v| v.to_string())
            );
            assert_eq!(
                a.actual.map(|v| v.to_string()),
                b.actual.map(|v| v.to_string())
            );
            assert_eq!(
                a.delta.map(|v| v.to_string()),
                b.delta.map(|v| v.to_string())
            );
        }
    }
}

#[tokio::test]
async fn applying_the_same_diff_twice_changes_nothing() {
    for (label, db) in databases().await {
        let a = missing("t1", dec!(0.1));
        let b = slippage(7, "1.0850", "1.0852", "2");
        // A fingerprint listed twice is opened once.
        let first = diff("acc-1", t(10), vec![a.clone(), b.clone(), a.clone()], &[]);
        assert_eq!(
            store::apply_diff(&db, &first).await.unwrap(),
            DiffOutcome {
                opened: 2,
                resolved: 0
            }
        );
        assert_eq!(
            store::apply_diff(&db, &first).await.unwrap(),
            DiffOutcome::default(),
            "{label}"
        );

        let second = diff("acc-1", t(20), vec![], &[&a.fingerprint]);
        assert_eq!(
            store::apply_diff(&db, &second).await.unwrap().resolved,
            1,
            "{label}"
        );
        assert_eq!(
            store::apply_diff(&db, &second).await.unwrap(),
            DiffOutcome::default(),
            "{label}"
        );

        let all = store::list_divergences(&db, "acc-1", None).await.unwrap();
        assert_eq!(all.len(), 2, "{label}");
    }
}

#[tokio::test]
async fn gone_divergences_are_resolved_and_others_stay_open() {
    for (label, db) in databases().await {
        let a = missing("t1", dec!(0.1));
        let b = missing("t2", dec!(0.2));
        store::apply_diff(&db, &diff("acc-1", t(10), vec![a.clone(), b.clone()], &[]))
            .await
            .unwrap();
        // Same fingerprint on another account is a different divergence.
        store::apply_diff(&db, &diff("acc-2", t(10), vec![a.clone()], &[]))
            .await
            .unwrap();

        let outcome = store::apply_diff(
            &db,
            &diff("acc-1", t(30), vec![], &[&a.fingerprint, "nope"]),
        )
        .await
        .unwrap();
        assert_eq!(
            outcome,
            DiffOutcome {
                opened: 0,
                resolved: 1
            },
            "{label}"
        );

        let open = store::open_divergences(&db, "acc-1").await.unwrap();
        assert_eq!(open.len(), 1, "{label}");
        assert_eq!(open[0].divergence, b);
        let resolved = store::list_divergences(&db, "acc-1", Some(DivergenceStatus::Resolved))
            .await
            .unwrap();
        assert_eq!(resolved.len(), 1, "{label}");
        let r = &resolved[0];
        assert_eq!(r.divergence.fingerprint, a.fingerprint);
        assert_eq!(r.status, DivergenceStatus::Resolved);
        assert_eq!(r.first_seen, t(10).trunc_subsecs(6), "{label}");
        assert_eq!(
            r.last_seen,
            t(10).trunc_subsecs(6),
            "{label}: not seen since"
        );
        assert_eq!(r.resolved_at, Some(t(30).trunc_subsecs(6)), "{label}");
        assert_eq!(
            store::open_divergences(&db, "acc-2").await.unwrap().len(),
            1,
            "{label}"
        );
    }
}

#[tokio::test]
async fn a_divergence_that_comes_back_after_resolve_is_a_new_row() {
    for (label, db) in databases().await {
        let a = missing("t1", dec!(0.1));
        store::apply_diff(&db, &diff("acc-1", t(10), vec![a.clone()], &[]))
            .await
            .unwrap();
        store::apply_diff(&db, &diff("acc-1", t(20), vec![], &[&a.fingerprint]))
            .await
            .unwrap();
        let outcome = store::apply_diff(&db, &diff("acc-1", t(30), vec![a.clone()], &[]))
            .await
            .unwrap();
        assert_eq!(outcome.opened, 1, "{label}");

        let all = store::list_divergences(&db, "acc-1", None).await.unwrap();
        assert_eq!(all.len(), 2, "{label}");
        assert_ne!(all[0].id, all[1].id);
        assert_eq!(all[0].status, DivergenceStatus::Resolved, "{label}");
        assert_eq!(all[1].status, DivergenceStatus::Open, "{label}");
        assert_eq!(all[1].first_seen, t(30).trunc_subsecs(6), "{label}");
    }
}

#[tokio::test]
async fn contradictory_diff_keeps_the_divergence_open() {
    for (label, db) in databases().await {
        let a = missing("t1", dec!(0.1));
        let both = diff("acc-1", t(10), vec![a.clone()], &[&a.fingerprint]);
        assert_eq!(
            store::apply_diff(&db, &both).await.unwrap(),
            DiffOutcome {
                opened: 1,
                resolved: 0
            }
        );
        assert_eq!(
            store::apply_diff(&db, &both).await.unwrap(),
            DiffOutcome::default(),
            "{label}"
        );
        assert_eq!(
            store::open_divergences(&db, "acc-1").await.unwrap().len(),
            1,
            "{label}"
        );
    }
}

fn raw_divergence(fingerprint: &str, status: &str) -> entities::divergence::ActiveModel {
    entities::divergence::ActiveModel {
        id: NotSet,
        account_id: Set("acc-1".to_owned()),
        fingerprint: Set(fingerprint.to_owned()),
        kind: Set("missing_at_broker".to_owned()),
        symbol: Set("EURUSD".to_owned()),
        ticket: Set(None),
        ticket_u64: Set(None),
        trade_id: Set(Some("t1".to_owned())),
        expected: Set(Some("0.1".to_owned())),
        actual: Set(None),
        delta: Set(None),
        unit: Set(None),
        status: Set(status.to_owned()),
        first_seen: Set(t(0)),
        last_seen: Set(t(0)),
        resolved_at: Set(None),
        close_reason: Set(None),
        close_price: Set(None),
        close_profit: Set(None),
        closed_volume: Set(None),
        close_time: Set(None),
        acknowledged_at: Set(None),
        acknowledged_by: Set(None),
        acknowledged_note: Set(None),
    }
}

#[tokio::test]
async fn partial_unique_index_refuses_a_second_open_row() {
    for (label, db) in databases().await {
        let insert = |status| entities::divergence::Entity::insert(raw_divergence("fp", status));
        insert("open").exec(&db).await.unwrap();
        insert("resolved").exec(&db).await.unwrap();
        insert("resolved").exec(&db).await.unwrap();
        let err = insert("open").exec(&db).await.map(|_| ()).unwrap_err();
        assert!(
            matches!(
                err.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ),
            "{label}: {err}"
        );
        let store_err = StoreError::from(err);
        assert!(!store_err.is_unavailable(), "{label}");
    }
}

#[tokio::test]
async fn open_trades_are_the_accounts_open_trades_only() {
    for (label, db) in databases().await {
        add_account(&db, "acc-1").await;
        add_account(&db, "acc-2").await;
        let mine = vec![
            trade("acc-1", "a", "1.1", "0.1"),
            trade("acc-1", "b", "1.2", "0.2"),
        ];
        store::import_trades(&db, "acc-1", &mine).await.unwrap();
        store::import_trades(&db, "acc-2", &[trade("acc-2", "a", "1.3", "0.3")])
            .await
            .unwrap();
        entities::bot_trade::Entity::update_many()
            .col_expr(
                entities::bot_trade::Column::Status,
                sea_orm::sea_query::Expr::value("closed"),
            )
            .filter(entities::bot_trade::Column::TradeId.eq("b"))
            .exec(&db)
            .await
            .unwrap();

        let open = store::open_trades(&db, "acc-1").await.unwrap();
        assert_eq!(open, vec![mine[0].clone()], "{label}");

        // Re-importing updates in place and reopens.
        let mut b = mine[1].clone();
        b.sl = Some(Price::new(dec!(1.15)));
        store::import_trades(&db, "acc-1", &[b.clone()])
            .await
            .unwrap();
        assert_eq!(
            store::open_trades(&db, "acc-1").await.unwrap(),
            vec![mine[0].clone(), b],
            "{label}"
        );
        assert_eq!(
            entities::bot_trade::Entity::find()
                .count(&db)
                .await
                .unwrap(),
            3,
            "{label}"
        );
    }
}

#[tokio::test]
async fn unstorable_and_bad_data_are_errors_not_panics() {
    for (label, db) in databases().await {
        add_account(&db, "acc-1").await;
        let other = trade("acc-2", "x", "1.1", "0.1");
        let err = store::import_trades(&db, "acc-1", &[trade("acc-1", "ok", "1.1", "0.1"), other])
            .await
            .unwrap_err();
        assert!(err.is_bad_data(), "{label}: {err}");
        assert!(
            store::open_trades(&db, "acc-1").await.unwrap().is_empty(),
            "{label}: nothing of a refused import is written"
        );

        store::import_trades(&db, "acc-1", &[trade("acc-1", "t1", "1.1", "0.1")])
            .await
            .unwrap();
        entities::bot_trade::Entity::update_many()
            .col_expr(
                entities::bot_trade::Column::Volume,
                sea_orm::sea_query::Expr::value("0,1"),
            )
            .exec(&db)
            .await
            .unwrap();
        let err = store::open_trades(&db, "acc-1").await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::BadData { .. }), "{label}: {text}");
        assert!(
            text.contains("bot_trades.volume") && text.contains("\"0,1\""),
            "{label}: {text}"
        );
        assert!(text.contains("row "), "{label}: {text}");
    }
}

/// Tickets at the edges of `u64` and of `i64`: every one must come back bit for bit.
const EDGE_TICKETS: [u64; 4] = [0, i64::MAX as u64, 1 << 63, u64::MAX];

#[tokio::test]
async fn tickets_round_trip_exactly_across_the_whole_u64_range() {
    for (label, db) in databases().await {
        add_account(&db, "acc-1").await;
        let trades: Vec<BotTrade> = EDGE_TICKETS
            .iter()
            .enumerate()
            .map(|(i, ticket)| BotTrade {
                ticket: Some(*ticket),
                ..trade("acc-1", &format!("t{i}"), "1.1", "0.1")
            })
            .collect();
        store::import_trades(&db, "acc-1", &trades)
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let back: Vec<Option<u64>> = store::open_trades(&db, "acc-1")
            .await
            .unwrap()
            .iter()
            .map(|t| t.ticket)
            .collect();
        let want: Vec<Option<u64>> = EDGE_TICKETS.iter().copied().map(Some).collect();
        assert_eq!(back, want, "{label}: bot_trades.ticket");

        let opened: Vec<Divergence> = EDGE_TICKETS
            .iter()
            .map(|ticket| slippage(*ticket, "1.08140", "1.08200", "6"))
            .collect();
        store::apply_diff(&db, &diff("acc-1", t(1), opened.clone(), &[]))
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let stored = store::open_divergences(&db, "acc-1").await.unwrap();
        let mut back: Vec<Option<u64>> = stored.iter().map(|r| r.divergence.ticket).collect();
        back.sort();
        assert_eq!(back, want, "{label}: divergences.ticket");
        for row in &stored {
            assert!(opened.contains(&row.divergence), "{label}: {row:?}");
        }

        // A row written before `ticket_u64` existed has only the BIGINT.
        let legacy = entities::divergence::ActiveModel {
            ticket: Set(Some(42)),
            account_id: Set("acc-old".to_owned()),
            ..raw_divergence("fp-old", "open")
        };
        entities::divergence::Entity::insert(legacy)
            .exec(&db)
            .await
            .unwrap();
        let old = store::open_divergences(&db, "acc-old").await.unwrap();
        assert_eq!(old[0].divergence.ticket, Some(42), "{label}");

        if label == "postgres" {
            // Only 20 digits get in, whoever writes.
            let bad = entities::divergence::ActiveModel {
                ticket_u64: Set(Some("42".to_owned())),
                ..raw_divergence("fp-bad", "open")
            };
            let err = entities::divergence::Entity::insert(bad).exec(&db).await;
            assert!(err.is_err(), "{label}: the check refuses a short ticket");
        }
    }
}

#[tokio::test]
async fn writes_join_a_callers_transaction() {
    for (label, db) in databases().await {
        let run = SyncRunRecord {
            account_id: "acc-1".to_owned(),
            started_at: t(0),
            finished_at: t(1),
            duration: std::time::Duration::from_millis(1_234),
            positions: 3,
            trades: 2,
            divergences_opened: 1,
            divergences_resolved: 0,
            error_class: None,
            error_message: None,
        };
        let event = AuditEvent {
            at: t(1),
            account_id: Some("acc-1".to_owned()),
            kind: "divergence_opened".to_owned(),
            detail: serde_json::json!({ "fingerprint": "abc", "pips": "2.5" }),
        };
        let d = diff("acc-1", t(1), vec![missing("t1", dec!(0.1))], &[]);

        let txn = db.begin().await.unwrap();
        store::apply_diff(&txn, &d).await.unwrap();
        store::record_sync_run(&txn, &run).await.unwrap();
        store::append_audit(&txn, &event).await.unwrap();
        txn.rollback().await.unwrap();
        assert!(
            store::open_divergences(&db, "acc-1")
                .await
                .unwrap()
                .is_empty(),
            "{label}"
        );
        assert_eq!(
            entities::sync_run::Entity::find().count(&db).await.unwrap(),
            0,
            "{label}"
        );
        assert_eq!(
            entities::audit_event::Entity::find()
                .count(&db)
                .await
                .unwrap(),
            0,
            "{label}"
        );

        let txn = db.begin().await.unwrap();
        assert_eq!(store::apply_diff(&txn, &d).await.unwrap().opened, 1);
        store::record_sync_run(&txn, &run).await.unwrap();
        store::append_audit(&txn, &event).await.unwrap();
        txn.commit().await.unwrap();
        assert_eq!(
            store::open_divergences(&db, "acc-1").await.unwrap().len(),
            1,
            "{label}"
        );
        let runs = entities::sync_run::Entity::find().all(&db).await.unwrap();
        assert_eq!(
            (runs[0].duration_ms, runs[0].positions),
            (1_234, 3),
            "{label}"
        );
        let audit = entities::audit_event::Entity::find()
            .filter(entities::audit_event::Column::Kind.eq("divergence_opened"))
            .all(&db)
            .await
            .unwrap();
        let detail: serde_json::Value = serde_json::from_str(&audit[0].detail).unwrap();
        assert_eq!(detail, event.detail, "{label}");
        assert_eq!(audit[0].at, t(1).trunc_subsecs(6), "{label}");
    }
}

#[tokio::test]
async fn upsert_account_updates_fields_and_keeps_created_at() {
    for (label, db) in databases().await {
        add_account(&db, "acc-2").await;
        add_account(&db, "acc-1").await;
        let disabled = Account {
            id: "acc-1".to_owned(),
            name: "Renamed".to_owned(),
            broker: "metaapi".to_owned(),
            enabled: false,
            disabled_reason: Some("bad credentials".to_owned()),
        };
        store::upsert_account(&db, &disabled, t(60)).await.unwrap();
        let accounts = store::list_accounts(&db).await.unwrap();
        assert_eq!(accounts.len(), 2, "{label}");
        assert_eq!(accounts[0].account, disabled, "{label}");
        assert_eq!(accounts[0].created_at, t(0).trunc_subsecs(6), "{label}");
        assert_eq!(accounts[0].updated_at, t(60).trunc_subsecs(6), "{label}");
        assert!(accounts[1].account.enabled);
    }
}

#[tokio::test]
async fn migrations_go_down_and_up_again() {
    for (label, db) in databases().await {
        Migrator::down(&db, None)
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert!(store::list_accounts(&db).await.is_err(), "{label}");
        Migrator::up(&db, None)
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        add_account(&db, "acc-1").await;
        assert_eq!(store::list_accounts(&db).await.unwrap().len(), 1, "{label}");
    }
}

#[tokio::test]
async fn connect_opens_a_sqlite_file_in_wal_mode_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("rec.db").display());
    let db = store::connect(&url).await.unwrap();
    add_account(&db, "acc-1").await;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "PRAGMA journal_mode",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<String>("", "journal_mode").unwrap(), "wal");
    db.close().await.unwrap();

    // A second start finds the schema in place and the data kept.
    let db = store::connect(&url).await.unwrap();
    assert_eq!(store::list_accounts(&db).await.unwrap().len(), 1);
}

#[tokio::test]
async fn connect_errors_do_not_show_the_password() {
    let url = "postgres://app:s3cret@127.0.0.1:1/nowhere";
    let mut options = sea_orm::ConnectOptions::new(url);
    options.acquire_timeout(std::time::Duration::from_millis(500));
    let err = store::connect_with(options).await.map(|_| ()).unwrap_err();
    let text = err.to_string();
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("app:***@127.0.0.1:1"), "{text}");
    assert!(
        !store::connect("nonsense://app:s3cret@x")
            .await
            .map(|_| ())
            .unwrap_err()
            .to_string()
            .contains("s3cret")
    );
}

/// The persistence actor spawns these futures: they must be `Send`, on a connection and
/// inside a transaction alike.
#[allow(dead_code)]
fn store_futures_are_send(db: &DatabaseConnection, txn: &sea_orm::DatabaseTransaction) {
    fn send<T: Send>(_: T) {}
    let d = diff("acc-1", t(0), vec![], &[]);
    send(store::apply_diff(db, &d));
    send(store::apply_diff(txn, &d));
    send(store::import_trades(txn, "acc-1", &[]));
    send(store::upsert_trades(txn, "acc-1", &[]));
    send(store::replace_open_trades(txn, "acc-1", &[], t(0)));
    send(store::close_trade(txn, "acc-1", "t1", None, t(0)));
    send(store::trades_revision(txn, "acc-1"));
    send(store::open_divergences(txn, "acc-1"));
    send(store::open_trades(txn, "acc-1"));
}

#[tokio::test]
async fn converging_many_accounts_in_one_batch_opens_and_resolves_exactly_once() {
    for (label, db) in databases().await {
        let (a, b) = (
            missing("a1", dec!(0.1)),
            slippage(7, "1.08140", "1.08200", "6"),
        );
        let c = missing("c1", dec!(0.3));
        let first = [
            store::Wanted {
                account_id: "acc-a",
                at: t(100),
                desired: &[a.clone(), b.clone()],
                held: &[],
            },
            store::Wanted {
                account_id: "acc-b",
                at: t(101),
                desired: &[c.clone(), c.clone()],
                held: &[],
            },
        ];
        let txn = db.begin().await.unwrap();
        let done = store::converge_many(&txn, &first).await.unwrap();
        txn.commit().await.unwrap();
        assert_eq!(
            (done[0].opened.len(), done[1].opened.len()),
            (2, 1),
            "{label}: duplicates collapse"
        );

        // The same batch again changes nothing.
        let again = store::converge_many(&db, &first).await.unwrap();
        assert!(
            again
                .iter()
                .all(|d| d.opened.is_empty() && d.resolved.is_empty()),
            "{label}"
        );

        // acc-a loses b, acc-b is unchanged: one resolve, no new row.
        let second = [
            store::Wanted {
                account_id: "acc-a",
                at: t(200),
                desired: std::slice::from_ref(&a),
                held: &[],
            },
            store::Wanted {
                account_id: "acc-b",
                at: t(201),
                desired: std::slice::from_ref(&c),
                held: &[],
            },
        ];
        let done = store::converge_many(&db, &second).await.unwrap();
        assert_eq!(done[0].resolved, vec![b.fingerprint.clone()], "{label}");
        assert!(
            done[1].opened.is_empty() && done[1].resolved.is_empty(),
            "{label}"
        );
        let rows = store::list_divergences(&db, "acc-a", None).await.unwrap();
        assert_eq!(rows.len(), 2, "{label}");
        let resolved = rows
            .iter()
            .find(|r| r.divergence.fingerprint == b.fingerprint)
            .unwrap();
        assert_eq!(
            (resolved.status, resolved.resolved_at),
            (DivergenceStatus::Resolved, Some(t(200).trunc_subsecs(6))),
            "{label}"
        );
        assert_eq!(
            store::open_divergences(&db, "acc-b").await.unwrap().len(),
            1,
            "{label}"
        );
    }
}

#[tokio::test]
async fn batches_larger_than_one_statement_are_written_whole() {
    // Enough rows for several statements on every backend (500 rows a statement on SQLite,
    // a byte budget on PostgreSQL), with a long error message among the runs.
    let accounts = ["acc-big-1", "acc-big-2", "acc-big-3"];
    let desired: Vec<Vec<Divergence>> = (0..accounts.len())
        .map(|a| {
            (0..700)
                .map(|i| slippage(a as u64 * 10_000 + i, "1.08140", "1.08200", "6"))
                .collect()
        })
        .collect();
    let runs: Vec<SyncRunRecord> = (0..1_200)
        .map(|i| SyncRunRecord {
            account_id: accounts[i % accounts.len()].to_owned(),
            started_at: t(i as i64),
            finished_at: t(i as i64),
            duration: std::time::Duration::from_millis(3),
            positions: 20,
            trades: 20,
            divergences_opened: 0,
            divergences_resolved: 0,
            error_class: (i % 7 == 0).then(|| "retryable".to_owned()),
            error_message: (i % 7 == 0).then(|| "x".repeat(2_000)),
        })
        .collect();
    for (label, db) in databases().await {
        let wanted: Vec<store::Wanted<'_>> = accounts
            .iter()
            .zip(&desired)
            .map(|(account_id, desired)| store::Wanted {
                account_id,
                at: t(10),
                desired,
                held: &[],
            })
            .collect();
        let txn = db.begin().await.unwrap();
        let done = store::converge_many(&txn, &wanted).await.unwrap();
        store::record_sync_runs(&txn, &runs).await.unwrap();
        txn.commit().await.unwrap();
        assert!(done.iter().all(|d| d.opened.len() == 700), "{label}");
        let open = entities::divergence::Entity::find()
            .filter(entities::divergence::Column::Status.eq("open"))
            .count(&db)
            .await
            .unwrap();
        assert_eq!(open, 2_100, "{label}");
        let stored = entities::sync_run::Entity::find().count(&db).await.unwrap();
        assert_eq!(stored, 1_200, "{label}");

        // Every account converges to nothing: every row is resolved, once.
        let empty: Vec<store::Wanted<'_>> = accounts
            .iter()
            .map(|account_id| store::Wanted {
                account_id,
                at: t(20),
                desired: &[],
                held: &[],
            })
            .collect();
        let done = store::converge_many(&db, &empty).await.unwrap();
        assert!(done.iter().all(|d| d.resolved.len() == 700), "{label}");
        for account in accounts {
            assert!(
                store::open_divergences(&db, account)
                    .await
                    .unwrap()
                    .is_empty(),
                "{label}"
            );
        }
    }
}

fn sync(account: &str, at: DateTime<Utc>, error_class: Option<&str>) -> SyncRunRecord {
    SyncRunRecord {
        duration: std::time::Duration::from_millis(3),
        positions: 1,
        trades: 1,
        error_class: error_class.map(str::to_owned),
        error_message: error_class.map(|c| format!("{c} at {at}")),
        ..SyncRunRecord::begun(account, at)
    }
}

async fn last_seen(db: &DatabaseConnection, account: &str) -> Vec<DateTime<Utc>> {
    store::list_divergences(db, account, None)
        .await
        .unwrap()
        .iter()
        .map(|r| r.last_seen)
        .collect()
}

#[tokio::test]
async fn last_seen_is_the_last_sync_that_observed_it_to_a_minute() {
    for (label, db) in databases().await {
        let (a, b) = (missing("a1", dec!(0.1)), missing("b1", dec!(0.2)));
        let first = [
            store::Wanted {
                account_id: "acc-a",
                at: t(0),
                desired: std::slice::from_ref(&a),
                held: &[],
            },
            store::Wanted {
                account_id: "acc-b",
                at: t(0),
                desired: std::slice::from_ref(&b),
                held: &[],
            },
        ];
        let txn = db.begin().await.unwrap();
        store::converge_many(&txn, &first).await.unwrap();
        store::record_sync_runs(
            &txn,
            &[sync("acc-a", t(0), None), sync("acc-b", t(0), None)],
        )
        .await
        .unwrap();
        txn.commit().await.unwrap();
        let opened = t(0).trunc_subsecs(6);

        // Within a minute of the stored time nothing is written; a failed sync saw nothing.
        store::record_sync_runs(
            &db,
            &[
                sync("acc-a", t(30), None),
                sync("acc-b", t(90), Some("timeout")),
            ],
        )
        .await
        .unwrap();
        assert_eq!(last_seen(&db, "acc-a").await, [opened], "{label}");
        assert_eq!(last_seen(&db, "acc-b").await, [opened], "{label}");

        // Later syncs of one batch: the latest counts, whatever the order.
        store::record_sync_runs(
            &db,
            &[sync("acc-a", t(90), None), sync("acc-a", t(61), None)],
        )
        .await
        .unwrap();
        let seen = t(90).trunc_subsecs(6);
        assert_eq!(last_seen(&db, "acc-a").await, [seen], "{label}");
        assert_eq!(last_seen(&db, "acc-b").await, [opened], "{label}");

        // An older report, written late, never moves it back.
        store::record_sync_runs(&db, &[sync("acc-a", t(20), None)])
            .await
            .unwrap();
        assert_eq!(last_seen(&db, "acc-a").await, [seen], "{label}");

        // Resolved: last_seen stays the last sighting; resolved_at says when it went away.
        let gone = [store::Wanted {
            account_id: "acc-a",
            at: t(200),
            desired: &[],
            held: &[],
        }];
        store::converge_many(&db, &gone).await.unwrap();
        let rows = store::list_divergences(&db, "acc-a", None).await.unwrap();
        assert_eq!(
            (rows[0].status, rows[0].last_seen, rows[0].resolved_at),
            (
                DivergenceStatus::Resolved,
                seen,
                Some(t(200).trunc_subsecs(6))
            ),
            "{label}"
        );

        // A single-account converge of an unchanged set is a sighting too.
        store::converge(&db, "acc-b", t(150), std::slice::from_ref(&b))
            .await
            .unwrap();
        assert_eq!(
            last_seen(&db, "acc-b").await,
            [t(150).trunc_subsecs(6)],
            "{label}"
        );
    }
}

#[tokio::test]
async fn last_seen_moves_when_the_batch_is_written_around_a_refused_report() {
    for (label, db) in databases().await {
        let a = missing("a1", dec!(0.1));
        store::converge(&db, "acc-a", t(0), std::slice::from_ref(&a))
            .await
            .unwrap();
        let mut huge = sync("acc-huge", t(120), None);
        huge.positions = usize::MAX;
        let txn = db.begin().await.unwrap();
        let refused = store::record_sync_runs_isolating(&txn, &[sync("acc-a", t(120), None), huge])
            .await
            .unwrap();
        txn.commit().await.unwrap();
        assert_eq!(
            refused.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [1],
            "{label}"
        );
        assert_eq!(
            last_seen(&db, "acc-a").await,
            [t(120).trunc_subsecs(6)],
            "{label}"
        );
    }
}

#[tokio::test]
async fn one_batch_of_reports_moves_last_seen_on_hundreds_of_accounts() {
    // More accounts than one statement takes on PostgreSQL.
    let accounts: Vec<String> = (0..600).map(|i| format!("acc-many-{i:04}")).collect();
    let a = missing("a1", dec!(0.1));
    for (label, db) in databases().await {
        let wanted: Vec<store::Wanted<'_>> = accounts
            .iter()
            .map(|account_id| store::Wanted {
                account_id,
                at: t(0),
                desired: std::slice::from_ref(&a),
                held: &[],
            })
            .collect();
        store::converge_many(&db, &wanted).await.unwrap();
        let runs: Vec<SyncRunRecord> = accounts.iter().map(|a| sync(a, t(120), None)).collect();
        store::record_sync_runs(&db, &runs).await.unwrap();
        let moved = entities::divergence::Entity::find()
            .filter(entities::divergence::Column::LastSeen.eq(t(120).trunc_subsecs(6)))
            .count(&db)
            .await
            .unwrap();
        assert_eq!(moved, 600, "{label}");
        // Again within the minute: no row changes.
        let again: Vec<SyncRunRecord> = accounts.iter().map(|a| sync(a, t(150), None)).collect();
        let seen: Vec<store::Sighting<'_>> = again
            .iter()
            .map(|r| store::Sighting {
                account_id: &r.account_id,
                at: r.finished_at,
            })
            .collect();
        assert_eq!(store::mark_seen(&db, &seen).await.unwrap(), 0, "{label}");
    }
}
