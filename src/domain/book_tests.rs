//! Table tests for the bot's scope, pending orders and netting accounts, and property
//! tests for the invariants of `reconcile_book`.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use rstest::rstest;
use rust_decimal::{Decimal, dec};

use super::*;

fn at(secs: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0)
}

fn trade(id: &str, side: Side, volume: Decimal, entry: Decimal) -> BotTrade {
    BotTrade {
        id: id.into(),
        account: "acc".into(),
        symbol: "EURUSD".into(),
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

fn ticketed(id: &str, ticket: u64) -> BotTrade {
    BotTrade {
        ticket: Some(ticket),
        ..trade(id, Buy, dec!(1), dec!(1.1))
    }
}

fn pos(ticket: u64, side: Side, volume: Decimal, open: Decimal) -> BrokerPosition {
    BrokerPosition::for_test(ticket, "EURUSD", side, volume, open)
}

fn bot_pos(ticket: u64) -> BrokerPosition {
    BrokerPosition {
        magic: 7,
        ..pos(ticket, Buy, dec!(1), dec!(1.1))
    }
}

fn order(ticket: u64, side: Side, volume: Decimal, price: Option<Decimal>) -> PendingOrder {
    PendingOrder {
        ticket,
        symbol: "EURUSD".into(),
        side,
        volume: Volume::new(volume),
        price: price.map(Price::new),
        magic: 7,
        comment: String::new(),
        client_id: None,
        placed_at: DateTime::UNIX_EPOCH,
    }
}

fn magic_7() -> Scope {
    Scope {
        magics: [7].into(),
        ..Scope::default()
    }
}

fn run(
    trades: &[BotTrade],
    positions: &[BrokerPosition],
    orders: Option<&[PendingOrder]>,
    margin_mode: Option<MarginMode>,
    scope: &Scope,
) -> Reconciliation {
    let book = Book {
        positions,
        orders,
        margin_mode,
    };
    reconcile_book(trades, book, scope, &ReconcileRules::default()).expect("reconciles")
}

/// (kind, trade id, ticket) of every divergence.
fn kinds(r: &Reconciliation) -> Vec<(DivergenceKind, Option<&str>, Option<u64>)> {
    r.divergences
        .iter()
        .map(|d| (d.kind, d.trade_id.as_deref(), d.ticket))
        .collect()
}

fn external(r: &Reconciliation) -> Vec<(Holding, u64)> {
    r.external.iter().map(|e| (e.holding, e.ticket)).collect()
}

fn pending(r: &Reconciliation) -> Vec<(&str, u64, MatchMethod)> {
    r.pending
        .iter()
        .map(|p| (p.trade_id.as_str(), p.order, p.method))
        .collect()
}

use DivergenceKind::*;
use Side::{Buy, Sell};

// ---- scope ----

#[rstest]
#[case::listed_by_default(ExternalPolicy::List, vec![])]
#[case::raised_when_asked(ExternalPolicy::Divergence, vec![(UnexpectedAtBroker, None, Some(2))])]
fn a_position_outside_the_scope_is_external_and_a_divergence_only_when_asked(
    #[case] policy: ExternalPolicy,
    #[case] expected: Vec<(DivergenceKind, Option<&str>, Option<u64>)>,
) {
    let scope = Scope {
        external: policy,
        ..magic_7()
    };
    let manual = pos(2, Sell, dec!(1), dec!(1.2));
    let r = run(
        &[ticketed("a", 1)],
        &[bot_pos(1), manual],
        None,
        None,
        &scope,
    );
    assert_eq!(external(&r), [(Holding::Position, 2)]);
    assert_eq!(kinds(&r), expected);
    assert_eq!(r.matched.len(), 1);
}

#[test]
fn without_a_scope_every_position_is_the_bots() {
    let r = run(
        &[],
        &[pos(2, Sell, dec!(1), dec!(1.2))],
        None,
        None,
        &Scope::default(),
    );
    assert!(r.external.is_empty());
    assert_eq!(kinds(&r), [(UnexpectedAtBroker, None, Some(2))]);
}

#[test]
fn a_position_outside_the_scope_is_never_paired_by_client_id_or_the_heuristic() {
    let mut a = trade("a", Buy, dec!(1), dec!(1.1));
    a.client_id = Some("c-1".into());
    let b = trade("b", Buy, dec!(1), dec!(1.1));
    let mut manual = pos(2, Buy, dec!(1), dec!(1.1));
    manual.client_id = Some("c-1".into());
    let lookalike = pos(3, Buy, dec!(1), dec!(1.1));
    let r = run(&[a, b], &[manual, lookalike], None, None, &magic_7());
    assert!(r.matched.is_empty());
    assert_eq!(
        kinds(&r),
        [
            (MissingAtBroker, Some("a"), None),
            (MissingAtBroker, Some("b"), None)
        ]
    );
    assert_eq!(
        external(&r),
        [(Holding::Position, 2), (Holding::Position, 3)]
    );
}

#[test]
fn a_trade_carrying_the_ticket_of_a_position_outside_the_scope_still_matches_it() {
    let manual = pos(2, Buy, dec!(1), dec!(1.1));
    let r = run(&[ticketed("a", 2)], &[manual], None, None, &magic_7());
    assert_eq!(r.matched[0].ticket, 2);
    assert!(r.external.is_empty() && r.divergences.is_empty());
}

#[test]
fn a_comment_prefix_puts_a_position_in_the_scope() {
    let scope = Scope {
        comment_prefix: Some("bot:".into()),
        ..Scope::default()
    };
    let mut mine = pos(1, Buy, dec!(1), dec!(1.1));
    mine.comment = "bot:grid-3".into();
    let r = run(
        &[trade("a", Buy, dec!(1), dec!(1.1))],
        &[mine, pos(2, Buy, dec!(1), dec!(1.1))],
        None,
        None,
        &scope,
    );
    assert_eq!(r.matched[0].ticket, 1);
    assert_eq!(external(&r), [(Holding::Position, 2)]);
}

// ---- pending orders ----

#[rstest]
#[case::by_ticket(ticketed("a", 5), MatchMethod::Ticket)]
#[case::by_client_id(BotTrade { client_id: Some("c-9".into()), ..trade("a", Buy, dec!(0.5), dec!(1.0)) }, MatchMethod::ClientId)]
#[case::by_symbol_side_and_volume(trade("a", Buy, dec!(0.3), dec!(1.09)), MatchMethod::Heuristic)]
fn a_trade_whose_order_is_pending_is_not_missing(#[case] t: BotTrade, #[case] method: MatchMethod) {
    let mut o = order(5, Buy, dec!(0.30), Some(dec!(1.0900)));
    o.client_id = Some("c-9".into());
    let r = run(&[t], &[], Some(&[o]), None, &Scope::default());
    assert_eq!(pending(&r), [("a", 5, method)]);
    assert!(r.divergences.is_empty(), "{:?}", r.divergences);
}

#[test]
fn a_broker_that_does_not_report_orders_leaves_the_trade_missing() {
    let r = run(&[ticketed("a", 5)], &[], None, None, &Scope::default());
    assert_eq!(kinds(&r), [(MissingAtBroker, Some("a"), Some(5))]);
    let r = run(&[ticketed("a", 5)], &[], Some(&[]), None, &Scope::default());
    assert_eq!(kinds(&r), [(MissingAtBroker, Some("a"), Some(5))]);
}

#[test]
fn the_heuristic_takes_the_closest_order_and_never_another_volume_or_a_ticketed_trade() {
    let near = trade("near", Buy, dec!(1), dec!(1.1000));
    let far = trade("far", Buy, dec!(1), dec!(1.0500));
    let other_volume = trade("vol", Buy, dec!(2), dec!(1.1));
    let orders = [
        order(10, Buy, dec!(1), Some(dec!(1.0990))),
        order(11, Buy, dec!(1), Some(dec!(1.0510))),
        order(12, Buy, dec!(3), Some(dec!(1.1))),
    ];
    let trades = [near, far, other_volume, ticketed("ticketed", 99)];
    let r = run(&trades, &[], Some(&orders), None, &Scope::default());
    use MatchMethod::Heuristic;
    assert_eq!(
        pending(&r),
        [("far", 11, Heuristic), ("near", 10, Heuristic)]
    );
    assert_eq!(
        kinds(&r),
        [
            (MissingAtBroker, Some("ticketed"), Some(99)),
            (MissingAtBroker, Some("vol"), None)
        ]
    );
}

#[test]
fn a_filled_trade_matches_its_position_and_orders_outside_the_scope_are_external() {
    let mine = order(10, Buy, dec!(1), None);
    let manual = order(11, Buy, dec!(1), None);
    let by_ticket = order(12, Sell, dec!(2), None);
    let orders = [
        mine,
        PendingOrder { magic: 0, ..manual },
        PendingOrder {
            magic: 0,
            ..by_ticket
        },
    ];
    let trades = [
        ticketed("filled", 1),
        trade("waits", Buy, dec!(1), dec!(1.1)),
        BotTrade {
            ticket: Some(12),
            ..trade("mine-by-ticket", Buy, dec!(2), dec!(1.1))
        },
    ];
    let r = run(&trades, &[bot_pos(1)], Some(&orders), None, &magic_7());
    assert_eq!(r.matched.len(), 1);
    assert_eq!(
        pending(&r),
        [
            ("mine-by-ticket", 12, MatchMethod::Ticket),
            ("waits", 10, MatchMethod::Heuristic)
        ]
    );
    assert_eq!(external(&r), [(Holding::Order, 11)]);
    assert!(r.divergences.is_empty(), "{:?}", r.divergences);
}

// ---- netting ----

fn netting(trades: &[BotTrade], positions: &[BrokerPosition]) -> Reconciliation {
    run(
        trades,
        positions,
        None,
        Some(MarginMode::Netting),
        &Scope::default(),
    )
}

#[test]
fn trades_net_into_one_position_at_their_weighted_entry() {
    let a = BotTrade {
        opened_at: at(0),
        ..trade("a", Buy, dec!(1), dec!(1.1000))
    };
    let b = BotTrade {
        opened_at: at(60),
        ..trade("b", Buy, dec!(3), dec!(1.1040))
    };
    let p = pos(70, Buy, dec!(4), dec!(1.1030));
    for mode in [MarginMode::Netting, MarginMode::Exchange] {
        let r = run(
            &[a.clone(), b.clone()],
            std::slice::from_ref(&p),
            None,
            Some(mode),
            &Scope::default(),
        );
        assert!(r.divergences.is_empty(), "{mode:?}: {:?}", r.divergences);
        let methods: Vec<_> = r.matched.iter().map(|m| (m.ticket, m.method)).collect();
        assert_eq!(methods, [(70, MatchMethod::Netting); 2]);
        assert_eq!(r.netted[0].latest, "b");
    }
    // On a hedging account (or one that did not say), one trade is the position.
    let r = run(&[a, b], &[p], None, None, &Scope::default());
    assert_eq!(r.matched.len(), 1);
    assert!(kinds(&r).contains(&(MissingAtBroker, Some("a"), None)));
}

#[rstest]
#[case::volume(pos(70, Buy, dec!(3), dec!(1.1030)), vec![(VolumeMismatch, Some(dec!(-25)))])]
#[case::entry(pos(70, Buy, dec!(4), dec!(1.1040)), vec![(EntrySlippage, Some(dec!(10)))])]
#[case::side(pos(70, Sell, dec!(4), dec!(1.1030)), vec![(SideMismatch, None)])]
fn a_netting_position_is_compared_with_the_net_under_the_same_tolerances(
    #[case] p: BrokerPosition,
    #[case] expected: Vec<(DivergenceKind, Option<Decimal>)>,
) {
    let trades = [
        BotTrade {
            opened_at: at(0),
            ..trade("a", Buy, dec!(1), dec!(1.1000))
        },
        BotTrade {
            opened_at: at(60),
            ..trade("b", Buy, dec!(3), dec!(1.1040))
        },
    ];
    let r = netting(&trades, &[p]);
    let got: Vec<_> = r.divergences.iter().map(|d| (d.kind, d.delta)).collect();
    assert_eq!(got, expected);
    for d in &r.divergences {
        // Named by the latest trade and the position.
        assert_eq!((d.trade_id.as_deref(), d.ticket), (Some("b"), Some(70)));
    }
}

#[test]
fn the_latest_trades_stops_are_the_bots_intent() {
    let stop = |sl: Decimal| Some(Price::new(sl));
    let old = BotTrade {
        opened_at: at(0),
        sl: stop(dec!(1.0900)),
        ..trade("z-old", Buy, dec!(1), dec!(1.1))
    };
    let new = BotTrade {
        opened_at: at(60),
        sl: stop(dec!(1.0950)),
        ..trade("a-new", Buy, dec!(1), dec!(1.1))
    };
    let mut p = pos(70, Buy, dec!(2), dec!(1.1));
    p.sl = stop(dec!(1.0950));
    assert!(
        netting(&[old.clone(), new.clone()], &[p.clone()])
            .divergences
            .is_empty()
    );
    p.sl = stop(dec!(1.0900));
    let r = netting(&[old, new], &[p]);
    assert_eq!(kinds(&r), [(SlMismatch, Some("a-new"), Some(70))]);
}

#[test]
fn netting_fingerprints_do_not_depend_on_the_order_of_the_trades() {
    let mut trades: Vec<BotTrade> = (0..5)
        .map(|i| BotTrade {
            opened_at: at(i),
            ..trade(&format!("t{i}"), Buy, dec!(1), Decimal::new(11_000 + i, 4))
        })
        .collect();
    let p = pos(70, Buy, dec!(4), dec!(1.1));
    let base = netting(&trades, std::slice::from_ref(&p));
    assert!(!base.divergences.is_empty());
    trades.reverse();
    assert_eq!(netting(&trades, &[p]), base);
}

#[test]
fn a_flat_net_expects_no_position_and_a_net_without_one_is_missing() {
    let trades = [
        BotTrade {
            opened_at: at(0),
            ..trade("a", Buy, dec!(1), dec!(1.1))
        },
        BotTrade {
            opened_at: at(1),
            ..trade("b", Sell, dec!(1), dec!(1.2))
        },
    ];
    let r = netting(&trades, &[]);
    assert!(r.divergences.is_empty() && r.matched.is_empty(), "{r:?}");
    assert_eq!(r.netted[0].trade_ids, ["a", "b"]);
    let r = netting(&trades, &[pos(70, Buy, dec!(1), dec!(1.1))]);
    assert_eq!(kinds(&r), [(UnexpectedAtBroker, None, Some(70))]);
    let r = run(
        &trades,
        &[pos(70, Buy, dec!(1), dec!(1.1))],
        None,
        Some(MarginMode::Netting),
        &magic_7(),
    );
    assert_eq!(external(&r), [(Holding::Position, 70)]);
    assert!(r.divergences.is_empty());
    let r = netting(&trades[..1], &[]);
    assert_eq!(kinds(&r), [(MissingAtBroker, Some("a"), None)]);
}

#[test]
fn on_a_netting_account_the_symbols_position_is_compared_whatever_its_magic() {
    let r = run(
        &[trade("a", Buy, dec!(1), dec!(1.1))],
        &[pos(70, Buy, dec!(1.5), dec!(1.1))],
        None,
        Some(MarginMode::Netting),
        &magic_7(),
    );
    assert!(r.external.is_empty());
    assert_eq!(kinds(&r), [(VolumeMismatch, Some("a"), Some(70))]);
}

#[test]
fn a_trade_waiting_on_an_order_is_not_part_of_the_net() {
    let trades = [
        ticketed("filled", 70),
        BotTrade {
            ticket: Some(71),
            ..trade("limit", Buy, dec!(2), dec!(1.05))
        },
    ];
    let orders = [order(71, Buy, dec!(2), Some(dec!(1.05)))];
    let r = run(
        &trades,
        &[bot_pos(70)],
        Some(&orders),
        Some(MarginMode::Netting),
        &Scope::default(),
    );
    assert!(r.divergences.is_empty(), "{:?}", r.divergences);
    assert_eq!(pending(&r), [("limit", 71, MatchMethod::Ticket)]);
}

#[test]
fn a_symbol_with_several_positions_is_matched_as_on_hedging() {
    let r = netting(
        &[ticketed("a", 1), ticketed("b", 2)],
        &[bot_pos(1), bot_pos(2)],
    );
    let methods: Vec<_> = r.matched.iter().map(|m| m.method).collect();
    assert_eq!(methods, [MatchMethod::Ticket; 2]);
    assert!(r.netted.is_empty() && r.divergences.is_empty());
}

// ---- properties ----

fn arb_trade(i: usize) -> impl Strategy<Value = BotTrade> {
    (0..2usize, any::<bool>(), 1i64..4, 0i64..4, 0u8..3, 0i64..3).prop_map(
        move |(s, buy, lots, price, ticket, opened)| BotTrade {
            symbol: ["EURUSD", "GBPUSD"][s].into(),
            ticket: match ticket {
                0 => None,
                // Tickets that a position or an order may carry.
                1 => Some(100 + (i as u64 % 6)),
                _ => Some(200 + (i as u64 % 6)),
            },
            opened_at: at(opened),
            ..trade(
                &format!("t{i:02}"),
                if buy { Buy } else { Sell },
                Decimal::new(lots, 1),
                Decimal::new(11_000 + price * 10, 4),
            )
        },
    )
}

fn arb_position(i: usize) -> impl Strategy<Value = BrokerPosition> {
    (0..2usize, any::<bool>(), 1i64..4, 0i64..4, any::<bool>()).prop_map(
        move |(s, buy, lots, price, mine)| BrokerPosition {
            symbol: ["EURUSD", "GBPUSD"][s].into(),
            magic: if mine { 7 } else { 0 },
            ..pos(
                100 + i as u64,
                if buy { Buy } else { Sell },
                Decimal::new(lots, 1),
                Decimal::new(11_000 + price * 10, 4),
            )
        },
    )
}

fn arb_order(i: usize) -> impl Strategy<Value = PendingOrder> {
    (0..2usize, any::<bool>(), 1i64..4, 0i64..4, any::<bool>()).prop_map(
        move |(s, buy, lots, price, mine)| PendingOrder {
            symbol: ["EURUSD", "GBPUSD"][s].into(),
            magic: if mine { 7 } else { 0 },
            ..order(
                200 + i as u64,
                if buy { Buy } else { Sell },
                Decimal::new(lots, 1),
                Some(Decimal::new(11_000 + price * 10, 4)),
            )
        },
    )
}

fn arb_account()
-> impl Strategy<Value = (Vec<BotTrade>, Vec<BrokerPosition>, Vec<PendingOrder>, bool)> {
    (0usize..12, 0usize..6, 0usize..6, any::<bool>()).prop_flat_map(|(t, p, o, net)| {
        (
            (0..t).map(arb_trade).collect::<Vec<_>>(),
            (0..p).map(arb_position).collect::<Vec<_>>(),
            (0..o).map(arb_order).collect::<Vec<_>>(),
            Just(net),
        )
    })
}

fn shuffled<T: Clone>(v: &[T], mut seed: u64) -> Vec<T> {
    let mut v = v.to_vec();
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    v
}

proptest! {
    #[test]
    fn scope_orders_and_netting_do_not_depend_on_the_order_of_inputs(
        (trades, positions, orders, net) in arb_account(),
        seed in any::<u64>(),
    ) {
        let mode = net.then_some(MarginMode::Netting);
        let base = run(&trades, &positions, Some(&orders), mode, &magic_7());
        let again = run(
            &shuffled(&trades, seed),
            &shuffled(&positions, seed.rotate_left(7)),
            Some(&shuffled(&orders, seed.rotate_left(19))),
            mode,
            &magic_7(),
        );
        prop_assert_eq!(again, base);
    }

    #[test]
    fn every_trade_position_and_order_is_accounted_for_once(
        (trades, positions, orders, net) in arb_account(),
    ) {
        let mode = net.then_some(MarginMode::Netting);
        let r = run(&trades, &positions, Some(&orders), mode, &magic_7());
        // A trade is matched, pending or missing, or else netted flat: one of them.
        for t in &trades {
            let matched = r.matched.iter().any(|m| m.trade_id == t.id);
            let pending = r.pending.iter().any(|p| p.trade_id == t.id);
            let missing = r
                .divergences
                .iter()
                .any(|d| d.kind == MissingAtBroker && d.trade_id.as_ref() == Some(&t.id));
            let netted = r.netted.iter().any(|g| g.trade_ids.contains(&t.id));
            let n = usize::from(matched) + usize::from(pending) + usize::from(missing);
            prop_assert!(n == 1 || (n == 0 && netted), "{} in {:?}", t.id, r);
            prop_assert!(!(pending && netted), "{} in {:?}", t.id, r);
        }
        // A position is matched, unexpected, or external (both when its scope says so).
        for p in &positions {
            let matched = r.matched.iter().any(|m| m.ticket == p.ticket);
            let unexpected = r.divergences.iter().any(|d| d.kind == UnexpectedAtBroker && d.ticket == Some(p.ticket));
            let external = r.external.iter().any(|e| e.holding == Holding::Position && e.ticket == p.ticket);
            prop_assert_eq!(usize::from(matched) + usize::from(unexpected || external), 1, "{} in {:?}", p.ticket, r);
            prop_assert!(!external || p.magic != 7);
        }
        // An order waits for one trade at most; outside the scope it is external unless
        // a trade carries its ticket.
        for o in &orders {
            let waits = r.pending.iter().filter(|f| f.order == o.ticket).count();
            let external = r.external.iter().any(|e| e.holding == Holding::Order && e.ticket == o.ticket);
            prop_assert!(waits <= 1);
            prop_assert_eq!(external, waits == 0 && o.magic != 7);
        }
    }
}
