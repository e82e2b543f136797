//! Tests of the simulated broker's trading hooks: deals with their reasons for every
//! close, partial closes, pending orders placed, filled (the order's ticket becoming the
//! position's identifier) and cancelled, netting fills, re-opened tickets, how the history
//! is reported, and a history bounded in time and size.

use chrono::{DateTime, Utc};
use rstest::rstest;
use rust_decimal::dec;

use super::history::History;
use super::*;
use crate::broker::{Broker, ErrorClass};
use crate::clock::Clock;
use crate::domain::{
    BrokerPosition, Deal, DealEntry, DealLookup, DealReason, MarginMode, PendingOrder, Price, Side,
    Volume,
};

const ACC: &str = "acc";

fn start() -> DateTime<Utc> {
    "2025-03-03T10:00:00Z".parse().expect("a valid instant")
}

/// A broker with one empty account `acc`, on a clock that follows paused tokio time.
fn sim() -> SimBroker {
    let sim = SimBroker::new(&SimConfig {
        accounts: 0,
        ..SimConfig::default()
    })
    .with_clock(Clock::following_tokio(start()));
    sim.add_account(ACC, Vec::new(), Vec::new());
    sim
}

/// A position with a stop loss, a take profit and a current price.
fn position(ticket: u64, side: Side) -> BrokerPosition {
    let mut p = BrokerPosition::for_test(ticket, "EURUSD", side, dec!(0.3), dec!(1.08500));
    p.sl = Some(Price::new(dec!(1.08000)));
    p.tp = Some(Price::new(dec!(1.09500)));
    p.current_price = Some(Price::new(dec!(1.08600)));
    p
}

fn order(ticket: u64, side: Side, volume: &str, price: Option<&str>) -> PendingOrder {
    PendingOrder {
        ticket,
        symbol: "EURUSD".into(),
        side,
        volume: Volume::new(volume.parse().expect("a volume")),
        price: price.map(|p| Price::new(p.parse().expect("a price"))),
        magic: 7,
        comment: "bot".into(),
        client_id: Some("t-1".into()),
        placed_at: start(),
    }
}

fn summary(deals: &[Deal]) -> Vec<(u64, DealEntry, DealReason, Side, String)> {
    deals
        .iter()
        .map(|d| {
            (
                d.position_id,
                d.entry,
                d.reason,
                d.side,
                d.volume.to_string(),
            )
        })
        .collect()
}

#[rstest]
#[case::stop_loss(DealReason::StopLoss, dec!(1.08000), dec!(-150.00))]
#[case::take_profit(DealReason::TakeProfit, dec!(1.09500), dec!(300.00))]
#[case::stop_out(DealReason::StopOut, dec!(1.08600), dec!(30.00))]
#[case::by_hand(DealReason::Client, dec!(1.08600), dec!(30.00))]
#[case::mobile(DealReason::Mobile, dec!(1.08600), dec!(30.00))]
#[tokio::test(start_paused = true)]
async fn a_close_leaves_its_deal_with_reason_price_and_profit(
    #[case] reason: DealReason,
    #[case] price: rust_decimal::Decimal,
    #[case] profit: rust_decimal::Decimal,
) {
    let sim = sim();
    assert!(sim.open_position(ACC, position(11, Side::Buy), DealReason::Expert));
    assert!(
        !sim.open_position(ACC, position(11, Side::Buy), DealReason::Expert),
        "in use"
    );
    assert!(sim.close_by(ACC, 11, reason));
    assert!(!sim.close_by(ACC, 11, reason), "already closed");
    assert!(sim.positions(ACC).is_empty());
    let Ok(DealLookup::Found(deals)) = sim.position_deals(ACC, 11).await else {
        panic!("the simulator keeps a history");
    };
    assert_eq!(
        summary(&deals),
        [
            (
                11,
                DealEntry::In,
                DealReason::Expert,
                Side::Buy,
                "0.3".into()
            ),
            (11, DealEntry::Out, reason, Side::Sell, "0.3".into()),
        ]
    );
    assert_eq!((deals[1].price.get(), deals[1].profit), (price, profit));
    assert_eq!(deals[1].time, start());
    assert!(deals[1].ticket > deals[0].ticket && deals[0].ticket == FIRST_DEAL_TICKET);
}

