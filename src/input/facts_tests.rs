//! Pending-order and deal files in both formats: the examples read exactly, every refusal
//! names the file, the element, the field and the value, and hostile input never panics.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use rstest::rstest;
use rust_decimal::dec;

use super::text::{MAX_COMMENT_BYTES, MAX_ID_BYTES, MAX_SYMBOL_BYTES};
use super::*;
use crate::broker::wire::mutate;
use crate::domain::{DealEntry, DealReason, Side};

const METAAPI_ORDERS: &str = include_str!("../../examples/data/metaapi-orders.json");
const MT5_ORDERS: &str = include_str!("../../examples/data/mt5-orders.json");
const METAAPI_DEALS: &str = include_str!("../../examples/data/metaapi-deals.json");
const MT5_DEALS: &str = include_str!("../../examples/data/mt5-deals.json");

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("a valid instant")
}

#[test]
fn metaapi_orders_read_exactly() {
    let orders = parse_orders("orders.json", METAAPI_ORDERS).expect("example orders");
    assert_eq!(orders.len(), 2);
    let o = &orders[0];
    assert_eq!(
        (o.ticket, o.symbol.as_str(), o.side),
        (46871284, "EURUSD", Side::Sell)
    );
    assert_eq!(o.volume.get(), dec!(0.2));
    assert_eq!(o.price.map(|p| p.get()), Some(dec!(1.08512)));
    assert_eq!((o.magic, o.comment.as_str()), (1000, "bot-eurusd-7"));
    assert_eq!(o.client_id.as_deref(), Some("bot-eurusd-7"));
    assert_eq!(o.placed_at, at("2020-04-17T05:00:00.412Z"));
    let o = &orders[1];
    assert_eq!(
        (o.side, o.magic, o.client_id.as_deref()),
        (Side::Buy, 0, None)
    );
}

#[test]
fn mt5_orders_read_exactly() {
    let orders = parse_orders("orders.json", MT5_ORDERS).expect("example orders");
    assert_eq!(orders.len(), 2);
    let o = &orders[0];
    assert_eq!(
        (o.ticket, o.symbol.as_str(), o.side),
        (1468460012, "EURUSD", Side::Buy)
    );
    assert_eq!(o.volume.get(), dec!(0.02));
    assert_eq!(o.price.map(|p| p.get()), Some(dec!(1.0712)));
    assert_eq!(
        (o.magic, o.comment.as_str(), o.client_id.as_deref()),
        (456, "t-eurusd", None)
    );
    assert_eq!(
        o.placed_at,
        at("2022-09-26T18:46:51.734Z"),
        "time_setup_msc first"
    );
    assert_eq!(orders[1].side, Side::Sell, "5 is a sell stop");
}

#[rstest]
#[case::buy("ORDER_TYPE_BUY", Some(Side::Buy))]
#[case::sell("ORDER_TYPE_SELL", Some(Side::Sell))]
#[case::buy_limit("ORDER_TYPE_BUY_LIMIT", Some(Side::Buy))]
#[case::sell_limit("ORDER_TYPE_SELL_LIMIT", Some(Side::Sell))]
#[case::buy_stop("ORDER_TYPE_BUY_STOP", Some(Side::Buy))]
#[case::sell_stop("ORDER_TYPE_SELL_STOP", Some(Side::Sell))]
#[case::buy_stop_limit("ORDER_TYPE_BUY_STOP_LIMIT", Some(Side::Buy))]
#[case::sell_stop_limit("ORDER_TYPE_SELL_STOP_LIMIT", Some(Side::Sell))]
#[case::close_by("ORDER_TYPE_CLOSE_BY", None)]
fn metaapi_order_types(#[case] kind: &str, #[case] side: Option<Side>) {
    let text = format!(
        r#"[{{"id": "1", "type": "{kind}", "symbol": "EURUSD", "volume": 0.1,
            "openPrice": 1.1, "time": "2020-04-20T08:38:58.270Z"}}]"#
    );
    let orders = parse_orders("o", &text).expect("a known type");
    assert_eq!(orders.first().map(|o| o.side), side);
}

