//! Property and table tests: decimals at the edges of what the readers and the value
//! types accept (tiny and huge volumes, prices up to the maximum, tiny pip sizes, huge
//! tolerances, every scale up to 28) make `reconcile` return `Ok` or `Err`, never panic.

use proptest::prelude::*;
use rstest::rstest;
use rust_decimal::{Decimal, dec};

use super::pips::MAX_PRICE_STEP;
use super::*;

/// A decimal with any 96-bit mantissa and any scale from 0 to 28.
fn any_decimal() -> impl Strategy<Value = Decimal> {
    (any::<u128>(), 0u32..=28).prop_map(|(m, scale)| {
        let mantissa = (m & ((1u128 << 96) - 1)) as i128;
        Decimal::try_from_i128_with_scale(mantissa, scale).unwrap_or(Decimal::ONE)
    })
}

/// A decimal at an edge (the smallest and largest representable steps, long fractions,
/// the bounds of the value types), or any decimal at all.
fn edge_decimal() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        3 => prop::sample::select(vec![
            Decimal::new(1, 28),
            Decimal::new(1, 10),
            Decimal::new(1, 8),
            dec!(0.0001),
            dec!(0.01),
            Decimal::ONE,
            dec!(123456789.123456789123456789),
            Volume::MAX,
            Price::MAX,
            MAX_PRICE_STEP,
            Decimal::MAX,
        ]),
        2 => any_decimal(),
        1 => (1i64..1_000_000, 0u32..=28).prop_map(|(m, s)| Decimal::new(m, s)),
    ]
}

/// How the one trade finds the one position.
#[derive(Debug, Clone, Copy)]
enum Via {
    Ticket,
    ClientId,
    Heuristic,
}

/// The raw numbers of a one-position book, before the value types check them.
#[derive(Debug, Clone)]
struct RawBook {
    via: Via,
    same_side: bool,
    volumes: (Decimal, Decimal),
    prices: (Decimal, Decimal),
    stops: (Option<Decimal>, Option<Decimal>),
    pip: (Option<Decimal>, Option<u32>, Option<Decimal>),
    tolerances: [Decimal; 6],
}

fn raw_book() -> impl Strategy<Value = RawBook> {
    (
        prop::sample::select(vec![Via::Ticket, Via::ClientId, Via::Heuristic]),
        any::<bool>(),
        (edge_decimal(), edge_decimal()),
        (edge_decimal(), edge_decimal()),
        (
            prop::option::of(edge_decimal()),
            prop::option::of(edge_decimal()),
        ),
        (
            prop::option::of(edge_decimal()),
            prop::option::of(0u32..=10),
            prop::option::of(edge_decimal()),
        ),
        prop::array::uniform6(prop_oneof![Just(dec!(10)), edge_decimal()]),
    )
        .prop_map(
            |(via, same_side, volumes, prices, stops, pip, tolerances)| RawBook {
                via,
                same_side,
                volumes,
                prices,
                stops,
                pip,
                tolerances,
            },
        )
}

/// The trade, the position and the rules of `raw`, or `None` when a value type or (when
/// `spec_bounds`) the symbol-spec bounds refuse one of its numbers, as the readers would.
/// Without `spec_bounds` the symbol spec goes straight into the table, as a host
/// embedding the library could put it.
fn build(raw: &RawBook, spec_bounds: bool) -> Option<(BotTrade, BrokerPosition, ReconcileRules)> {
    let volume = |d| Volume::new_checked(d).ok();
    let price = |d| Price::new_checked(d).ok();
    let stop = |d: Option<Decimal>| d.map(|d| price(d).ok_or(())).transpose().ok();
    let spec = SymbolSpec {
        pip_size: raw.pip.0,
        digits: raw.pip.1,
        point: raw.pip.2,
    };
    if spec_bounds && !spec.problems("symbols.XAUUSD").is_empty() {
        return None;
    }
    let (buy, sell) = (Side::Buy, Side::Sell);
    let trade = BotTrade {
        id: "t1".into(),
        account: "acc".into(),
        symbol: "XAUUSD".into(),
        side: buy,
        volume: volume(raw.volumes.0)?,
        entry_price: price(raw.prices.0)?,
        sl: stop(raw.stops.0)?,
        tp: stop(raw.stops.1)?,
        ticket: matches!(raw.via, Via::Ticket).then_some(7),
        client_id: matches!(raw.via, Via::ClientId).then(|| "c1".to_owned()),
        opened_at: None,
    };
    let mut position = BrokerPosition::for_test(
        7,
        "XAUUSD",
        if raw.same_side { buy } else { sell },
        Decimal::ONE,
        Decimal::ONE,
    );
    position.identifier = 8;
    position.volume = volume(raw.volumes.1)?;
    position.open_price = price(raw.prices.1)?;
    position.sl = stop(raw.stops.1)?;
    position.tp = stop(raw.stops.0)?;
    if matches!(raw.via, Via::ClientId) {
        position.client_id = Some("c1".into());
    }
    let [entry, volume_pct, sl, tp, window, window_pct] = raw.tolerances;
    let mut rules = ReconcileRules {
        defaults: Tolerances {
            entry_slippage_pips: entry,
            volume_pct,
            sl_pips: sl,
            tp_pips: tp,
            match_price_pips: window,
            match_volume_pct: window_pct,
        },
        ..ReconcileRules::default()
    };
    rules.symbols.insert("XAUUSD", spec);
    Some((trade, position, rules))
}

