//! Tests of the MT5 export adapter: fresh, stale, missing, oversized and hostile exports,
//! the bridge script's own tests (with the stand-in MetaTrader5 module), and the bridge's
//! output read back by the adapter.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use rust_decimal::dec;
use sha2::{Digest, Sha256};

use super::*;
use crate::broker::wire::mutate;
use crate::broker::{Broker, ErrorClass};
use crate::domain::{DealEntry, DealReason, MarginMode};

const POSITIONS: &str = include_str!("../../../examples/data/mt5-positions.json");
const ACCOUNT: &str = r#"{"login": 25115284, "trade_mode": 0, "leverage": 100,
  "balance": 99511.4, "credit": 0.0, "profit": 6.01, "equity": 99517.41, "margin": 24.16,
  "margin_free": 99493.25, "margin_level": 411909.8, "currency": "USD"}"#;

fn export(dir: &Path, account: &str, positions: &str, info: &str) {
    let d = dir.join(account);
    std::fs::create_dir_all(&d).expect("export dir");
    std::fs::write(d.join(POSITIONS_FILE), positions).expect("positions");
    std::fs::write(d.join(ACCOUNT_FILE), info).expect("account");
}

/// The SHA-256 (hex) of `text`, as the bridge writes it into `quotes.json`.
fn sha(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A `quotes.json` of the round that wrote `positions`.
fn quotes_of(positions: &str, quotes: &str) -> String {
    format!(
        r#"{{"positions_sha256": "{}", "quotes": {quotes}}}"#,
        sha(positions)
    )
}

const TICKS: &str = r#"[
  {"time": 1772618400, "bid": 0.98528, "ask": 0.98532, "last": 0.0, "volume": 0,
   "time_msc": 1772618400250, "flags": 6, "volume_real": 0.0, "symbol": "USDCHF"},
  {"time": 1772618399, "bid": 2419.91, "ask": 2420.14, "symbol": "XAUUSD"}
]"#;

fn at(text: &str) -> chrono::DateTime<Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("time")
        .to_utc()
}

fn broker(dir: &Path, max_age_secs: u64) -> Mt5ExportBroker {
    Mt5ExportBroker::new(&Mt5ExportConfig {
        dir: dir.to_owned(),
        max_age_secs,
        ..Mt5ExportConfig::default()
    })
}

fn age(path: &Path, by: Duration) {
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open to age");
    file.set_modified(SystemTime::now() - by)
        .expect("set mtime");
}

/// The account file of a terminal that says whether it is connected to its trade server.
fn with_terminal(connected: &str) -> String {
    ACCOUNT.replace(
        r#""currency": "USD"}"#,
        &format!(
            r#""currency": "USD", "terminal_connected": {connected}, "terminal_trade_allowed": true}}"#
        ),
    )
}