#[tokio::test(start_paused = true)]
async fn the_brokers_own_close_is_an_expert_deal() {
    let sim = sim();
    sim.open_position(ACC, position(11, Side::Sell), DealReason::Client);
    sim.close_position(ACC, 11).await.expect("closed");
    let deals = sim.deals(ACC);
    assert_eq!(
        summary(&deals)[1],
        (
            11,
            DealEntry::Out,
            DealReason::Expert,
            Side::Buy,
            "0.3".into()
        )
    );
    assert_eq!(deals[1].profit, dec!(-30.00), "a sell closed higher loses");
    let e = sim.close_position(ACC, 11).await.expect_err("gone");
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert_eq!(sim.deals(ACC).len(), 2, "a refused close leaves no deal");
}

#[tokio::test(start_paused = true)]
async fn a_partial_close_leaves_a_deal_of_its_volume() {
    let sim = sim();
    let mut p = position(11, Side::Buy);
    p.profit = dec!(30);
    sim.open_position(ACC, p, DealReason::Expert);
    assert!(sim.close_partially(ACC, 11, Volume::new(dec!(0.1)), DealReason::TakeProfit));
    let held = &sim.positions(ACC)[0];
    assert_eq!((held.volume.get(), held.profit), (dec!(0.2), dec!(20.00)));
    for volume in [dec!(0.2), dec!(0.5)] {
        assert!(
            !sim.close_partially(ACC, 11, Volume::new(volume), DealReason::Client),
            "{volume} is not a part"
        );
    }
    assert!(!sim.close_partially(ACC, 99, Volume::new(dec!(0.1)), DealReason::Client));
    let deals = sim.deals(ACC);
    assert_eq!(
        summary(&deals)[1..],
        [(
            11,
            DealEntry::Out,
            DealReason::TakeProfit,
            Side::Sell,
            "0.1".into()
        )]
    );
    assert_eq!(deals[1].profit, dec!(100.00));
}

#[tokio::test(start_paused = true)]
async fn a_filled_order_becomes_a_position_under_its_ticket() {
    let sim = sim();
    let ticket = sim
        .place_order(ACC, order(0, Side::Buy, "0.2", Some("1.08000")))
        .expect("placed");
    assert_eq!(ticket, FIRST_SIM_TICKET);
    assert_eq!(
        sim.place_order(ACC, order(ticket, Side::Buy, "0.1", None)),
        None,
        "in use"
    );
    let s = sim.snapshot(ACC).await.expect("snapshot");
    assert_eq!(s.orders.as_ref().map(Vec::len), Some(1));
    assert_eq!(s.margin_mode, Some(MarginMode::Hedging));
    assert_eq!(sim.fill_order(ACC, ticket, None), Some(ticket));
    assert_eq!(sim.fill_order(ACC, ticket, None), None, "no longer pending");
    let p = &sim.positions(ACC)[0];
    assert_eq!(
        (p.ticket, p.identifier, p.side),
        (ticket, ticket, Side::Buy)
    );
    assert_eq!(
        (p.volume.get(), p.open_price.get()),
        (dec!(0.2), dec!(1.08000))
    );
    assert_eq!((p.magic, p.client_id.as_deref()), (7, Some("t-1")));
    assert!(sim.orders(ACC).is_empty());
    assert_eq!(
        summary(&sim.deals(ACC)),
        [(
            ticket,
            DealEntry::In,
            DealReason::Expert,
            Side::Buy,
            "0.2".into()
        )]
    );
    let market = sim
        .place_order(ACC, order(0, Side::Sell, "0.1", None))
        .expect("placed");
    assert_eq!(
        sim.fill_order(ACC, market, None),
        None,
        "no price to fill at"
    );
    let at = Some(Price::new(dec!(1.08100)));
    assert_eq!(sim.fill_order(ACC, market, at), Some(market));
    assert_eq!(sim.positions(ACC).len(), 2, "hedging: a second position");
}

