//! UserSyncActor: one per account. On each `Sync` it fetches the broker snapshot (with a
//! timeout, under the global cap on broker calls) and hands it to the account's guards
//! first; then it loads the bot's open trades (with a timeout), runs the pure
//! `reconcile`, and sends the account's divergence state to persistence when it differs
//! from what persistence last acknowledged. A trade whose position vanished or shrank has
//! the position's deals looked up (`close_lookups`) to say how the broker closed it. It
//! reports every outcome to the supervisor, whose circuit breaker decides what a failure
//! of the broker means.
//!
//! A failed snapshot is never read as "flat": the sync fails and nothing is resolved.
//! A failure after a good snapshot (the trades, the reconciliation) is reported as such:
//! it does not hold the broker loop, so the guards keep their snapshots.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::Instrument;

use super::close_lookups;
use super::guard::{GuardHandle, GuardMsg, ServiceCloses};
use super::persistence::{AckTo, Converge, PersistMsg, PersistenceHandle};
use super::supervisor::{SupervisorMsg, SyncOutcome, SyncStats};
use crate::broker::{BrokerError, Connector, ErrorClass, Needs};
use crate::clock::Clock;
use crate::domain::close_tracker::hold_awaiting;
use crate::domain::{
    Book, CloseLookups, Divergence, DivergenceKind, Holding, Judge, ReconcileRules, Reconciliation,
    reconcile_book, relabel_service_closes,
};
use crate::store::{Fence, SyncRunRecord};

/// Messages of a UserSyncActor.
#[derive(Debug)]
pub enum UserSyncMsg {
    /// Run one sync now.
    Sync,
    /// Persistence made the state sent with `seq` durable.
    Acked {
        /// The sequence number of the acknowledged state.
        seq: u64,
    },
}

#[cfg(feature = "cluster")]
impl ractor::Message for UserSyncMsg {}

/// Dependencies of a UserSyncActor.
pub struct UserSyncArgs {
    /// The account.
    pub account_id: String,
    /// Its broker and trade source.
    pub connector: Connector,
    /// Tolerances and pip sizes.
    pub rules: Arc<ReconcileRules>,
    /// Where writes go (survives persistence restarts).
    pub persistence: PersistenceHandle,
    /// Where outcomes go.
    pub supervisor: ActorRef<SupervisorMsg>,
    /// The global cap on broker calls in flight.
    pub limiter: Arc<Semaphore>,
    /// Timeout of one broker call.
    pub timeout: Duration,
    /// The account's guard actor, when it has guards: every snapshot goes there first.
    pub guard: Option<GuardHandle>,
    /// What its snapshots must carry besides the positions (pending orders are asked for
    /// when a trade has no position).
    pub needs: Needs,
    /// The positions this service closed (their trades are `closed_by_service`).
    pub closes: ServiceCloses,
    /// The wall clock of the sync reports.
    pub clock: Clock,
    /// Where the last reconciled sync is shown (the dashboard's account page).
    pub live: super::LiveSlot,
    /// The account's lease under high availability (owner and epoch); `None` otherwise.
    pub fence: Option<Fence>,
}

/// The actor (empty: everything lives in its state).
pub struct UserSyncActor;

/// Its state: dependencies, the judge's memory, and what persistence has acknowledged.
pub struct UserSyncState {
    args: UserSyncArgs,
    /// Grace windows and confirmation streaks across syncs.
    judge: Judge,
    /// The positions trades were matched with, and the deal lookups under way.
    lookups: CloseLookups,
    /// The state persistence acknowledged; `None` until the first ack.
    durable: Option<Sent>,
    /// The last state sent and not yet acknowledged.
    pending: Option<(u64, Sent)>,
    seq: u64,
}

/// An account's divergence state as sent to persistence: fingerprints raised and held
/// (each sorted, distinct).
#[derive(Debug, PartialEq, Eq)]
struct Sent {
    raised: Vec<String>,
    held: Vec<String>,
}

/// Whether a trade has no position (then pending orders may explain it).
fn missing_a_position(result: &Reconciliation) -> bool {
    result
        .divergences
        .iter()
        .any(|d| d.kind == DivergenceKind::MissingAtBroker)
}

