//! Table tests of the judge on pending orders and netting symbols: a reconciliation per
//! sync, judged on the service's clock.

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::{Decimal, dec};

use super::*;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_770_000_000 + secs, 0).expect("a time")
}

fn trade(id: &str, ticket: Option<u64>, volume: Decimal, opened: i64) -> BotTrade {
    BotTrade {
        id: id.into(),
        account: "acc".into(),
        symbol: "EURUSD".into(),
        side: Side::Buy,
        volume: Volume::new(volume),
        entry_price: Price::new(dec!(1.1)),
        sl: None,
        tp: None,
        ticket,
        client_id: None,
        opened_at: Some(at(opened)),
    }
}

fn pos(ticket: u64, volume: Decimal) -> BrokerPosition {
    BrokerPosition::for_test(ticket, "EURUSD", Side::Buy, volume, dec!(1.1))
}

fn order(ticket: u64) -> PendingOrder {
    PendingOrder {
        ticket,
        symbol: "EURUSD".into(),
        side: Side::Buy,
        volume: Volume::new(dec!(1)),
        price: Some(Price::new(dec!(1.05))),
        magic: 0,
        comment: String::new(),
        client_id: None,
        placed_at: DateTime::UNIX_EPOCH,
    }
}

/// The account at one sync.
struct Sync<'a> {
    trades: &'a [BotTrade],
    positions: &'a [BrokerPosition],
    orders: Option<&'a [PendingOrder]>,
    netting: bool,
}

/// (kind, ticket) of divergences.
type Keys = Vec<(DivergenceKind, Option<u64>)>;

/// Reconciles and judges one sync at `secs`: (kind, ticket) raised and held.
fn judge(j: &mut Judge, secs: i64, s: &Sync<'_>, rules: &LiveRules) -> (Keys, Keys) {
    let book = Book {
        positions: s.positions,
        orders: s.orders,
        margin_mode: s.netting.then_some(MarginMode::Netting),
    };
    let r = reconcile_book(
        s.trades,
        book,
        &Scope::default(),
        &ReconcileRules::default(),
    )
    .expect("reconciles");
    let v = j.judge_reconciliation(s.trades, s.positions, r, at(secs), rules);
    let keys = |ds: &[Divergence]| ds.iter().map(|d| (d.kind, d.ticket)).collect::<Vec<_>>();
    (keys(&v.raised), keys(&v.held))
}

use DivergenceKind::*;

fn none() -> Keys {
    Vec::new()
}

#[test]
fn a_trade_waiting_on_its_order_is_no_divergence_until_it_waited_too_long() {
    let rules = LiveRules {
        max_pending_order: Some(TimeDelta::seconds(60)),
        ..LiveRules::default()
    };
    let trades = [trade("limit", Some(5), dec!(1), 0)];
    let orders = [order(5)];
    let waiting = Sync {
        trades: &trades,
        positions: &[],
        orders: Some(&orders),
        netting: false,
    };
    let mut j = Judge::default();
    for secs in [0, 30, 60] {
        assert_eq!(
            judge(&mut j, secs, &waiting, &rules),
            (none(), none()),
            "{secs}"
        );
    }
    // Measured from the judge's first sight, on its own clock.
    assert_eq!(
        judge(&mut j, 61, &waiting, &rules),
        (vec![(OrderUnfilled, Some(5))], none())
    );
    // After a restart, the wait starts again: never earlier than it should.
    let mut j = Judge::default();
    assert_eq!(judge(&mut j, 61, &waiting, &rules), (none(), none()));
    // For ever: never raised.
    let forever = LiveRules {
        max_pending_order: None,
        ..LiveRules::default()
    };
    let mut j = Judge::default();
    judge(&mut j, 0, &waiting, &forever);
    assert_eq!(
        judge(&mut j, 1_000_000, &waiting, &forever),
        (none(), none())
    );
}