#[tokio::test(start_paused = true)]
async fn netting_fills_add_reduce_reverse_and_close() {
    let sim = sim();
    assert!(sim.set_margin_mode(ACC, MarginMode::Netting));
    let first = sim
        .place_order(ACC, order(0, Side::Buy, "0.1", Some("1.10000")))
        .expect("placed");
    let fill = |side, volume, price| {
        let t = sim
            .place_order(ACC, order(0, side, volume, Some(price)))
            .expect("placed");
        (t, sim.fill_order(ACC, t, None))
    };
    assert_eq!(sim.fill_order(ACC, first, None), Some(first));
    assert_eq!(fill(Side::Buy, "0.1", "1.20000").1, Some(first));
    let p = &sim.positions(ACC)[0];
    assert_eq!(
        (p.volume.get(), p.open_price.get()),
        (dec!(0.2), dec!(1.15000))
    );
    assert_eq!(fill(Side::Sell, "0.05", "1.16000").1, Some(first));
    assert_eq!(sim.positions(ACC)[0].volume.get(), dec!(0.15));
    let (reversing, id) = fill(Side::Sell, "0.25", "1.17000");
    assert_eq!(id, Some(first));
    let p = &sim.positions(ACC)[0];
    assert_eq!(
        (p.ticket, p.identifier, p.side),
        (reversing, first, Side::Sell)
    );
    assert_eq!(
        (p.volume.get(), p.open_price.get()),
        (dec!(0.1), dec!(1.17000))
    );
    assert_eq!(fill(Side::Buy, "0.1", "1.16000").1, Some(first));
    assert!(sim.positions(ACC).is_empty(), "closed");
    let entries: Vec<_> = sim.deals(ACC).iter().map(|d| (d.entry, d.side)).collect();
    assert_eq!(
        entries,
        [
            (DealEntry::In, Side::Buy),
            (DealEntry::In, Side::Buy),
            (DealEntry::Out, Side::Sell),
            (DealEntry::InOut, Side::Sell),
            (DealEntry::Out, Side::Buy),
        ]
    );
    assert_eq!(
        sim.deals(ACC)[3].profit,
        dec!(300.00),
        "0.15 lots gained 200 points"
    );
    let s = sim.snapshot(ACC).await.expect("snapshot");
    assert_eq!(s.margin_mode, Some(MarginMode::Netting));
}

#[tokio::test(start_paused = true)]
async fn a_reopened_position_keeps_its_identifier_under_a_new_ticket() {
    let sim = sim();
    sim.open_position(ACC, position(11, Side::Buy), DealReason::Expert);
    let new = sim.reopen(ACC, 11).expect("reopened");
    assert_ne!(new, 11);
    let p = &sim.positions(ACC)[0];
    assert_eq!((p.ticket, p.identifier), (new, 11));
    assert_eq!(sim.reopen(ACC, 11), None, "the old ticket is gone");
    assert!(sim.close_by(ACC, new, DealReason::StopLoss));
    let Ok(DealLookup::Found(deals)) = sim.position_deals(ACC, 11).await else {
        panic!("found");
    };
    assert_eq!(deals.len(), 2, "the deals follow the identifier");
}

#[tokio::test(start_paused = true)]
async fn cancelling_removes_the_order_and_a_second_cancel_is_no_error() {
    let sim = sim();
    let t = sim
        .place_order(ACC, order(0, Side::Sell, "0.1", Some("1.2")))
        .expect("placed");
    sim.cancel_order(ACC, t).await.expect("cancelled");
    assert!(sim.orders(ACC).is_empty());
    sim.cancel_order(ACC, t).await.expect("already gone");
    assert_eq!(sim.cancel_calls(ACC), 2);
    assert!(sim.deals(ACC).is_empty(), "a cancel is no deal");
    let t = sim
        .place_order(ACC, order(0, Side::Sell, "0.1", Some("1.2")))
        .expect("placed");
    assert!(sim.drop_order(ACC, t), "the broker may drop it (expiry)");
    assert!(!sim.drop_order(ACC, t));
    let e = sim.cancel_order("nobody", t).await.expect_err("unknown");
    assert_eq!(e.class(), ErrorClass::Permanent);
    let e = sim.position_deals("nobody", 1).await.expect_err("unknown");
    assert_eq!(e.class(), ErrorClass::Permanent);
}

