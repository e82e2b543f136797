//! What a sync costs at MetaApi: an account without guards asks for its positions only
//! (account information once a minute at most, no prices, no orders) while every trade has
//! its position; a trade without one makes the same sync read the pending orders.

use mt5_reconciler::broker::{Broker, Needs};

use super::{TOKEN, acc, broker, flush, import, import_text, open_kinds, start, wait_for};
use crate::common;
use fake_metaapi::{FakeMetaApi, Script};

/// The bot's trade of the documented position, exactly as held.
const HELD: &str = r#"[{"id": "t1", "symbol": "AUDNZD", "side": "buy", "volume": "0.1",
    "entry_price": "1.05782", "sl": "0.99876", "ticket": 46648037}]"#;

#[tokio::test]
async fn a_snapshot_reads_only_what_it_needs_and_balances_are_kept_a_minute() {
    let fake = FakeMetaApi::start(TOKEN, &[("ma-acc", Script::Ok)]).await;
    let broker = broker(&fake, &["acc"]);
    let none = Needs {
        balances: false,
        quotes: false,
        orders: false,
    };
    for _ in 0..3 {
        let s = broker.snapshot_for("acc", none).await.expect("snapshot");
        assert_eq!(s.positions.len(), 1);
        assert_eq!(s.orders, None, "orders were not asked for");
        assert!(s.quotes.is_empty(), "prices were not asked for");
        assert!(s.equity > rust_decimal::Decimal::ZERO, "the kept balances");
    }
    assert_eq!(fake.count("ma-acc", "positions"), 3);
    assert_eq!(fake.count("ma-acc", "account-information"), 1);
    assert_eq!(fake.count("ma-acc", "orders"), 0);
    assert_eq!(fake.count("ma-acc", "current-price/AUDNZD"), 0);
    // Fresh balances when asked for; orders on demand.
    let fresh = Needs {
        balances: true,
        ..none
    };
    broker.snapshot_for("acc", fresh).await.expect("snapshot");
    assert_eq!(fake.count("ma-acc", "account-information"), 2);
    let orders = broker.pending_orders("acc").await.expect("orders");
    assert_eq!(orders, Some(Vec::new()));
    assert_eq!(fake.count("ma-acc", "orders"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_without_guards_asks_for_positions_only_until_a_trade_has_none() {
    let (_, db) = common::databases().await.swap_remove(0);
    let fake = FakeMetaApi::start(TOKEN, &[("ma-held", Script::Ok), ("ma-gone", Script::Ok)]).await;
    import_text(&db, "held", HELD).await;
    import(&db, "gone").await;
    let broker = broker(&fake, &["held", "gone"]);
    let tree = start(&db, &broker, &["held", "gone"]).await;
    wait_for(&tree, "six syncs each", |s| {
        acc(s, "held").syncs_ok >= 6 && acc(s, "gone").syncs_ok >= 6
    })
    .await;
    flush(&tree).await;
    let held = fake.count("ma-held", "positions");
    assert!(held >= 6, "{held}");
    assert_eq!(fake.count("ma-held", "account-information"), 1);
    assert_eq!(fake.count("ma-held", "orders"), 0);
    assert_eq!(fake.count("ma-held", "current-price/AUDNZD"), 0);
    assert!(open_kinds(&db, "held").await.is_empty());
    // The example trades include one without a position: every sync reads the orders.
    let gone = fake.count("ma-gone", "positions");
    let orders = fake.count("ma-gone", "orders");
    assert!(
        orders + 1 >= gone && orders >= 6,
        "{orders} orders, {gone} positions"
    );
    assert!(
        open_kinds(&db, "gone").await.contains("missing_at_broker"),
        "the trade without a position is still raised"
    );
    tree.abort().await;
}
