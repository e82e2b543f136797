//! The bot's scope, netting accounts and pending orders through the real tree, on the
//! simulated broker decorated with what it does not show by itself (pending orders, which
//! `cancel_order` removes, and a margin mode): external positions are listed and counted,
//! raised only on the account that asks; a netting symbol is compared as one position; a
//! trade waiting on its order is pending until its order fills or goes; a breach closes
//! and cancels what the guards' close scope says. Paused tokio time.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use mt5_reconciler::actors::TreeConfig;
use mt5_reconciler::broker::sim::SimBroker;
use mt5_reconciler::broker::{BoxFuture, Broker, BrokerError, Connector};
use mt5_reconciler::clock::Clock;
use mt5_reconciler::domain::{
    AccountSnapshot, BotTrade, BrokerPosition, ExternalPolicy, MarginMode, PendingOrder, Price,
    ReconcileRules, Scope, Side, SymbolTable, Volume,
};
use mt5_reconciler::guards::GuardsConfig;
use mt5_reconciler::guards::config::CloseScope;
use mt5_reconciler::service::Reconciler;
use mt5_reconciler::store;
use rust_decimal::{Decimal, dec};
use sea_orm::DatabaseConnection;

use crate::common;
use crate::guards::{ACCOUNT, breach_alert, flat_sim, kinds, lose, settle, syncs, until};
use crate::tree::{Key, acc, all_rows, flush, mirror, open_keys, sim, tree_config, wait_for};

/// The simulator's bot magic number (its own positions carry it).
const BOT_MAGIC: i64 = 20_240_601;

/// The simulated broker, plus pending orders and a margin mode of the test's choosing.
struct Decorated {
    sim: Arc<SimBroker>,
    orders: Mutex<HashMap<String, Vec<PendingOrder>>>,
    margin_mode: MarginMode,
}

impl Decorated {
    fn new(sim: &Arc<SimBroker>, margin_mode: MarginMode) -> Arc<Self> {
        Arc::new(Self {
            sim: sim.clone(),
            orders: Mutex::default(),
            margin_mode,
        })
    }

    fn set_orders(&self, account: &str, orders: Vec<PendingOrder>) {
        let mut all = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        all.insert(account.to_owned(), orders);
    }

    fn orders(&self, account: &str) -> Vec<PendingOrder> {
        let all = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        all.get(account).cloned().unwrap_or_default()
    }

    fn tickets(&self, account: &str) -> Vec<u64> {
        self.orders(account).iter().map(|o| o.ticket).collect()
    }
}

impl Broker for Decorated {
    fn snapshot<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<AccountSnapshot, BrokerError>> {
        Box::pin(async move {
            let mut s = self.sim.snapshot(account).await?;
            s.orders = Some(self.orders(account));
            s.margin_mode = Some(self.margin_mode);
            Ok(s)
        })
    }

    fn close_position<'a>(
        &'a self,
        account: &'a str,
        ticket: u64,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        self.sim.close_position(account, ticket)
    }

    /// Removes the order; one already gone is fine.
    fn cancel_order<'a>(
        &'a self,
        account: &'a str,
        ticket: u64,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            let mut all = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(orders) = all.get_mut(account) {
                orders.retain(|o| o.ticket != ticket);
            }
            Ok(())
        })
    }

    fn symbols(&self, account: &str) -> Option<SymbolTable> {
        self.sim.symbols(account)
    }

    fn quotes_available(&self) -> bool {
        self.sim.quotes_available()
    }
}

fn order(ticket: u64, side: Side, volume: Decimal, price: Decimal, magic: i64) -> PendingOrder {
    PendingOrder {
        ticket,
        symbol: "EURUSD".into(),
        side,
        volume: Volume::new(volume),
        price: Some(Price::new(price)),
        magic,
        comment: String::new(),
        client_id: None,
        placed_at: DateTime::UNIX_EPOCH,
    }
}

/// A EURUSD buy of the bot on the sim's account `account`.
fn eurusd(
    account: &str,
    id: &str,
    ticket: Option<u64>,
    volume: Decimal,
    entry: Decimal,
) -> BotTrade {
    BotTrade {
        id: id.into(),
        account: account.into(),
        symbol: "EURUSD".into(),
        side: Side::Buy,
        volume: Volume::new(volume),
        entry_price: Price::new(entry),
        sl: None,
        tp: None,
        ticket,
        client_id: None,
        opened_at: None,
    }
}