#[tokio::test]
async fn a_disconnected_terminals_empty_positions_are_unknown_not_flat() {
    let dir = tempfile::tempdir().expect("tempdir");
    export(dir.path(), "acc-1", "[]", &with_terminal("false"));
    let e = broker(dir.path(), 30)
        .snapshot("acc-1")
        .await
        .expect_err("a disconnected terminal is no reading");
    assert_eq!(e.class(), ErrorClass::Retryable, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("acc-1/account.json") && text.contains("terminal_connected = false"),
        "{text}"
    );
    // Connected, or an older bridge that does not say: the file is read as before.
    for info in [with_terminal("true"), ACCOUNT.to_owned()] {
        export(dir.path(), "acc-1", "[]", &info);
        let s = broker(dir.path(), 30)
            .snapshot("acc-1")
            .await
            .expect("read");
        assert!(s.positions.is_empty());
    }
    // Anything but a boolean is malformed, naming the field and value.
    export(dir.path(), "acc-1", "[]", &with_terminal(r#""yes""#));
    let e = broker(dir.path(), 30)
        .snapshot("acc-1")
        .await
        .expect_err("malformed");
    assert_eq!(e.class(), ErrorClass::Malformed, "{e}");
    assert!(
        e.to_string()
            .contains(r#"acc-1/account.json.terminal_connected"#),
        "{e}"
    );
}

#[tokio::test]
async fn a_fresh_export_is_read_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    export(dir.path(), "acc-1", POSITIONS, ACCOUNT);
    let s = broker(dir.path(), 30)
        .snapshot("acc-1")
        .await
        .expect("snapshot");
    assert_eq!(s.positions.len(), 3);
    assert_eq!(
        s.positions.iter().map(|p| p.ticket).collect::<Vec<_>>(),
        [1468454363, 658189343, 189164460]
    );
    assert_eq!(s.positions[1].sl.map(|p| p.get()), Some(dec!(2418.07)));
    assert_eq!(s.positions[0].sl, None, "sl 0.0 means not set");
    assert_eq!(
        (s.balance, s.equity, s.margin, s.free_margin),
        (dec!(99511.4), dec!(99517.41), dec!(24.16), dec!(99493.25))
    );
}

#[tokio::test]
async fn no_positions_is_an_empty_account_only_when_exported_as_such() {
    let dir = tempfile::tempdir().expect("tempdir");
    export(dir.path(), "flat", "[]", ACCOUNT);
    let s = broker(dir.path(), 30)
        .snapshot("flat")
        .await
        .expect("snapshot");
    assert!(s.positions.is_empty());
    let e = broker(dir.path(), 30)
        .snapshot("never-exported")
        .await
        .expect_err("a missing export is not an empty account");
    assert_eq!(e.class(), ErrorClass::Retryable);
    assert!(e.to_string().contains("no export yet"), "{e}");
}

#[tokio::test]
async fn a_stale_file_is_retryable_never_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    export(dir.path(), "acc-1", POSITIONS, ACCOUNT);
    for file in [POSITIONS_FILE, ACCOUNT_FILE] {
        export(dir.path(), "acc-1", POSITIONS, ACCOUNT);
        age(
            &dir.path().join("acc-1").join(file),
            Duration::from_secs(120),
        );
        let e = broker(dir.path(), 30)
            .snapshot("acc-1")
            .await
            .expect_err("stale");
        assert_eq!(e.class(), ErrorClass::Retryable, "{e}");
        let text = e.to_string();
        assert!(text.contains("stale") && text.contains(file), "{text}");
        assert!(text.contains("max_age_secs = 30"), "{text}");
    }
    // A longer max age accepts the same files.
    assert!(broker(dir.path(), 600).snapshot("acc-1").await.is_ok());
}

/// Sets `path`'s modification time `by` ahead of now.
fn date_ahead(path: &Path, by: Duration) {
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open to date ahead");
    file.set_modified(SystemTime::now() + by)
        .expect("set mtime");
}

#[tokio::test]
async fn a_file_from_the_future_is_stale_beyond_the_allowed_skew() {
    let dir = tempfile::tempdir().expect("tempdir");
    for file in [POSITIONS_FILE, ACCOUNT_FILE] {
        export(dir.path(), "acc-1", POSITIONS, ACCOUNT);
        date_ahead(
            &dir.path().join("acc-1").join(file),
            Duration::from_secs(120),
        );
        let e = broker(dir.path(), 30)
            .snapshot("acc-1")
            .await
            .expect_err("a clock two minutes ahead");
        assert_eq!(e.class(), ErrorClass::Retryable, "{e}");
        let text = e.to_string();
        assert!(text.contains(file) && text.contains("ahead"), "{text}");
        assert!(text.contains("max_clock_skew_secs = 5"), "{text}");
    }
    // Within the skew it is fresh.
    export(dir.path(), "acc-1", POSITIONS, ACCOUNT);
    date_ahead(
        &dir.path().join("acc-1").join(POSITIONS_FILE),
        Duration::from_secs(2),
    );
    assert!(broker(dir.path(), 30).snapshot("acc-1").await.is_ok());
}

#[tokio::test]
async fn quotes_of_the_same_round_are_read_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    export(dir.path(), "acc-1", POSITIONS, ACCOUNT);
    let file = dir.path().join("acc-1").join(QUOTES_FILE);
    std::fs::write(&file, quotes_of(POSITIONS, TICKS)).expect("quotes");
    let b = broker(dir.path(), 30);
    assert!(b.quotes_available());
    let s = b.snapshot("acc-1").await.expect("snapshot");
    let q: Vec<_> = s
        .quotes
        .iter()
        .map(|q| (q.symbol.as_str(), q.bid, q.ask, q.time))
        .collect();
    assert_eq!(
        q,
        [
            (
                "USDCHF",
                dec!(0.98528),
                dec!(0.98532),
                at("2026-03-04T10:00:00.250Z")
            ),
            (
                "XAUUSD",
                dec!(2419.91),
                dec!(2420.14),
                at("2026-03-04T09:59:59Z")
            ),
        ],
        "time_msc first, else time"
    );
}

