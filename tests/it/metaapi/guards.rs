//! The guards through the MetaApi adapter, against the fake MetaApi: a breach closes every
//! position even when reconciliation cannot run; while it holds, positions the bot opens
//! are closed too; a refused close is retried until the position is closed; no close runs
//! for an alert another closer claimed or an operator cancelled; and the bot's trades of
//! the positions closed are reported as closed by the service.
//!
//! Real sockets, so real time: the lead is short, and the tests wait for outcomes
//! (bounded in real time only as a guard against hanging), never for how long they took.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mt5_reconciler::broker::Connector;
use mt5_reconciler::guards::GuardsConfig;
use mt5_reconciler::service::Reconciler;
use mt5_reconciler::store;
use sea_orm::{DatabaseConnection, EntityTrait};

use super::fake::{FakeMetaApi, POSITIONS, Script};
use super::{
    TOKEN, acc, broker, everything_said, flush, import, import_text, metaapi, start_tree,
    three_positions, tree_config,
};
use crate::common::{self, BrokenTrades, audit_kinds};

/// A max-loss rule every account breaches at once: the fake's equity, 7306.65, is a 27 %
/// loss of 10 000 (and stays so after the closes: the breach holds). `auto_close` accounts
/// close after `lead` seconds.
fn guards(auto_close: &[&str], lead: u64) -> GuardsConfig {
    GuardsConfig {
        alert_lead_secs: lead,
        auto_close: auto_close.iter().map(|a| (*a).to_owned()).collect(),
        drawdown: vec![common::max_loss_rule()],
        ..GuardsConfig::default()
    }
}

/// The tree over `connectors`, each account (id, connector) on the named one.
async fn start(
    db: &DatabaseConnection,
    connectors: HashMap<String, Connector>,
    accounts: &[(&str, &str)],
    guards: GuardsConfig,
) -> Reconciler {
    let mut config = tree_config();
    config.guards = guards;
    start_tree(db, connectors, accounts, config).await
}

/// Waits until `cond` holds, polling every 20 ms; gives up after 30 s of real time (a guard
/// against hanging, not a timing assertion).
async fn until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The account's breach alert, once stored.
async fn breach_alert(db: &DatabaseConnection, account: &str) -> store::AlertRecord {
    let mut found = None;
    until("a stored breach alert", async || {
        found = store::list_alerts(db, Some(account), 10)
            .await
            .expect("alerts")
            .into_iter()
            .find(|a| a.kind == "breach");
        found.is_some()
    })
    .await;
    found.expect("a breach alert")
}

/// Waits until the account's breach alert says every position was closed.
async fn alert_closed(db: &DatabaseConnection, account: &str) {
    until("the breach alert to say closed", async || {
        breach_alert(db, account).await.status == store::AlertStatus::Closed
    })
    .await;
}

/// The account's audit kinds, once the persistence buffer is flushed.
async fn kinds(tree: &Reconciler, db: &DatabaseConnection, account: &str) -> Vec<String> {
    flush(tree).await;
    audit_kinds(db, account).await
}

fn count(kinds: &[String], kind: &str) -> usize {
    kinds.iter().filter(|k| *k == kind).count()
}

/// MetaApi's documented position under `id`, on `symbol`.
fn position(id: u64, symbol: &str) -> serde_json::Value {
    let list: Vec<serde_json::Value> = serde_json::from_str(POSITIONS).expect("fixture");
    let mut p = list[0].clone();
    p["id"] = serde_json::json!(id.to_string());
    p["symbol"] = serde_json::json!(symbol);
    p["clientId"] = serde_json::json!(format!("AS_{symbol}_{id}"));
    p
}

/// The bot's trade of [`position`] `id` on `symbol`, matching it.
fn bot_trade(id: u64, symbol: &str) -> serde_json::Value {
    serde_json::json!({
        "id": format!("AS_{symbol}_{id}"), "symbol": symbol, "side": "buy", "volume": "0.1",
        "entry_price": "1.05782", "sl": "0.99876", "ticket": id,
        "opened_at": "2020-04-17T04:30:03Z",
    })
}

/// Registers `account` with these open trades of the bot.
async fn bot_trades(db: &DatabaseConnection, account: &str, trades: &[serde_json::Value]) {
    let text = serde_json::Value::Array(trades.to_vec()).to_string();
    import_text(db, account, &text).await;
}

