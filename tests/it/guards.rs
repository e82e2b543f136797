//! Risk guards driven by messages on the simulated broker, in paused tokio time: warn and
//! breach, the close after the alert lead, an operator's cancel, detect-only, a market gap
//! that postpones the close, a close that times out; and the alert sinks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mt5_reconciler::actors::{AccountSpec, SupervisorArgs};
use mt5_reconciler::broker::Connector;
use mt5_reconciler::broker::sim::{Fault, SimBroker, SimConfig};
use mt5_reconciler::clock::Clock;
use mt5_reconciler::domain::{Quote, ReconcileRules};
use mt5_reconciler::guards::GuardsConfig;
use mt5_reconciler::guards::config::MarketConfig;
use mt5_reconciler::service::Reconciler;
use mt5_reconciler::store;
use ractor::OutputPort;
use rust_decimal::Decimal;
use sea_orm::DatabaseConnection;

use crate::common;
use crate::tree::{acc, flush, tree_config, wait_for};

pub(crate) const ACCOUNT: &str = "sim-001";

pub(crate) fn guards(auto_close: bool) -> GuardsConfig {
    GuardsConfig {
        alert_lead_secs: 10,
        auto_close: if auto_close {
            vec![ACCOUNT.into()]
        } else {
            vec![]
        },
        drawdown: vec![common::max_loss_rule()],
        market: vec![MarketConfig {
            symbols: vec!["GBPUSD".into()],
            max_gap_pips: Some(Decimal::from(30)),
            // Long enough to outlast the lead, however far paused time runs ahead while
            // the guard waits for the database.
            gap_clear_after_snapshots: 30,
            max_spread_pips: None,
            stale_secs: None,
            sessions: vec![],
            time_zone: None,
        }],
        ..GuardsConfig::default()
    }
}

/// One account at 10 000 balance whose positions carry no floating profit.
pub(crate) fn flat_sim() -> Arc<SimBroker> {
    flat_sim_on(Clock::real())
}

/// The same, stamping its snapshots with `clock`.
pub(crate) fn flat_sim_on(clock: Clock) -> Arc<SimBroker> {
    let sim = Arc::new(
        SimBroker::new(
            &SimConfig {
                accounts: 1,
                positions_per_account: 6,
                seed: 29,
                ..SimConfig::default()
            }
            .without_noise(),
        )
        .with_clock(clock),
    );
    for p in sim.positions(ACCOUNT) {
        sim.update_position(ACCOUNT, p.ticket, |p| {
            (p.profit, p.swap) = (Decimal::ZERO, Decimal::ZERO)
        });
    }
    sim
}

/// Sets the account's floating loss (on its first position).
pub(crate) fn lose(sim: &SimBroker, amount: i64) {
    let first = sim.positions(ACCOUNT)[0].ticket;
    sim.update_position(ACCOUNT, first, |p| p.profit = Decimal::from(-amount));
}

async fn start(db: &DatabaseConnection, sim: &Arc<SimBroker>, auto_close: bool) -> Reconciler {
    let connector = Connector {
        broker: sim.clone(),
        trades: sim.clone(),
    };
    start_with(db, connector, guards(auto_close)).await
}

/// The tree with one account on `connector`, guarded by `guards`.
pub(crate) async fn start_with(
    db: &DatabaseConnection,
    connector: Connector,
    guards: GuardsConfig,
) -> Reconciler {
    start_on_clock(db, connector, guards, Clock::real()).await
}

/// The same, on `clock`.
pub(crate) async fn start_on_clock(
    db: &DatabaseConnection,
    connector: Connector,
    guards: GuardsConfig,
    clock: Clock,
) -> Reconciler {
    let mut config = tree_config();
    config.guards = guards;
    let args = SupervisorArgs {
        db: db.clone(),
        config,
        rules: Arc::new(ReconcileRules::default()),
        connectors: HashMap::from([("sim".to_owned(), connector)]),
        accounts: vec![AccountSpec {
            id: ACCOUNT.into(),
            broker: "sim".into(),
        }],
        events: Arc::new(OutputPort::default()),
        follow_accounts_table: false,
        clock,
    };
    Reconciler::start(args).await.expect("tree starts")
}

/// Lets the guard finish reading its memory from the database in real time: paused time
/// would otherwise run ahead by minutes of ticks while it waits.
pub(crate) async fn settle() {
    tokio::time::resume();
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::time::pause();
}

