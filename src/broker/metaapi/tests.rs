//! Unit tests of the MetaApi adapter's pure parts: classification, retry delays, payload
//! parsing, secrecy; and properties of its payload parsers on hostile input.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use reqwest::StatusCode;
use rstest::rstest;
use rust_decimal::dec;

use super::classify::{Failure, MAX_RETRY_AFTER, Subject, classify, retry_after};
use super::http::redact;
use super::*;
use crate::broker::wire::mutate;
use crate::broker::{BrokerError, ErrorClass};
use crate::domain::MarginMode;

const POSITIONS: &str = include_str!("../../../examples/data/metaapi-positions.json");
const ACCOUNT: &str = r#"{
  "broker": "True ECN Trading Ltd", "currency": "USD", "server": "ICMarketsSC-Demo",
  "balance": 7319.9, "equity": 7306.649913200001, "margin": 184.1, "freeMargin": 7120.22,
  "leverage": 100, "marginLevel": 3967.58283542, "tradeAllowed": true,
  "marginMode": "ACCOUNT_MARGIN_MODE_RETAIL_HEDGING", "name": "Will Turner",
  "login": 367906877, "credit": 0, "accountCurrencyExchangeRate": 1,
  "type": "ACCOUNT_TRADE_MODE_DEMO"
}"#;
const SPEC: &str = r#"{"symbol": "AUDNZD", "tickSize": 0.00001, "minVolume": 0.01,
  "maxVolume": 500, "volumeStep": 0.01, "contractSize": 100000, "digits": 5,
  "point": 0.00001, "fillingModes": ["ORDER_FILLING_FOK"],
  "executionMode": "SYMBOL_TRADE_EXECUTION_MARKET"}"#;
const PRICE: &str = r#"{"symbol": "AUDNZD", "bid": 1.05297, "ask": 1.05309,
  "profitTickValue": 0.59731, "lossTickValue": 0.59736, "accountCurrencyExchangeRate": 1,
  "time": "2020-04-07T03:45:00.000Z", "brokerTime": "2020-04-07 06:45:00.000"}"#;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2021, 2, 5, 16, 59, 0)
        .single()
        .expect("valid time")
}

fn failure(status: u16, body: &str, header: Option<&'static str>, subject: Subject) -> BrokerError {
    let f = Failure {
        status: StatusCode::from_u16(status).expect("valid status"),
        retry_after: header,
        body,
        subject,
        path: "GET /users/current/accounts/a/positions",
    };
    classify(&f, now())
}

#[rstest]
#[case::server_error(500, Subject::Account, ErrorClass::Retryable)]
#[case::bad_gateway(502, Subject::Account, ErrorClass::Retryable)]
#[case::gateway_timeout(504, Subject::Account, ErrorClass::Retryable)]
#[case::request_timeout(408, Subject::Account, ErrorClass::Retryable)]
#[case::rate_limited(429, Subject::Account, ErrorClass::Retryable)]
#[case::unauthorized(401, Subject::Account, ErrorClass::Permanent)]
#[case::forbidden(403, Subject::Account, ErrorClass::Permanent)]
#[case::unknown_account(404, Subject::Account, ErrorClass::Permanent)]
#[case::unknown_symbol(404, Subject::Symbol, ErrorClass::Permanent)]
#[case::unknown_position(404, Subject::Position, ErrorClass::Permanent)]
#[case::trade_server_error(500, Subject::Position, ErrorClass::Retryable)]
#[case::validation(400, Subject::Account, ErrorClass::Permanent)]
#[case::conflict(409, Subject::Account, ErrorClass::Retryable)]
fn statuses_are_classified(
    #[case] status: u16,
    #[case] subject: Subject,
    #[case] class: ErrorClass,
) {
    let e = failure(status, "", None, subject);
    assert_eq!(e.class(), class, "{e}");
    assert!(e.to_string().contains(&status.to_string()), "{e}");
}

#[test]
fn a_429_waits_for_the_recommended_time_first_then_the_header() {
    let body = r#"{"id": 1, "error": "TooManyRequestsError", "message": "slow down",
        "metadata": {"periodInMinutes": 1, "requestsPerPeriodAllowed": 25,
        "recommendedRetryTime": "2021-02-05T16:59:17.029Z"}}"#;
    let e = failure(429, body, Some("3"), Subject::Account);
    assert_eq!(e.retry_after(), Some(Duration::from_millis(17_029)));
    assert!(
        e.to_string().contains("TooManyRequestsError: slow down"),
        "{e}"
    );
    let e = failure(429, "not json", Some("3"), Subject::Account);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    let e = failure(429, "", None, Subject::Account);
    assert_eq!(e.retry_after(), None);
}