/// A EURUSD buy position like `template`'s.
fn eurusd_position(
    template: &BrokerPosition,
    ticket: u64,
    volume: Decimal,
    open: Decimal,
    magic: i64,
) -> BrokerPosition {
    BrokerPosition {
        ticket,
        identifier: ticket,
        symbol: "EURUSD".into(),
        side: Side::Buy,
        volume: Volume::new(volume),
        open_price: Price::new(open),
        sl: None,
        tp: None,
        client_id: None,
        comment: if magic == BOT_MAGIC {
            "sim-bot"
        } else {
            "manual"
        }
        .into(),
        magic,
        ..template.clone()
    }
}

fn bot_scope() -> Scope {
    Scope {
        magics: [BOT_MAGIC].into(),
        ..Scope::default()
    }
}

/// The tree over `broker` (trades from `sim`) with these rules, on a clock that follows
/// tokio's.
async fn start(
    db: &DatabaseConnection,
    sim: &Arc<SimBroker>,
    broker: Arc<Decorated>,
    rules: ReconcileRules,
    config: TreeConfig,
    clock: Clock,
) -> Reconciler {
    let mut args = crate::tree::args(db, sim, config);
    let trades = sim.clone();
    args.connectors = HashMap::from([("sim".to_owned(), Connector { broker, trades })]);
    args.rules = Arc::new(rules);
    args.clock = clock;
    Reconciler::start(args).await.expect("tree starts")
}

fn key(kind: &str, trade: Option<&str>, ticket: u64) -> Key {
    (kind.to_owned(), trade.map(str::to_owned), Some(ticket))
}

/// Waits for `n` more good syncs of every account.
async fn more_syncs(tree: &Reconciler, n: u64) {
    let s = tree.status().await.expect("status");
    let done: Vec<(String, u64)> = s
        .accounts
        .iter()
        .map(|a| (a.id.clone(), a.syncs_ok))
        .collect();
    wait_for(tree, "more syncs", |s| {
        done.iter().all(|(id, d)| acc(s, id).syncs_ok >= d + n)
    })
    .await;
}

#[tokio::test]
async fn positions_outside_the_scope_are_external_and_raised_only_where_asked() {
    for (label, db) in common::databases().await {
        let sim = sim(2, 3, false, 11);
        let ids = sim.account_ids();
        let mut rules = ReconcileRules::default();
        rules.scopes.default = bot_scope();
        rules.scopes.accounts.insert(
            ids[1].clone(),
            Scope {
                external: ExternalPolicy::Divergence,
                ..bot_scope()
            },
        );
        for id in &ids {
            let mut positions = mirror(&sim, id);
            let manual = eurusd_position(&positions[0], 95_001, dec!(0.5), dec!(1.1), 0);
            positions.push(manual);
            sim.set_positions(id, positions);
        }
        // A ticketless trade that the manual position would match by the heuristic.
        let mut trades = sim.trades(&ids[0]);
        trades.push(eurusd(&ids[0], "lookalike", None, dec!(0.5), dec!(1.1)));
        sim.set_trades(&ids[0], trades);

        tokio::time::pause();
        let broker = Decorated::new(&sim, MarginMode::Hedging);
        let clock = Clock::following_tokio(Utc::now());
        let tree = start(&db, &sim, broker, rules, tree_config(), clock).await;
        wait_for(&tree, "three syncs of each", |s| {
            s.accounts.iter().all(|a| a.syncs_ok >= 3)
        })
        .await;
        flush(&tree).await;
        let s = tree.status().await.expect("status");
        for id in &ids {
            assert_eq!(acc(&s, id).external_positions, 1, "{label}: {id}");
        }
        assert_eq!(
            open_keys(&db, &ids[0]).await,
            BTreeSet::from([(
                "missing_at_broker".to_owned(),
                Some("lookalike".to_owned()),
                None
            )]),
            "{label}: the manual position is listed, never matched nor raised"
        );
        assert_eq!(
            open_keys(&db, &ids[1]).await,
            BTreeSet::from([key("unexpected_at_broker", None, 95_001)]),
            "{label}: this account raises what is outside its scope"
        );
        tree.abort().await;
        tokio::time::resume();
    }
}