#[tokio::test]
async fn quotes_are_optional_and_never_fail_the_positions() {
    let dir = tempfile::tempdir().expect("tempdir");
    export(dir.path(), "acc-1", POSITIONS, ACCOUNT);
    let file = dir.path().join("acc-1").join(QUOTES_FILE);
    let read = || async {
        let s = broker(dir.path(), 30)
            .snapshot("acc-1")
            .await
            .expect("the positions read without quotes");
        assert_eq!(s.positions.len(), 3);
        s.quotes.len()
    };
    assert_eq!(read().await, 0, "no quotes file: an older bridge");
    std::fs::write(&file, quotes_of(POSITIONS, TICKS)).expect("quotes");
    assert_eq!(read().await, 2);
    // The next round's quotes beside this round's positions: none is used.
    std::fs::write(&file, quotes_of("[]", TICKS)).expect("quotes");
    assert_eq!(read().await, 0, "another round");
    for bad in ["{", "[]", r#"{"quotes": []}"#, &quotes_of(POSITIONS, "7")] {
        std::fs::write(&file, bad).expect("quotes");
        assert_eq!(read().await, 0, "{bad}");
    }
    std::fs::write(&file, quotes_of(POSITIONS, TICKS)).expect("quotes");
    age(&file, Duration::from_secs(120));
    assert_eq!(read().await, 0, "stale quotes");
}

#[rstest::rstest]
#[case::crossed(r#"{"symbol": "X", "bid": 1.2, "ask": 1.1, "time": 1}"#, "ask", "1.1")]
#[case::no_price(r#"{"symbol": "X", "bid": 0.0, "ask": 0.0, "time": 1}"#, "bid", "0.0")]
#[case::no_time(r#"{"symbol": "X", "bid": 1, "ask": 1}"#, "time", "time_msc")]
#[case::fractional_msc(
    r#"{"symbol": "X", "bid": 1, "ask": 1, "time_msc": 1.5}"#,
    "time_msc",
    "1.5"
)]
#[case::negative_time(r#"{"symbol": "X", "bid": 1, "ask": 1, "time": -5}"#, "time", "-5")]
#[case::huge_time(
    r#"{"symbol": "X", "bid": 1, "ask": 1, "time": 99999999999999999}"#,
    "time",
    "99999999999999999"
)]
#[case::server_ahead(
    r#"{"symbol": "X", "bid": 1, "ask": 1, "time": 1772625600}"#,
    "time",
    "1772625600"
)]
#[case::no_symbol(r#"{"bid": 1, "ask": 1, "time": 1}"#, "symbol", "missing")]
#[case::control(
    r#"{"symbol": "X\u0000", "bid": 1, "ask": 1, "time": 1}"#,
    "symbol",
    "U+0000"
)]
fn a_bad_quote_is_left_out_and_named(
    #[case] record: &str,
    #[case] field: &str,
    #[case] said: &str,
) {
    // Two hours after 10:00 on the server's clock is "now" + 2h: a UTC+2 server.
    let now = at("2026-03-04T10:00:00Z");
    let text = quotes_of(
        POSITIONS,
        &format!("[{record}, {}]", &TICKS[1..TICKS.len() - 1]),
    );
    let (quotes, problems) = parse_quotes("acc", POSITIONS, &text, now).expect("same round");
    assert_eq!(
        quotes.iter().map(|q| q.symbol.as_str()).collect::<Vec<_>>(),
        ["USDCHF", "XAUUSD"],
        "the others are kept"
    );
    let [BrokerError::Malformed { field: f, reason }] = problems.as_slice() else {
        panic!("one problem expected: {problems:?}");
    };
    assert_eq!(f, &format!("acc/quotes.json.quotes[0].{field}"));
    assert!(reason.contains(said), "{reason}");
}