#[rstest]
#[case::iso_offset(Some("2021-02-05T17:59:00+01:00"), None, Some(Duration::ZERO))]
#[case::past(Some("2021-02-05T16:58:00Z"), Some("9"), Some(Duration::ZERO))]
#[case::bad_iso_falls_back(Some("soon"), Some("9"), Some(Duration::from_secs(9)))]
#[case::http_date(
    None,
    Some("Fri, 05 Feb 2021 16:59:30 GMT"),
    Some(Duration::from_secs(30))
)]
#[case::capped(None, Some("99999999"), Some(MAX_RETRY_AFTER))]
#[case::garbage(None, Some("later"), None)]
#[case::nothing(None, None, None)]
fn retry_delays(
    #[case] recommended: Option<&str>,
    #[case] header: Option<&str>,
    #[case] expected: Option<Duration>,
) {
    assert_eq!(retry_after(recommended, header, now()), expected);
}

#[test]
fn redaction_removes_the_secret_from_every_field() {
    let secret = "s3cr3t-token";
    let errors = [
        BrokerError::Timeout(format!("x {secret}")),
        BrokerError::Retryable {
            reason: format!("{secret}{secret}"),
            retry_after: None,
        },
        BrokerError::Permanent(format!("bad token {secret}")),
        BrokerError::Malformed {
            field: secret.into(),
            reason: format!("value {secret}"),
        },
    ];
    for e in errors {
        let clean = redact(e.clone(), secret);
        assert_eq!(clean.class(), e.class());
        assert!(!format!("{clean} {clean:?}").contains(secret), "{clean:?}");
    }
}

#[test]
fn tokens_never_show_and_name_only_their_variable() {
    let token = Token::new("abc-very-secret").expect("a usable token");
    assert!(!format!("{token:?}").contains("very-secret"));
    assert_eq!(Token::new("  "), Err(TokenError::Empty("(given)".into())));
    assert!(matches!(Token::new("a\nb"), Err(TokenError::Unusable(_))));
    let missing = Token::from_env("MT5R_SURELY_UNSET_VARIABLE_4242");
    assert_eq!(
        missing,
        Err(TokenError::Missing(
            "MT5R_SURELY_UNSET_VARIABLE_4242".into()
        ))
    );
    let config = MetaApiConfig::default();
    let broker = MetaApiBroker::new(&config, token, Default::default()).expect("client builds");
    assert!(!format!("{broker:?}").contains("very-secret"), "{broker:?}");
}

#[test]
fn the_documented_examples_parse_exactly() {
    let p = positions(POSITIONS).expect("documented positions");
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].ticket, p[0].symbol.as_str()), (46648037, "AUDNZD"));
    assert_eq!(p[0].open_price.get(), dec!(1.05782));
    assert_eq!(p[0].tp, None);
    let b = account_information(ACCOUNT).expect("documented account information");
    assert_eq!(
        (b.balance, b.equity, b.margin, b.free_margin),
        (
            dec!(7319.9),
            dec!(7306.649913200001),
            dec!(184.1),
            dec!(7120.22)
        )
    );
    let spec = symbol_specification("AUDNZD", SPEC).expect("specification");
    assert_eq!(spec.pip_size(), Some(dec!(0.0001)));
    let spec = symbol_specification(
        "XAUUSD",
        r#"{"symbol": "XAUUSD", "digits": 2, "pipSize": 0.1}"#,
    )
    .expect("explicit pip size");
    assert_eq!(spec.pip_size(), Some(dec!(0.1)));
}

#[test]
fn the_documented_current_price_parses_exactly() {
    let q = current_price("AUDNZD", PRICE).expect("documented current price");
    assert_eq!(q.symbol, "AUDNZD");
    assert_eq!((q.bid, q.ask), (dec!(1.05297), dec!(1.05309)));
    let at = Utc
        .with_ymd_and_hms(2020, 4, 7, 3, 45, 0)
        .single()
        .expect("valid time");
    assert_eq!(q.time, at, "time is UTC; brokerTime is the server's clock");
    let q = current_price(
        "audnzd",
        r#"{"bid": "1.1", "ask": "1.1", "time": "2020-04-07T06:45:00+03:00"}"#,
    )
    .expect("string prices, an offset, no symbol");
    assert_eq!((q.symbol.as_str(), q.time), ("audnzd", at));
}

