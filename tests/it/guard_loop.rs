//! The guards as a control loop of their own, through the real tree on the simulated
//! broker: they keep enforcing when reconciliation fails, see the broker's symbol
//! specifications, never close without a stored alert, leave a claimed close to its
//! claimant, never re-send a close blindly, and keep enforcing while a breach holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mt5_reconciler::actors::guard::GuardMsg;
use mt5_reconciler::broker::sim::{Fault, SimBroker};
use mt5_reconciler::broker::{BoxFuture, Broker, BrokerError, Connector};
use mt5_reconciler::domain::{AccountSnapshot, Quote, SymbolSpec, SymbolTable};
use mt5_reconciler::guards::config::MarketConfig;
use mt5_reconciler::store;
use rust_decimal::Decimal;

use crate::common::{self, BrokenTrades};
use crate::guards::{
    ACCOUNT, breach_alert, flat_sim, guards, kinds, lose, settle, start_with, syncs, until,
};
use crate::tree::flush;

/// Waits (bounded in real time) until the breach alert says every position was closed.
async fn closed(db: &sea_orm::DatabaseConnection, label: &str) {
    let start = std::time::Instant::now();
    while breach_alert(db).await.status != store::AlertStatus::Closed {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{label}: the alert never says closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sim_connector(sim: &Arc<SimBroker>) -> Connector {
    Connector {
        broker: sim.clone(),
        trades: sim.clone(),
    }
}

/// Adds a copy of the account's first position under another ticket and symbol.
fn add_position(sim: &SimBroker, ticket: u64, symbol: &str) {
    let mut positions = sim.positions(ACCOUNT);
    let mut p = positions[0].clone();
    (p.ticket, p.identifier, p.symbol) = (ticket, ticket, symbol.to_owned());
    (p.profit, p.swap) = (Decimal::ZERO, Decimal::ZERO);
    positions.push(p);
    sim.set_positions(ACCOUNT, positions);
}

/// The simulated broker, plus symbol specifications only it knows, and snapshots that fail
/// on demand right after a close.
struct Wrapped {
    sim: Arc<SimBroker>,
    specs: SymbolTable,
    /// Snapshots to fail from the next call on.
    fail_snapshots: AtomicU32,
    /// After each close call, fail this many snapshots.
    fail_after_close: u32,
    /// Answer the first close with a timeout (after applying it).
    lose_first_answer: std::sync::atomic::AtomicBool,
}

impl Wrapped {
    fn new(sim: &Arc<SimBroker>) -> Self {
        Self {
            sim: sim.clone(),
            specs: SymbolTable::new(),
            fail_snapshots: AtomicU32::new(0),
            fail_after_close: 0,
            lose_first_answer: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Broker for Wrapped {
    fn snapshot<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<AccountSnapshot, BrokerError>> {
        Box::pin(async move {
            let left = self.fail_snapshots.load(Ordering::SeqCst);
            if left > 0 {
                self.fail_snapshots.store(left - 1, Ordering::SeqCst);
                return Err(BrokerError::Retryable {
                    reason: "terminal reconnecting".into(),
                    retry_after: None,
                });
            }
            self.sim.snapshot(account).await
        })
    }

    fn close_position<'a>(
        &'a self,
        account: &'a str,
        ticket: u64,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            let r = self.sim.close_position(account, ticket).await;
            self.fail_snapshots
                .fetch_add(self.fail_after_close, Ordering::SeqCst);
            if self.lose_first_answer.swap(false, Ordering::SeqCst) {
                return Err(BrokerError::Timeout("answer lost".into()));
            }
            r
        })
    }

    fn symbols(&self, _account: &str) -> Option<SymbolTable> {
        (!self.specs.is_empty()).then(|| self.specs.clone())
    }
}

#[tokio::test]
async fn an_unknown_pip_size_does_not_stop_the_drawdown_guard() {
    for (label, db) in common::databases().await {
        let sim = flat_sim();
        // A symbol nobody describes, held by the bot too: reconciliation of this account
        // cannot work (no pip size to compare prices with).
        add_position(&sim, 9_000_001, "WIDGET");
        let mut trades = sim.trades(ACCOUNT);
        let mut t = trades[0].clone();
        (t.id, t.ticket, t.symbol) = ("w-1".into(), Some(9_000_001), "WIDGET".into());
        trades.push(t);
        sim.set_trades(ACCOUNT, trades);
        tokio::time::pause();
        let tree = start_with(&db, sim_connector(&sim), guards(true)).await;
        tokio::time::sleep(Duration::from_secs(11)).await;
        lose(&sim, 600);
        until("every position closed", || {
            sim.positions(ACCOUNT).is_empty()
        })
        .await;
        tokio::time::resume();
        closed(&db, &label).await;
        tree.abort().await;
    }
}

/// The account's guard actor among the supervisor's children.
fn guard_of(tree: &mt5_reconciler::service::Reconciler) -> Option<ractor::ActorCell> {
    tree.actor()
        .get_children()
        .into_iter()
        .find(|c| c.is_message_type_of::<GuardMsg>() == Some(true))
}

/// A guard that stops (here: killed) stops neither the account's reconciliation nor its
/// protection: the supervisor starts the guard again, audits it, and a breach after that
/// still closes every position.
#[tokio::test]
async fn a_guard_that_stops_is_restarted_and_reconciliation_goes_on() {
    for (label, db) in common::databases().await {
        let sim = flat_sim();
        tokio::time::pause();
        let tree = start_with(&db, sim_connector(&sim), guards(true)).await;
        syncs(&tree, 1).await;
        settle().await;
        let first = guard_of(&tree).expect("a guard actor");
        first.kill();
        syncs(&tree, 2).await;
        tokio::time::resume();
        until("another guard actor", || {
            guard_of(&tree).is_some_and(|g| g.get_id() != first.get_id())
        })
        .await;
        flush(&tree).await;
        let k = kinds(&db).await;
        assert!(k.iter().any(|x| x == "guard_restarted"), "{label}: {k:?}");
        tokio::time::pause();
        lose(&sim, 600);
        tokio::time::sleep(Duration::from_secs(25)).await;
        until("every position closed", || {
            sim.positions(ACCOUNT).is_empty()
        })
        .await;
        tokio::time::resume();
        closed(&db, &label).await;
        tree.abort().await;
    }
}

#[tokio::test]
async fn a_failed_trade_read_does_not_stop_the_drawdown_guard() {
    for (label, db) in common::databases().await {
        let sim = flat_sim();
        let connector = Connector {
            broker: sim.clone(),
            trades: Arc::new(BrokenTrades),
        };
        tokio::time::pause();
        let tree = start_with(&db, connector, guards(true)).await;
        tokio::time::sleep(Duration::from_secs(11)).await;
        lose(&sim, 600);
        until("every position closed", || {
            sim.positions(ACCOUNT).is_empty()
        })
        .await;
        tokio::time::resume();
        closed(&db, &label).await;
        tree.abort().await;
    }
}

fn gold_quote(mid: i64) -> Vec<Quote> {
    vec![Quote {
        symbol: "XAUUSD".into(),
        bid: Decimal::new(mid, 2),
        ask: Decimal::new(mid + 10, 2),
        time: chrono::Utc::now(),
    }]
}

#[tokio::test]
async fn a_market_guard_works_on_a_symbol_only_the_broker_describes() {
    for (label, db) in common::databases().await {
        let sim = flat_sim();
        add_position(&sim, 9_000_002, "XAUUSD");
        let mut wrapped = Wrapped::new(&sim);
        wrapped.specs.insert(
            "XAUUSD",
            SymbolSpec {
                digits: Some(2),
                ..SymbolSpec::default()
            },
        );
        let connector = Connector {
            broker: Arc::new(wrapped),
            trades: sim.clone(),
        };
        let mut config = guards(true);
        config.market = vec![MarketConfig {
            symbols: vec!["XAUUSD".into()],
            max_gap_pips: Some(Decimal::from(300)),
            gap_clear_after_snapshots: 100,
            max_spread_pips: None,
            stale_secs: None,
            sessions: vec![],
            time_zone: None,
        }];
        sim.set_quotes(ACCOUNT, gold_quote(260_000));
        tokio::time::pause();
        let tree = start_with(&db, connector, config).await;
        syncs(&tree, 1).await;
        // Gold jumps 50 dollars (5,000 pips of 0.01) on the snapshot that breaches.
        sim.set_quotes(ACCOUNT, gold_quote(265_000));
        lose(&sim, 600);
        until("the other symbols closed", || {
            sim.positions(ACCOUNT).iter().all(|p| p.symbol == "XAUUSD")
        })
        .await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        let left: Vec<String> = sim
            .positions(ACCOUNT)
            .iter()
            .map(|p| p.symbol.clone())
            .collect();
        tree.abort().await;
        tokio::time::resume();
        assert_eq!(left, vec!["XAUUSD".to_owned()], "{label}: gold waits");
    }
}

#[tokio::test]
async fn no_close_runs_without_a_stored_alert() {
    for locked in common::lockable_databases().await {
        let label = locked.label.clone();
        let db = locked.db.clone();
        let sim = flat_sim();
        let positions = sim.positions(ACCOUNT).len();
        // A lead of five minutes: the cancel below comes well within it.
        let mut config = guards(true);
        config.alert_lead_secs = 300;
        tokio::time::pause();
        let tree = start_with(&db, sim_connector(&sim), config).await;
        syncs(&tree, 1).await;
        tokio::time::resume();
        locked.lock().await;
        tokio::time::pause();
        lose(&sim, 600);
        // The breach is seen while the store is away, and a whole lead passes.
        syncs(&tree, 35).await;
        tokio::time::resume();
        locked.unlock().await;
        tokio::time::pause();
        // The store is back: a few more syncs, well within a lead that starts only now.
        syncs(&tree, 1).await;
        tokio::time::resume();
        assert_eq!(
            sim.positions(ACCOUNT).len(),
            positions,
            "{label}: closed without a stored alert"
        );
        let mut stored = None;
        for _ in 0..100 {
            if let Ok(alerts) = store::list_alerts(&db, Some(ACCOUNT), 10).await
                && let Some(a) = alerts.into_iter().find(|a| a.kind == "breach")
            {
                stored = Some(a);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let alert = stored.expect("the breach alert is stored once the store is back");
        assert_eq!(alert.status, store::AlertStatus::PendingClose, "{label}");
        assert_eq!(
            store::cancel_enforcement(&db, &alert.id, chrono::Utc::now(), "test", "lead")
                .await
                .unwrap(),
            store::CancelOutcome::Cancelled,
            "{label}: the close can be cancelled"
        );
        tokio::time::pause();
        tokio::time::sleep(Duration::from_secs(60)).await;
        syncs(&tree, 1).await;
        tree.abort().await;
        tokio::time::resume();
        assert_eq!(sim.close_calls(ACCOUNT), 0, "{label}: nothing closed");
    }
}

#[tokio::test]
async fn a_close_claimed_by_another_closer_is_left_to_it() {
    for (label, db) in common::databases().await {
        let sim = flat_sim();
        tokio::time::pause();
        let tree = start_with(&db, sim_connector(&sim), guards(true)).await;
        syncs(&tree, 1).await;
        settle().await;
        lose(&sim, 600);
        syncs(&tree, 1).await;
        tokio::time::resume();
        let alert = breach_alert(&db).await;
        // Another closer (another instance) claims it first.
        let claimed = common::claim_elsewhere(&db, &alert.id).await;
        assert!(claimed, "{label}");
        tokio::time::pause();
        tokio::time::sleep(Duration::from_secs(30)).await;
        syncs(&tree, 2).await;
        tree.abort().await;
        tokio::time::resume();
        assert_eq!(
            sim.close_calls(ACCOUNT),
            0,
            "{label}: closed a claimed alert"
        );
    }
}

#[tokio::test]
async fn a_close_whose_check_fails_is_never_sent_again_blindly() {
    for (label, db) in common::databases().await {
        let sim = flat_sim();
        let positions = sim.positions(ACCOUNT).len() as u64;
        let mut wrapped = Wrapped::new(&sim);
        // Every close is followed by two failing snapshots; the first close's answer is
        // lost although it was applied.
        wrapped.fail_after_close = 2;
        wrapped.lose_first_answer = std::sync::atomic::AtomicBool::new(true);
        let connector = Connector {
            broker: Arc::new(wrapped),
            trades: sim.clone(),
        };
        tokio::time::pause();
        let tree = start_with(&db, connector, guards(true)).await;
        syncs(&tree, 1).await;
        settle().await;
        lose(&sim, 600);
        until("every position closed", || {
            sim.positions(ACCOUNT).is_empty()
        })
        .await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        tree.abort().await;
        tokio::time::resume();
        assert_eq!(
            sim.close_calls(ACCOUNT),
            positions,
            "{label}: a close was sent twice"
        );
    }
}

#[tokio::test]
async fn positions_reopened_during_a_breach_are_closed_too() {
    for (label, db) in common::databases().await {
        let sim = flat_sim();
        tokio::time::pause();
        let tree = start_with(&db, sim_connector(&sim), guards(true)).await;
        syncs(&tree, 1).await;
        settle().await;
        lose(&sim, 600);
        until("every position closed", || {
            sim.positions(ACCOUNT).is_empty()
        })
        .await;
        // The loss is realised; the bot, unaware of the breach, opens two positions.
        sim.set_balance(ACCOUNT, Decimal::from(9_400));
        let template = {
            let mut fresh = flat_sim().positions(ACCOUNT);
            fresh.truncate(2);
            for (i, p) in fresh.iter_mut().enumerate() {
                (p.ticket, p.identifier) = (8_000_000 + i as u64, 8_000_000 + i as u64);
            }
            fresh
        };
        sim.set_positions(ACCOUNT, template);
        until("the reopened positions closed", || {
            sim.positions(ACCOUNT).is_empty()
        })
        .await;
        flush(&tree).await;
        tree.abort().await;
        tokio::time::resume();
        let k = kinds(&db).await;
        assert!(k.contains(&"close_confirmed".to_owned()), "{label}: {k:?}");
    }
}

#[tokio::test]
async fn a_failed_close_is_retried_until_the_position_is_closed() {
    for (label, db) in common::databases().await {
        let sim = flat_sim();
        // The market refuses the first three closes.
        let refused = BrokerError::Permanent("market closed".into());
        sim.push_close_faults(
            ACCOUNT,
            [
                Fault::Error(refused.clone()),
                Fault::Error(refused.clone()),
                Fault::Error(refused),
            ],
        );
        tokio::time::pause();
        let tree = start_with(&db, sim_connector(&sim), guards(true)).await;
        syncs(&tree, 1).await;
        settle().await;
        lose(&sim, 600);
        until("every position closed", || {
            sim.positions(ACCOUNT).is_empty()
        })
        .await;
        flush(&tree).await;
        tree.abort().await;
        tokio::time::resume();
        let k = kinds(&db).await;
        assert!(
            k.iter().filter(|x| *x == "close_requested").count() as u64
                > flat_sim().positions(ACCOUNT).len() as u64,
            "{label}: every attempt audited: {k:?}"
        );
    }
}

#[tokio::test]
async fn a_pending_close_survives_a_restart_as_the_same_alert() {
    for (label, db) in common::databases().await {
        let sim = flat_sim();
        let positions = sim.positions(ACCOUNT).len() as u64;
        let mut config = guards(true);
        config.alert_lead_secs = 60;
        tokio::time::pause();
        let tree = start_with(&db, sim_connector(&sim), config.clone()).await;
        syncs(&tree, 1).await;
        settle().await;
        lose(&sim, 600);
        tokio::time::resume();
        let first = breach_alert(&db).await;
        // The process dies within the lead; a new one starts on the same database.
        tree.abort().await;
        tokio::time::pause();
        let tree = start_with(&db, sim_connector(&sim), config).await;
        tokio::time::sleep(Duration::from_secs(90)).await;
        until("every position closed", || {
            sim.positions(ACCOUNT).is_empty()
        })
        .await;
        tokio::time::resume();
        closed(&db, &label).await;
        tree.abort().await;
        let breaches: Vec<_> = store::list_alerts(&db, Some(ACCOUNT), 10)
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.kind == "breach")
            .collect();
        assert_eq!(
            breaches.len(),
            1,
            "{label}: one breach, one alert: {breaches:?}"
        );
        assert_eq!(breaches[0].id, first.id, "{label}");
        assert_eq!(sim.close_calls(ACCOUNT), positions, "{label}: closed once");
    }
}

#[tokio::test]
async fn positions_the_guard_closed_are_closed_by_service_not_missing() {
    for (label, db) in common::databases().await {
        let sim = flat_sim();
        tokio::time::pause();
        let tree = start_with(&db, sim_connector(&sim), guards(true)).await;
        syncs(&tree, 1).await;
        settle().await;
        lose(&sim, 600);
        until("every position closed", || {
            sim.positions(ACCOUNT).is_empty()
        })
        .await;
        // The bot has not caught up: its trades are still open.
        syncs(&tree, 2).await;
        flush(&tree).await;
        tokio::time::resume();
        let open = store::open_divergences(&db, ACCOUNT).await.unwrap();
        let kinds: Vec<&str> = open.iter().map(|d| d.divergence.kind.as_str()).collect();
        tree.abort().await;
        assert!(
            !kinds.contains(&"missing_at_broker"),
            "{label}: the service's own closes reported as missing: {kinds:?}"
        );
        let alert = breach_alert(&db).await;
        let by_service: Vec<_> = open
            .iter()
            .filter(|d| d.divergence.kind.as_str() == "closed_by_service")
            .collect();
        assert_eq!(
            by_service.len(),
            sim.trades(ACCOUNT).len(),
            "{label}: {kinds:?}"
        );
        assert!(
            by_service
                .iter()
                .all(|d| d.divergence.actual.as_ref().map(ToString::to_string)
                    == Some(alert.id.clone())),
            "{label}: each names the alert"
        );
    }
}

#[tokio::test]
async fn guards_without_snapshots_say_they_are_blind_and_when_they_see_again() {
    for (label, db) in common::databases().await {
        let sim = flat_sim();
        let mut config = guards(true);
        config.blind_after_secs = 30;
        tokio::time::pause();
        let tree = start_with(&db, sim_connector(&sim), config).await;
        syncs(&tree, 1).await;
        // Paused time would run past the whole outage while the guard starts.
        settle().await;
        sim.set_fault(ACCOUNT, Some(Fault::Timeout));
        tokio::time::sleep(Duration::from_secs(120)).await;
        sim.set_fault(ACCOUNT, None);
        tokio::time::sleep(Duration::from_secs(200)).await;
        syncs(&tree, 1).await;
        flush(&tree).await;
        tokio::time::resume();
        let k = kinds(&db).await;
        tree.abort().await;
        let blind = k.iter().position(|x| x == "guards_blind");
        let sighted = k.iter().position(|x| x == "guards_sighted");
        assert!(
            blind.is_some() && sighted > blind,
            "{label}: blind, then sighted: {k:?}"
        );
    }
}

#[tokio::test]
async fn a_spread_check_on_a_broker_without_quotes_is_refused_at_start() {
    for (label, db) in common::databases().await {
        let sim = flat_sim();
        let connector = Connector {
            broker: Arc::new(Wrapped::new(&sim)),
            trades: sim.clone(),
        };
        let mut config = guards(true);
        config.market[0].max_spread_pips = Some(Decimal::from(3));
        let mut tree = crate::tree::tree_config();
        tree.guards = config;
        let args = mt5_reconciler::actors::SupervisorArgs {
            db: db.clone(),
            config: tree,
            rules: Arc::new(mt5_reconciler::domain::ReconcileRules::default()),
            connectors: std::collections::HashMap::from([("sim".to_owned(), connector)]),
            accounts: vec![mt5_reconciler::actors::AccountSpec {
                id: ACCOUNT.into(),
                broker: "sim".into(),
            }],
            events: Arc::new(ractor::OutputPort::default()),
            follow_accounts_table: false,
            clock: mt5_reconciler::clock::Clock::real(),
        };
        let Err(e) = mt5_reconciler::service::Reconciler::start(args).await else {
            panic!("{label}: started with a check that cannot work");
        };
        let text = e.to_string();
        for needle in ["guards.market[0]", "GBPUSD", ACCOUNT, "no quotes"] {
            assert!(text.contains(needle), "{label}: {needle} in {text}");
        }
    }
}

/// The simulated broker, whose closes take a second to answer.
struct SlowCloses(Arc<SimBroker>);

impl Broker for SlowCloses {
    fn snapshot<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<AccountSnapshot, BrokerError>> {
        self.0.snapshot(account)
    }

    fn close_position<'a>(
        &'a self,
        account: &'a str,
        ticket: u64,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.0.close_position(account, ticket).await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_a_close_round_records_every_close_it_sent() {
    for (label, db) in common::databases().await {
        let sim = flat_sim();
        let mut tree = crate::tree::tree_config();
        tree.scheduler.interval_ms = 200;
        tree.guards = guards(true);
        tree.guards.alert_lead_secs = 0;
        let args = mt5_reconciler::actors::SupervisorArgs {
            db: db.clone(),
            config: tree,
            rules: Arc::new(mt5_reconciler::domain::ReconcileRules::default()),
            connectors: std::collections::HashMap::from([(
                "sim".to_owned(),
                Connector {
                    broker: Arc::new(SlowCloses(sim.clone())),
                    trades: sim.clone(),
                },
            )]),
            accounts: vec![mt5_reconciler::actors::AccountSpec {
                id: ACCOUNT.into(),
                broker: "sim".into(),
            }],
            events: Arc::new(ractor::OutputPort::default()),
            follow_accounts_table: false,
            clock: mt5_reconciler::clock::Clock::real(),
        };
        let tree = mt5_reconciler::service::Reconciler::start(args)
            .await
            .unwrap();
        lose(&sim, 600);
        // Stop while the closes are in flight.
        until("a close sent", || sim.close_calls(ACCOUNT) > 0).await;
        let report = tree.shutdown(Duration::from_secs(20)).await;
        assert!(report.flushed, "{label}");
        let k = kinds(&db).await;
        let requested = k.iter().filter(|x| *x == "close_requested").count();
        let confirmed = k.iter().filter(|x| *x == "close_confirmed").count();
        assert!(requested > 0, "{label}: {k:?}");
        assert_eq!(
            requested, confirmed,
            "{label}: every close sent is recorded: {k:?}"
        );
        assert_eq!(
            sim.close_calls(ACCOUNT) as usize,
            requested,
            "{label}: nothing sent unrecorded"
        );
    }
}