#[rstest]
#[case::buy(0, Some(Side::Buy))]
#[case::sell(1, Some(Side::Sell))]
#[case::buy_limit(2, Some(Side::Buy))]
#[case::sell_limit(3, Some(Side::Sell))]
#[case::buy_stop(4, Some(Side::Buy))]
#[case::sell_stop(5, Some(Side::Sell))]
#[case::buy_stop_limit(6, Some(Side::Buy))]
#[case::sell_stop_limit(7, Some(Side::Sell))]
#[case::close_by(8, None)]
fn mt5_order_types(#[case] kind: i64, #[case] side: Option<Side>) {
    let text = format!(
        r#"[{{"ticket": 1, "type": {kind}, "symbol": "EURUSD", "volume_current": 0.1,
            "price_open": 1.1, "time_setup": 1664218011}}]"#
    );
    let orders = parse_orders("o", &text).expect("a known type");
    assert_eq!(orders.first().map(|o| o.side), side);
}

#[test]
fn the_volume_of_an_order_is_what_is_left_to_fill() {
    let text = r#"[
        {"id": "1", "type": "ORDER_TYPE_BUY_LIMIT", "symbol": "X", "volume": 0.3, "currentVolume": 0.1, "time": "2020-04-20T08:38:58Z"},
        {"id": "2", "type": "ORDER_TYPE_BUY_LIMIT", "symbol": "X", "volume": 0.3, "time": "2020-04-20T08:38:58Z"},
        {"id": "3", "type": "ORDER_TYPE_BUY_LIMIT", "symbol": "X", "volume": 0.3, "currentVolume": 0, "time": "2020-04-20T08:38:58Z"}
    ]"#;
    let orders = parse_orders("o", text).expect("orders");
    let volumes: Vec<_> = orders.iter().map(|o| (o.ticket, o.volume.get())).collect();
    assert_eq!(
        volumes,
        [(1, dec!(0.1)), (2, dec!(0.3))],
        "nothing left: left out"
    );
    assert_eq!(
        orders[0].price, None,
        "a market order has no price of its own"
    );
}

const MA_ORDER: &str = r#""id": "1", "type": "ORDER_TYPE_BUY_LIMIT", "symbol": "EURUSD", "currentVolume": 0.1, "openPrice": 1.1, "time": "2020-04-20T08:38:58Z""#;
const MT5_ORDER: &str = r#""ticket": 1, "type": 2, "symbol": "EURUSD", "volume_current": 0.1, "price_open": 1.1, "time_setup": 1664218011"#;

/// `base` with `field` set to the JSON text `value` (replacing it when present).
fn with(base: &str, field: &str, value: &str) -> String {
    let kept: Vec<&str> = base
        .split(", ")
        .filter(|kv| !kv.starts_with(&format!("\"{field}\":")))
        .collect();
    format!("[{{{}, \"{field}\": {value}}}]", kept.join(", "))
}