#[rstest]
#[case::missing_time(r#"{"bid": 1, "ask": 1}"#, "current_price[X].time", "")]
#[case::broker_time_only(
    r#"{"bid": 1, "ask": 1, "time": "2020-04-07 06:45:00.000"}"#,
    "current_price[X].time",
    "2020-04-07 06:45"
)]
#[case::zero_bid(
    r#"{"bid": 0, "ask": 1, "time": "2020-04-07T03:45:00Z"}"#,
    "current_price[X].bid",
    "0"
)]
#[case::crossed(
    r#"{"bid": 1.2, "ask": 1.1, "time": "2020-04-07T03:45:00Z"}"#,
    "current_price[X].ask",
    "1.1"
)]
#[case::nan_ask(
    r#"{"bid": 1, "ask": "NaN", "time": "2020-04-07T03:45:00Z"}"#,
    "current_price[X].ask",
    "NaN"
)]
#[case::other_symbol(
    r#"{"symbol": "Y", "bid": 1, "ask": 1, "time": "2020-04-07T03:45:00Z"}"#,
    "current_price[X].symbol",
    "Y"
)]
#[case::not_an_object("[]", "current_price[X]", "object")]
fn bad_current_prices_name_field_and_value(
    #[case] text: &str,
    #[case] field: &str,
    #[case] value: &str,
) {
    match current_price("X", text) {
        Err(BrokerError::Malformed { field: f, reason }) => {
            assert_eq!(f, field);
            assert!(reason.contains(value), "{reason}");
        }
        other => panic!("expected malformed {field}, got {other:?}"),
    }
}

#[test]
fn the_metaapi_broker_says_it_feeds_quotes() {
    let token = Token::new("abc-very-secret").expect("a usable token");
    let broker = MetaApiBroker::new(&MetaApiConfig::default(), token, Default::default())
        .expect("client builds");
    assert!(crate::broker::Broker::quotes_available(&broker));
}