#[test]
fn an_order_gone_without_a_fill_is_order_cancelled_after_grace_and_confirmation() {
    let rules = LiveRules::default();
    let trades = [trade("limit", None, dec!(1), 0)];
    let orders = [order(5)];
    let mut s = Sync {
        trades: &trades,
        positions: &[],
        orders: Some(&orders),
        netting: false,
    };
    let mut j = Judge::default();
    judge(&mut j, 0, &s, &rules);
    s.orders = Some(&[]);
    // Named by the order's ticket (the trade has none); held while the loss is recent.
    assert_eq!(
        judge(&mut j, 10, &s, &rules),
        (none(), vec![(OrderCancelled, Some(5))])
    );
    assert_eq!(
        judge(&mut j, 14, &s, &rules),
        (none(), vec![(OrderCancelled, Some(5))])
    );
    assert_eq!(
        judge(&mut j, 20, &s, &rules),
        (vec![(OrderCancelled, Some(5))], none())
    );
    assert_eq!(
        judge(&mut j, 30, &s, &rules),
        (vec![(OrderCancelled, Some(5))], none()),
        "the same divergence on every sync"
    );
}

#[test]
fn an_order_that_fills_a_sync_before_its_position_shows_is_never_raised() {
    let rules = LiveRules::default();
    let trades = [trade("limit", Some(5), dec!(1), 0)];
    let orders = [order(5)];
    let mut s = Sync {
        trades: &trades,
        positions: &[],
        orders: Some(&orders),
        netting: false,
    };
    let mut j = Judge::default();
    judge(&mut j, 0, &s, &rules);
    s.orders = Some(&[]);
    assert_eq!(
        judge(&mut j, 10, &s, &rules),
        (none(), vec![(OrderCancelled, Some(5))])
    );
    let filled = [pos(5, dec!(1))];
    s.positions = &filled;
    assert_eq!(judge(&mut j, 20, &s, &rules), (none(), none()));
}

#[test]
fn without_orders_from_the_broker_a_waiting_trade_is_missing_as_before() {
    let rules = LiveRules::default();
    let trades = [trade("limit", Some(5), dec!(1), 0)];
    let s = Sync {
        trades: &trades,
        positions: &[],
        orders: None,
        netting: false,
    };
    let mut j = Judge::default();
    judge(&mut j, 0, &s, &rules);
    assert_eq!(
        judge(&mut j, 10, &s, &rules),
        (vec![(MissingAtBroker, Some(5))], none())
    );
}

#[test]
fn a_netting_divergence_is_held_while_the_set_of_its_trades_changes() {
    let rules = LiveRules::default();
    let both = [trade("a", None, dec!(1), 0), trade("b", None, dec!(1), 60)];
    let two = [pos(70, dec!(2))];
    let mut s = Sync {
        trades: &both,
        positions: &two,
        orders: None,
        netting: true,
    };
    let mut j = Judge::default();
    assert_eq!(judge(&mut j, 0, &s, &rules), (none(), none()));
    // The bot closes a (the older trade); the broker's reduction shows a sync later. The
    // volume divergence names b, which did not change: the changed set holds it.
    s.trades = &both[1..];
    assert_eq!(
        judge(&mut j, 10, &s, &rules),
        (none(), vec![(VolumeMismatch, Some(70))])
    );
    let one = [pos(70, dec!(1))];
    s.positions = &one;
    assert_eq!(judge(&mut j, 12, &s, &rules), (none(), none()));
    // Had the broker not reduced it, it is raised once the change is older than the grace.
    s.positions = &two;
    let mut j = Judge::default();
    s.trades = &both;
    judge(&mut j, 0, &s, &rules);
    s.trades = &both[1..];
    judge(&mut j, 10, &s, &rules);
    assert_eq!(
        judge(&mut j, 16, &s, &rules),
        (vec![(VolumeMismatch, Some(70))], none())
    );
}