#[rstest]
#[case::ma_unknown_type(MA_ORDER, "type", r#""ORDER_TYPE_BUY_MAYBE""#, "expected one of")]
#[case::ma_negative_volume(MA_ORDER, "currentVolume", "-0.1", "greater than zero")]
#[case::ma_nan_price(MA_ORDER, "openPrice", r#""NaN""#, "finite")]
#[case::ma_bad_time(MA_ORDER, "time", r#""yesterday""#, "ISO 8601")]
#[case::ma_symbol_nul(MA_ORDER, "symbol", r#""EUR\u0000USD""#, "U+0000")]
#[case::ma_symbol_long(MA_ORDER, "symbol", &format!("\"{}\"", "x".repeat(MAX_SYMBOL_BYTES + 1)), "longer than")]
#[case::ma_comment_long(MA_ORDER, "comment", &format!("\"{}\"", "x".repeat(MAX_COMMENT_BYTES + 1)), "longer than")]
#[case::ma_client_id_long(MA_ORDER, "clientId", &format!("\"{}\"", "x".repeat(MAX_ID_BYTES + 1)), "longer than")]
#[case::ma_id(MA_ORDER, "id", r#""abc""#, "ticket number")]
#[case::mt5_type(MT5_ORDER, "type", "9", "expected 0 to 7")]
#[case::mt5_volume(MT5_ORDER, "volume_current", r#""x""#, "number")]
#[case::mt5_time(MT5_ORDER, "time_setup_msc", "1.5", "milliseconds")]
#[case::mt5_comment_tab(MT5_ORDER, "comment", r#""a\tb""#, "U+0009")]
fn a_bad_order_names_file_element_field_and_value(
    #[case] base: &str,
    #[case] field: &str,
    #[case] value: &str,
    #[case] said: &str,
) {
    let e = parse_orders("orders.json", &with(base, field, value)).unwrap_err();
    assert_eq!((e.index, e.field.as_deref()), (Some(0), Some(field)), "{e}");
    assert!(e.reason.contains(said), "{e}");
    let shown = e.value.clone().unwrap_or_default();
    assert!(!shown.chars().any(char::is_control), "{shown:?}");
    assert!(
        e.to_string().starts_with("orders.json: element 0, field"),
        "{e}"
    );
}

#[rstest]
#[case::no_type(r#"[{"id": "1"}]"#, 0, Some("type"), "missing required field")]
#[case::odd_type(
    r#"[{"id": "1", "type": true}]"#,
    0,
    Some("type"),
    "neither a MetaApi order"
)]
#[case::mixed(&format!("[{{{MA_ORDER}}}, {{{MT5_ORDER}}}]"), 1, None, "mixes formats")]
#[case::duplicate(&format!("[{{{MA_ORDER}}}, {{{MA_ORDER}}}]"), 1, Some("id"), "duplicate order ticket")]
#[case::no_volume(
    r#"[{"ticket": 1, "type": 2, "symbol": "X", "time_setup": 1}]"#,
    0,
    Some("volume_current"),
    "no volume_initial"
)]
fn a_bad_orders_file_names_where(
    #[case] text: &str,
    #[case] index: usize,
    #[case] field: Option<&str>,
    #[case] said: &str,
) {
    let e = parse_orders("orders.json", text).unwrap_err();
    assert_eq!((e.index, e.field.as_deref()), (Some(index), field), "{e}");
    assert!(e.reason.contains(said), "{e}");
}

#[test]
fn metaapi_deals_read_exactly_without_balance_deals() {
    let deals = parse_deals("deals.json", METAAPI_DEALS).expect("example deals");
    let tickets: Vec<u64> = deals.iter().map(|d| d.ticket).collect();
    assert_eq!(
        tickets,
        [33230104, 33230112, 33230187],
        "the balance deal is left out"
    );
    let out = &deals[2];
    assert_eq!((out.position_id, out.symbol.as_str()), (46648041, "AUDNZD"));
    assert_eq!(
        (out.side, out.entry, out.reason),
        (Side::Buy, DealEntry::Out, DealReason::StopLoss)
    );
    assert_eq!(
        (out.volume.get(), out.price.get(), out.profit),
        (dec!(0.07), dec!(1.05964), dec!(-8.37))
    );
    assert_eq!(out.time, at("2020-04-17T06:12:44.517Z"));
    assert_eq!(
        (deals[0].entry, deals[0].reason),
        (DealEntry::In, DealReason::Expert)
    );
}

#[test]
fn mt5_deals_read_exactly_without_balance_deals() {
    let deals = parse_deals("deals.json", MT5_DEALS).expect("example deals");
    let tickets: Vec<u64> = deals.iter().map(|d| d.ticket).collect();
    assert_eq!(tickets, [1201492211, 1201492380, 1201497744]);
    let out = &deals[2];
    assert_eq!(
        (out.position_id, out.side, out.entry),
        (1468454402, Side::Sell, DealEntry::Out)
    );
    assert_eq!(
        (out.reason, out.profit),
        (DealReason::StopLoss, dec!(-4.73))
    );
    assert_eq!(out.time, at("2022-09-26T18:55:20.077Z"), "time_msc first");
    assert_eq!(deals[0].reason, DealReason::Client);
}