#[test]
fn quotes_of_another_round_or_without_their_round_are_refused_whole() {
    let now = at("2026-03-04T10:00:00Z");
    assert_eq!(
        parse_quotes("acc", POSITIONS, &quotes_of("[]", TICKS), now),
        Err(Round::Other)
    );
    let Err(Round::Unreadable(BrokerError::Malformed { field, .. })) =
        parse_quotes("acc", POSITIONS, r#"{"quotes": []}"#, now)
    else {
        panic!("a file without its round must be refused");
    };
    assert_eq!(field, "acc/quotes.json.positions_sha256");
    let twice = quotes_of(
        POSITIONS,
        &format!("[{0}, {0}]", &TICKS[1..TICKS.len() - 1]),
    );
    let (quotes, problems) = parse_quotes("acc", POSITIONS, &twice, now).expect("same round");
    assert_eq!(quotes.len(), 2);
    assert_eq!(problems.len(), 2, "{problems:?}");
}

#[tokio::test]
async fn unsafe_account_ids_are_permanent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let too_long = "a".repeat(crate::input::text::MAX_ID_BYTES + 1);
    for id in ["..", "a/b", "", "x y", "a\0", &too_long] {
        let e = broker(dir.path(), 30).snapshot(id).await.expect_err(id);
        assert_eq!(e.class(), ErrorClass::Permanent, "{id:?}: {e}");
    }
}

#[tokio::test]
async fn an_oversized_file_is_malformed_and_not_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = format!("[{}]", " ".repeat(crate::broker::wire::MAX_PAYLOAD_BYTES));
    export(dir.path(), "big", &big, ACCOUNT);
    let e = broker(dir.path(), 30)
        .snapshot("big")
        .await
        .expect_err("too big");
    assert_eq!(e.class(), ErrorClass::Malformed, "{e}");
    assert!(e.to_string().contains("exceed the limit"), "{e}");
}

