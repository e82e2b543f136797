//! The PersistenceActor driven directly with messages: what it stores, on SQLite and on
//! PostgreSQL when DATABASE_URL is set.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use mt5_reconciler::actors::PersistenceConfig;
use mt5_reconciler::actors::persistence::{
    Converge, PersistMsg, PersistenceActor, PersistenceArgs,
};
use mt5_reconciler::domain::{Divergence, DivergenceKind, Side, Value};
use mt5_reconciler::store::{self, SyncRunRecord};
use ractor::{ActorRef, OutputPort};
use sea_orm::DatabaseConnection;

use crate::common;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_795_000_000 + secs, 0)
        .single()
        .unwrap_or_default()
}

/// A PersistenceActor over `db` with the default settings.
async fn spawn(db: &DatabaseConnection) -> ActorRef<PersistMsg> {
    spawn_with(db, PersistenceConfig::default()).await
}

async fn spawn_with(db: &DatabaseConnection, config: PersistenceConfig) -> ActorRef<PersistMsg> {
    let args = PersistenceArgs {
        db: db.clone(),
        config,
        events: Arc::new(OutputPort::default()),
    };
    let (actor, _) = ractor::Actor::spawn(None, PersistenceActor, args)
        .await
        .expect("persistence starts");
    actor
}

/// Asks the actor to write everything now.
async fn flush(actor: &ActorRef<PersistMsg>) -> Result<(), String> {
    actor
        .call(PersistMsg::Flush, Some(Duration::from_secs(600)))
        .await
        .expect("flush call")
        .success_or("flush timed out".to_owned())
        .expect("flush reply")
}

fn report(account: &str, at: DateTime<Utc>) -> SyncRunRecord {
    SyncRunRecord {
        account_id: account.to_owned(),
        started_at: at,
        finished_at: at,
        duration: Duration::from_millis(5),
        positions: 1,
        trades: 0,
        divergences_opened: 0,
        divergences_resolved: 0,
        error_class: None,
        error_message: None,
    }
}

/// A position at the broker that the bot does not know.
fn unexpected(symbol: &str, ticket: u64) -> Divergence {
    Divergence::new(
        DivergenceKind::UnexpectedAtBroker,
        symbol.to_owned(),
        Some(ticket),
        None,
        None,
        Some(Value::Side(Side::Buy)),
        None,
    )
}

fn converge(account: &str, at: DateTime<Utc>, desired: Vec<Divergence>) -> PersistMsg {
    PersistMsg::Converge(Box::new(Converge {
        account_id: account.to_owned(),
        at,
        desired,
        seq: 1,
        ack_to: None,
        report: report(account, at),
    }))
}

#[tokio::test]
async fn a_ticket_above_i64_max_is_stored_exactly_alongside_other_accounts() {
    let big = 1u64 << 63;
    for (label, db) in common::databases().await {
        let actor = spawn(&db).await;
        actor
            .cast(converge("acc-big", t(1), vec![unexpected("EURUSD", big)]))
            .unwrap();
        for i in 0..3 {
            let account = format!("acc-{i}");
            actor
                .cast(converge(
                    &account,
                    t(1),
                    vec![unexpected("GBPUSD", 1_000 + i)],
                ))
                .unwrap();
        }
        flush(&actor)
            .await
            .unwrap_or_else(|e| panic!("{label}: flush failed: {e}"));
        let stored = store::open_divergences(&db, "acc-big").await.unwrap();
        assert_eq!(stored.len(), 1, "{label}");
        assert_eq!(stored[0].divergence.ticket, Some(big), "{label}");
        for i in 0..3 {
            let rows = store::open_divergences(&db, &format!("acc-{i}"))
                .await
                .unwrap();
            assert_eq!(rows.len(), 1, "{label}: acc-{i}");
        }
        actor.stop(None);
    }
}