#[rstest]
#[case::client("DEAL_REASON_CLIENT", 0, DealReason::Client)]
#[case::mobile("DEAL_REASON_MOBILE", 1, DealReason::Mobile)]
#[case::web("DEAL_REASON_WEB", 2, DealReason::Web)]
#[case::expert("DEAL_REASON_EXPERT", 3, DealReason::Expert)]
#[case::sl("DEAL_REASON_SL", 4, DealReason::StopLoss)]
#[case::tp("DEAL_REASON_TP", 5, DealReason::TakeProfit)]
#[case::so("DEAL_REASON_SO", 6, DealReason::StopOut)]
#[case::rollover("DEAL_REASON_ROLLOVER", 7, DealReason::Other)]
#[case::vmargin("DEAL_REASON_VMARGIN", 8, DealReason::Other)]
#[case::split("DEAL_REASON_SPLIT", 9, DealReason::Other)]
#[case::unknown("DEAL_REASON_CORPORATE_ACTION", 10, DealReason::Other)]
fn deal_reasons(#[case] metaapi: &str, #[case] mt5: i64, #[case] reason: DealReason) {
    let ma = format!(
        r#"[{{"id": "1", "type": "DEAL_TYPE_SELL", "entryType": "DEAL_ENTRY_OUT", "reason": "{metaapi}",
            "positionId": "7", "symbol": "X", "volume": 1, "price": 1, "time": "2020-04-17T06:12:44Z"}}]"#
    );
    let m = format!(
        r#"[{{"ticket": 1, "type": 1, "entry": 1, "reason": {mt5}, "position_id": 7,
            "symbol": "X", "volume": 1, "price": 1, "time": 1664218520}}]"#
    );
    for text in [ma, m] {
        let deals = parse_deals("d", &text).expect("a deal");
        assert_eq!(deals[0].reason, reason, "{text}");
    }
}

#[rstest]
#[case::in_("DEAL_ENTRY_IN", 0, DealEntry::In)]
#[case::out("DEAL_ENTRY_OUT", 1, DealEntry::Out)]
#[case::in_out("DEAL_ENTRY_INOUT", 2, DealEntry::InOut)]
#[case::out_by("DEAL_ENTRY_OUT_BY", 3, DealEntry::OutBy)]
fn deal_entries(#[case] metaapi: &str, #[case] mt5: i64, #[case] entry: DealEntry) {
    let ma = format!(
        r#"[{{"id": "1", "type": "DEAL_TYPE_BUY", "entryType": "{metaapi}", "positionId": "7",
            "symbol": "X", "volume": 1, "price": 1, "time": "2020-04-17T06:12:44Z"}}]"#
    );
    let m = format!(
        r#"[{{"ticket": 1, "type": 0, "entry": {mt5}, "position_id": 7, "symbol": "X",
            "volume": 1, "price": 1, "time": 1664218520}}]"#
    );
    for text in [ma, m] {
        assert_eq!(
            parse_deals("d", &text).expect("a deal")[0].entry,
            entry,
            "{text}"
        );
    }
}

const MA_DEAL: &str = r#""id": "1", "type": "DEAL_TYPE_SELL", "entryType": "DEAL_ENTRY_OUT", "positionId": "7", "symbol": "EURUSD", "volume": 0.1, "price": 1.1, "time": "2020-04-17T06:12:44Z""#;
const MT5_DEAL: &str = r#""ticket": 1, "type": 1, "entry": 1, "reason": 4, "position_id": 7, "symbol": "EURUSD", "volume": 0.1, "price": 1.1, "time": 1664218520"#;