#[tokio::test]
async fn a_netting_symbol_is_compared_as_one_position_named_by_its_latest_trade() {
    for (label, db) in common::databases().await {
        let sim = sim(1, 1, false, 5);
        let id = sim.account_ids()[0].clone();
        let template = sim.positions(&id)[0].clone();
        let t0 = Utc::now();
        let trades = vec![
            BotTrade {
                opened_at: Some(t0),
                ..eurusd(&id, "a", Some(97_001), dec!(0.10), dec!(1.10000))
            },
            BotTrade {
                opened_at: Some(t0 + TimeDelta::seconds(60)),
                ..eurusd(&id, "b", None, dec!(0.30), dec!(1.10040))
            },
        ];
        sim.set_trades(&id, trades);
        // One position at the volume-weighted entry of both.
        let net = eurusd_position(&template, 97_001, dec!(0.40), dec!(1.10030), BOT_MAGIC);
        sim.set_positions(&id, vec![net.clone()]);

        tokio::time::pause();
        let broker = Decorated::new(&sim, MarginMode::Netting);
        let clock = Clock::following_tokio(Utc::now());
        let rules = ReconcileRules::default();
        let tree = start(&db, &sim, broker, rules, tree_config(), clock).await;
        wait_for(&tree, "three syncs", |s| acc(s, &id).syncs_ok >= 3).await;
        flush(&tree).await;
        assert!(open_keys(&db, &id).await.is_empty(), "{label}");

        // The broker's position shrinks: one divergence, named by b and the position.
        sim.update_position(&id, 97_001, |p| p.volume = Volume::new(dec!(0.20)));
        more_syncs(&tree, 3).await;
        flush(&tree).await;
        assert_eq!(
            open_keys(&db, &id).await,
            BTreeSet::from([key("volume_mismatch", Some("b"), 97_001)]),
            "{label}"
        );
        tree.abort().await;
        tokio::time::resume();
    }
}

#[tokio::test]
async fn a_trade_waits_on_its_order_until_it_fills_or_the_order_goes() {
    for (label, db) in common::databases().await {
        let sim = sim(1, 2, false, 9);
        let id = sim.account_ids()[0].clone();
        sim.set_positions(&id, mirror(&sim, &id));
        let template = sim.positions(&id)[0].clone();
        let mut trades = sim.trades(&id);
        trades.extend([
            eurusd(&id, "cancelled", Some(96_001), dec!(0.1), dec!(1.05)),
            BotTrade {
                client_id: Some("c-2".into()),
                ..eurusd(&id, "waiting", None, dec!(0.2), dec!(1.04))
            },
            eurusd(&id, "filled", Some(96_003), dec!(0.3), dec!(1.03)),
        ]);
        sim.set_trades(&id, trades);
        let broker = Decorated::new(&sim, MarginMode::Hedging);
        let waiting = PendingOrder {
            client_id: Some("c-2".into()),
            ..order(96_002, Side::Buy, dec!(0.2), dec!(1.04), BOT_MAGIC)
        };
        let manual = order(96_009, Side::Sell, dec!(1), dec!(1.2), 0);
        broker.set_orders(
            &id,
            vec![
                order(96_001, Side::Buy, dec!(0.1), dec!(1.05), BOT_MAGIC),
                waiting.clone(),
                order(96_003, Side::Buy, dec!(0.3), dec!(1.03), BOT_MAGIC),
                manual.clone(),
            ],
        );
        let mut rules = ReconcileRules::default();
        rules.scopes.default = bot_scope();

        tokio::time::pause();
        let clock = Clock::following_tokio(Utc::now());
        let tree = start(&db, &sim, broker.clone(), rules, tree_config(), clock).await;
        let s = wait_for(&tree, "three syncs", |s| acc(s, &id).syncs_ok >= 3).await;
        let a = acc(&s, &id);
        assert_eq!((a.pending_orders, a.external_orders), (3, 1), "{label}");
        assert_eq!((a.open_divergences, a.held_divergences), (0, 0), "{label}");

        // 96_001 is cancelled; 96_003 fills, and its position shows a sync later.
        broker.set_orders(&id, vec![waiting, manual]);
        let done = acc(&tree.status().await.unwrap(), &id).syncs_ok;
        let s = wait_for(&tree, "a sync", |s| acc(s, &id).syncs_ok > done).await;
        assert_eq!(acc(&s, &id).held_divergences, 2, "{label}: both in flight");
        let mut positions = sim.positions(&id);
        positions.push(eurusd_position(
            &template,
            96_003,
            dec!(0.3),
            dec!(1.03),
            BOT_MAGIC,
        ));
        sim.set_positions(&id, positions);
        more_syncs(&tree, 3).await;
        flush(&tree).await;
        let want = BTreeSet::from([key("order_cancelled", Some("cancelled"), 96_001)]);
        assert_eq!(open_keys(&db, &id).await, want, "{label}");
        let ever: BTreeSet<Key> = all_rows(&db, &id)
            .await
            .into_iter()
            .map(|r| {
                (
                    r.divergence.kind.to_string(),
                    r.divergence.trade_id,
                    r.divergence.ticket,
                )
            })
            .collect();
        assert_eq!(ever, want, "{label}: the fill was never raised");
        let s = tree.status().await.expect("status");
        assert_eq!(acc(&s, &id).pending_orders, 1, "{label}: still waiting");
        tree.abort().await;
        tokio::time::resume();
    }
}

