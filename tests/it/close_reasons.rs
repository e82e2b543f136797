//! Close reasons: through the real tree, a position the bot holds that its stop loss
//! closed at the broker is `closed_at_broker` (reason, price, profit), a half close is
//! `partially_closed`, and a position gone without a deal in the history is held while
//! its deals are looked up, then `missing_at_broker`. The broker is the simulator behind a
//! test broker that answers per-position deal lookups from a table the test sets. Also:
//! the close detail round-trips through the store, on SQLite and PostgreSQL.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use mt5_reconciler::broker::sim::SimBroker;
use mt5_reconciler::broker::{BoxFuture, Broker, BrokerError, Connector};
use mt5_reconciler::domain::{
    AccountSnapshot, BrokerPosition, CloseDetail, Deal, DealEntry, DealLookup, DealReason,
    Divergence, DivergenceKind, LiveRules, Price, ReconcileRules, SymbolTable, Unit, Value, Volume,
};
use mt5_reconciler::http::views::DivergenceView;
use mt5_reconciler::service::Reconciler;
use mt5_reconciler::store::{self, DivergenceDiff, Wanted, entities};
use rust_decimal::{Decimal, dec};
use sea_orm::ActiveValue::Set;
use sea_orm::{DatabaseConnection, EntityTrait, TransactionTrait};

use crate::common;
use crate::tree::{Key, acc, all_rows, flush, mirror, open_keys, sim, tree_config, wait_for};

/// The simulator, with per-position deal lookups answered from a table.
struct DealsBroker {
    sim: Arc<SimBroker>,
    /// Position identifier → its history (absent: an empty one, a history that lags).
    deals: Mutex<HashMap<u64, Vec<Deal>>>,
    /// Position identifier → lookups asked.
    asked: Mutex<HashMap<u64, u32>>,
}

impl DealsBroker {
    fn new(sim: Arc<SimBroker>) -> Arc<Self> {
        Arc::new(Self {
            sim,
            deals: Mutex::default(),
            asked: Mutex::default(),
        })
    }

    fn set_deals(&self, position: u64, deals: Vec<Deal>) {
        self.deals.lock().unwrap().insert(position, deals);
    }

    fn asked(&self, position: u64) -> u32 {
        self.asked
            .lock()
            .unwrap()
            .get(&position)
            .copied()
            .unwrap_or(0)
    }
}

impl Broker for DealsBroker {
    fn snapshot<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<AccountSnapshot, BrokerError>> {
        Box::pin(async move {
            let mut snapshot = self.sim.snapshot(account).await?;
            // Only the lookups answer here.
            snapshot.deals.clear();
            Ok(snapshot)
        })
    }

    fn close_position<'a>(
        &'a self,
        account: &'a str,
        ticket: u64,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        self.sim.close_position(account, ticket)
    }

    fn symbols(&self, account: &str) -> Option<SymbolTable> {
        self.sim.symbols(account)
    }

    fn quotes_available(&self) -> bool {
        self.sim.quotes_available()
    }

    fn position_deals<'a>(
        &'a self,
        _account: &'a str,
        position_id: u64,
    ) -> BoxFuture<'a, Result<DealLookup, BrokerError>> {
        *self.asked.lock().unwrap().entry(position_id).or_default() += 1;
        let deals = self.deals.lock().unwrap().get(&position_id).cloned();
        Box::pin(async move { Ok(DealLookup::Found(deals.unwrap_or_default())) })
    }
}

/// The tree of `tree::start`, with the simulator's positions behind `broker`.
async fn start(
    db: &DatabaseConnection,
    sim: &Arc<SimBroker>,
    broker: Arc<DealsBroker>,
) -> Reconciler {
    let mut args = crate::tree::args(db, sim, tree_config());
    let trades = sim.clone();
    args.connectors = HashMap::from([("sim".to_owned(), Connector { broker, trades })]);
    // Three lookups, one more than a missing trade's confirmation, so that the wait for a
    // lagging history shows on its own.
    args.rules = Arc::new(ReconcileRules {
        live: LiveRules {
            close_lookup_syncs: 3,
            ..LiveRules::default()
        },
        ..ReconcileRules::default()
    });
    Reconciler::start(args).await.expect("tree starts")
}

/// A deal of `position`, `n` seconds after the epoch of the test.
fn deal(
    position: &BrokerPosition,
    n: u64,
    entry: DealEntry,
    reason: DealReason,
    volume: Decimal,
    price: Decimal,
    profit: Decimal,
) -> Deal {
    Deal {
        ticket: position.identifier * 10 + n,
        position_id: position.identifier,
        symbol: position.symbol.clone(),
        side: position.side,
        entry,
        reason,
        volume: Volume::new(volume),
        price: Price::new(price),
        profit,
        time: at(n),
    }
}