#[rstest]
#[case::lookup(DealReport::Lookup, 0, Some(2))]
#[case::snapshot(DealReport::Snapshot, 2, Some(2))]
#[case::lagging(DealReport::Lagging, 0, Some(0))]
#[case::unsupported(DealReport::Unsupported, 0, None)]
#[tokio::test(start_paused = true)]
async fn the_history_is_reported_as_configured(
    #[case] report: DealReport,
    #[case] in_snapshot: usize,
    #[case] found: Option<usize>,
) {
    let sim = sim();
    assert!(sim.set_deal_report(ACC, report));
    sim.open_position(ACC, position(11, Side::Buy), DealReason::Expert);
    sim.close_by(ACC, 11, DealReason::StopOut);
    let s = sim.snapshot(ACC).await.expect("snapshot");
    assert_eq!(s.deals.len(), in_snapshot);
    let found_now = match sim.position_deals(ACC, 11).await.expect("lookup") {
        DealLookup::Found(d) => Some(d.len()),
        DealLookup::Unsupported => None,
    };
    assert_eq!(found_now, found);
    assert_eq!(
        sim.deals(ACC).len(),
        2,
        "the deals exist whatever is reported"
    );
}

#[tokio::test(start_paused = true)]
async fn deals_older_than_the_window_are_pruned() {
    let sim = SimBroker::new(&SimConfig {
        accounts: 0,
        deal_history_secs: 3_600,
        ..SimConfig::default()
    })
    .with_clock(Clock::following_tokio(start()));
    sim.add_account(ACC, Vec::new(), Vec::new());
    sim.open_position(ACC, position(11, Side::Buy), DealReason::Expert);
    tokio::time::advance(std::time::Duration::from_secs(1_800)).await;
    sim.close_by(ACC, 11, DealReason::TakeProfit);
    assert_eq!(sim.deals(ACC).len(), 2);
    tokio::time::advance(std::time::Duration::from_secs(1_801)).await;
    let left = summary(&sim.deals(ACC));
    assert_eq!(
        left,
        [(
            11,
            DealEntry::Out,
            DealReason::TakeProfit,
            Side::Sell,
            "0.3".into()
        )]
    );
    tokio::time::advance(std::time::Duration::from_secs(1_800)).await;
    assert!(sim.deals(ACC).is_empty());
}

#[test]
fn a_history_keeps_at_most_its_cap() {
    let mut h = History::default();
    let window = chrono::TimeDelta::days(1);
    let p = position(11, Side::Buy);
    for _ in 0..MAX_DEALS_PER_ACCOUNT + 5 {
        h.record(
            super::history::opening(&p, p.volume, p.open_price, DealReason::Expert, start()),
            window,
        );
    }
    let all = h.all();
    assert_eq!(all.len(), MAX_DEALS_PER_ACCOUNT);
    assert_eq!(
        all[0].ticket,
        FIRST_DEAL_TICKET + 5,
        "the oldest went first"
    );
}

/// The same script on two brokers gives the same history.
async fn script(sim: &SimBroker) -> Vec<Deal> {
    sim.open_position(ACC, position(11, Side::Buy), DealReason::Expert);
    let t = sim
        .place_order(ACC, order(0, Side::Sell, "0.1", Some("1.2")))
        .expect("placed");
    sim.fill_order(ACC, t, None);
    sim.close_partially(ACC, 11, Volume::new(dec!(0.1)), DealReason::Mobile);
    sim.close_position(ACC, t).await.expect("closed");
    sim.close_by(ACC, 11, DealReason::StopOut);
    sim.deals(ACC)
}

#[tokio::test(start_paused = true)]
async fn the_same_script_gives_the_same_history() {
    // Each broker's clock starts at the same instant when it is made.
    let da = script(&sim()).await;
    let db = script(&sim()).await;
    assert_eq!(da.len(), 5);
    assert_eq!(da, db);
}

#[tokio::test(start_paused = true)]
async fn generated_accounts_report_their_margin_mode_and_no_orders() {
    let sim = SimBroker::new(&SimConfig {
        margin_mode: MarginMode::Exchange,
        margin_modes: [("sim-002".to_owned(), MarginMode::Netting)].into(),
        ..SimConfig::default()
    });
    let s = sim.snapshot("sim-001").await.expect("snapshot");
    assert_eq!(s.margin_mode, Some(MarginMode::Exchange));
    let s2 = sim.snapshot("sim-002").await.expect("snapshot");
    assert_eq!(s2.margin_mode, Some(MarginMode::Netting));
    assert_eq!(s.orders, Some(Vec::new()));
    assert!(s.deals.is_empty() && sim.deals("sim-001").is_empty());
}