#[rstest]
#[case::nan(
    r#"{"balance": "NaN", "equity": 1, "margin": 0, "freeMargin": 1}"#,
    "account_information.balance"
)]
#[case::infinity(
    r#"{"balance": 1, "equity": "Infinity", "margin": 0, "freeMargin": 1}"#,
    "account_information.equity"
)]
#[case::wrong_type(
    r#"{"balance": 1, "equity": 1, "margin": [], "freeMargin": 1}"#,
    "account_information.margin"
)]
#[case::missing(
    r#"{"balance": 1, "equity": 1, "margin": 0}"#,
    "account_information.freeMargin"
)]
#[case::truncated(r#"{"balance": 1, "equity"#, "account_information")]
#[case::not_an_object("[]", "account_information")]
fn bad_account_information_names_the_field(#[case] text: &str, #[case] field: &str) {
    match account_information(text) {
        Err(BrokerError::Malformed { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected malformed {field}, got {other:?}"),
    }
}

#[rstest]
#[case::no_digits(r#"{"symbol": "X", "point": 0.1}"#, "specification[X].digits")]
#[case::negative_pip(r#"{"symbol": "X", "pipSize": -1}"#, "specification[X].pipSize")]
#[case::huge_digits(r#"{"symbol": "X", "digits": 40}"#, "specification[X].digits")]
#[case::huge_point(
    r#"{"symbol": "X", "digits": 5, "point": 7e28}"#,
    "specification[X].point"
)]
#[case::vanishing_point(
    r#"{"symbol": "X", "digits": 5, "point": 1e-28}"#,
    "specification[X].point"
)]
#[case::vanishing_pip(r#"{"symbol": "X", "pipSize": "1e-11"}"#, "specification[X].pipSize")]
#[case::fractional_digits(r#"{"symbol": "X", "digits": 2.5}"#, "specification[X].digits")]
#[case::other_symbol(r#"{"symbol": "Y", "digits": 2}"#, "specification[X].symbol")]
fn bad_specifications_name_the_field(#[case] text: &str, #[case] field: &str) {
    match symbol_specification("X", text) {
        Err(BrokerError::Malformed { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected malformed {field}, got {other:?}"),
    }
}

#[rstest]
#[case::done(
    r#"{"numericCode": 10009, "stringCode": "TRADE_RETCODE_DONE", "message": "Request completed",
        "orderId": "47137555", "positionId": "46648037"}"#,
    None
)]
#[case::placed(
    r#"{"numericCode": 10008, "stringCode": "TRADE_RETCODE_PLACED"}"#,
    None
)]
#[case::string_code_only(r#"{"stringCode": "TRADE_RETCODE_DONE"}"#, None)]
#[case::numeric_code_only(r#"{"numericCode": 10009}"#, None)]
#[case::position_closed(
    r#"{"numericCode": 10036, "stringCode": "TRADE_RETCODE_POSITION_CLOSED",
        "message": "Position doesn't exist"}"#,
    Some(ErrorClass::Permanent)
)]
#[case::position_not_found(
    r#"{"numericCode": 4753, "stringCode": "ERR_TRADE_POSITION_NOT_FOUND"}"#,
    Some(ErrorClass::Permanent)
)]
#[case::message_says_not_found(
    r#"{"numericCode": 1, "stringCode": "ERR_UNKNOWN", "message": "Position 7 not found"}"#,
    Some(ErrorClass::Permanent)
)]
#[case::algo_trading_off(
    r#"{"numericCode": 10027, "stringCode": "TRADE_RETCODE_CLIENT_DISABLES_AT"}"#,
    Some(ErrorClass::Permanent)
)]
#[case::market_closed(
    r#"{"numericCode": 10018, "stringCode": "TRADE_RETCODE_MARKET_CLOSED"}"#,
    Some(ErrorClass::Retryable)
)]
#[case::requote(
    r#"{"numericCode": 10004, "stringCode": "TRADE_RETCODE_REQUOTE"}"#,
    Some(ErrorClass::Retryable)
)]
#[case::partial(r#"{"numericCode": 10010}"#, Some(ErrorClass::Retryable))]
#[case::truncated(r#"{"numericCode": 100"#, Some(ErrorClass::Retryable))]
#[case::no_code(r#"{"message": "ok"}"#, Some(ErrorClass::Retryable))]
#[case::wrong_type(r#"{"numericCode": "done"}"#, Some(ErrorClass::Retryable))]
fn close_answers_are_classified(#[case] text: &str, #[case] class: Option<ErrorClass>) {
    let got = close_result(7, text);
    assert_eq!(got.as_ref().err().map(BrokerError::class), class, "{got:?}");
    if let Err(e) = got {
        assert!(e.to_string().contains("position 7"), "{e}");
    }
}

#[rstest]
#[case::hedging("ACCOUNT_MARGIN_MODE_RETAIL_HEDGING", MarginMode::Hedging)]
#[case::netting("ACCOUNT_MARGIN_MODE_RETAIL_NETTING", MarginMode::Netting)]
#[case::exchange("ACCOUNT_MARGIN_MODE_EXCHANGE", MarginMode::Exchange)]
fn margin_modes_are_read(#[case] text: &str, #[case] mode: MarginMode) {
    let info = ACCOUNT.replace("ACCOUNT_MARGIN_MODE_RETAIL_HEDGING", text);
    let b = account_information(&info).expect("a known margin mode");
    assert_eq!(b.margin_mode, Some(mode));
}