#[rstest]
#[case::ma_type(MA_DEAL, "type", r#""SELL""#, "DEAL_TYPE_")]
#[case::ma_entry(MA_DEAL, "entryType", r#""DEAL_ENTRY_SIDEWAYS""#, "expected one of")]
#[case::ma_no_position(MA_DEAL, "positionId", "null", "missing required field")]
#[case::ma_volume(MA_DEAL, "volume", "0", "greater than zero")]
#[case::ma_price(MA_DEAL, "price", r#""Infinity""#, "finite")]
#[case::ma_profit(MA_DEAL, "profit", r#""NaN""#, "finite")]
#[case::ma_time(MA_DEAL, "time", "1664218520", "string")]
#[case::ma_symbol(MA_DEAL, "symbol", r#""EUR\u0000USD""#, "U+0000")]
#[case::mt5_entry(MT5_DEAL, "entry", "4", "expected 0 (in)")]
#[case::mt5_position_zero(MT5_DEAL, "position_id", "0", "not 0")]
#[case::mt5_type(MT5_DEAL, "type", "-1", "expected a deal type")]
#[case::mt5_volume(MT5_DEAL, "volume", "-0.1", "greater than zero")]
#[case::mt5_time(MT5_DEAL, "time", "1.5", "unix seconds")]
#[case::mt5_symbol_long(MT5_DEAL, "symbol", &format!("\"{}\"", "x".repeat(MAX_SYMBOL_BYTES + 1)), "longer than")]
fn a_bad_deal_names_file_element_field_and_value(
    #[case] base: &str,
    #[case] field: &str,
    #[case] value: &str,
    #[case] said: &str,
) {
    let e = parse_deals("deals.json", &with(base, field, value)).unwrap_err();
    assert_eq!((e.index, e.field.as_deref()), (Some(0), Some(field)), "{e}");
    assert!(e.reason.contains(said), "{e}");
    assert!(
        e.to_string().starts_with("deals.json: element 0, field"),
        "{e}"
    );
}

#[rstest]
#[case::mixed(&format!("[{{{MA_DEAL}}}, {{{MT5_DEAL}}}]"), Some(1), None, "mixes formats")]
#[case::duplicate(&format!("[{{{MT5_DEAL}}}, {{{MT5_DEAL}}}]"), Some(1), Some("ticket"), "duplicate deal ticket")]
#[case::not_an_array(r#"{"deals": []}"#, None, None, "expected a JSON array")]
fn a_bad_deals_file_names_where(
    #[case] text: &str,
    #[case] index: Option<usize>,
    #[case] field: Option<&str>,
    #[case] said: &str,
) {
    let e = parse_deals("deals.json", text).unwrap_err();
    assert_eq!((e.index, e.field.as_deref()), (index, field), "{e}");
    assert!(e.reason.contains(said), "{e}");
}

const ORDER_SEEDS: &[&str] = &[METAAPI_ORDERS, MT5_ORDERS];
const DEAL_SEEDS: &[&str] = &[METAAPI_DEALS, MT5_DEALS];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512)
    ))]

    /// Hostile order files never panic; what is accepted is sound.
    #[test]
    fn hostile_order_files_never_panic(text in mutate::mutated(ORDER_SEEDS)) {
        if let Ok(orders) = parse_orders("o", &text) {
            let mut tickets = std::collections::HashSet::new();
            for o in &orders {
                prop_assert!(o.volume.get() > rust_decimal::Decimal::ZERO);
                prop_assert!(tickets.insert(o.ticket), "duplicate ticket {}", o.ticket);
            }
        }
    }

    /// Hostile deal files never panic; what is accepted is sound.
    #[test]
    fn hostile_deal_files_never_panic(text in mutate::mutated(DEAL_SEEDS)) {
        if let Ok(deals) = parse_deals("d", &text) {
            let mut tickets = std::collections::HashSet::new();
            for d in &deals {
                prop_assert!(d.volume.get() > rust_decimal::Decimal::ZERO);
                prop_assert!(d.price.get() > rust_decimal::Decimal::ZERO);
                prop_assert!(d.position_id != 0);
                prop_assert!(tickets.insert(d.ticket), "duplicate ticket {}", d.ticket);
            }
        }
    }
}
