//! Closes across a failover, on PostgreSQL: a guard actor of instance B (lease epoch 2)
//! takes over an alert instance A (epoch 1) left `closing`, verifies at the broker what A
//! may have closed before anything is sent, closes what is still open exactly once; and
//! the intents' statements on their own (one intent per account, ticket and alert).
//!
//! Waits poll with a generous bound and assert only what ends up true.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use mt5_reconciler::actors::PersistMsg;
use mt5_reconciler::actors::guard::{GuardActor, GuardArgs, GuardMsg, ServiceCloses};
use mt5_reconciler::actors::persistence::{PersistenceActor, PersistenceArgs};
use mt5_reconciler::actors::{PersistenceConfig, PersistenceHandle};
use mt5_reconciler::broker::sim::SimBroker;
use mt5_reconciler::broker::{BoxFuture, Broker, BrokerError};
use mt5_reconciler::clock::Clock;
use mt5_reconciler::domain::{
    AccountSnapshot, BrokerPosition, DealLookup, DealReason, ReconcileRules,
};
use mt5_reconciler::guards::Sinks;
use mt5_reconciler::store::{
    self, AlertRecord, AlertStatus, Claimant, Fence, FencedClaim, IntentKey, IntentKind,
    IntentState, Recorded,
};
use ractor::{Actor, ActorRef, OutputPort};
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::common;
use crate::guards::{ACCOUNT, flat_sim, guards};

/// Only a hung test reaches it.
const PATIENCE: Duration = Duration::from_secs(60);
const ALERT: &str = "al-00000000000000a1";

fn fence(instance: &str, epoch: i64) -> Fence {
    Fence {
        instance_id: instance.to_owned(),
        epoch,
    }
}

/// The simulated broker, counting close calls per ticket; its snapshots may still show a
/// position closed since (a snapshot that lags).
struct Counting {
    sim: Arc<SimBroker>,
    closes: Mutex<HashMap<u64, u32>>,
    ghost: Option<BrokerPosition>,
}

impl Counting {
    fn new(sim: &Arc<SimBroker>) -> Arc<Self> {
        Self::lagging(sim, None)
    }

    fn lagging(sim: &Arc<SimBroker>, ghost: Option<BrokerPosition>) -> Arc<Self> {
        Arc::new(Self {
            sim: sim.clone(),
            closes: Mutex::new(HashMap::new()),
            ghost,
        })
    }

    fn calls(&self, ticket: u64) -> u32 {
        self.closes
            .lock()
            .unwrap()
            .get(&ticket)
            .copied()
            .unwrap_or(0)
    }
}

impl Broker for Counting {
    fn snapshot<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<AccountSnapshot, BrokerError>> {
        Box::pin(async move {
            let mut snapshot = self.sim.snapshot(account).await?;
            snapshot.positions.extend(self.ghost.clone());
            Ok(snapshot)
        })
    }

    fn close_position<'a>(
        &'a self,
        account: &'a str,
        ticket: u64,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        *self.closes.lock().unwrap().entry(ticket).or_default() += 1;
        self.sim.close_position(account, ticket)
    }

    fn position_deals<'a>(
        &'a self,
        account: &'a str,
        position_id: u64,
    ) -> BoxFuture<'a, Result<DealLookup, BrokerError>> {
        self.sim.position_deals(account, position_id)
    }
}

/// Instance B's guard of the account, outside any tree, with its own persistence.
struct Guard {
    actor: ActorRef<GuardMsg>,
    persistence: ActorRef<PersistMsg>,
}

impl Guard {
    async fn start(db: &DatabaseConnection, broker: Arc<dyn Broker>, fence: Fence) -> Self {
        let (persistence, _) = Actor::spawn(
            None,
            PersistenceActor,
            PersistenceArgs {
                db: db.clone(),
                config: PersistenceConfig::default(),
                events: Arc::new(OutputPort::default()),
                clock: Clock::real(),
                fenced: Default::default(),
            },
        )
        .await
        .expect("persistence starts");
        let args = GuardArgs {
            account_id: ACCOUNT.into(),
            broker,
            rules: Arc::new(ReconcileRules::default()),
            config: Arc::new(guards(true)),
            sinks: Sinks::default(),
            db: db.clone(),
            persistence: PersistenceHandle::new(persistence.clone()),
            limiter: Arc::new(tokio::sync::Semaphore::new(8)),
            timeout: Duration::from_secs(10),
            closes: ServiceCloses::default(),
            clock: Clock::real(),
            fence: Some(fence),
            fenced: Default::default(),
        };
        let (actor, _) = Actor::spawn(None, GuardActor, args)
            .await
            .expect("guard starts");
        Self { actor, persistence }
    }