fn at(secs: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000 + secs as i64, 0).expect("a time")
}

fn key(kind: DivergenceKind, trade: &str, ticket: u64) -> Key {
    (kind.to_string(), Some(trade.to_owned()), Some(ticket))
}

#[tokio::test]
async fn closes_at_the_broker_are_explained_by_their_deals_and_unexplained_ones_end_missing() {
    for (label, db) in common::databases().await {
        let sim = sim(1, 4, false, 11);
        let id = sim.account_ids()[0].clone();
        // a (no ticket: only the match remembers its position), b and c, one lot each.
        let mut trades = sim.trades(&id);
        for (i, t) in trades.iter_mut().enumerate().take(3) {
            t.ticket = (i > 0).then_some(8_000_000 + i as u64);
            t.volume = Volume::new(Decimal::ONE);
        }
        sim.set_trades(&id, trades.clone());
        let positions = mirror(&sim, &id);
        sim.set_positions(&id, positions.clone());
        let broker = DealsBroker::new(sim.clone());
        tokio::time::pause();
        let tree = start(&db, &sim, broker.clone()).await;
        wait_for(&tree, "two syncs", |s| acc(s, &id).syncs_ok >= 2).await;
        flush(&tree).await;
        assert!(
            open_keys(&db, &id).await.is_empty(),
            "{label}: a clean start"
        );

        // a: its stop loss hit; b: half closed by hand on a phone; c: gone, and the
        // history does not show its closing deal.
        let (a, b, c) = (&positions[0], &positions[1], &positions[2]);
        let a_open = a.open_price.get();
        let sl = a_open - dec!(0.0050);
        broker.set_deals(
            a.identifier,
            vec![
                deal(
                    a,
                    1,
                    DealEntry::In,
                    DealReason::Expert,
                    dec!(1),
                    a_open,
                    dec!(0),
                ),
                deal(
                    a,
                    2,
                    DealEntry::Out,
                    DealReason::StopLoss,
                    dec!(1),
                    sl,
                    dec!(-42.50),
                ),
            ],
        );
        let b_open = b.open_price.get();
        broker.set_deals(
            b.identifier,
            vec![
                deal(
                    b,
                    1,
                    DealEntry::In,
                    DealReason::Expert,
                    dec!(1),
                    b_open,
                    dec!(0),
                ),
                deal(
                    b,
                    3,
                    DealEntry::Out,
                    DealReason::Mobile,
                    dec!(0.5),
                    b_open,
                    dec!(1.25),
                ),
            ],
        );
        let half = BrokerPosition {
            volume: Volume::new(dec!(0.5)),
            ..b.clone()
        };
        sim.set_positions(&id, vec![half, positions[3].clone()]);

        let done = acc(&tree.status().await.unwrap(), &id).syncs_ok;
        let s = wait_for(&tree, "a sync", |s| acc(s, &id).syncs_ok > done).await;
        assert_eq!(
            (acc(&s, &id).open_divergences, acc(&s, &id).held_divergences),
            (0, 3),
            "{label}: a explained, to be confirmed; b in its grace window; c looked up"
        );
        let s = wait_for(&tree, "a second sync", |s| acc(s, &id).syncs_ok > done + 1).await;
        assert_eq!(
            (acc(&s, &id).open_divergences, acc(&s, &id).held_divergences),
            (2, 1),
            "{label}: a confirmed; b raised; c, missing on two syncs, still held on its second lookup"
        );
        wait_for(&tree, "c's lookups to run out", |s| {
            acc(s, &id).syncs_ok >= done + 3
        })
        .await;
        flush(&tree).await;
        let want = BTreeSet::from([
            key(DivergenceKind::ClosedAtBroker, &trades[0].id, a.ticket),
            key(DivergenceKind::PartiallyClosed, &trades[1].id, b.ticket),
            key(DivergenceKind::MissingAtBroker, &trades[2].id, c.ticket),
        ]);
        assert_eq!(open_keys(&db, &id).await, want, "{label}");

        // Two more syncs: nothing new, no more lookups.
        wait_for(&tree, "two more syncs", |s| {
            acc(s, &id).syncs_ok >= done + 5
        })
        .await;
        flush(&tree).await;
        let rows = all_rows(&db, &id).await;
        let ever: BTreeSet<Key> = rows
            .iter()
            .map(|r| {
                let d = &r.divergence;
                (d.kind.to_string(), d.trade_id.clone(), d.ticket)
            })
            .collect();
        assert_eq!(
            (ever, rows.len()),
            (want, 3),
            "{label}: nothing else was ever opened"
        );
        let asked = [a, b, c].map(|p| broker.asked(p.identifier));
        assert_eq!(
            asked,
            [1, 1, 3],
            "{label}: explained once, c given up after 3"
        );

        let view = |kind: DivergenceKind| {
            let row = rows.iter().find(|r| r.divergence.kind == kind).unwrap();
            serde_json::to_value(DivergenceView::from(row)).unwrap()
        };
        let closed = view(DivergenceKind::ClosedAtBroker);
        assert_eq!(closed["close"]["reason"], "stop_loss", "{label}: {closed}");
        assert_eq!(closed["close"]["manual"], false);
        assert_eq!(closed["close"]["price"], sl.to_string());
        assert_eq!(closed["close"]["profit"], "-42.50");
        assert_eq!(closed["close"]["volume"], "1");
        let partial = view(DivergenceKind::PartiallyClosed);
        assert_eq!(partial["close"]["reason"], "mobile", "{label}: {partial}");
        assert_eq!(partial["close"]["manual"], true);
        assert_eq!(
            (&partial["delta"], &partial["unit"]),
            (&"0.5".into(), &"lots".into())
        );
        assert!(view(DivergenceKind::MissingAtBroker)["close"].is_null());
        tree.abort().await;
        tokio::time::resume();
    }
}

