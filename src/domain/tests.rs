//! Table tests for every divergence rule and property tests for matching.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use rstest::rstest;
use rust_decimal::{Decimal, dec};

use super::*;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

fn trade(id: &str, symbol: &str, side: Side, volume: Decimal, entry: Decimal) -> BotTrade {
    BotTrade {
        id: id.into(),
        account: "acc".into(),
        symbol: symbol.into(),
        side,
        volume: Volume::new(volume),
        entry_price: Price::new(entry),
        sl: None,
        tp: None,
        ticket: None,
        client_id: None,
        opened_at: None,
    }
}

fn pos(ticket: u64, symbol: &str, side: Side, volume: Decimal, open: Decimal) -> BrokerPosition {
    BrokerPosition {
        open_time: t0(),
        ..BrokerPosition::for_test(ticket, symbol, side, volume, open)
    }
}

fn rules() -> ReconcileRules {
    let mut rules = ReconcileRules::default();
    rules.symbols.insert(
        "XAUUSD",
        SymbolSpec {
            pip_size: Some(dec!(0.1)),
            ..Default::default()
        },
    );
    rules
}

/// Reconciles one ticket-matched pair and returns the divergences as (kind, delta).
fn pair_divergences(t: BotTrade, mut p: BrokerPosition) -> Vec<(DivergenceKind, Option<Decimal>)> {
    let t = BotTrade {
        ticket: Some(p.ticket),
        ..t
    };
    p.identifier = p.ticket;
    let r = reconcile(&[t], &[p], &rules()).unwrap();
    assert_eq!(r.matched.len(), 1, "the pair must match by ticket");
    r.divergences
        .into_iter()
        .map(|d| (d.kind, d.delta))
        .collect()
}

use DivergenceKind::*;
use Side::{Buy, Sell};

#[rstest]
#[case::exactly_5_pips_is_fine(Buy, dec!(1.08140), dec!(1.08190), None)]
#[case::over_5_pips_buy_worse(Buy, dec!(1.08140), dec!(1.08191), Some(dec!(5.1)))]
#[case::buy_filled_lower_is_negative(Buy, dec!(1.08140), dec!(1.08080), Some(dec!(-6)))]
#[case::sell_filled_lower_is_worse(Sell, dec!(1.08140), dec!(1.08080), Some(dec!(6)))]
#[case::sell_filled_higher_is_better(Sell, dec!(1.08140), dec!(1.08200), Some(dec!(-6)))]
#[case::sell_exactly_5_is_fine(Sell, dec!(1.08140), dec!(1.08090), None)]
fn entry_slippage_eurusd(
    #[case] side: Side,
    #[case] entry: Decimal,
    #[case] open: Decimal,
    #[case] expected: Option<Decimal>,
) {
    let got = pair_divergences(
        trade("t", "EURUSD", side, dec!(0.1), entry),
        pos(1, "EURUSD", side, dec!(0.1), open),
    );
    let want: Vec<_> = expected
        .map(|d| (EntrySlippage, Some(d)))
        .into_iter()
        .collect();
    assert_eq!(got, want);
}

#[rstest]
#[case::jpy_exactly_5(dec!(151.100), dec!(151.150), None)]
#[case::jpy_over_5(dec!(151.100), dec!(151.151), Some(dec!(5.1)))]
#[case::jpy_two_digit_quote(dec!(151.10), dec!(151.20), Some(dec!(10)))]
fn entry_slippage_jpy(
    #[case] entry: Decimal,
    #[case] open: Decimal,
    #[case] expected: Option<Decimal>,
) {
    let got = pair_divergences(
        trade("t", "USDJPY", Buy, dec!(1), entry),
        pos(1, "USDJPY", Buy, dec!(1), open),
    );
    let want: Vec<_> = expected
        .map(|d| (EntrySlippage, Some(d)))
        .into_iter()
        .collect();
    assert_eq!(got, want);
}