#[test]
fn an_unknown_margin_mode_is_malformed_and_a_missing_one_unknown() {
    let info = ACCOUNT.replace(
        "ACCOUNT_MARGIN_MODE_RETAIL_HEDGING",
        "ACCOUNT_MARGIN_MODE_X",
    );
    let Err(BrokerError::Malformed { field, reason }) = account_information(&info) else {
        panic!("an unknown margin mode must be refused");
    };
    assert_eq!(field, "account_information.marginMode");
    assert!(reason.contains("ACCOUNT_MARGIN_MODE_X"), "{reason}");
    let info = ACCOUNT.replace(r#""marginMode": "ACCOUNT_MARGIN_MODE_RETAIL_HEDGING","#, "");
    let b = account_information(&info).expect("no margin mode");
    assert_eq!(b.margin_mode, None);
    let info = ACCOUNT.replace(r#""ACCOUNT_MARGIN_MODE_RETAIL_HEDGING""#, "2");
    assert!(matches!(
        account_information(&info),
        Err(BrokerError::Malformed { .. })
    ));
}

const ORDERS: &str = include_str!("../../../examples/data/metaapi-orders.json");
const DEALS: &str = include_str!("../../../examples/data/metaapi-deals.json");

#[test]
fn orders_parse_and_bad_ones_name_index_and_field() {
    let o = orders(ORDERS).expect("example orders");
    assert_eq!(o.len(), 2);
    assert_eq!(o[0].client_id.as_deref(), Some("bot-eurusd-7"));
    let bad = ORDERS.replacen(r#""currentVolume": 0.2"#, r#""currentVolume": "NaN""#, 1);
    let Err(BrokerError::Malformed { field, reason }) = orders(&bad) else {
        panic!("NaN must be refused");
    };
    assert_eq!(field, "orders[0].currentVolume");
    assert!(reason.contains("NaN"), "{reason}");
    assert_eq!(orders("[]"), Ok(Vec::new()));
}

#[test]
fn position_deals_keep_only_that_positions_trades() {
    let d = position_deals(46648041, DEALS).expect("example deals");
    let tickets: Vec<u64> = d.iter().map(|d| d.ticket).collect();
    assert_eq!(
        tickets,
        [33230112, 33230187],
        "no balance deal, no other position"
    );
    assert_eq!(d[1].reason, crate::domain::DealReason::StopLoss);
    assert_eq!(position_deals(1, "[]"), Ok(Vec::new()));
    let bad = DEALS.replacen(
        r#""entryType": "DEAL_ENTRY_OUT""#,
        r#""entryType": "OUT""#,
        1,
    );
    let Err(BrokerError::Malformed { field, .. }) = position_deals(46648041, &bad) else {
        panic!("an unknown entry must be refused");
    };
    assert_eq!(field, "history_deals[46648041][3].entryType");
}

#[rstest]
#[case::done(
    r#"{"numericCode": 10009, "stringCode": "TRADE_RETCODE_DONE", "orderId": "46871284"}"#,
    None
)]
#[case::order_not_found(
    r#"{"numericCode": 4754, "stringCode": "ERR_TRADE_ORDER_NOT_FOUND"}"#,
    None
)]
#[case::message_says_not_found(
    r#"{"numericCode": 1, "stringCode": "ERR_UNKNOWN", "message": "Order 46871284 not found"}"#,
    None
)]
#[case::invalid(
    r#"{"numericCode": 10013, "stringCode": "TRADE_RETCODE_INVALID"}"#,
    Some(ErrorClass::Permanent)
)]
#[case::market_closed(
    r#"{"numericCode": 10018, "stringCode": "TRADE_RETCODE_MARKET_CLOSED"}"#,
    Some(ErrorClass::Retryable)
)]
#[case::unreadable(r#"{"numericCode": 100"#, Some(ErrorClass::Retryable))]
fn cancel_answers_are_classified(#[case] text: &str, #[case] class: Option<ErrorClass>) {
    let got = cancel_result(46871284, text);
    assert_eq!(got.as_ref().err().map(BrokerError::class), class, "{got:?}");
    if let Err(e) = got {
        assert!(e.to_string().contains("order 46871284"), "{e}");
    }
}

#[test]
fn config_problems_name_their_keys() {
    assert!(MetaApiConfig::default().problems().is_empty());
    let bad = MetaApiConfig {
        base_url: "ftp://x".into(),
        token_env: "abc-123 secret".into(),
        request_timeout_ms: 0,
        connect_timeout_ms: 0,
        max_concurrent_requests: 0,
        max_body_bytes: 1,
    };
    let problems = bad.problems().join("\n");
    for key in [
        "base_url",
        "token_env",
        "request_timeout_ms",
        "connect_timeout_ms",
        "max_concurrent_requests",
        "max_body_bytes",
    ] {
        assert!(
            problems.contains(&format!("broker.metaapi.{key}")),
            "{problems}"
        );
    }
    let with_password = MetaApiConfig {
        base_url: "https://user:pw@example.com".into(),
        ..MetaApiConfig::default()
    };
    assert_eq!(with_password.problems().len(), 1);
}