#[tokio::test]
async fn a_breach_closes_and_cancels_what_the_close_scope_takes() {
    for scope in [CloseScope::Bot, CloseScope::Account] {
        for (label, db) in common::databases().await {
            let label = format!("{label}, {scope:?}");
            let sim = flat_sim();
            let bot_positions = sim.positions(ACCOUNT).len() as u64;
            let mut positions = sim.positions(ACCOUNT);
            let manual = eurusd_position(&positions[1], 95_001, dec!(0.5), dec!(1.1), 0);
            positions.push(BrokerPosition {
                profit: Decimal::ZERO,
                swap: Decimal::ZERO,
                ..manual
            });
            sim.set_positions(ACCOUNT, positions);
            let broker = Decorated::new(&sim, MarginMode::Hedging);
            broker.set_orders(
                ACCOUNT,
                vec![
                    order(77_001, Side::Buy, dec!(0.1), dec!(1.05), BOT_MAGIC),
                    order(77_002, Side::Sell, dec!(0.1), dec!(1.2), 0),
                ],
            );
            let mut rules = ReconcileRules::default();
            rules.scopes.default = bot_scope();
            let mut config = tree_config();
            config.guards = GuardsConfig {
                alert_lead_secs: 10,
                auto_close: vec![ACCOUNT.into()],
                close_scope: scope,
                drawdown: vec![common::max_loss_rule()],
                ..GuardsConfig::default()
            };

            tokio::time::pause();
            let tree = start(&db, &sim, broker.clone(), rules, config, Clock::real()).await;
            syncs(&tree, 1).await;
            settle().await;
            lose(&sim, 520); // 5.2 %: breach
            syncs(&tree, 1).await;
            tokio::time::sleep(Duration::from_secs(12)).await;
            let bot_closed = || sim.positions(ACCOUNT).iter().all(|p| p.magic != BOT_MAGIC);
            until("the bot's positions closed", bot_closed).await;
            until("the bot's order cancelled", || {
                !broker.tickets(ACCOUNT).contains(&77_001)
            })
            .await;
            let start = std::time::Instant::now();
            while breach_alert(&db).await.status != store::AlertStatus::Closed {
                assert!(start.elapsed() < Duration::from_secs(30), "{label}: closed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // More syncs: what is outside the close scope starts no other round.
            syncs(&tree, 3).await;
            flush(&tree).await;
            let left: Vec<u64> = sim.positions(ACCOUNT).iter().map(|p| p.ticket).collect();
            let k = kinds(&db).await;
            let count = |kind: &str| k.iter().filter(|x| *x == kind).count();
            match scope {
                CloseScope::Bot => {
                    assert_eq!(left, [95_001], "{label}: the manual position stays");
                    assert_eq!(broker.tickets(ACCOUNT), [77_002], "{label}");
                    assert_eq!(sim.close_calls(ACCOUNT), bot_positions, "{label}");
                    assert_eq!(count("cancel_confirmed"), 1, "{label}: {k:?}");
                    assert_eq!(count("close_again"), 0, "{label}: {k:?}");
                }
                CloseScope::Account => {
                    assert!(left.is_empty(), "{label}: everything closes: {left:?}");
                    assert!(broker.tickets(ACCOUNT).is_empty(), "{label}");
                    assert_eq!(sim.close_calls(ACCOUNT), bot_positions + 1, "{label}");
                    assert_eq!(count("cancel_confirmed"), 2, "{label}: {k:?}");
                }
            }
            assert_eq!(
                count("cancel_requested"),
                count("cancel_confirmed"),
                "{label}"
            );
            tree.abort().await;
            tokio::time::resume();
        }
    }
}