#[rstest]
#[case::exactly_10_pct_less(dec!(0.10), dec!(0.09), None)]
#[case::exactly_10_pct_more(dec!(0.10), dec!(0.11), None)]
#[case::over_10_pct(dec!(0.10), dec!(0.08), Some(dec!(-20)))]
#[case::partial_close(dec!(1.00), dec!(0.5), Some(dec!(-50)))]
#[case::just_over(dec!(1.000), dec!(1.101), Some(dec!(10.1)))]
fn volume(#[case] bot: Decimal, #[case] broker: Decimal, #[case] expected: Option<Decimal>) {
    let got = pair_divergences(
        trade("t", "EURUSD", Buy, bot, dec!(1.1)),
        pos(1, "EURUSD", Buy, broker, dec!(1.1)),
    );
    let want: Vec<_> = expected
        .map(|d| (VolumeMismatch, Some(d)))
        .into_iter()
        .collect();
    assert_eq!(got, want);
}

#[rstest]
#[case::sl_both_equal(SlMismatch, Some(dec!(1.0800)), Some(dec!(1.0800)), None)]
#[case::sl_exactly_10(SlMismatch, Some(dec!(1.0800)), Some(dec!(1.0810)), None)]
#[case::sl_over_10(SlMismatch, Some(dec!(1.0800)), Some(dec!(1.08101)), Some(Some(dec!(10.1))))]
#[case::sl_moved_down(SlMismatch, Some(dec!(1.0800)), Some(dec!(1.0780)), Some(Some(dec!(-20))))]
#[case::sl_only_at_bot(SlMismatch, Some(dec!(1.0800)), None, Some(None))]
#[case::sl_only_at_broker(SlMismatch, None, Some(dec!(1.0800)), Some(None))]
#[case::sl_neither(SlMismatch, None, None, None)]
#[case::tp_exactly_10(TpMismatch, Some(dec!(1.1000)), Some(dec!(1.0990)), None)]
#[case::tp_over_10(TpMismatch, Some(dec!(1.1000)), Some(dec!(1.0989)), Some(Some(dec!(-11))))]
#[case::tp_only_at_bot(TpMismatch, Some(dec!(1.1000)), None, Some(None))]
#[case::tp_only_at_broker(TpMismatch, None, Some(dec!(1.1000)), Some(None))]
fn stops(
    #[case] kind: DivergenceKind,
    #[case] bot: Option<Decimal>,
    #[case] broker: Option<Decimal>,
    #[case] expected: Option<Option<Decimal>>,
) {
    let mut t = trade("t", "EURUSD", Buy, dec!(1), dec!(1.09));
    let mut p = pos(1, "EURUSD", Buy, dec!(1), dec!(1.09));
    let (bot, broker) = (bot.map(Price::new), broker.map(Price::new));
    if kind == SlMismatch {
        (t.sl, p.sl) = (bot, broker);
    } else {
        (t.tp, p.tp) = (bot, broker);
    }
    let want: Vec<_> = expected.map(|d| (kind, d)).into_iter().collect();
    assert_eq!(pair_divergences(t, p), want);
}

#[test]
fn side_mismatch_on_a_ticket_match() {
    let got = pair_divergences(
        trade("t", "EURUSD", Buy, dec!(1), dec!(1.1)),
        pos(1, "EURUSD", Sell, dec!(1), dec!(1.1)),
    );
    assert_eq!(got, vec![(SideMismatch, None)]);
}

#[test]
fn gold_uses_the_configured_pip() {
    let got = pair_divergences(
        trade("t", "XAUUSD", Buy, dec!(1), dec!(2420.07)),
        pos(1, "xauusd", Buy, dec!(1), dec!(2420.61)),
    );
    assert_eq!(got, vec![(EntrySlippage, Some(dec!(5.4)))]);
}

#[test]
fn unknown_pip_size_is_an_error_naming_the_symbol() {
    let t = trade("t", "US30", Buy, dec!(1), dec!(39000));
    let p = pos(1, "US30", Buy, dec!(1), dec!(39001));
    let err = reconcile(&[t], &[p], &ReconcileRules::default()).unwrap_err();
    assert_eq!(err, ReconcileError::UnknownPipSize(vec!["US30".into()]));
    // A symbol held on one side only needs no pip size: it cannot be compared anyway.
    let p = pos(2, "US30", Buy, dec!(1), dec!(39001));
    let r = reconcile(&[], &[p], &ReconcileRules::default()).unwrap();
    assert_eq!(r.divergences[0].kind, UnexpectedAtBroker);
}

