//! Numbers beyond what the arithmetic can hold, seen from the service's side: a sync that
//! meets them fails as `malformed` data, never as a crash.

use mt5_reconciler::broker::ErrorClass;
use mt5_reconciler::broker::symbols::reconcile_failure;
use mt5_reconciler::broker::unavailable::Unavailable;
use mt5_reconciler::domain::{
    BotTrade, BrokerPosition, Price, ReconcileError, ReconcileRules, Side, SymbolSpec, Volume,
    reconcile,
};
use rust_decimal::Decimal;

fn trade() -> BotTrade {
    BotTrade {
        id: "t1".into(),
        account: "acc".into(),
        symbol: "XAUUSD".into(),
        side: Side::Buy,
        volume: Volume::new(Decimal::ONE),
        entry_price: Price::new(Decimal::ONE),
        sl: None,
        tp: None,
        ticket: Some(7),
        client_id: None,
        opened_at: None,
    }
}

fn position() -> BrokerPosition {
    BrokerPosition {
        ticket: 7,
        identifier: 7,
        symbol: "XAUUSD".into(),
        side: Side::Buy,
        volume: Volume::new(Decimal::ONE),
        open_price: Price::new(Price::MAX),
        sl: None,
        tp: None,
        current_price: None,
        profit: Decimal::ZERO,
        swap: Decimal::ZERO,
        magic: 0,
        comment: String::new(),
        client_id: None,
        open_time: chrono::DateTime::UNIX_EPOCH,
    }
}

/// A host's rules with a pip size below every bound the readers enforce: the slippage of
/// a 10¹² price difference cannot be held, and the sync's failure is malformed data.
#[test]
fn an_out_of_range_pair_fails_the_sync_as_malformed() {
    let mut rules = ReconcileRules::default();
    rules.symbols.insert(
        "XAUUSD",
        SymbolSpec {
            pip_size: Some(Decimal::new(1, 28)),
            ..SymbolSpec::default()
        },
    );
    let positions = [position()];
    let e = reconcile(&[trade()], &positions, &rules).unwrap_err();
    assert!(
        matches!(
            &e,
            ReconcileError::OutOfRange {
                field: "open_price",
                ticket: 7,
                ..
            }
        ),
        "{e:?}"
    );
    let broker = Unavailable::new("not asked");
    let (class, message) = reconcile_failure(&broker, "acc", &rules, &positions, &e);
    assert_eq!(class, ErrorClass::Malformed);
    assert_eq!(message, e.to_string());
    for w in ["\"t1\"", "position 7", "\"open_price\"", "1000000000000"] {
        assert!(message.contains(w), "missing {w:?} in {message}");
    }
}
