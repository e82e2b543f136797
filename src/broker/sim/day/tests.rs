//! The day's own bookkeeping: determinism, latencies, planted faults as the snapshot
//! shows them, deals that add up, and what a raised divergence is by the truth.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rstest::rstest;
use rust_decimal::Decimal;

use super::book::{Book, PIP};
use super::*;
use crate::domain::{
    DealEntry, DealReason, Divergence, DivergenceKind, ReconcileRules, Side, reconcile,
};

/// Six hedging accounts with a fault every 20 s and busy brokers.
fn busy() -> DayConfig {
    DayConfig {
        accounts: 6,
        netting_pct: 0,
        other_advisor_pct: 50,
        fault_every_secs: 20,
        ticket_change_every_secs: 120,
        stop_out_every_secs: 300,
        ..DayConfig::default()
    }
}

fn book(c: &DayConfig, n: usize) -> Book {
    Book::new(Arc::new(c.clone()), n, format!("t-{n}"))
}

fn at(c: &DayConfig, ms: i64) -> DateTime<Utc> {
    c.start + TimeDelta::milliseconds(ms)
}

/// Everything the world shows, as text.
fn state(b: &Book) -> String {
    format!(
        "{:?}",
        (
            b.broker_positions(),
            b.bot_trades(),
            b.pending_orders(),
            &b.deals,
            &b.planted,
            b.balance,
            &b.stats,
        )
    )
}