#[test]
fn matching_order_ticket_then_identifier_then_client_id_then_heuristic() {
    let mut by_ticket = trade("a", "EURUSD", Buy, dec!(1), dec!(1.1));
    by_ticket.ticket = Some(10);
    let mut by_ident = trade("b", "EURUSD", Buy, dec!(1), dec!(1.1));
    by_ident.ticket = Some(999); // the position was reopened: ticket 20, identifier 999
    let mut by_client = trade("c", "EURUSD", Buy, dec!(1), dec!(1.1));
    by_client.client_id = Some("bot-c".into());
    let by_comment = trade("d", "EURUSD", Buy, dec!(1), dec!(1.1)); // comment = trade id
    let heuristic = trade("e", "EURUSD", Buy, dec!(1), dec!(1.2));

    let p10 = pos(10, "EURUSD", Buy, dec!(1), dec!(1.1));
    let p20 = BrokerPosition {
        identifier: 999,
        ..pos(20, "EURUSD", Buy, dec!(1), dec!(1.1))
    };
    let p30 = BrokerPosition {
        client_id: Some("bot-c".into()),
        ..pos(30, "EURUSD", Buy, dec!(1), dec!(1.1))
    };
    let p40 = BrokerPosition {
        comment: "d".into(),
        ..pos(40, "EURUSD", Buy, dec!(1), dec!(1.1))
    };
    let p50 = pos(50, "EURUSD", Buy, dec!(1), dec!(1.2001));

    let r = reconcile(
        &[heuristic, by_comment, by_client, by_ident, by_ticket],
        &[p50, p40, p30, p20, p10],
        &rules(),
    )
    .unwrap();
    let got: Vec<_> = r
        .matched
        .iter()
        .map(|m| (m.trade_id.as_str(), m.ticket, m.method))
        .collect();
    use MatchMethod::*;
    assert_eq!(
        got,
        vec![
            ("a", 10, Ticket),
            ("b", 20, Ticket),
            ("c", 30, ClientId),
            ("d", 40, ClientId),
            ("e", 50, Heuristic)
        ]
    );
    assert!(r.divergences.is_empty(), "{:?}", r.divergences);
}

#[test]
fn a_ticket_on_another_symbol_does_not_match() {
    let mut t = trade("a", "EURUSD", Buy, dec!(1), dec!(1.1));
    t.ticket = Some(10);
    let r = reconcile(
        &[t],
        &[pos(10, "GBPUSD", Buy, dec!(1), dec!(1.1))],
        &rules(),
    )
    .unwrap();
    let kinds: Vec<_> = r.divergences.iter().map(|d| d.kind).collect();
    assert_eq!(kinds, vec![MissingAtBroker, UnexpectedAtBroker]);
}

#[test]
fn a_trade_whose_ticket_is_gone_is_never_paired_with_another_position() {
    // The bot's trade 10 was closed by hand at the broker; a manual position of the same
    // symbol, side, volume and price is open. A ticket is an identity: the trade is
    // missing, the manual position unexpected, and no entry/SL/TP drift is invented.
    let mut t = trade("a", "EURUSD", Buy, dec!(1), dec!(1.1));
    (t.ticket, t.client_id, t.sl) = (Some(10), Some("bot-a".into()), Some(Price::new(dec!(1.05))));
    let manual = BrokerPosition {
        client_id: Some("bot-a".into()),
        comment: "a".into(),
        ..pos(77, "EURUSD", Buy, dec!(1), dec!(1.1003))
    };
    let r = reconcile(&[t.clone()], &[manual], &rules()).unwrap();
    assert!(r.matched.is_empty(), "{:?}", r.matched);
    let got: Vec<_> = r.divergences.iter().map(|d| (d.kind, d.ticket)).collect();
    assert_eq!(
        got,
        vec![(MissingAtBroker, Some(10)), (UnexpectedAtBroker, Some(77))]
    );
    // A trade that knows only the ticket the position had before it was reopened still
    // matches it by the identifier.
    let reopened = BrokerPosition {
        identifier: 10,
        ..pos(78, "EURUSD", Buy, dec!(1), dec!(1.1))
    };
    let r = reconcile(&[t], &[reopened], &rules()).unwrap();
    assert_eq!(r.matched[0].method, MatchMethod::Ticket);
    assert_eq!(r.matched[0].ticket, 78);
}