/// Two accounts whose reconciliation never works: one whose bot trades cannot be read, one
/// holding a symbol MetaApi does not know (no pip size, and the bot trades it too). Their
/// syncs fail, yet each breach closes every position through MetaApi.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breach_closes_every_position_when_reconciliation_cannot_run() {
    for (label, db) in common::databases().await {
        let widget = serde_json::json!([
            position(46648037, "AUDNZD"),
            position(46648038, "AUDNZD"),
            position(777, "WIDGET"),
        ]);
        let fake = FakeMetaApi::start(
            TOKEN,
            &[
                ("ma-unread", Script::Positions(three_positions())),
                ("ma-widget", Script::Positions(widget.to_string())),
            ],
        )
        .await;
        let broker = broker(&fake, &["unread", "widget"]);
        bot_trades(
            &db,
            "widget",
            &[bot_trade(46648037, "AUDNZD"), bot_trade(777, "WIDGET")],
        )
        .await;
        let mut connectors = metaapi(&db, &broker);
        connectors.insert(
            "metaapi-unread".to_owned(),
            Connector {
                broker: broker.clone(),
                trades: Arc::new(BrokenTrades),
            },
        );
        let accounts = [("unread", "metaapi-unread"), ("widget", "metaapi")];
        let tree = start(&db, connectors, &accounts, guards(&["unread", "widget"], 1)).await;
        for account in ["unread", "widget"] {
            let theirs = format!("ma-{account}");
            until("every position closed", async || {
                fake.open(&theirs).is_empty()
            })
            .await;
            alert_closed(&db, account).await;
            assert_eq!(fake.count(&theirs, "trade"), 3, "{label} {account}");
        }
        let s = tree.status().await.expect("status");
        assert_eq!(
            acc(&s, "unread").syncs_ok,
            0,
            "{label}: the bot's trades were never read"
        );
        flush(&tree).await;
        let runs = store::entities::sync_run::Entity::find()
            .all(&db)
            .await
            .expect("sync runs");
        let failed = |account: &str, says: &str| {
            runs.iter().any(|r| {
                r.account_id == account
                    && r.error_message.as_deref().is_some_and(|m| m.contains(says))
            })
        };
        assert!(failed("unread", "bot_trades unreadable"), "{label}");
        assert!(failed("widget", "WIDGET"), "{label}: {runs:?}");
        for account in ["unread", "widget"] {
            let k = audit_kinds(&db, account).await;
            assert_eq!(count(&k, "close_confirmed"), 3, "{label} {account}: {k:?}");
        }
        assert!(
            !everything_said(&tree, &db).await.contains(TOKEN),
            "{label}"
        );
        tree.shutdown(Duration::from_secs(5)).await;
    }
}

/// A breach closes each position once through MetaApi's trade endpoint after the alert
/// lead; every step is in the audit trail and the token is never said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drawdown_breach_closes_every_position_through_metaapi() {
    for (label, db) in common::databases().await {
        let fake =
            FakeMetaApi::start(TOKEN, &[("ma-acc-g", Script::Positions(three_positions()))]).await;
        let broker = broker(&fake, &["acc-g"]);
        import(&db, "acc-g").await;
        let tree = start(
            &db,
            metaapi(&db, &broker),
            &[("acc-g", "metaapi")],
            guards(&["acc-g"], 1),
        )
        .await;
        alert_closed(&db, "acc-g").await;
        assert!(fake.open("ma-acc-g").is_empty(), "{label}");
        assert_eq!(
            fake.count("ma-acc-g", "trade"),
            3,
            "{label}: one close per position"
        );
        let k = kinds(&tree, &db, "acc-g").await;
        for want in [
            "guard_breach",
            "alert_sent",
            "close_scheduled",
            "close_requested",
        ] {
            assert!(k.iter().any(|x| x == want), "{label}: no {want} in {k:?}");
        }
        assert_eq!(count(&k, "close_confirmed"), 3, "{label}: {k:?}");
        assert!(
            !everything_said(&tree, &db).await.contains(TOKEN),
            "{label}"
        );
        tree.shutdown(Duration::from_secs(5)).await;
    }
}