#[rstest::rstest]
#[case::negative_volume(POSITIONS.replacen("\"volume\": 0.01", "\"volume\": -0.01", 1), ACCOUNT, "acc/positions.json[0].volume")]
#[case::nan(POSITIONS.replacen("\"price_open\": 0.99145", "\"price_open\": \"NaN\"", 1), ACCOUNT, "acc/positions.json[0].price_open")]
#[case::duplicate(POSITIONS.replace("658189343", "1468454363"), ACCOUNT, "acc/positions.json[1].ticket")]
#[case::truncated(POSITIONS[..200].to_owned(), ACCOUNT, "acc/positions.json")]
#[case::missing_equity(POSITIONS.to_owned(), r#"{"balance": 1, "margin": 0, "margin_free": 1}"#, "acc/account.json.equity")]
#[case::infinity(POSITIONS.to_owned(), r#"{"balance": 1, "equity": "Infinity", "margin": 0, "margin_free": 1}"#, "acc/account.json.equity")]
fn hostile_records_name_the_field(
    #[case] positions: String,
    #[case] info: &str,
    #[case] field: &str,
) {
    match parse("acc", &positions, info) {
        Err(BrokerError::Malformed { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected malformed {field}, got {other:?}"),
    }
}

/// `positions.json` as the bridge writes it: the records with their export round.
fn positions_of_round(round: &str) -> String {
    format!(r#"{{"export_round": "{round}", "positions": {POSITIONS}}}"#)
}

/// `account.json` of an export round.
fn account_of_round(round: &str) -> String {
    ACCOUNT.replacen('{', &format!(r#"{{"export_round": "{round}", "#), 1)
}

#[test]
fn files_of_one_export_round_are_read_together() {
    let s = parse("acc", &positions_of_round("17"), &account_of_round("17")).expect("one round");
    assert_eq!(s.positions.len(), 3);
    assert_eq!(s.equity, dec!(99517.41));
    let flat = parse(
        "acc",
        r#"{"export_round": "18", "positions": []}"#,
        &account_of_round("18"),
    );
    assert!(flat.expect("an empty round").positions.is_empty());
}

#[rstest::rstest]
#[case::different_rounds(
    positions_of_round("17"),
    account_of_round("18"),
    "positions round 17, account round 18"
)]
#[case::account_without_round(positions_of_round("17"), ACCOUNT.to_owned(), "positions round 17, account round none")]
#[case::positions_without_round(POSITIONS.to_owned(), account_of_round("18"), "positions round none, account round 18")]
fn files_of_different_export_rounds_are_refused_as_retryable(
    #[case] positions: String,
    #[case] info: String,
    #[case] rounds: &str,
) {
    let e = parse("acc", &positions, &info).expect_err("rounds differ");
    assert_eq!(e.class(), ErrorClass::Retryable, "{e}");
    let text = e.to_string();
    assert!(
        text.contains(&format!("export round mismatch: {rounds}")) && text.contains("acc/"),
        "{text}"
    );
}

#[test]
fn an_export_without_rounds_from_an_older_bridge_is_still_read() {
    let s = parse("acc", POSITIONS, ACCOUNT).expect("no round in either file");
    assert_eq!(s.positions.len(), 3);
}

#[rstest::rstest]
#[case::round_not_a_string(
    r#"{"export_round": 17, "positions": []}"#,
    ACCOUNT,
    "acc/positions.json.export_round"
)]
#[case::no_positions(r#"{"export_round": "17"}"#, ACCOUNT, "acc/positions.json.positions")]
#[case::bad_record(
    r#"{"export_round": "17", "positions": [{"ticket": 1}]}"#,
    ACCOUNT,
    "acc/positions.json.positions[0]"
)]
#[case::account_round_not_a_string(
    POSITIONS,
    r#"{"export_round": [1], "balance": 1, "equity": 1, "margin": 0, "margin_free": 1}"#,
    "acc/account.json.export_round"
)]
fn malformed_export_rounds_name_the_field(
    #[case] positions: &str,
    #[case] info: &str,
    #[case] field: &str,
) {
    match parse("acc", positions, info) {
        Err(BrokerError::Malformed { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected malformed {field}, got {other:?}"),
    }
}

const ORDERS: &str = include_str!("../../../examples/data/mt5-orders.json");
const DEALS: &str = include_str!("../../../examples/data/mt5-deals.json");

/// `orders.json` of an export round.
fn orders_of_round(round: &str) -> String {
    format!(r#"{{"export_round": "{round}", "orders": {ORDERS}}}"#)
}

/// `deals.json` of an export round.
fn deals_of_round(round: &str) -> String {
    format!(
        r#"{{"export_round": "{round}", "date_from": 1664150000, "date_to": 1664323200, "deals": {DEALS}}}"#
    )
}

/// An export of round 17 with orders and deals.
fn export_all(dir: &Path, account: &str) {
    export(
        dir,
        account,
        &positions_of_round("17"),
        &account_of_round("17"),
    );
    let d = dir.join(account);
    std::fs::write(d.join(ORDERS_FILE), orders_of_round("17")).expect("orders");
    std::fs::write(d.join(DEALS_FILE), deals_of_round("17")).expect("deals");
}

#[rstest::rstest]
#[case::netting("0", Some(MarginMode::Netting))]
#[case::exchange("1", Some(MarginMode::Exchange))]
#[case::hedging("2", Some(MarginMode::Hedging))]
fn the_margin_mode_comes_from_the_account_record(
    #[case] mode: &str,
    #[case] expected: Option<MarginMode>,
) {
    let info = ACCOUNT.replacen('{', &format!(r#"{{"margin_mode": {mode}, "#), 1);
    let s = parse("acc", POSITIONS, &info).expect("a known margin mode");
    assert_eq!(s.margin_mode, expected);
    assert_eq!(
        parse("acc", POSITIONS, ACCOUNT).expect("none").margin_mode,
        None
    );
}

#[rstest::rstest]
#[case::unknown("3")]
#[case::negative("-1")]
#[case::text(r#""netting""#)]
fn an_unknown_margin_mode_is_malformed(#[case] mode: &str) {
    let info = ACCOUNT.replacen('{', &format!(r#"{{"margin_mode": {mode}, "#), 1);
    let Err(BrokerError::Malformed { field, reason }) = parse("acc", POSITIONS, &info) else {
        panic!("{mode} must be refused");
    };
    assert_eq!(field, "acc/account.json.margin_mode");
    assert!(reason.contains(mode), "{reason}");
}

#[tokio::test]
async fn orders_and_deals_of_the_round_come_with_the_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    export_all(dir.path(), "acc-1");
    let b = broker(dir.path(), 30);
    let s = b.snapshot("acc-1").await.expect("snapshot");
    let orders: Vec<u64> = s
        .orders
        .expect("exported")
        .iter()
        .map(|o| o.ticket)
        .collect();
    assert_eq!(orders, [1468460012, 1468460057]);
    let deals: Vec<u64> = s.deals.iter().map(|d| d.ticket).collect();
    assert_eq!(
        deals,
        [1201492211, 1201492380, 1201497744],
        "no balance deal"
    );
    let Ok(DealLookup::Found(of)) = b.position_deals("acc-1", 1468454402).await else {
        panic!("deals were exported");
    };
    let of: Vec<_> = of.iter().map(|d| (d.entry, d.reason)).collect();
    assert_eq!(
        of,
        [
            (DealEntry::In, DealReason::Expert),
            (DealEntry::Out, DealReason::StopLoss)
        ]
    );
    assert_eq!(
        b.position_deals("acc-1", 42).await,
        Ok(DealLookup::Found(Vec::new()))
    );
    assert_eq!(
        b.position_deals("acc-2", 1468454402).await,
        Ok(DealLookup::Unsupported),
        "an account never read"
    );
}

#[tokio::test]
async fn an_older_bridge_without_orders_or_deals_is_read_as_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    export_all(dir.path(), "acc-1");
    let b = broker(dir.path(), 30);
    b.snapshot("acc-1").await.expect("with deals");
    for file in [ORDERS_FILE, DEALS_FILE] {
        std::fs::remove_file(dir.path().join("acc-1").join(file)).expect("remove");
    }
    let s = b.snapshot("acc-1").await.expect("without orders and deals");
    assert_eq!(s.positions.len(), 3);
    assert_eq!(s.orders, None, "unknown, not none");
    assert!(s.deals.is_empty());
    assert_eq!(
        b.position_deals("acc-1", 1468454402).await,
        Ok(DealLookup::Unsupported),
        "the last read had no deals file"
    );
}

#[rstest::rstest]
#[case::orders_of_another_round(ORDERS_FILE, orders_of_round("18"), "orders.json round 18")]
#[case::deals_of_another_round(DEALS_FILE, deals_of_round("18"), "deals.json round 18")]
#[case::orders_without_round(ORDERS_FILE, ORDERS.to_owned(), "orders.json round none")]
fn orders_or_deals_of_another_round_are_refused_as_retryable(
    #[case] file: &str,
    #[case] text: String,
    #[case] said: &str,
) {
    let orders = orders_of_round("17");
    let deals = deals_of_round("17");
    let mut texts = ExportTexts {
        positions: &positions_of_round("17"),
        account: &account_of_round("17"),
        orders: Some(&orders),
        deals: Some(&deals),
    };
    if file == ORDERS_FILE {
        texts.orders = Some(&text);
    } else {
        texts.deals = Some(&text);
    }
    let e = parse_export("acc", &texts).expect_err("rounds differ");
    assert_eq!(e.class(), ErrorClass::Retryable, "{e}");
    let message = e.to_string();
    assert!(
        message.contains("export round mismatch") && message.contains(said),
        "{message}"
    );
}

#[rstest::rstest]
#[case::order_type(
    ORDERS_FILE,
    orders_of_round("17").replacen(r#""type": 2"#, r#""type": 11"#, 1),
    "acc/orders.json.orders[0].type"
)]
#[case::order_nan(
    ORDERS_FILE,
    orders_of_round("17").replacen(r#""volume_current": 0.02"#, r#""volume_current": "NaN""#, 1),
    "acc/orders.json.orders[0].volume_current"
)]
#[case::deal_entry(
    DEALS_FILE,
    deals_of_round("17").replacen(r#""entry": 1"#, r#""entry": 9"#, 1),
    "acc/deals.json.deals[3].entry"
)]
#[case::deal_symbol(
    DEALS_FILE,
    deals_of_round("17").replacen(r#""symbol": "USDCHF""#, r#""symbol": "USD\u0000CHF""#, 1),
    "acc/deals.json.deals[1].symbol"
)]
#[case::no_deals(
    DEALS_FILE,
    r#"{"export_round": "17"}"#.to_owned(),
    "acc/deals.json.deals"
)]
fn hostile_orders_and_deals_name_the_field(
    #[case] file: &str,
    #[case] text: String,
    #[case] field: &str,
) {
    let orders = orders_of_round("17");
    let deals = deals_of_round("17");
    let mut texts = ExportTexts {
        positions: &positions_of_round("17"),
        account: &account_of_round("17"),
        orders: Some(&orders),
        deals: Some(&deals),
    };
    if file == ORDERS_FILE {
        texts.orders = Some(&text);
    } else {
        texts.deals = Some(&text);
    }
    match parse_export("acc", &texts) {
        Err(BrokerError::Malformed { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected malformed {field}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stale_orders_or_deals_file_fails_the_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    for file in [ORDERS_FILE, DEALS_FILE] {
        export_all(dir.path(), "acc-1");
        age(
            &dir.path().join("acc-1").join(file),
            Duration::from_secs(120),
        );
        let e = broker(dir.path(), 30)
            .snapshot("acc-1")
            .await
            .expect_err("stale");
        assert_eq!(e.class(), ErrorClass::Retryable, "{e}");
        let text = e.to_string();
        assert!(text.contains("stale") && text.contains(file), "{text}");
    }
}

#[test]
fn config_problems_name_their_keys() {
    assert!(Mt5ExportConfig::default().problems().is_empty());
    let bad = Mt5ExportConfig {
        dir: PathBuf::new(),
        max_age_secs: 0,
        ..Mt5ExportConfig::default()
    };
    let p = bad.problems().join("\n");
    assert!(
        p.contains("broker.mt5_export.dir") && p.contains("broker.mt5_export.max_age_secs"),
        "{p}"
    );
}

/// `python3`, or `None` (with a note on stderr) when it is not installed.
fn python() -> Option<&'static str> {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "bridge tests skipped: python3 not found (run: PYTHONPATH=bridge/tests/fake python3 -m unittest discover -s bridge/tests)"
        );
    }
    ok.then_some("python3")
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_bridge_script_passes_its_own_tests() {
    let Some(python) = python() else { return };
    let out = Command::new(python)
        .args(["-m", "unittest", "discover", "-s", "bridge/tests"])
        .current_dir(repo())
        .env("PYTHONPATH", repo().join("bridge/tests/fake"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bridge tests failed:\n{stderr}");
    assert!(stderr.contains("Ran ") && stderr.contains("OK"), "{stderr}");
}

#[tokio::test]
async fn what_the_bridge_writes_the_adapter_reads() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(python)
        .arg(repo().join("bridge/mt5_export.py"))
        .args(["--account", "acc-7", "--once", "--out"])
        .arg(dir.path())
        .env("PYTHONPATH", repo().join("bridge/tests/fake"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = broker(dir.path(), 30)
        .snapshot("acc-7")
        .await
        .expect("bridge output reads");
    let expected = crate::input::parse_positions("fixture", POSITIONS).expect("fixture");
    assert_eq!(s.positions, expected);
    assert_eq!(s.equity, dec!(99517.41));
    assert_eq!(s.margin_mode, Some(MarginMode::Hedging), "margin_mode 2");
    let orders = crate::input::parse_orders("fixture", ORDERS).expect("fixture");
    assert_eq!(s.orders, Some(orders));
    let deals = crate::input::parse_deals("fixture", DEALS).expect("fixture");
    assert_eq!(s.deals, deals);
    let q: Vec<_> = s
        .quotes
        .iter()
        .map(|q| (q.symbol.as_str(), q.bid, q.ask, q.time))
        .collect();
    assert_eq!(
        q,
        [
            (
                "GBPJPY",
                dec!(142.513),
                dec!(142.531),
                at("2026-03-04T09:59:58.001Z")
            ),
            (
                "USDCHF",
                dec!(0.98528),
                dec!(0.98532),
                at("2026-03-04T10:00:00.250Z")
            ),
            (
                "XAUUSD",
                dec!(2419.91),
                dec!(2420.14),
                at("2026-03-04T09:59:59.875Z")
            ),
        ],
        "one quote per held symbol, of the same round"
    );

    // The terminal fails: the script writes nothing, and once the files age the adapter
    // reports the account as stale instead of empty.
    let failed = Command::new(python)
        .arg(repo().join("bridge/mt5_export.py"))
        .args(["--account", "acc-7", "--once", "--out"])
        .arg(dir.path())
        .env("PYTHONPATH", repo().join("bridge/tests/fake"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("FAKE_MT5_POSITIONS", "error")
        .output()
        .expect("python runs");
    assert_eq!(failed.status.code(), Some(1));
    age(
        &dir.path().join("acc-7").join(POSITIONS_FILE),
        Duration::from_secs(60),
    );
    let e = broker(dir.path(), 30)
        .snapshot("acc-7")
        .await
        .expect_err("stale");
    assert_eq!(e.class(), ErrorClass::Retryable, "{e}");
}

/// `positions.json` of round 17, for the seeds.
const POSITIONS_OF_ROUND: &str = concat!(
    r#"{"export_round": "17", "positions": "#,
    include_str!("../../../examples/data/mt5-positions.json"),
    "}"
);
static POSITION_SEEDS: &[&str] = &[POSITIONS, POSITIONS_OF_ROUND];
static ACCOUNT_SEEDS: &[&str] = &[ACCOUNT];
static TICK_SEEDS: &[&str] = &[TICKS];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512)
    ))]

    /// Hostile `positions_get()` records never panic; accepted ones are sound. A file
    /// that carries a round is read with the account file of round 17.
    #[test]
    fn export_records_never_panic(text in mutate::mutated(POSITION_SEEDS)) {
        let info = if text.trim_start().starts_with('{') { account_of_round("17") } else { ACCOUNT.to_owned() };
        match parse("acc", &text, &info) {
            Ok(s) => {
                let mut tickets = std::collections::HashSet::new();
                for p in &s.positions {
                    prop_assert!(p.volume.get() > rust_decimal::Decimal::ZERO);
                    prop_assert!(tickets.insert(p.ticket));
                }
            }
            Err(e) if e.class() == ErrorClass::Retryable => {
                prop_assert!(e.to_string().contains("export round mismatch"), "{}", e);
            }
            Err(e) => prop_assert_eq!(e.class(), ErrorClass::Malformed),
        }
    }

    /// Hostile tick records never panic; accepted quotes are positive and not crossed.
    #[test]
    fn export_ticks_never_panic(ticks in mutate::mutated(TICK_SEEDS)) {
        let now = at("2026-03-04T10:00:00Z");
        if let Ok((quotes, problems)) = parse_quotes("acc", POSITIONS, &quotes_of(POSITIONS, &ticks), now) {
            for q in &quotes {
                prop_assert!(q.bid > rust_decimal::Decimal::ZERO && q.ask >= q.bid, "{:?}", q);
                prop_assert!(q.time - now <= MAX_TICK_AHEAD);
            }
            for e in &problems {
                prop_assert_eq!(e.class(), ErrorClass::Malformed);
            }
        }
    }

    /// A hostile `account_info()` record never panics.
    #[test]
    fn export_account_record_never_panics(text in mutate::mutated(ACCOUNT_SEEDS)) {
        if let Err(e) = parse("acc", POSITIONS, &text) {
            prop_assert_eq!(e.class(), ErrorClass::Malformed);
        }
    }
}