#[rstest]
#[case::default_window_20_pips(None, dec!(1.10190), true)]
#[case::beyond_default_window(None, dec!(1.10201), false)]
#[case::seed_window_2_pips(Some((dec!(2), dec!(5))), dec!(1.10021), false)]
#[case::seed_window_inside(Some((dec!(2), dec!(5))), dec!(1.10020), true)]
fn heuristic_window(
    #[case] seed: Option<(Decimal, Decimal)>,
    #[case] open: Decimal,
    #[case] matches: bool,
) {
    let mut r = rules();
    if let Some((pips, pct)) = seed {
        r.defaults.match_price_pips = pips;
        r.defaults.match_volume_pct = pct;
    }
    let out = reconcile(
        &[trade("t", "EURUSD", Buy, dec!(1), dec!(1.10000))],
        &[pos(1, "EURUSD", Buy, dec!(1), open)],
        &r,
    )
    .unwrap();
    assert_eq!(out.matched.len() == 1, matches);
    if matches {
        // Inside the window but above 5 pips: the slippage is reported, not hidden.
        assert!(out.divergences.iter().all(|d| d.kind == EntrySlippage));
    }
}

#[test]
fn heuristic_volume_window_and_closest_pair_first() {
    // Two trades, two positions: the globally closest pair is taken first.
    let ts = [
        trade("far", "EURUSD", Buy, dec!(1), dec!(1.1000)),
        trade("near", "EURUSD", Buy, dec!(1), dec!(1.1010)),
    ];
    let ps = [
        pos(1, "EURUSD", Buy, dec!(1), dec!(1.1011)),
        pos(2, "EURUSD", Buy, dec!(1), dec!(1.1020)),
    ];
    let r = reconcile(&ts, &ps, &rules()).unwrap();
    let got: Vec<_> = r
        .matched
        .iter()
        .map(|m| (m.trade_id.as_str(), m.ticket))
        .collect();
    assert_eq!(got, vec![("far", 2), ("near", 1)]);
    // Volume outside 50 %: no match.
    let r = reconcile(
        &[trade("t", "EURUSD", Buy, dec!(1), dec!(1.1))],
        &[pos(1, "EURUSD", Buy, dec!(0.49), dec!(1.1))],
        &rules(),
    )
    .unwrap();
    assert!(r.matched.is_empty());
}

#[test]
fn duplicates_are_refused() {
    let t = trade("t", "EURUSD", Buy, dec!(1), dec!(1.1));
    let err = reconcile(&[t.clone(), t], &[], &rules()).unwrap_err();
    assert_eq!(err, ReconcileError::DuplicateTradeId("t".into()));
    let p = pos(1, "EURUSD", Buy, dec!(1), dec!(1.1));
    let err = reconcile(&[], &[p.clone(), p], &rules()).unwrap_err();
    assert_eq!(err, ReconcileError::DuplicateTicket(1));
}

#[test]
fn an_empty_broker_means_every_trade_is_missing() {
    let r = reconcile(
        &[trade("t", "EURUSD", Buy, dec!(1), dec!(1.1))],
        &[],
        &rules(),
    )
    .unwrap();
    assert_eq!(r.divergences.len(), 1);
    assert_eq!(r.divergences[0].kind, MissingAtBroker);
    assert_eq!(r.divergences[0].expected, Some(Value::Number(dec!(1))));
}

// ---- properties ----

const SYMBOLS: [&str; 4] = ["EURUSD", "USDJPY", "GBPUSD", "XAUUSD"];