fn detail(reason: DealReason, price: &str, profit: &str, volume: &str) -> CloseDetail {
    CloseDetail {
        reason,
        price: Price::new(price.parse().unwrap()),
        profit: profit.parse().unwrap(),
        volume: Volume::new(volume.parse().unwrap()),
        time: at(7),
    }
}

fn divergences() -> Vec<Divergence> {
    let n = |text: &str| Some(Value::Number(text.parse().unwrap()));
    vec![
        Divergence::new(
            DivergenceKind::ClosedAtBroker,
            "EURUSD".into(),
            Some(u64::MAX),
            Some("t1".into()),
            n("1.00"),
            None,
            None,
        )
        .with_close(detail(DealReason::StopLoss, "1.08500", "-123.40", "1.00")),
        Divergence::new(
            DivergenceKind::PartiallyClosed,
            "XAUUSD".into(),
            Some(42),
            Some("t2".into()),
            n("1"),
            n("0.25"),
            Some((dec!(0.75), Unit::Lots)),
        )
        .with_close(detail(DealReason::Web, "2420.071", "0.00", "0.75")),
        Divergence::new(
            DivergenceKind::MissingAtBroker,
            "EURUSD".into(),
            None,
            Some("t3".into()),
            n("0.1"),
            None,
            None,
        ),
    ]
}

#[tokio::test]
async fn close_details_round_trip_exactly_and_a_bad_one_is_named() {
    for (label, db) in common::databases().await {
        let opened = divergences();
        let diff = DivergenceDiff {
            account_id: "acc-1".into(),
            at: at(9),
            opened: opened.clone(),
            resolved: Vec::new(),
        };
        store::apply_diff(&db, &diff).await.unwrap();
        let txn = db.begin().await.unwrap();
        let wanted = [Wanted {
            account_id: "acc-2",
            at: at(9),
            desired: &opened,
            held: &[],
        }];
        store::converge_many(&txn, &wanted).await.unwrap();
        txn.commit().await.unwrap();
        for account in ["acc-1", "acc-2"] {
            let back: Vec<Divergence> = store::open_divergences(&db, account)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.divergence)
                .collect();
            assert_eq!(back.len(), opened.len(), "{label}: {account}");
            for d in &opened {
                let stored = back.iter().find(|b| b.fingerprint == d.fingerprint);
                assert_eq!(stored, Some(d), "{label}: {account}");
            }
            let closed = back
                .iter()
                .find(|d| d.kind == DivergenceKind::ClosedAtBroker);
            let close = closed
                .and_then(|d| d.close.as_ref())
                .expect("a close detail");
            let texts = [close.price.to_string(), close.profit.to_string()];
            assert_eq!(texts, ["1.08500", "-123.40"], "{label}: scales kept");
        }

        // Half a close detail, or an unknown reason, is bad data named by its column.
        let rows = store::open_divergences(&db, "acc-1").await.unwrap();
        let first = rows.iter().find(|r| r.divergence.close.is_some()).unwrap();
        for (reason, price, want) in [
            (Some("sl"), Some("1.085"), "divergences.close_reason"),
            (Some("stop_loss"), None, "set without close_price"),
        ] {
            entities::divergence::Entity::update(entities::divergence::ActiveModel {
                id: Set(first.id),
                close_reason: Set(reason.map(str::to_owned)),
                close_price: Set(price.map(str::to_owned)),
                ..Default::default()
            })
            .exec(&db)
            .await
            .unwrap();
            let err = store::open_divergences(&db, "acc-1").await.unwrap_err();
            assert!(err.to_string().contains(want), "{label}: {err}");
        }
    }
}
