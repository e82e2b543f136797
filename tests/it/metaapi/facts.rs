//! The facts beyond positions through the MetaApi adapter, against the fake MetaApi: the
//! margin mode and the pending orders come with every snapshot (three account requests
//! per snapshot), a failed or malformed orders read fails the snapshot, a position's deals
//! are read on demand (the closing deal of a position closed through `trade` among them),
//! and a pending order is cancelled through `trade`, a second cancel being no error.

use mt5_reconciler::broker::{Broker, BrokerError, ErrorClass};
use mt5_reconciler::domain::{DealEntry, DealLookup, DealReason, MarginMode, Side};

use super::fake::{ACCOUNT, FakeMetaApi, Script};
use super::{TOKEN, broker};

const ORDERS: &str = include_str!("../../../examples/data/metaapi-orders.json");
const DEALS: &str = include_str!("../../../examples/data/metaapi-deals.json");

fn netting() -> String {
    ACCOUNT.replace(
        "ACCOUNT_MARGIN_MODE_RETAIL_HEDGING",
        "ACCOUNT_MARGIN_MODE_RETAIL_NETTING",
    )
}

#[tokio::test]
async fn the_margin_mode_and_pending_orders_come_with_every_snapshot() {
    let fake = FakeMetaApi::start(
        TOKEN,
        &[
            ("ma-net", Script::Account(netting())),
            ("ma-hedge", Script::Ok),
        ],
    )
    .await;
    fake.set_orders("ma-net", ORDERS);
    let broker = broker(&fake, &["net", "hedge"]);
    let s = broker.snapshot("net").await.expect("snapshot");
    assert_eq!(s.margin_mode, Some(MarginMode::Netting));
    let orders = s.orders.expect("MetaApi reports pending orders");
    let seen: Vec<_> = orders.iter().map(|o| (o.ticket, o.side)).collect();
    assert_eq!(seen, [(46871284, Side::Sell), (46871302, Side::Buy)]);
    assert_eq!(orders[0].client_id.as_deref(), Some("bot-eurusd-7"));
    for endpoint in ["positions", "account-information", "orders"] {
        assert_eq!(fake.count("ma-net", endpoint), 1, "{endpoint}");
    }
    let s = broker.snapshot("hedge").await.expect("snapshot");
    assert_eq!(s.margin_mode, Some(MarginMode::Hedging));
    assert_eq!(
        s.orders,
        Some(Vec::new()),
        "no pending order: an empty list"
    );
}

#[tokio::test]
async fn a_failed_or_malformed_orders_read_fails_the_snapshot() {
    let fake = FakeMetaApi::start(TOKEN, &[("ma-acc", Script::Ok)]).await;
    let broker = broker(&fake, &["acc"]);
    fake.set_orders(
        "ma-acc",
        ORDERS.replacen("ORDER_TYPE_SELL_LIMIT", "LIMIT", 1),
    );
    let e = broker.snapshot("acc").await.expect_err("a malformed order");
    let BrokerError::Malformed { field, reason } = &e else {
        panic!("expected malformed, got {e:?}");
    };
    assert_eq!(field, "orders[0].type");
    assert!(reason.contains("LIMIT"), "{reason}");
    fake.set_orders("ma-acc", r#"{"id": 1, "error": "oops"}"#);
    let e = broker.snapshot("acc").await.expect_err("not a list");
    assert_eq!(e.class(), ErrorClass::Malformed, "{e}");
    let fake = FakeMetaApi::start(
        TOKEN,
        &[("ma-acc", Script::Status(503, r#"{"error": "down"}"#.into()))],
    )
    .await;
    let e = super::broker(&fake, &["acc"])
        .snapshot("acc")
        .await
        .expect_err("a failed read is no reading");
    assert_eq!(e.class(), ErrorClass::Retryable, "{e}");
}

#[tokio::test]
async fn a_positions_deals_are_read_on_demand() {
    let fake = FakeMetaApi::start(TOKEN, &[("ma-acc", Script::Ok)]).await;
    fake.add_deals("ma-acc", DEALS);
    let broker = broker(&fake, &["acc"]);
    let DealLookup::Found(deals) = broker.position_deals("acc", 46648041).await.expect("deals")
    else {
        panic!("MetaApi has per-position history");
    };
    let seen: Vec<_> = deals.iter().map(|d| (d.entry, d.reason)).collect();
    assert_eq!(
        seen,
        [
            (DealEntry::In, DealReason::Expert),
            (DealEntry::Out, DealReason::StopLoss)
        ]
    );
    assert_eq!(
        broker.position_deals("acc", 999).await,
        Ok(DealLookup::Found(Vec::new())),
        "a history that may lag, not proof of no deal"
    );
    assert_eq!(fake.count("ma-acc", "history-deals/position/46648041"), 1);
    broker.snapshot("acc").await.expect("snapshot");
    assert_eq!(
        fake.count("ma-acc", "history-deals/position/46648041"),
        1,
        "not per snapshot"
    );
    broker
        .close_position("acc", 46648037)
        .await
        .expect("closed");
    let DealLookup::Found(deals) = broker.position_deals("acc", 46648037).await.expect("deals")
    else {
        panic!("found");
    };
    let last = deals.last().expect("the closing deal");
    assert_eq!(
        (last.entry, last.reason, last.side),
        (DealEntry::Out, DealReason::Expert, Side::Sell)
    );
}

#[tokio::test]
async fn a_pending_order_is_cancelled_and_a_second_cancel_is_no_error() {
    let fake = FakeMetaApi::start(TOKEN, &[("ma-acc", Script::Ok)]).await;
    fake.set_orders("ma-acc", ORDERS);
    let broker = broker(&fake, &["acc"]);
    broker
        .cancel_order("acc", 46871284)
        .await
        .expect("cancelled");
    assert!(fake.cancelled("ma-acc").contains("46871284"));
    let s = broker.snapshot("acc").await.expect("snapshot");
    let left: Vec<u64> = s
        .orders
        .unwrap_or_default()
        .iter()
        .map(|o| o.ticket)
        .collect();
    assert_eq!(left, [46871302]);
    broker
        .cancel_order("acc", 46871284)
        .await
        .expect("an order already gone is not an error");
    fake.answer_trades(
        "ma-acc",
        [(
            200,
            r#"{"numericCode": 10018, "stringCode": "TRADE_RETCODE_MARKET_CLOSED"}"#.to_owned(),
        )],
    );
    let e = broker
        .cancel_order("acc", 46871302)
        .await
        .expect_err("market closed");
    assert_eq!(e.class(), ErrorClass::Retryable, "{e}");
    assert!(e.to_string().contains("order 46871302"), "{e}");
    assert_eq!(fake.count("ma-acc", "trade"), 3);
}