proptest! {
    #[test]
    fn reconcile_never_panics_on_values_the_readers_accept(raw in raw_book()) {
        let Some((trade, position, rules)) = build(&raw, true) else {
            return Ok(());
        };
        // Ok or Err, both fine: a panic fails the property.
        let _ = reconcile(&[trade], &[position], &rules);
    }

    #[test]
    fn a_pip_size_past_the_bounds_is_an_error_never_a_panic(raw in raw_book()) {
        let Some((trade, position, rules)) = build(&raw, false) else {
            return Ok(());
        };
        match reconcile(&[trade], &[position], &rules) {
            Ok(_)
            | Err(ReconcileError::OutOfRange { .. })
            | Err(ReconcileError::UnknownPipSize(_)) => {}
            Err(e) => prop_assert!(false, "unexpected error {}", e),
        }
    }
}

/// A pair matched by ticket (or by the heuristic when `heuristic`) with pip size `pip`.
fn pair(
    heuristic: bool,
    volumes: (Decimal, Decimal),
    prices: (Decimal, Decimal),
    pip: Decimal,
) -> Option<(BotTrade, BrokerPosition, ReconcileRules)> {
    let raw = RawBook {
        via: if heuristic {
            Via::Heuristic
        } else {
            Via::Ticket
        },
        same_side: true,
        volumes,
        prices,
        stops: (None, None),
        pip: (None, None, None),
        tolerances: [dec!(10); 6],
    };
    let (trade, position, mut rules) = build(&raw, true)?;
    // Inserted directly, past the configuration's bounds: arithmetic must still hold.
    rules.symbols.insert(
        "XAUUSD",
        SymbolSpec {
            pip_size: Some(pip),
            ..SymbolSpec::default()
        },
    );
    rules.defaults.match_volume_pct = Decimal::MAX;
    Some((trade, position, rules))
}

/// What became of an extreme pair: refused by a value type (as the readers refuse it),
/// matched (by which method), or an out-of-range error on `field`.
#[derive(Debug, PartialEq)]
enum Outcome {
    Refused,
    Matched(MatchMethod),
    OutOfRange(&'static str),
}

fn outcome(built: Option<(BotTrade, BrokerPosition, ReconcileRules)>) -> Outcome {
    let Some((trade, position, rules)) = built else {
        return Outcome::Refused;
    };
    match reconcile(&[trade], &[position], &rules) {
        Ok(r) => Outcome::Matched(r.matched[0].method),
        Err(ReconcileError::OutOfRange { field, .. }) => Outcome::OutOfRange(field),
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[rstest]
#[case::slippage_over_a_tiny_pip(false, (dec!(1), dec!(1)), (dec!(1), Price::MAX), Decimal::new(1, 28), Outcome::OutOfRange("open_price"))]
#[case::volume_percent_of_a_tiny_volume(false, (Decimal::new(1, 28), dec!(1)), (dec!(1), dec!(1)), dec!(0.1), Outcome::Refused)]
#[case::heuristic_volume_window(true, (Decimal::new(1, 28), dec!(1)), (dec!(1), dec!(1)), dec!(0.1), Outcome::Refused)]
#[case::heuristic_price_window(true, (dec!(1), dec!(1)), (dec!(1), dec!(1)), Decimal::MAX, Outcome::Matched(MatchMethod::Heuristic))]
#[case::heuristic_at_the_bounds(true, (Volume::MIN, Volume::MAX), (Decimal::new(1, 28), Price::MAX), Decimal::new(1, 10), Outcome::Matched(MatchMethod::Heuristic))]
#[case::ticket_at_the_bounds(false, (Volume::MIN, Volume::MAX), (Decimal::new(1, 28), Price::MAX), Decimal::new(1, 10), Outcome::Matched(MatchMethod::Ticket))]
fn extreme_pairs_are_errors_or_results_never_panics(
    #[case] heuristic: bool,
    #[case] volumes: (Decimal, Decimal),
    #[case] prices: (Decimal, Decimal),
    #[case] pip: Decimal,
    #[case] expected: Outcome,
) {
    let built = pair(heuristic, volumes, prices, pip).map(|(t, p, mut rules)| {
        rules.defaults.match_price_pips = Decimal::MAX;
        (t, p, rules)
    });
    assert_eq!(outcome(built), expected);
}

#[test]
fn stop_differences_over_a_tiny_pip_are_errors_naming_the_pair() {
    let (mut trade, mut position, mut rules) =
        pair(false, (dec!(1), dec!(1)), (dec!(1), dec!(1)), dec!(1)).expect("plain values");
    trade.sl = Some(Price::new(dec!(1)));
    position.sl = Some(Price::new(Price::MAX));
    rules.symbols.insert(
        "XAUUSD",
        SymbolSpec {
            pip_size: Some(Decimal::new(1, 28)),
            ..SymbolSpec::default()
        },
    );
    let e = reconcile(&[trade], &[position], &rules).unwrap_err();
    assert_eq!(
        e.to_string(),
        "trade \"t1\" against position 7: field \"sl\", value 1 against 1000000000000 \
         at pip size 0.0000000000000000000000000001: the difference is out of range"
    );
}