/// After the breach's close, the bot (unaware of it) opens two positions at MetaApi: the
/// breach still holds, so they are closed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_opened_while_a_breach_holds_are_closed_through_metaapi() {
    for (label, db) in common::databases().await {
        let fake =
            FakeMetaApi::start(TOKEN, &[("ma-acc-r", Script::Positions(three_positions()))]).await;
        let broker = broker(&fake, &["acc-r"]);
        import(&db, "acc-r").await;
        let tree = start(
            &db,
            metaapi(&db, &broker),
            &[("acc-r", "metaapi")],
            guards(&["acc-r"], 1),
        )
        .await;
        until("every position closed", async || {
            fake.open("ma-acc-r").is_empty()
        })
        .await;
        alert_closed(&db, "acc-r").await;
        assert_eq!(fake.count("ma-acc-r", "trade"), 3, "{label}");
        let alert = breach_alert(&db, "acc-r").await;

        let reopened =
            serde_json::json!([position(46648100, "AUDNZD"), position(46648101, "AUDNZD"),]);
        fake.set_positions("ma-acc-r", reopened.to_string());
        until("the reopened positions closed", async || {
            fake.open("ma-acc-r").is_empty()
        })
        .await;
        assert_eq!(
            fake.count("ma-acc-r", "trade"),
            5,
            "{label}: one close per position"
        );
        let mut k = Vec::new();
        until("every close recorded", async || {
            k = kinds(&tree, &db, "acc-r").await;
            count(&k, "close_confirmed") == 5
        })
        .await;
        assert!(k.iter().any(|x| x == "close_again"), "{label}: {k:?}");
        assert_eq!(count(&k, "close_requested"), 5, "{label}: {k:?}");
        let breaches = store::list_alerts(&db, Some("acc-r"), 10)
            .await
            .expect("alerts")
            .into_iter()
            .filter(|a| a.kind == "breach")
            .count();
        assert_eq!(breaches, 1, "{label}: the same breach, the same alert");
        assert_eq!(breach_alert(&db, "acc-r").await.id, alert.id, "{label}");
        tree.shutdown(Duration::from_secs(5)).await;
    }
}

/// MetaApi refuses two closes (a 500, then a trade answer saying the market is closed):
/// the positions stay open, a fresh look finds them so, and a later round closes them.
/// Every attempt is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closes_metaapi_refuses_are_retried_until_the_positions_are_closed() {
    for (label, db) in common::databases().await {
        let fake =
            FakeMetaApi::start(TOKEN, &[("ma-acc-f", Script::Positions(three_positions()))]).await;
        fake.answer_trades(
            "ma-acc-f",
            [
                (
                    500,
                    r#"{"id": 5, "error": "InternalError", "message": "oops"}"#.to_owned(),
                ),
                (
                    200,
                    r#"{"numericCode": 10018, "stringCode": "TRADE_RETCODE_MARKET_CLOSED", "message": "Market closed"}"#
                        .to_owned(),
                ),
            ],
        );
        let broker = broker(&fake, &["acc-f"]);
        import(&db, "acc-f").await;
        let tree = start(
            &db,
            metaapi(&db, &broker),
            &[("acc-f", "metaapi")],
            guards(&["acc-f"], 1),
        )
        .await;
        until("every position closed", async || {
            fake.open("ma-acc-f").is_empty()
        })
        .await;
        alert_closed(&db, "acc-f").await;
        let statuses: Vec<u16> = fake
            .seen("ma-acc-f")
            .iter()
            .filter(|r| r.endpoint == "trade")
            .map(|r| r.status)
            .collect();
        assert_eq!(
            statuses.len(),
            5,
            "{label}: two refused, then one per position"
        );
        assert_eq!(count_of(&statuses, 500), 1, "{label}: {statuses:?}");
        let mut k = Vec::new();
        until("every close recorded", async || {
            k = kinds(&tree, &db, "acc-f").await;
            count(&k, "close_confirmed") == 3
        })
        .await;
        assert_eq!(
            count(&k, "close_requested"),
            5,
            "{label}: every attempt audited: {k:?}"
        );
        assert_eq!(count(&k, "close_failed"), 2, "{label}: {k:?}");
        let failures: Vec<String> = store::list_audit(&db, Some("acc-f"))
            .await
            .expect("audit")
            .into_iter()
            .filter(|e| e.kind == "close_failed")
            .map(|e| e.detail.to_string())
            .collect();
        assert!(
            failures.iter().any(|d| d.contains("HTTP 500")),
            "{label}: {failures:?}"
        );
        assert!(
            failures
                .iter()
                .any(|d| d.contains("TRADE_RETCODE_MARKET_CLOSED")),
            "{label}: {failures:?}"
        );
        tree.shutdown(Duration::from_secs(5)).await;
    }
}

fn count_of(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// Another closer claims the stored alert within the lead: this guard's rounds leave it
/// to that closer, and no close reaches MetaApi.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_claimed_by_another_closer_sends_no_close_to_metaapi() {
    for (label, db) in common::databases().await {
        let fake =
            FakeMetaApi::start(TOKEN, &[("ma-acc-c", Script::Positions(three_positions()))]).await;
        let broker = broker(&fake, &["acc-c"]);
        import(&db, "acc-c").await;
        let tree = start(
            &db,
            metaapi(&db, &broker),
            &[("acc-c", "metaapi")],
            guards(&["acc-c"], 5),
        )
        .await;
        let alert = breach_alert(&db, "acc-c").await;
        let claimed = common::claim_elsewhere(&db, &alert.id).await;
        assert!(claimed, "{label}: claimed before the lead ended");
        until("two rounds left to the claimant", async || {
            count(&kinds(&tree, &db, "acc-c").await, "close_left_to_claimant") >= 2
        })
        .await;
        assert_eq!(
            fake.count("ma-acc-c", "trade"),
            0,
            "{label}: closed a claimed alert"
        );
        assert_eq!(fake.open("ma-acc-c").len(), 3, "{label}");
        let k = kinds(&tree, &db, "acc-c").await;
        assert_eq!(count(&k, "close_requested"), 0, "{label}: {k:?}");
        tree.shutdown(Duration::from_secs(5)).await;
    }
}

