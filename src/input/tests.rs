//! Every reader bounds its text fields: length in bytes and no control characters, each
//! refusal naming the file, the element, the field and the (shortened) value.

use rstest::rstest;

use super::text::{MAX_COMMENT_BYTES, MAX_ID_BYTES, MAX_SYMBOL_BYTES};
use super::*;

const TRADE: &str = r#""side": "buy", "volume": 1, "entry_price": 1.1"#;

fn long(n: usize) -> String {
    "x".repeat(n)
}

/// A trade whose field `key` is the JSON text `value`.
fn trade(key: &str, value: &str) -> String {
    let mut fields = vec![
        ("id".to_owned(), "\"a\"".to_owned()),
        ("symbol".to_owned(), "\"EURUSD\"".to_owned()),
    ];
    fields.retain(|(k, _)| k != key);
    fields.push((key.to_owned(), value.to_owned()));
    let fields: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v}"))
        .collect();
    format!(
        "[{{{}, {TRADE}}}, {{{}, {TRADE}}}]",
        r#""id": "ok", "symbol": "EURUSD""#,
        fields.join(", ")
    )
}

#[rstest]
#[case::symbol_too_long("symbol", format!("\"{}\"", long(MAX_SYMBOL_BYTES + 1)))]
#[case::symbol_with_nul("symbol", r#""EUR\u0000USD""#.to_owned())]
#[case::id_too_long("id", format!("\"{}\"", long(MAX_ID_BYTES + 1)))]
#[case::id_with_newline("id", r#""a\nb""#.to_owned())]
#[case::client_id_too_long("client_id", format!("\"{}\"", long(MAX_ID_BYTES + 1)))]
#[case::client_id_with_escape("client_id", r#""c\u001b[31m""#.to_owned())]
fn trade_text_fields_are_bounded(#[case] field: &str, #[case] value: String) {
    let e = parse_trades("trades.json", &trade(field, &value), "acc").unwrap_err();
    assert_eq!((e.index, e.field.as_deref()), (Some(1), Some(field)), "{e}");
    let shown = e.value.as_deref().unwrap_or_default();
    assert!(shown.chars().count() <= 61, "shortened: {shown}");
    assert!(!shown.chars().any(char::is_control), "escaped: {shown:?}");
    assert!(
        e.reason.contains("longer than") || e.reason.contains("control character"),
        "{e}"
    );
    assert!(
        e.to_string().starts_with("trades.json: element 1, field"),
        "{e}"
    );
}

#[test]
fn the_limits_themselves_are_accepted() {
    let id = format!("\"{}\"", long(MAX_ID_BYTES));
    let symbol = format!("\"{}\"", long(MAX_SYMBOL_BYTES));
    assert!(parse_trades("t", &trade("id", &id), "acc").is_ok());
    assert!(parse_trades("t", &trade("symbol", &symbol), "acc").is_ok());
    assert!(parse_trades("t", &trade("symbol", "\"Ölpreis €\""), "acc").is_ok());
}

#[rstest]
#[case::too_long(long(MAX_ID_BYTES + 1))]
#[case::nul("acc\0".to_owned())]
fn the_trades_account_is_bounded(#[case] account: String) {
    let e = parse_trades("trades.json", &trade("id", "\"a\""), &account).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("account"), "{e}");
    assert!(!e.value.unwrap_or_default().contains('\0'));
}

const METAAPI: &str = r#""id": "1", "type": "POSITION_TYPE_BUY", "openPrice": 1.1, "volume": 1, "time": "2024-01-01T00:00:00Z""#;
const MT5: &str = r#""ticket": 1, "type": 0, "price_open": 1.1, "volume": 1, "time": 1700000000"#;

#[rstest]
#[case::metaapi_symbol(METAAPI, "symbol", r#""EUR\u0000USD""#.to_owned())]
#[case::metaapi_comment(METAAPI, "comment", format!("\"{}\"", long(MAX_COMMENT_BYTES + 1)))]
#[case::metaapi_comment_nul(METAAPI, "comment", r#""a\u0000""#.to_owned())]
#[case::metaapi_client_id(METAAPI, "clientId", format!("\"{}\"", long(MAX_ID_BYTES + 1)))]
#[case::mt5_symbol(MT5, "symbol", format!("\"{}\"", long(MAX_SYMBOL_BYTES + 1)))]
#[case::mt5_comment(MT5, "comment", r#""tab\there""#.to_owned())]
fn position_text_fields_are_bounded(
    #[case] base: &str,
    #[case] field: &str,
    #[case] value: String,
) {
    let symbol = if field == "symbol" {
        String::new()
    } else {
        r#", "symbol": "EURUSD""#.to_owned()
    };
    let text = format!("[{{{base}{symbol}, \"{field}\": {value}}}]");
    let e = parse_positions("positions.json", &text).unwrap_err();
    assert_eq!((e.index, e.field.as_deref()), (Some(0), Some(field)), "{e}");
    assert!(!e.value.unwrap_or_default().chars().any(char::is_control));
    let ok = format!("[{{{base}{symbol}, \"{field}\": \"fine\"}}]");
    assert!(parse_positions("positions.json", &ok).is_ok(), "{ok}");
}

#[rstest]
#[case::nul("\"US\\u000030\"")]
#[case::too_long(&format!("\"{}\"", long(MAX_SYMBOL_BYTES + 1)))]
fn symbol_file_keys_are_bounded(#[case] key: &str) {
    let text = format!("{{{key}: {{\"digits\": 2}}}}");
    let e = parse_symbols("symbols.json", &text).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("symbol"), "{e}");
    let value = e.value.unwrap_or_default();
    assert!(
        !value.contains('\0') && value.chars().count() <= 61,
        "{value}"
    );
}