/// Waits until `cond` holds. Tokio time is paused and runs ahead while a real database
/// call is in flight, so the bound is real time (a guard against hanging, not a timing
/// assertion).
pub(crate) async fn until(what: &str, cond: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn kinds(db: &DatabaseConnection) -> Vec<String> {
    common::audit_kinds(db, ACCOUNT).await
}

/// Waits for `n` more syncs of the account.
pub(crate) async fn syncs(tree: &Reconciler, n: u64) {
    let done = acc(&tree.status().await.unwrap(), ACCOUNT).syncs_ok;
    wait_for(tree, "more syncs", |s| acc(s, ACCOUNT).syncs_ok >= done + n).await;
}

/// The account's breach alert, once the guard actor has stored it (bounded in real time:
/// a guard against hanging, not a timing assertion).
pub(crate) async fn breach_alert(db: &DatabaseConnection) -> store::AlertRecord {
    let start = std::time::Instant::now();
    loop {
        let alerts = store::list_alerts(db, Some(ACCOUNT), 10).await.unwrap();
        if let Some(a) = alerts.into_iter().find(|a| a.kind == "breach") {
            return a;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "a breach alert is stored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn warn_then_breach_alerts_and_closes_every_position_after_the_lead() {
    for (label, db) in common::databases().await {
        let sim = flat_sim();
        let positions = sim.positions(ACCOUNT).len() as u64;
        tokio::time::pause();
        let tree = start(&db, &sim, true).await;
        syncs(&tree, 1).await;
        settle().await;
        lose(&sim, 450); // 4.5 %: warn
        syncs(&tree, 1).await;
        settle().await;
        lose(&sim, 520); // 5.2 %: breach
        syncs(&tree, 1).await;
        // Within the lead, nothing is closed yet. (No database wait before this check:
        // under paused time the clock may jump while a real query runs.)
        tokio::time::sleep(Duration::from_secs(8)).await;
        assert_eq!(
            sim.positions(ACCOUNT).len() as u64,
            positions,
            "{label}: closed too early"
        );
        tokio::time::sleep(Duration::from_secs(4)).await;
        until("every position closed", || {
            sim.positions(ACCOUNT).is_empty()
        })
        .await;
        assert_eq!(
            sim.close_calls(ACCOUNT),
            positions,
            "{label}: one close per position"
        );
        flush(&tree).await;
        let k = kinds(&db).await;
        let order = [
            "guard_warn",
            "guard_breach",
            "alert_sent",
            "close_scheduled",
            "close_requested",
            "close_confirmed",
        ];
        let mut at = 0;
        for want in order {
            let found = k[at..].iter().position(|x| x == want).map(|i| at + i);
            assert!(
                found.is_some(),
                "{label}: {want} after {:?} in {k:?}",
                &k[..at]
            );
            at = found.unwrap_or(at);
        }
        assert_eq!(
            k.iter().filter(|x| *x == "close_confirmed").count() as u64,
            positions,
            "{label}"
        );
        // The round records its outcome once its last close answered.
        let start = std::time::Instant::now();
        let mut alert = breach_alert(&db).await;
        while alert.status == store::AlertStatus::Closing
            && start.elapsed() < Duration::from_secs(30)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
            alert = breach_alert(&db).await;
        }
        assert_eq!(alert.status, store::AlertStatus::Closed, "{label}");
        assert!(alert.close_at.is_some(), "{label}");
        tree.abort().await;
        tokio::time::resume();
    }
}

#[tokio::test]
async fn a_close_cancelled_within_the_window_closes_nothing() {
    for (label, db) in common::databases().await {
        let sim = flat_sim();
        let positions = sim.positions(ACCOUNT).len();
        tokio::time::pause();
        let tree = start(&db, &sim, true).await;
        syncs(&tree, 1).await;
        settle().await;
        lose(&sim, 600);
        syncs(&tree, 1).await;
        // The operator acts in real time: with tokio time paused, the clock would run
        // past the alert lead while these queries wait for the database.
        tokio::time::resume();
        let alert = breach_alert(&db).await;
        // What `mt5-reconciler alerts cancel ID` and the API do.
        let cancelled = store::cancel_enforcement(
            &db,
            &alert.id,
            chrono::Utc::now(),
            "test",
            "within the lead",
        )
        .await
        .unwrap();
        tokio::time::pause();
        assert_eq!(
            cancelled,
            store::CancelOutcome::Cancelled,
            "{label}: cancelled within the window"
        );
        tokio::time::sleep(Duration::from_secs(30)).await;
        syncs(&tree, 1).await;
        assert_eq!(
            sim.positions(ACCOUNT).len(),
            positions,
            "{label}: nothing closed"
        );
        assert_eq!(sim.close_calls(ACCOUNT), 0, "{label}");
        flush(&tree).await;
        assert!(
            kinds(&db).await.contains(&"close_cancelled".to_owned()),
            "{label}"
        );
        assert_eq!(
            breach_alert(&db).await.status,
            store::AlertStatus::Cancelled,
            "{label}"
        );
        tree.abort().await;
        tokio::time::resume();
    }
}

#[tokio::test]
async fn detect_only_alerts_and_never_closes() {
    for (label, db) in common::databases().await {
        let sim = flat_sim();
        tokio::time::pause();
        let tree = start(&db, &sim, false).await;
        syncs(&tree, 1).await;
        settle().await;
        lose(&sim, 700);
        syncs(&tree, 4).await;
        let alert = breach_alert(&db).await;
        flush(&tree).await;
        assert_eq!(
            (alert.status, alert.close_at),
            (store::AlertStatus::Alerted, None),
            "{label}"
        );
        assert_eq!(sim.close_calls(ACCOUNT), 0, "{label}");
        let k = kinds(&db).await;
        assert!(
            k.contains(&"guard_breach".to_owned()) && !k.contains(&"close_requested".to_owned()),
            "{label}: {k:?}"
        );
        // One alert per breach, not one per sync.
        assert_eq!(
            k.iter().filter(|x| *x == "guard_breach").count(),
            1,
            "{label}"
        );
        tree.abort().await;
        tokio::time::resume();
    }
}

fn quote(mid: i64) -> Vec<Quote> {
    vec![Quote {
        symbol: "GBPUSD".into(),
        bid: Decimal::new(mid, 5),
        ask: Decimal::new(mid + 1, 5),
        time: chrono::Utc::now(),
    }]
}

#[tokio::test]
async fn a_market_gap_during_a_breach_postpones_the_close_until_the_guard_clears() {
    for (label, db) in common::databases().await {
        let sim = flat_sim();
        // Make sure the account holds GBPUSD and something else.
        let held: Vec<String> = sim
            .positions(ACCOUNT)
            .iter()
            .map(|p| p.symbol.clone())
            .collect();
        assert!(
            held.iter().any(|s| s == "GBPUSD") && held.iter().any(|s| s != "GBPUSD"),
            "{held:?}"
        );
        sim.set_quotes(ACCOUNT, quote(126_000));
        tokio::time::pause();
        let tree = start(&db, &sim, true).await;
        syncs(&tree, 1).await;
        settle().await;
        // A 50-pip gap and a breach on the same snapshot.
        sim.set_quotes(ACCOUNT, quote(126_500));
        lose(&sim, 600);
        syncs(&tree, 1).await;
        until("the other symbols closed", || {
            sim.positions(ACCOUNT).iter().all(|p| p.symbol == "GBPUSD")
        })
        .await;
        let left: Vec<String> = sim
            .positions(ACCOUNT)
            .iter()
            .map(|p| p.symbol.clone())
            .collect();
        let trail = kinds(&db).await;
        assert!(
            !left.is_empty() && left.iter().all(|s| s == "GBPUSD"),
            "{label}: only GBPUSD waits: {left:?} {trail:?}"
        );
        // Its close is still pending (for its market), not done.
        let start = std::time::Instant::now();
        let status = loop {
            let status = breach_alert(&db).await.status;
            if status != store::AlertStatus::Closing || start.elapsed() > Duration::from_secs(30) {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(
            status == store::AlertStatus::PendingClose || sim.positions(ACCOUNT).is_empty(),
            "{label}: {status} while GBPUSD waits"
        );
        // Calm snapshots follow: the guard clears and the rest closes.
        until("the waiting positions closed", || {
            sim.positions(ACCOUNT).is_empty()
        })
        .await;
        // The last closes' audit events follow their answers.
        tokio::time::sleep(Duration::from_secs(5)).await;
        flush(&tree).await;
        let k = kinds(&db).await;
        let postponed = k
            .iter()
            .position(|x| x == "close_postponed")
            .expect("postponed");
        let last_confirm = k.iter().rposition(|x| x == "close_confirmed").unwrap();
        assert!(postponed < last_confirm, "{label}: {k:?}");
        tree.abort().await;
        tokio::time::resume();
    }
}

#[tokio::test]
async fn a_close_that_times_out_is_checked_not_doubled() {
    for (label, db) in common::databases().await {
        let sim = flat_sim();
        let positions = sim.positions(ACCOUNT).len() as u64;
        // The first close goes through at the broker, but its answer never comes.
        sim.push_close_faults(ACCOUNT, [Fault::Timeout]);
        tokio::time::pause();
        let tree = start(&db, &sim, true).await;
        syncs(&tree, 1).await;
        settle().await;
        lose(&sim, 600);
        syncs(&tree, 1).await;
        until("every position closed", || {
            sim.positions(ACCOUNT).is_empty()
        })
        .await;
        // The check of the close whose answer was lost follows its timeout.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(
            sim.close_calls(ACCOUNT),
            positions,
            "{label}: never closed twice"
        );
        flush(&tree).await;
        let trail = store::list_audit(&db, Some(ACCOUNT)).await.unwrap();
        let checked = trail
            .iter()
            .filter(|e| {
                e.kind == "close_confirmed" && e.detail["checked"] == serde_json::json!(true)
            })
            .count();
        assert_eq!(
            checked, 1,
            "{label}: the timed-out close was confirmed by a check"
        );
        tree.abort().await;
        tokio::time::resume();
    }
}
