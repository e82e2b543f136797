//! A trading day through the real tree: the simulated broker and the whole tree read one
//! clock that follows paused tokio time, so a daily reset (here on the day New York
//! springs forward) is reached by advancing tokio time, not by sleeping.
//!
//! Phases that wait for the database run with tokio time resumed, as elsewhere: paused
//! time, and the clock with it, would otherwise run ahead while a query is in flight.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use mt5_reconciler::clock::Clock;
use mt5_reconciler::guards::GuardsConfig;
use mt5_reconciler::guards::alerts::alert_id;
use mt5_reconciler::guards::config::DrawdownConfig;
use mt5_reconciler::store::{self, AlertStatus};
use rust_decimal::Decimal;
use sea_orm::DatabaseConnection;

use crate::common;
use crate::guards::{ACCOUNT, flat_sim_on, kinds, lose, settle, start_on_clock, syncs, until};
use crate::tree::flush;

const RULE: &str = "daily";

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("a valid instant")
}

fn day(text: &str) -> NaiveDate {
    text.parse().expect("a valid date")
}

/// A 5 % daily loss that closes every position, the day starting at 17:00 in New York.
fn daily_loss() -> GuardsConfig {
    GuardsConfig {
        alert_lead_secs: 10,
        auto_close: vec![ACCOUNT.into()],
        drawdown: vec![DrawdownConfig {
            name: RULE.into(),
            accounts: vec!["*".into()],
            kind: "daily_loss".into(),
            reference: Some("balance".into()),
            reset_at: Some("17:00".into()),
            time_zone: Some("America/New_York".into()),
            initial_balance: None,
            basis: None,
            warn: "4%".into(),
            breach: "5%".into(),
        }],
        ..GuardsConfig::default()
    }
}

/// The stored alert `id`, once it is there and `ready` holds for it (bounded in real
/// time: a guard against hanging, not a timing assertion).
async fn alert_when(
    db: &DatabaseConnection,
    id: &str,
    ready: impl Fn(&store::AlertRecord) -> bool,
) -> store::AlertRecord {
    let start = std::time::Instant::now();
    loop {
        let alerts = store::list_alerts(db, Some(ACCOUNT), 20).await.unwrap();
        if let Some(a) = alerts.into_iter().find(|a| a.id == id && ready(a)) {
            return a;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "gave up waiting for alert {id}: {:?}",
            store::list_alerts(db, Some(ACCOUNT), 20).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (real time) until the audit trail holds `kind`; returns the first such event.
async fn audited(db: &DatabaseConnection, kind: &str) -> store::AuditEvent {
    let start = std::time::Instant::now();
    loop {
        let trail = store::list_audit(db, Some(ACCOUNT)).await.unwrap();
        if let Some(e) = trail.into_iter().find(|e| e.kind == kind) {
            return e;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "gave up waiting for {kind}: {:?}",
            kinds(db).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_daily_breach_ends_with_its_trading_day_across_the_spring_forward_reset() {
    // 17:00 in New York on 2026-03-08 is 21:00 UTC (daylight time since 07:00 UTC); the
    // day that ends then began at 22:00 UTC the evening before: 23 hours.
    let reset = at("2026-03-08T21:00:00Z");
    let standard_time_reset = at("2026-03-08T22:00:00Z");
    let (first, second) = (day("2026-03-07"), day("2026-03-08"));
    for (label, db) in common::databases().await {
        tokio::time::pause();
        let clock = Clock::following_tokio(at("2026-03-08T20:30:00Z"));
        let sim = flat_sim_on(clock);
        let positions = sim.positions(ACCOUNT).len() as u64;
        let connector = mt5_reconciler::broker::Connector {
            broker: sim.clone(),
            trades: sim.clone(),
        };
        let tree = start_on_clock(&db, connector, daily_loss(), clock).await;
        syncs(&tree, 1).await;
        settle().await;

        // The first trading day: a 6 % loss of the day's 10 000 breaches; after the lead
        // every position is closed and the loss is realised.
        lose(&sim, 600);
        syncs(&tree, 2).await;
        tokio::time::sleep(Duration::from_secs(15)).await;
        tokio::time::resume();
        until("every position closed", || {
            sim.positions(ACCOUNT).is_empty()
        })
        .await;
        sim.set_balance(ACCOUNT, Decimal::from(9_400));
        let breach_id = alert_id(ACCOUNT, RULE, "breach", first);
        let breach = alert_when(&db, &breach_id, |a| a.status == AlertStatus::Closed).await;
        assert_eq!(sim.close_calls(ACCOUNT), positions, "{label}");
        assert!(
            breach.created_at < reset && clock.now() < reset,
            "{label}: the first day's breach happens before the reset ({} / {})",
            breach.created_at,
            clock.now()
        );

        // The next trading day begins at 17:00 New York time: tokio time runs past it.
        tokio::time::pause();
        let to_reset = (reset - clock.now()).to_std().unwrap();
        tokio::time::sleep(to_reset + Duration::from_secs(60)).await;
        syncs(&tree, 2).await;
        tokio::time::resume();
        flush(&tree).await;
        let ended = audited(&db, "enforcement_ended").await;
        assert_eq!(ended.detail["alert"], breach_id.as_str(), "{label}");
        assert!(
            reset <= ended.at && ended.at < standard_time_reset,
            "{label}: the breach ends at 17:00 daylight time, not standard time: {}",
            ended.at
        );
        alert_when(&db, &breach_id, |a| a.status == AlertStatus::Ended).await;

        // A new loss counts from the new day's reference (9 400), not the old (10 000):
        // 400 is a warning (4.3 %), where it would be a breach (10 %) against yesterday.
        let mut reopened = flat_sim_on(Clock::real()).positions(ACCOUNT);
        reopened.truncate(1);
        reopened[0].ticket = 8_000_001;
        reopened[0].identifier = 8_000_001;
        reopened[0].profit = Decimal::from(-400);
        sim.set_positions(ACCOUNT, reopened);
        tokio::time::pause();
        syncs(&tree, 3).await;
        tokio::time::resume();
        flush(&tree).await;
        let warn = alert_when(&db, &alert_id(ACCOUNT, RULE, "warn", second), |_| true).await;
        assert_eq!(
            (warn.loss, warn.reference),
            (Some(Decimal::from(400)), Some(Decimal::from(9_400))),
            "{label}"
        );
        let k = kinds(&db).await;
        assert_eq!(
            k.iter().filter(|x| *x == "guard_breach").count(),
            1,
            "{label}: one breach, on the first day: {k:?}"
        );
        assert_eq!(
            sim.close_calls(ACCOUNT),
            positions,
            "{label}: nothing closed"
        );
        tree.abort().await;
    }
}