static POSITION_SEEDS: &[&str] = &[POSITIONS];
static ACCOUNT_SEEDS: &[&str] = &[ACCOUNT];
static TRADE_SEEDS: &[&str] = &[
    r#"{"numericCode": 10009, "stringCode": "TRADE_RETCODE_DONE", "message": "Request completed", "orderId": "47137555"}"#,
    r#"{"numericCode": 10036, "stringCode": "TRADE_RETCODE_POSITION_CLOSED", "message": "Position doesn't exist"}"#,
];
static PRICE_SEEDS: &[&str] = &[PRICE];
static SPEC_SEEDS: &[&str] = &[
    r#"{"symbol": "XAUUSD", "tickSize": 0.01, "contractSize": 100, "digits": 2, "point": 0.01}"#,
    r#"{"symbol": "XAUUSD", "digits": 3, "pipSize": 0.1}"#,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512)
    ))]

    /// Hostile positions never panic; what is accepted is sound.
    #[test]
    fn positions_parser_never_panics(text in mutate::mutated(POSITION_SEEDS)) {
        if let Ok(ps) = positions(&text) {
            let mut tickets = std::collections::HashSet::new();
            for p in &ps {
                prop_assert!(p.volume.get() > rust_decimal::Decimal::ZERO);
                prop_assert!(p.open_price.get() > rust_decimal::Decimal::ZERO);
                prop_assert!(tickets.insert(p.ticket), "duplicate ticket {}", p.ticket);
            }
        }
    }

    /// Hostile account information never panics; errors are malformed.
    #[test]
    fn account_information_parser_never_panics(text in mutate::mutated(ACCOUNT_SEEDS)) {
        if let Err(e) = account_information(&text) {
            prop_assert_eq!(e.class(), ErrorClass::Malformed);
        }
    }

    /// Hostile trade answers never panic, and never count as malformed: an answer that
    /// cannot be read leaves the outcome unknown (retryable, checked before a retry).
    #[test]
    fn close_result_parser_never_panics(text in mutate::mutated(TRADE_SEEDS)) {
        if let Err(e) = close_result(46648037, &text) {
            prop_assert!(matches!(e.class(), ErrorClass::Retryable | ErrorClass::Permanent), "{e}");
        }
    }

    /// Hostile cancel answers never panic and never count as malformed.
    #[test]
    fn cancel_result_parser_never_panics(text in mutate::mutated(TRADE_SEEDS)) {
        if let Err(e) = cancel_result(46871284, &text) {
            prop_assert!(matches!(e.class(), ErrorClass::Retryable | ErrorClass::Permanent), "{e}");
        }
    }

    /// Hostile prices never panic; an accepted one is positive and not crossed.
    #[test]
    fn current_price_parser_never_panics(text in mutate::mutated(PRICE_SEEDS)) {
        match current_price("AUDNZD", &text) {
            Ok(q) => prop_assert!(q.bid > rust_decimal::Decimal::ZERO && q.ask >= q.bid, "{:?}", q),
            Err(e) => prop_assert_eq!(e.class(), ErrorClass::Malformed),
        }
    }

    /// Hostile specifications never panic; an accepted one yields a positive pip size.
    #[test]
    fn specification_parser_never_panics(text in mutate::mutated(SPEC_SEEDS)) {
        match symbol_specification("XAUUSD", &text) {
            Ok(spec) => {
                let pip = spec.pip_size();
                prop_assert!(pip.is_some_and(|p| p > rust_decimal::Decimal::ZERO), "{:?}", spec);
            }
            Err(e) => prop_assert_eq!(e.class(), ErrorClass::Malformed),
        }
    }
}

/// Plain `http://` reaches only this machine: anywhere else the token would cross the
/// network in clear text.
#[rstest]
#[case::loopback_v4("http://127.0.0.1:8080", true)]
#[case::loopback_v4_other("http://127.8.9.10", true)]
#[case::loopback_v6("http://[::1]:9000/api", true)]
#[case::localhost("http://localhost:3000", true)]
#[case::https("https://mt-client-api-v1.london.agiliumtrade.ai", true)]
#[case::remote_name("http://mt-client-api-v1.london.agiliumtrade.ai", false)]
#[case::remote_ip("http://10.0.0.7:8080", false)]
#[case::unspecified("http://0.0.0.0:8080", false)]
#[case::localhost_lookalike("http://localhost.example.com", false)]
fn plain_http_is_refused_off_loopback(#[case] url: &str, #[case] allowed: bool) {
    let config = MetaApiConfig {
        base_url: url.into(),
        ..MetaApiConfig::default()
    };
    let problems = config.problems().join("\n");
    assert_eq!(problems.is_empty(), allowed, "{url}: {problems}");
    if !allowed {
        assert!(
            problems.contains(&format!("broker.metaapi.base_url = {url:?}")),
            "{problems}"
        );
        assert!(problems.contains("https://"), "{problems}");
    }
}