/// `c`'s accounts, each brought to `minutes` after the start in one call.
fn run(c: &DayConfig, minutes: i64) -> Vec<Book> {
    (1..=c.accounts)
        .map(|n| {
            let mut b = book(c, n);
            b.advance_to(at(c, minutes * 60_000));
            b
        })
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_day_however_often_it_is_asked() {
    let c = busy();
    let mut once = book(&c, 3);
    once.advance_to(at(&c, 20 * 60_000));
    // Asked at uneven times, some twice, some going back: the same world at the end.
    let mut often = book(&c, 3);
    let mut t = 0;
    while t < 20 * 60_000 {
        t += 1 + (t * 7919) % 2_777;
        often.advance_to(at(&c, t.min(20 * 60_000)));
        often.advance_to(at(&c, t / 2));
    }
    often.advance_to(at(&c, 20 * 60_000));
    assert_eq!(state(&once), state(&often));
    assert!(
        once.stats.fills > 10 && !once.planted.is_empty(),
        "{:?}",
        once.stats
    );
    let other_seed = DayConfig {
        seed: 2,
        ..c.clone()
    };
    let mut other = book(&other_seed, 3);
    other.advance_to(at(&c, 20 * 60_000));
    assert_ne!(state(&once), state(&other));
}

#[test]
fn fills_arrive_after_their_latency_and_not_before() {
    let c = busy();
    let books = run(&c, 30);
    let mut checked = 0;
    for (n, b) in books.iter().enumerate() {
        let trades: BTreeMap<u64, _> = b
            .bot_trades()
            .into_iter()
            .map(|t| (t.ticket.unwrap(), t))
            .collect();
        for p in b.broker_positions() {
            let Some(t) = trades.get(&p.identifier) else {
                continue;
            };
            let opened = t.opened_at.unwrap();
            if opened < c.start || b.order_trades.contains_key(&t.id) {
                continue;
            }
            let latency = p.open_time - opened;
            assert!(
                (50..=800).contains(&latency.num_milliseconds()),
                "trade {} filled {latency} after its record",
                t.id
            );
            // The same day asked just before the fill: the trade without its position.
            let mut again = book(&c, n + 1);
            again.advance_to(p.open_time - TimeDelta::milliseconds(1));
            assert!(again.trade_of(&t.id).is_some());
            assert!(again.position_of(p.identifier).is_none());
            again.advance_to(p.open_time);
            assert!(again.position_of(p.identifier).is_some());
            checked += 1;
            if checked >= 5 {
                return;
            }
        }
    }
    panic!("only {checked} fills checked");
}

#[test]
fn the_bot_learns_of_a_stop_one_to_three_seconds_later() {
    let c = busy();
    let mut checked = 0;
    for (n, b) in run(&c, 30).iter().enumerate() {
        let stops = b
            .deals
            .iter()
            .map(|(_, d)| d)
            .filter(|d| matches!(d.reason, DealReason::StopLoss | DealReason::TakeProfit));
        for d in stops {
            let mut again = book(&c, n + 1);
            again.advance_to(d.time - TimeDelta::milliseconds(1));
            let Some(id) = again.positions[again.position_of(d.position_id).unwrap()]
                .client_id
                .clone()
            else {
                continue;
            };
            if again.trade_of(&id).is_none() {
                continue; // the bot had closed it itself, on its way to the broker
            }
            again.advance_to(d.time + TimeDelta::milliseconds(999));
            assert!(again.position_of(d.position_id).is_none());
            assert!(
                again.trade_of(&id).is_some(),
                "{id}: the bot cannot know yet"
            );
            again.advance_to(d.time + TimeDelta::milliseconds(3_000));
            assert!(again.trade_of(&id).is_none(), "{id}: the bot has caught up");
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} stops checked");
}

/// Whether the world shows `p` as described.
fn shows(b: &Book, p: &Planted) -> Result<(), String> {
    let trade = p
        .trade_id
        .as_ref()
        .and_then(|id| b.trade_of(id))
        .map(|i| &b.trades[i]);
    let ticket = p.ticket.ok_or("no ticket")?;
    let position = b.positions.iter().find(|x| x.ticket == ticket);
    let deals: Vec<_> = b
        .deals
        .iter()
        .map(|(_, d)| d)
        .filter(|d| position.map_or(ticket, |x| x.identifier) == d.position_id)
        .collect();
    let pips = |a: i64, z: i64| (a - z) / PIP;
    let ok = match (p.fault, trade, position) {
        (PlantedFault::EntrySlippage, Some(t), Some(x)) => {
            let worse = match t.side {
                Side::Buy => pips(x.open, t.entry),
                Side::Sell => pips(t.entry, x.open),
            };
            (6..=15).contains(&worse)
        }
        (PlantedFault::WrongVolume, Some(t), Some(x)) => {
            x.lots * 100 >= t.lots * 50 - 100 && x.lots * 100 <= t.lots * 80
        }
        (PlantedFault::NeverFilled, Some(t), None) => !t.filled && deals.is_empty(),
        (PlantedFault::SlMoved, Some(t), Some(x)) => {
            let moved = pips(t.sl.unwrap(), x.sl.unwrap()).abs();
            (12..=40).contains(&moved)
        }
        (PlantedFault::ClosedByHand(r), Some(t), None) => {
            let last = deals.last().ok_or("no deal")?;
            r.is_manual() && t.filled && last.entry == DealEntry::Out && last.reason == r
        }
        (PlantedFault::ManualOpen(r), None, Some(x)) => {
            x.magic == BOT_MAGIC
                && x.client_id.is_none()
                && !b.trades.iter().any(|t| t.ticket == x.identifier)
                && deals.len() == 1
                && deals[0].reason == r
        }
        (PlantedFault::PartialClose(r), Some(t), Some(x)) => {
            let out = deals
                .iter()
                .find(|d| d.entry == DealEntry::Out)
                .ok_or("no out")?;
            let closed = t.lots - x.lots;
            out.reason == r
                && Decimal::new(closed, 2) == out.volume.get()
                && closed * 100 > t.lots * 30 - 100
                && closed * 100 <= t.lots * 70
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{p:?} not shown: trade {trade:?}, position {position:?}, deals {deals:?}"
        ))
    }
}

#[rstest]
#[case::entry_slippage(PlantedFault::EntrySlippage)]
#[case::wrong_volume(PlantedFault::WrongVolume)]
#[case::never_filled(PlantedFault::NeverFilled)]
#[case::sl_moved(PlantedFault::SlMoved)]
#[case::closed_by_hand(PlantedFault::ClosedByHand(DealReason::Client))]
#[case::manual_open(PlantedFault::ManualOpen(DealReason::Client))]
#[case::partial_close(PlantedFault::PartialClose(DealReason::Client))]
fn a_planted_fault_shows_as_described_until_the_end(#[case] fault: PlantedFault) {
    let c = busy();
    let same = |p: &Planted| std::mem::discriminant(&p.fault) == std::mem::discriminant(&fault);
    let mut seen = 0;
    for b in run(&c, 30) {
        for p in b.planted.iter().filter(|p| same(p)) {
            assert_eq!(p.kind, fault.kind());
            shows(&b, p).unwrap();
            // Reconciled now, the subject carries the kind the fault must produce, or the
            // one a reconciliation without deal lookups reports instead.
            let r = reconcile(
                &b.bot_trades(),
                &b.broker_positions(),
                &ReconcileRules::default(),
            )
            .unwrap();
            let today = match p.kind {
                DivergenceKind::ClosedAtBroker => DivergenceKind::MissingAtBroker,
                DivergenceKind::PartiallyClosed => DivergenceKind::VolumeMismatch,
                k => k,
            };
            assert!(
                r.divergences
                    .iter()
                    .any(|d| d.kind == today && p.concerns(d)),
                "{p:?} not in {:?}",
                r.divergences
            );
            seen += 1;
        }
    }
    assert!(seen > 0, "no {fault:?} planted");
}

#[test]
fn deals_add_up_to_the_positions_and_the_balance() {
    let mut c = busy();
    c.netting_pct = 50;
    let mut reasons = BTreeSet::new();
    for b in run(&c, 30) {
        let mut net: BTreeMap<u64, Decimal> = BTreeMap::new();
        let mut profit = Decimal::ZERO;
        for (_, d) in &b.deals {
            let v = net.entry(d.position_id).or_default();
            if d.entry.closes() {
                *v -= d.volume.get();
            } else {
                *v += d.volume.get();
            }
            profit += d.profit;
            reasons.insert(d.reason.as_str());
        }
        for p in b.broker_positions() {
            assert_eq!(net.remove(&p.identifier), Some(p.volume.get()), "{p:?}");
        }
        assert!(
            net.values().all(|v| v.is_zero()),
            "closed positions net to zero: {net:?}"
        );
        assert_eq!(b.balance, Decimal::from(10_000) + profit);
    }
    for r in ["expert", "stop_loss", "take_profit", "stop_out"] {
        assert!(reasons.contains(r), "no {r} deal in {reasons:?}");
    }
}

#[test]
fn the_snapshot_shows_orders_netting_tickets_and_a_window_of_deals() {
    let c = DayConfig {
        netting_pct: 50,
        fault_every_secs: 300,
        ..busy()
    };
    let (mut orders, mut netting, mut changed, mut others) = (0, 0, 0, 0);
    for n in 1..=c.accounts {
        let mut b = book(&c, n);
        // Sampled every 30 s over half an hour.
        for k in 1..=60 {
            let now = at(&c, k * 30_000);
            b.advance_to(now);
            let s = b.snapshot(now);
            assert_eq!(s.taken_at, now);
            assert_eq!(s.margin_mode, Some(b.mode));
            assert_eq!(s.quotes.len(), b.symbols.len());
            let window = now - TimeDelta::seconds(600);
            assert!(s.deals.iter().all(|d| d.time >= window && d.time <= now));
            let recent = b
                .deals
                .iter()
                .filter(|(v, d)| *v <= b.now && d.time >= window);
            assert_eq!(s.deals.len(), recent.count());
            orders += s.orders.as_ref().map_or(0, Vec::len);
            changed += s
                .positions
                .iter()
                .filter(|p| p.ticket != p.identifier)
                .count();
            others += s
                .positions
                .iter()
                .filter(|p| p.magic == OTHER_MAGIC)
                .count();
            if b.mode.is_netting() {
                netting += 1;
                let symbols: BTreeSet<&str> =
                    s.positions.iter().map(|p| p.symbol.as_str()).collect();
                assert_eq!(symbols.len(), s.positions.len(), "one position per symbol");
            }
            // A filled order's position carries the order's ticket as its identifier.
            for p in &s.positions {
                if let Some(id) = &p.client_id
                    && b.order_trades.contains_key(id)
                {
                    let t = b.trades.iter().find(|t| &t.id == id);
                    assert!(t.is_none_or(|t| t.ticket == p.identifier), "{p:?}");
                }
            }
        }
    }
    assert!(
        orders > 0 && netting > 0 && changed > 0 && others > 0,
        "orders {orders}, netting {netting}, changed tickets {changed}, other advisor {others}"
    );
    let stats = run(&c, 30).iter().fold(DayStats::default(), |mut s, b| {
        s += b.stats.clone();
        s
    });
    assert!(
        stats.orders_filled > 0 && stats.orders_cancelled > 0,
        "{stats:?}"
    );
}

fn divergence(kind: DivergenceKind, trade: Option<&str>, ticket: Option<u64>) -> Divergence {
    Divergence::new(
        kind,
        "EURUSD".into(),
        ticket,
        trade.map(str::to_owned),
        None,
        None,
        None,
    )
}

#[test]
fn a_raised_divergence_is_judged_by_the_truth() {
    use DivergenceKind::*;
    let c = DayConfig {
        accounts: 12,
        ..busy()
    };
    let books = run(&c, 30);
    let planted = |b: &Book, k: DivergenceKind| b.planted.iter().any(|p| p.kind == k);
    let b = books
        .iter()
        .find(|b| {
            !b.other_tickets.is_empty()
                && !b.order_trades.is_empty()
                && planted(b, ClosedAtBroker)
                && planted(b, UnexpectedAtBroker)
        })
        .unwrap();
    let hand = b.planted.iter().find(|p| p.kind == ClosedAtBroker).unwrap();
    let manual = b
        .planted
        .iter()
        .find(|p| p.kind == UnexpectedAtBroker)
        .unwrap();
    let other = *b.other_tickets.first().unwrap();
    // An order that waited, then filled or was cancelled.
    let (order, &(placed, gone)) = b
        .order_trades
        .iter()
        .find(|(id, (_, gone))| {
            *gone < i64::MAX && !b.planted.iter().any(|p| p.trade_id.as_ref() == Some(*id))
        })
        .unwrap();
    let end = at(&c, 30 * 60_000);
    let just_before = |p: &Planted| p.at - TimeDelta::milliseconds(1);
    let cases = [
        (
            divergence(ClosedAtBroker, hand.trade_id.as_deref(), hand.ticket),
            end,
            Finding::Real(hand.clone()),
        ),
        (
            divergence(MissingAtBroker, hand.trade_id.as_deref(), hand.ticket),
            end,
            Finding::OtherKind(hand.clone()),
        ),
        (
            divergence(MissingAtBroker, hand.trade_id.as_deref(), hand.ticket),
            just_before(hand),
            Finding::False,
        ),
        (
            divergence(UnexpectedAtBroker, None, manual.ticket),
            end,
            Finding::Real(manual.clone()),
        ),
        (
            divergence(UnexpectedAtBroker, None, Some(other)),
            end,
            Finding::Context(Context::OtherAdvisor),
        ),
        (
            divergence(MissingAtBroker, Some(order), None),
            at(&c, placed),
            Finding::Context(Context::PendingOrder),
        ),
        (
            divergence(MissingAtBroker, Some(order), None),
            at(&c, gone + 1),
            Finding::False,
        ),
        (
            divergence(SlMismatch, Some("bot-999999"), Some(1)),
            end,
            Finding::False,
        ),
    ];
    for (d, raised_at, want) in cases {
        assert_eq!(b.classify(&d, raised_at), want, "{d:?}");
    }
    let mut c = busy();
    c.netting_pct = 100;
    let n = book(&c, 1);
    assert_eq!(
        n.classify(&divergence(VolumeMismatch, Some("bot-000001"), None), end),
        Finding::Context(Context::Netting)
    );
}

#[tokio::test(start_paused = true)]
async fn the_day_is_a_broker_and_a_trade_source_on_its_clock() {
    let c = DayConfig {
        accounts: 2,
        ..busy()
    };
    let day = TradingDay::new(&c, Clock::following_tokio(c.start));
    assert_eq!(day.account_ids(), ["day-0001", "day-0002"]);
    tokio::time::advance(Duration::from_secs(600)).await;
    let s = day.snapshot("day-0001").await.unwrap();
    assert_eq!(s.taken_at, c.start + TimeDelta::seconds(600));
    let trades = day.open_trades("day-0001").await.unwrap();
    assert_eq!(trades, day.trades("day-0001"));
    assert!(trades.iter().all(|t| t.account == "day-0001"));
    let p = s.positions.iter().find(|p| p.magic == BOT_MAGIC).unwrap();
    let DealLookup::Found(deals) = day.position_deals("day-0001", p.identifier).await.unwrap()
    else {
        panic!("deals by position are supported");
    };
    assert!(deals.iter().any(|d| d.entry == DealEntry::In));
    day.close_position("day-0001", p.ticket).await.unwrap();
    assert!(
        day.positions("day-0001")
            .iter()
            .all(|x| x.ticket != p.ticket)
    );
    assert!(day.close_position("day-0001", p.ticket).await.is_err());
    day.cancel_order("day-0001", 1).await.unwrap();
    let err = day.snapshot("nobody").await.unwrap_err();
    assert!(err.to_string().contains("\"nobody\""), "{err}");
    assert_eq!(day.stats().service_closes, 1);
}