/// Sorted, distinct fingerprints.
fn fingerprints(divergences: &[Divergence]) -> Vec<&str> {
    let mut out: Vec<&str> = divergences.iter().map(|d| d.fingerprint.as_str()).collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for UserSyncActor {
    type Msg = UserSyncMsg;
    type State = UserSyncState;
    type Arguments = UserSyncArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: UserSyncArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(UserSyncState {
            args,
            judge: Judge::default(),
            lookups: CloseLookups::default(),
            durable: None,
            pending: None,
            seq: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: UserSyncMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            UserSyncMsg::Sync => {
                let span = tracing::info_span!(
                    "sync",
                    account = %state.args.account_id,
                    run_id = %crate::telemetry::next_run_id()
                );
                let outcome = sync(&myself, state).instrument(span).await;
                let _ = state.args.supervisor.cast(SupervisorMsg::SyncFinished {
                    account_id: state.args.account_id.clone(),
                    actor: myself.get_id(),
                    outcome,
                });
            }
            UserSyncMsg::Acked { seq } => {
                if let Some((pending_seq, _)) = &state.pending
                    && *pending_seq == seq
                {
                    state.durable = state.pending.take().map(|(_, set)| set);
                }
            }
        }
        Ok(())
    }
}

/// One sync. Expected failures are returned, not raised: the supervisor decides.
async fn sync(myself: &ActorRef<UserSyncMsg>, state: &mut UserSyncState) -> SyncOutcome {
    let args = &state.args;
    let account = args.account_id.as_str();
    let started_at = args.clock.now();
    let clock = Instant::now();

    let broker = args.connector.broker.as_ref();
    let fetched = crate::broker::snapshot_for_within(
        broker,
        account,
        args.needs,
        &args.limiter,
        args.timeout,
    )
    .await
    .map(Arc::new);
    // The guards see every good snapshot, whatever happens to the rest of this sync.
    if let (Ok(snapshot), Some(guard)) = (&fetched, &args.guard) {
        guard.send(GuardMsg::Snapshot {
            snapshot: snapshot.clone(),
            requested_at: clock,
        });
    }

    let mut report = SyncRunRecord::begun(account, started_at);
    let fail = |mut report: SyncRunRecord,
                class: ErrorClass,
                message: String,
                retry_after,
                broker_answered| {
        report.finished_at = args.clock.now();
        report.duration = clock.elapsed();
        report.error_class = Some(class.as_str().to_owned());
        report.error_message = Some(message.clone());
        tracing::warn!(class = %class, error = %message, "sync failed");
        args.persistence
            .send(PersistMsg::report(report, args.fence.clone()));
        SyncOutcome::Failed {
            class,
            message,
            retry_after,
            broker_answered,
        }
    };

    let mut snapshot = match fetched {
        Ok(v) => v,
        Err(e) => return fail(report, e.class(), e.to_string(), e.retry_after(), false),
    };
    let trades = tokio::time::timeout(args.timeout, args.connector.trades.open_trades(account))
        .await
        .map_err(|_| BrokerError::Timeout(format!("no bot trades within {:?}", args.timeout)))
        .and_then(|r| r);
    let trades = match trades {
        Ok(t) => t,
        Err(e) => return fail(report, e.class(), e.to_string(), e.retry_after(), true),
    };
    report.positions = snapshot.positions.len();
    report.trades = trades.len();
    // The broker's symbol specifications join the pip rules; configuration wins.
    let broker = args.connector.broker.as_ref();
    let rules = crate::broker::symbols::rules_for(broker, account, &args.rules);
    let scope = args.rules.scopes.for_account(account);
    let mut judged = reconcile_book(&trades, Book::from(&*snapshot), scope, &rules);
    // A trade without a position may be waiting on a pending order: read them if the
    // snapshot came without, and judge again.
    if snapshot.orders.is_none() && judged.as_ref().is_ok_and(missing_a_position) {
        let orders =
            crate::broker::pending_orders_within(broker, account, &args.limiter, args.timeout)
                .await;
        match orders {
            Ok(None) => {}
            Ok(Some(orders)) => {
                Arc::make_mut(&mut snapshot).orders = Some(orders);
                judged = reconcile_book(&trades, Book::from(&*snapshot), scope, &rules);
            }
            Err(e) => return fail(report, e.class(), e.to_string(), e.retry_after(), false),
        }
    }
    let mut result = match judged {
        Ok(r) => r,
        // Unknown pip sizes or duplicate keys: retrying cannot fix the configuration,
        // unless the broker is still loading the missing symbols' specifications.
        Err(e) => {
            let (class, message) = crate::broker::symbols::reconcile_failure(
                broker,
                account,
                &rules,
                &snapshot.positions,
                &e,
            );
            return fail(report, class, message, None, true);
        }
    };
    if !args.closes.is_empty() {
        relabel_service_closes(&mut result.divergences, |t| args.closes.alert_of(t));
        // Once the bot marks the trade closed, the record has done its job.
        args.closes
            .retain(|t| trades.iter().any(|trade| trade.ticket == Some(t)));
    }
    // Vanished and shrunk positions: their closing deals say how the broker closed them.
    let questions = state
        .lookups
        .questions(&trades, &snapshot.positions, &result);
    let answers = if questions.is_empty() {
        Vec::new()
    } else {
        let broker = &args.connector.broker;
        let (deals, limiter) = (&snapshot.deals, &args.limiter);
        close_lookups::answer(broker, account, questions, deals, limiter, args.timeout).await
    };
    let awaiting = state.lookups.settle(
        &mut result.divergences,
        answers,
        &snapshot.deals,
        args.rules.live.close_lookup_syncs,
    );
    report.finished_at = args.clock.now();
    report.duration = clock.elapsed();
    // Only while the account's page is open: nobody else reads it.
    if args.live.wanted() {
        args.live.set(super::LiveView {
            taken_at: snapshot.taken_at,
            positions: snapshot.positions.clone(),
            trades: trades.clone(),
            matched: result.matched.clone(),
            external: result.external.clone(),
        });
    }

    let external = |h: Holding| result.external.iter().filter(|e| e.holding == h).count();
    let external_positions = external(Holding::Position);
    let external_orders = snapshot.orders.is_some().then(|| external(Holding::Order));
    let pending_orders = result.pending.len();
    // Races and unconfirmed observations are held, on the service's own clock.
    let mut verdict = state.judge.judge_reconciliation(
        &trades,
        &snapshot.positions,
        result,
        args.clock.now(),
        &args.rules.live,
    );
    // A close still looked up is neither raised nor resolved (nor is its explained form).
    let forms = hold_awaiting(&mut verdict, awaiting);
    // Compared borrowed and sorted: most syncs change nothing, and then nothing is copied.
    let (raised, held) = (fingerprints(&verdict.raised), fingerprints(&verdict.held));
    let (open, in_flight) = (raised.len(), held.len().saturating_sub(forms));
    let same = |sent: &Sent| {
        sent.raised
            .iter()
            .map(String::as_str)
            .eq(raised.iter().copied())
            && sent
                .held
                .iter()
                .map(String::as_str)
                .eq(held.iter().copied())
    };
    let changed = state.pending.is_some() || state.durable.as_ref().is_none_or(|d| !same(d));
    if changed {
        let owned = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect::<Vec<String>>();
        let sent = Sent {
            raised: owned(raised),
            held: owned(held),
        };
        state.seq += 1;
        let seq = state.seq;
        args.persistence
            .send(PersistMsg::Converge(Box::new(Converge {
                account_id: account.to_owned(),
                at: snapshot.taken_at,
                desired: verdict.raised,
                held: sent.held.clone(),
                seq,
                ack_to: Some({
                    let me = myself.clone();
                    AckTo::new(move |seq| {
                        let _ = me.cast(UserSyncMsg::Acked { seq });
                    })
                }),
                report,
                fence: args.fence.clone(),
            })));
        state.pending = Some((seq, sent));
    } else {
        args.persistence
            .send(PersistMsg::report(report, args.fence.clone()));
    }
    tracing::debug!(
        positions = snapshot.positions.len(),
        open,
        in_flight,
        "sync finished"
    );
    SyncOutcome::Ok(SyncStats {
        positions: snapshot.positions.len(),
        open_divergences: open,
        held_divergences: in_flight,
        external_positions,
        external_orders,
        pending_orders,
        duration: clock.elapsed(),
        equity: snapshot.equity,
    })
}