/// An operator cancels the enforcement within the lead: once the close was due and more
/// snapshots came, nothing reached MetaApi's trade endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_enforcement_sends_no_close_to_metaapi() {
    for (label, db) in common::databases().await {
        let fake =
            FakeMetaApi::start(TOKEN, &[("ma-acc-x", Script::Positions(three_positions()))]).await;
        let broker = broker(&fake, &["acc-x"]);
        import(&db, "acc-x").await;
        let tree = start(
            &db,
            metaapi(&db, &broker),
            &[("acc-x", "metaapi")],
            guards(&["acc-x"], 3),
        )
        .await;
        let alert = breach_alert(&db, "acc-x").await;
        assert_eq!(alert.status, store::AlertStatus::PendingClose, "{label}");
        let outcome = store::cancel_enforcement(&db, &alert.id, chrono::Utc::now(), "test", "ok")
            .await
            .expect("cancel");
        assert_eq!(outcome, store::CancelOutcome::Cancelled, "{label}");
        // Past the close's due time (a wait for that moment, not a timing check), then a
        // few more snapshots the guard sees.
        let due = alert.close_at.expect("a pending close has a due time");
        until("the close's due time to pass", async || {
            chrono::Utc::now() > due + chrono::Duration::seconds(1)
        })
        .await;
        let seen = fake.count("ma-acc-x", "positions");
        until("more snapshots", async || {
            fake.count("ma-acc-x", "positions") >= seen + 5
        })
        .await;
        assert_eq!(
            fake.count("ma-acc-x", "trade"),
            0,
            "{label}: closed after a cancel"
        );
        assert_eq!(fake.open("ma-acc-x").len(), 3, "{label}");
        assert_eq!(
            breach_alert(&db, "acc-x").await.status,
            store::AlertStatus::Cancelled,
            "{label}"
        );
        tree.shutdown(Duration::from_secs(5)).await;
    }
}

/// The bot has not caught up with the closes: its trades of the positions the guard closed
/// are open divergences `closed_by_service` naming the alert, not `missing_at_broker`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bots_trades_of_closed_positions_are_closed_by_service() {
    for (label, db) in common::databases().await {
        let fake =
            FakeMetaApi::start(TOKEN, &[("ma-acc-b", Script::Positions(three_positions()))]).await;
        let broker = broker(&fake, &["acc-b"]);
        let tickets = [46648037u64, 46648038, 46648039];
        let trades: Vec<serde_json::Value> =
            tickets.iter().map(|t| bot_trade(*t, "AUDNZD")).collect();
        bot_trades(&db, "acc-b", &trades).await;
        let tree = start(
            &db,
            metaapi(&db, &broker),
            &[("acc-b", "metaapi")],
            guards(&["acc-b"], 1),
        )
        .await;
        until("every position closed", async || {
            fake.open("ma-acc-b").is_empty()
        })
        .await;
        let alert = breach_alert(&db, "acc-b").await;
        let mut open = Vec::new();
        until("the closed trades reported", async || {
            flush(&tree).await;
            open = store::open_divergences(&db, "acc-b")
                .await
                .expect("open divergences");
            open.iter()
                .filter(|d| d.divergence.kind.as_str() == "closed_by_service")
                .count()
                == tickets.len()
        })
        .await;
        let kinds: Vec<&str> = open.iter().map(|d| d.divergence.kind.as_str()).collect();
        assert!(
            !kinds.contains(&"missing_at_broker"),
            "{label}: the service's own closes reported as missing: {kinds:?}"
        );
        for d in &open {
            assert_eq!(
                d.divergence.actual.as_ref().map(ToString::to_string),
                Some(alert.id.clone()),
                "{label}: {d:?}"
            );
        }
        // More syncs change nothing.
        let s = tree.status().await.expect("status");
        let done = acc(&s, "acc-b").syncs_ok;
        super::wait_for(&tree, "more syncs", |s| {
            acc(s, "acc-b").syncs_ok >= done + 2
        })
        .await;
        flush(&tree).await;
        let again: Vec<String> = store::open_divergences(&db, "acc-b")
            .await
            .expect("open divergences")
            .iter()
            .map(|d| d.divergence.kind.to_string())
            .collect();
        assert_eq!(again, ["closed_by_service"; 3], "{label}");
        tree.shutdown(Duration::from_secs(5)).await;
    }
}