    /// The account's audit kinds, once persistence wrote what it holds.
    async fn kinds(&self, db: &DatabaseConnection) -> Vec<String> {
        let flushed = ractor::call!(self.persistence, PersistMsg::Flush).expect("flush");
        flushed.expect("audit written");
        common::audit_kinds(db, ACCOUNT).await
    }

    async fn wait_for_kind(&self, db: &DatabaseConnection, kind: &str) {
        let deadline = std::time::Instant::now() + PATIENCE;
        while !self.kinds(db).await.iter().any(|k| k == kind) {
            assert!(std::time::Instant::now() < deadline, "no {kind} audited");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop(self) {
        self.actor.stop(None);
        self.persistence.stop(None);
    }
}

/// The account's lease, held by `owner` under `epoch` for an hour.
async fn lease(db: &DatabaseConnection, owner: &str, epoch: i64) {
    db.execute_unprepared(&format!(
        "INSERT INTO account_leases (account_id, owner, epoch, expires_at) \
         VALUES ('{ACCOUNT}', '{owner}', {epoch}, now() + interval '1 hour') \
         ON CONFLICT (account_id) DO UPDATE SET owner = EXCLUDED.owner, \
         epoch = EXCLUDED.epoch, expires_at = EXCLUDED.expires_at"
    ))
    .await
    .unwrap();
}

/// The breach alert, stored with its close due in an hour.
async fn pending_alert(db: &DatabaseConnection) {
    let now = Utc::now();
    let stored = store::insert_alert(
        db,
        &AlertRecord {
            id: ALERT.into(),
            account_id: ACCOUNT.into(),
            kind: "breach".into(),
            rule: "max-loss".into(),
            loss: None,
            reference: None,
            message: "max-loss breached".into(),
            close_at: Some(now + chrono::Duration::hours(1)),
            status: AlertStatus::PendingClose,
            created_at: now,
        },
    )
    .await
    .unwrap();
    assert!(stored);
}

/// Instance A's claim of the alert under epoch 1, as A's round left it.
async fn claimed_by_a(db: &DatabaseConnection) {
    db.execute_unprepared(&format!(
        "UPDATE alerts SET status = 'closing', claimed_by = 'A', claimed_epoch = 1 \
         WHERE id = '{ALERT}'"
    ))
    .await
    .unwrap();
}

/// An intent A recorded (and sent) under epoch 1.
async fn sent_by_a(db: &DatabaseConnection, ticket: u64) {
    db.execute_unprepared(&format!(
        "INSERT INTO close_intents \
         (account_id, ticket, alert_id, kind, state, owner, epoch, created_at, updated_at) \
         VALUES ('{ACCOUNT}', '{ticket:020}', '{ALERT}', 'close', 'sent', 'A', 1, now(), now())"
    ))
    .await
    .unwrap();
}

async fn all_closed(sim: &SimBroker) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !sim.positions(ACCOUNT).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "positions left open: {:?}",
            sim.positions(ACCOUNT)
                .iter()
                .map(|p| p.ticket)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn alert_status(db: &DatabaseConnection) -> Option<AlertStatus> {
    store::alert_status(db, ALERT).await.unwrap()
}

async fn wait_alert(db: &DatabaseConnection, status: AlertStatus) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while alert_status(db).await != Some(status) {
        assert!(
            std::time::Instant::now() < deadline,
            "alert never {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn intent_state(db: &DatabaseConnection, ticket: u64) -> Option<IntentState> {
    let key = IntentKey {
        account: ACCOUNT,
        ticket,
        alert: ALERT,
    };
    store::find_intent(db, key).await.unwrap().map(|i| i.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_owner_takes_over_a_close_left_closing_by_the_previous_one() {
    let Some(db) = common::postgres_only().await else {
        return;
    };
    let sim = flat_sim();
    let broker = Counting::new(&sim);
    lease(&db, "B", 2).await;
    pending_alert(&db).await;
    let guard = Guard::start(&db, broker.clone(), fence("B", 2)).await;
    // B's guard took up the pending close (due in an hour); then A, which owned the
    // account under epoch 1 until a moment ago, claims it and dies mid-round.
    guard.wait_for_kind(&db, "enforcement_resumed").await;
    claimed_by_a(&db).await;
    let _ = guard.actor.cast(GuardMsg::RoundDue { generation: 1 });
    all_closed(&sim).await;
    wait_alert(&db, AlertStatus::Closed).await;
    guard.wait_for_kind(&db, "close_claim_taken_over").await;
    guard.stop();
}

/// What B's guard did with the account once A's claim (and A's intent of `ticket`) was
/// left behind: B resumes the `closing` alert, and its round runs at once.
async fn after_failover(
    db: &DatabaseConnection,
    sim: &SimBroker,
    broker: Arc<Counting>,
    ticket: u64,
) -> Vec<String> {
    lease(db, "B", 2).await;
    pending_alert(db).await;
    claimed_by_a(db).await;
    sent_by_a(db, ticket).await;
    let guard = Guard::start(db, broker, fence("B", 2)).await;
    all_closed(sim).await;
    wait_alert(db, AlertStatus::Closed).await;
    guard.wait_for_kind(db, "close_claim_taken_over").await;
    let kinds = guard.kinds(db).await;
    guard.stop();
    kinds
}

fn open_tickets(sim: &SimBroker) -> Vec<u64> {
    sim.positions(ACCOUNT).iter().map(|p| p.ticket).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inherited_close_already_done_at_the_broker_is_not_sent_again() {
    let Some(db) = common::postgres_only().await else {
        return;
    };
    let sim = flat_sim();
    let tickets = open_tickets(&sim);
    // A's close of the first position went through before A lost the account.
    assert!(sim.close_by(ACCOUNT, tickets[0], DealReason::Expert));
    let broker = Counting::new(&sim);
    let kinds = after_failover(&db, &sim, broker.clone(), tickets[0]).await;
    assert_eq!(broker.calls(tickets[0]), 0, "sent again");
    for t in &tickets[1..] {
        assert_eq!(broker.calls(*t), 1, "ticket {t}");
    }
    assert_eq!(intent_state(&db, tickets[0]).await, Some(IntentState::Gone));
    assert!(
        kinds.iter().any(|k| k == "close_verified_gone"),
        "{kinds:?}"
    );
    let closes = store::service_closes(&db, ACCOUNT).await.unwrap();
    assert!(closes.iter().any(|(t, _)| *t == tickets[0]), "{closes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inherited_close_a_lagging_snapshot_shows_open_is_verified_by_its_deals() {
    let Some(db) = common::postgres_only().await else {
        return;
    };
    let sim = flat_sim();
    let first = sim.positions(ACCOUNT)[0].clone();
    assert!(sim.close_by(ACCOUNT, first.ticket, DealReason::Expert));
    // The broker's snapshots still show it; its deals say it closed.
    let broker = Counting::lagging(&sim, Some(first.clone()));
    let kinds = after_failover(&db, &sim, broker.clone(), first.ticket).await;
    assert_eq!(broker.calls(first.ticket), 0, "sent again");
    assert_eq!(
        intent_state(&db, first.ticket).await,
        Some(IntentState::Gone)
    );
    assert!(
        kinds.iter().any(|k| k == "close_verified_gone"),
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inherited_close_still_open_at_the_broker_is_sent_exactly_once() {
    let Some(db) = common::postgres_only().await else {
        return;
    };
    let sim = flat_sim();
    let tickets = open_tickets(&sim);
    let broker = Counting::new(&sim);
    let kinds = after_failover(&db, &sim, broker.clone(), tickets[0]).await;
    for t in &tickets {
        assert_eq!(broker.calls(*t), 1, "ticket {t}");
    }
    let key = IntentKey {
        account: ACCOUNT,
        ticket: tickets[0],
        alert: ALERT,
    };
    // The mark of a confirmed close is written in the background.
    let deadline = std::time::Instant::now() + PATIENCE;
    while intent_state(&db, tickets[0]).await != Some(IntentState::Done) {
        assert!(std::time::Instant::now() < deadline, "intent never done");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let intent = store::find_intent(&db, key).await.unwrap().unwrap();
    assert_eq!((intent.owner.as_deref(), intent.epoch), (Some("B"), 2));
    assert!(
        kinds.iter().any(|k| k == "close_intent_inherited"),
        "{kinds:?}"
    );
    assert!(
        !kinds.iter().any(|k| k == "close_verified_gone"),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn racing_rounds_record_one_intent_and_only_the_lease_holder_records_or_adopts() {
    let Some(db) = common::postgres_only().await else {
        return;
    };
    lease(&db, "B", 2).await;
    let key = IntentKey {
        account: ACCOUNT,
        ticket: 7,
        alert: ALERT,
    };
    let (b, now) = (fence("B", 2), Utc::now());
    let record = || store::record_intent(&db, key, IntentKind::Close, Some(&b), now);
    let (one, two) = tokio::join!(record(), record());
    let mut answers = [one.unwrap(), two.unwrap()];
    answers.sort_by_key(|r| !matches!(r, Recorded::New));
    assert_eq!(answers[0], Recorded::New);
    let Recorded::Existing(existing) = &answers[1] else {
        panic!("{answers:?}");
    };
    assert_eq!((existing.owner.as_deref(), existing.epoch), (Some("B"), 2));
    assert_eq!(existing.state, IntentState::Pending);

    // A, whose lease is gone, records nothing and cannot let a call out.
    let a = fence("A", 1);
    let other = IntentKey { ticket: 8, ..key };
    let stale = store::record_intent(&db, other, IntentKind::Close, Some(&a), now);
    assert_eq!(stale.await.unwrap(), Recorded::NotOwner);
    assert_eq!(store::find_intent(&db, other).await.unwrap(), None);
    let sent = store::mark_intent(&db, key, Some(&a), IntentState::Sent, None, now);
    assert!(!sent.await.unwrap());

    // The lease moves to C: C adopts B's intent once; B can no longer mark it.
    lease(&db, "C", 3).await;
    let c = fence("C", 3);
    assert!(store::adopt_intent(&db, existing, &c, now).await.unwrap());
    assert!(!store::adopt_intent(&db, existing, &c, now).await.unwrap());
    let by_b = store::mark_intent(&db, key, Some(&b), IntentState::Done, None, now);
    assert!(!by_b.await.unwrap());
    let by_c = store::mark_intent(&db, key, Some(&c), IntentState::Sent, None, now);
    assert!(by_c.await.unwrap());
    let gone = store::mark_intent(&db, key, Some(&c), IntentState::Gone, None, now);
    assert!(gone.await.unwrap());
    // Final: nothing moves it again.
    let again = store::mark_intent(&db, key, Some(&c), IntentState::Failed, Some("x"), now);
    assert!(!again.await.unwrap());
    assert!(
        store::open_intents(&db, ACCOUNT, ALERT)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_close_left_closing_is_taken_over_only_by_a_newer_epoch_holding_the_lease() {
    let Some(db) = common::postgres_only().await else {
        return;
    };
    let now = Utc::now();
    lease(&db, "B", 2).await;
    pending_alert(&db).await;
    claimed_by_a(&db).await;
    let claim = |f: Fence| {
        let db = db.clone();
        async move {
            store::claim_close_fenced(&db, ALERT, &f, now)
                .await
                .unwrap()
        }
    };
    // A no longer holds the lease: it cannot claim again.
    assert_eq!(claim(fence("A", 1)).await, FencedClaim::NotOwner);
    let from_a = Claimant {
        owner: Some("A".into()),
        epoch: Some(1),
    };
    assert_eq!(
        claim(fence("B", 2)).await,
        FencedClaim::Won { from: Some(from_a) }
    );
    // B's own retry.
    assert_eq!(claim(fence("B", 2)).await, FencedClaim::Won { from: None });
    // An older epoch holding a lease row by mistake still never takes a newer claim.
    lease(&db, "A", 1).await;
    assert_eq!(
        claim(fence("A", 1)).await,
        FencedClaim::Lost(AlertStatus::Closing)
    );
    lease(&db, "C", 3).await;
    assert_eq!(claim(fence("B", 2)).await, FencedClaim::NotOwner);
    let from_b = Claimant {
        owner: Some("B".into()),
        epoch: Some(2),
    };
    assert_eq!(
        claim(fence("C", 3)).await,
        FencedClaim::Won { from: Some(from_b) }
    );
}