fn arb_trade(i: usize) -> impl Strategy<Value = (BotTrade, bool)> {
    // A coarse grid of prices and volumes, so that ties (the hard case for order-independence) are common.
    (
        0..SYMBOLS.len(),
        any::<bool>(),
        1u32..4,
        0u32..8,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(move |(s, buy, lots, price, with_ticket, with_sl)| {
            let side = if buy { Buy } else { Sell };
            let entry = Decimal::new(110_000 + i64::from(price) * 10, 5);
            let mut t = trade(
                &format!("t{i:04}"),
                SYMBOLS[s],
                side,
                Decimal::new(i64::from(lots), 2),
                entry,
            );
            t.sl = with_sl.then(|| Price::new(entry * dec!(0.99)));
            (t, with_ticket)
        })
}

fn arb_book() -> impl Strategy<Value = Vec<(BotTrade, bool)>> {
    (0usize..40).prop_flat_map(|n| (0..n).map(arb_trade).collect::<Vec<_>>())
}

/// Positions that mirror the trades exactly; some carry the ticket, some only the numbers.
fn mirror(book: &[(BotTrade, bool)]) -> (Vec<BotTrade>, Vec<BrokerPosition>) {
    let mut trades = Vec::new();
    let mut positions = Vec::new();
    for (i, (t, with_ticket)) in book.iter().enumerate() {
        let ticket = 1000 + i as u64;
        let mut p = pos(
            ticket,
            &t.symbol,
            t.side,
            t.volume.get(),
            t.entry_price.get(),
        );
        p.sl = t.sl;
        let mut t = t.clone();
        t.ticket = with_ticket.then_some(ticket);
        trades.push(t);
        positions.push(p);
    }
    (trades, positions)
}

proptest! {
    #[test]
    fn a_set_reconciled_against_itself_has_no_divergence(book in arb_book()) {
        let (trades, positions) = mirror(&book);
        let r = reconcile(&trades, &positions, &rules()).unwrap();
        prop_assert!(r.divergences.is_empty(), "{:?}", r.divergences);
        prop_assert_eq!(r.matched.len(), trades.len());
    }

    #[test]
    fn order_of_inputs_changes_nothing(
        book in arb_book(),
        noise in proptest::collection::vec((0u32..4, 0u32..3), 40),
        seed in any::<u64>(),
    ) {
        let (trades, mut positions) = mirror(&book);
        // Disturb the positions so that heuristic choices matter.
        for (p, (dp, dv)) in positions.iter_mut().zip(&noise) {
            p.open_price = Price::new(p.open_price.get() + Decimal::new(i64::from(*dp) * 10, 5));
            p.volume = Volume::new(p.volume.get() + Decimal::new(i64::from(*dv), 2));
        }
        let base = reconcile(&trades, &positions, &rules()).unwrap();
        let (mut t2, mut p2) = (trades.clone(), positions.clone());
        shuffle(&mut t2, seed);
        shuffle(&mut p2, seed.rotate_left(17));
        prop_assert_eq!(reconcile(&t2, &p2, &rules()).unwrap(), base);
    }

    #[test]
    fn no_position_or_trade_is_matched_twice(
        book in arb_book(),
        extra in proptest::collection::vec((0usize..4, 100_000u32..200_000), 0..20),
    ) {
        let (trades, mut positions) = mirror(&book);
        for (i, (s, price)) in extra.into_iter().enumerate() {
            positions.push(pos(90_000 + i as u64, SYMBOLS[s], Buy, dec!(1), Decimal::new(i64::from(price), 5)));
        }
        let r = reconcile(&trades, &positions, &rules()).unwrap();
        let mut tickets: Vec<_> = r.matched.iter().map(|m| m.ticket).collect();
        let mut ids: Vec<_> = r.matched.iter().map(|m| m.trade_id.clone()).collect();
        tickets.sort_unstable();
        tickets.dedup();
        ids.sort();
        ids.dedup();
        prop_assert_eq!(tickets.len(), r.matched.len());
        prop_assert_eq!(ids.len(), r.matched.len());
        // Every trade and every position is accounted for exactly once.
        let missing = r.divergences.iter().filter(|d| d.kind == MissingAtBroker).count();
        let unexpected = r.divergences.iter().filter(|d| d.kind == UnexpectedAtBroker).count();
        prop_assert_eq!(r.matched.len() + missing, trades.len());
        prop_assert_eq!(r.matched.len() + unexpected, positions.len());
    }
}

/// A small deterministic Fisher–Yates shuffle (no extra dependency).
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}
