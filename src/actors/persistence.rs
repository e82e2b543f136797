//! PersistenceActor: owns the writes. Batches divergence states, sync reports and audit
//! events into transactions of at most `batch_size` items; retries with backoff while the
//! database is away, its buffer bounded meanwhile (see `buffer`); and acknowledges a state
//! only once it is durable, so a sender re-sends what was not.
//!
//! A row the database refuses never blocks the others: it is kept in `dead_letters` and
//! the rest of the batch is written (see `write`).
//!
//! Sync reports that neither failed nor changed a divergence are not kept one by one: every
//! sync counts in its account's rollup of the hour, folded in memory and added to the
//! stored rollup now and then (see `rollups`); only failures and changes stay
//! `sync_runs` rows. A quiet report is folded when it arrives and leaves only its
//! account's latest sighting for `last_seen` (see `sightings`), so it never waits in the
//! buffer.
//!
//! Under high availability every item carries the fence (owner and epoch) of the lease it
//! was produced under; a transaction writes only the items whose lease still holds, and
//! the others are dropped and reported through a [`FenceSink`] (see `chunk`).
//!
//! Divergences arrive as the account's whole desired open set (a [`Converge`]), not as
//! deltas: applying a state twice, or an older state after a crash, cannot duplicate or
//! lose a row. Several states of one account waiting in the buffer collapse to the latest.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef, OutputPort, RpcReplyPort};
use sea_orm::DatabaseConnection;

use super::fencing::{FenceSink, FencedWrites};
use super::status::{DurationHistogram, PersistenceStats};
use crate::clock::Clock;
use crate::domain::Divergence;
use crate::store::{AuditEvent, Converged, Fence, StoreError, SyncRunRecord};

mod buffer;
mod chunk;
mod config;
mod rollups;
mod sightings;
mod write;

use buffer::Buffer;
pub use buffer::BufferSizes;
pub use config::{MAX_PERSISTENCE_DELAY_MS, PersistenceConfig};
use rollups::PendingRollups;
pub use rollups::ROLLUP_WRITE_EVERY;
use sightings::LatestSightings;

/// Something the service reports to a host: durable divergence changes, breaker
/// transitions and alerts (also published on NATS when `[nats]` is configured).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconcilerEvent {
    /// A divergence was opened (committed to the database).
    DivergenceOpened {
        /// Account.
        account_id: String,
        /// The divergence.
        divergence: Divergence,
    },
    /// A divergence was resolved (committed to the database).
    DivergenceResolved {
        /// Account.
        account_id: String,
        /// Its fingerprint.
        fingerprint: String,
    },
    /// An account's circuit breaker changed state (also in the audit trail).
    BreakerTransition {
        /// Account.
        account_id: String,
        /// State before (`running`, `backing_off`, `open`, `half_open`, `disabled`).
        from: String,
        /// State after.
        to: String,
        /// The audit event kind (`backoff_started`, `circuit_opened` …).
        event: String,
        /// Why, when a failure caused it.
        reason: Option<String>,
        /// When.
        at: chrono::DateTime<chrono::Utc>,
    },
    /// An alert (`warn`, `breach`) or a close outcome (`close_confirmed`, `close_failed`
    /// …), as the sinks get it.
    Alert(crate::guards::Alert),
}

/// Where the acknowledgement of a [`Converge`] goes: a callback the sender gives, so this
/// actor needs to know nothing of its senders.
#[derive(Clone)]
pub struct AckTo(Arc<dyn Fn(u64) + Send + Sync>);

impl AckTo {
    /// An acknowledgement that calls `f` with the acknowledged sequence number.
    pub fn new(f: impl Fn(u64) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    fn ack(&self, seq: u64) {
        (self.0)(seq);
    }
}

impl std::fmt::Debug for AckTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AckTo")
    }
}

/// The current persistence actor, swapped when it is restarted, so senders never hold a
/// stale `ActorRef`.
pub type PersistenceHandle = super::handle::SwapRef<PersistMsg>;

/// An account's whole desired set of open divergences, with the report of the sync that
/// observed it.
#[derive(Debug, Clone)]
pub struct Converge {
    /// Account.
    pub account_id: String,
    /// When the sync observed it.
    pub at: DateTime<Utc>,
    /// Every divergence that should be open now.
    pub desired: Vec<Divergence>,
    /// Fingerprints observed but held (in flight, or not yet confirmed): neither opened
    /// nor resolved.
    pub held: Vec<String>,
    /// The sender's sequence number, echoed in the acknowledgement.
    pub seq: u64,
    /// Where the acknowledgement goes.
    pub ack_to: Option<AckTo>,
    /// The sync's report; its opened/resolved counts are filled in here.
    pub report: SyncRunRecord,
    /// The lease it was produced under (high availability); `None` otherwise.
    pub fence: Option<Fence>,
}

/// Messages of the PersistenceActor.
pub enum PersistMsg {
    /// Store an account's divergence state and its sync report.
    Converge(Box<Converge>),
    /// Store a sync report (a sync that changed nothing, or failed).
    Report(SyncRunRecord),
    /// Append to the audit trail.
    Audit(AuditEvent),
    /// Store a sync report produced under a lease: written only while it holds.
    FencedReport(SyncRunRecord, Fence),
    /// Append an account's audit event produced under a lease: written only while it holds.
    FencedAudit(AuditEvent, Fence),
    /// Write everything buffered now, pending rollups included; reply once durable (or
    /// with the error).
    Flush(RpcReplyPort<Result<(), String>>),
    /// Items buffered, and whether the last flush failed.
    QueueDepth(RpcReplyPort<(usize, bool)>),
    /// Queue depth, retry state and flush durations.
    Stats(RpcReplyPort<PersistenceStats>),
    /// Internal: the flush timer fired.
    FlushTick,
}

#[cfg(feature = "cluster")]
impl ractor::Message for PersistMsg {}

impl PersistMsg {
    /// A sync report produced under `fence` (none without high availability).
    pub fn report(r: SyncRunRecord, fence: Option<Fence>) -> Self {
        match fence {
            Some(f) => PersistMsg::FencedReport(r, f),
            None => PersistMsg::Report(r),
        }
    }

    /// An audit event produced under `fence` (none without high availability).
    pub fn audit(a: AuditEvent, fence: Option<Fence>) -> Self {
        match fence {
            Some(f) => PersistMsg::FencedAudit(a, f),
            None => PersistMsg::Audit(a),
        }
    }
}

/// Dependencies of the PersistenceActor.
pub struct PersistenceArgs {
    /// The database.
    pub db: DatabaseConnection,
    /// Settings.
    pub config: PersistenceConfig,
    /// Where durable divergence changes are published.
    pub events: Arc<OutputPort<ReconcilerEvent>>,
    /// The wall clock of dead letters.
    pub clock: Clock,
    /// Where items refused by their fence are reported.
    pub fenced: FenceSink,
}

/// The actor (empty: everything lives in its state).
pub struct PersistenceActor;

/// Its state: the buffer and the retry schedule.
pub struct PersistenceState {
    db: DatabaseConnection,
    config: PersistenceConfig,
    events: Arc<OutputPort<ReconcilerEvent>>,
    clock: Clock,
    buffer: Buffer,
    rollups: PendingRollups,
    sightings: LatestSightings,
    timer_set: bool,
    retry: Option<Duration>,
    flush_duration: DurationHistogram,
    dead_letters: u64,
    fenced: FenceSink,
}

impl PersistenceState {
    fn depth(&self) -> usize {
        self.buffer.depth()
    }
}

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for PersistenceActor {
    type Msg = PersistMsg;
    type State = PersistenceState;
    type Arguments = PersistenceArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: PersistenceArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let buffer = Buffer::new(
            args.config.max_buffered_reports,
            args.config.max_buffered_audits,
        );
        Ok(PersistenceState {
            db: args.db,
            config: args.config,
            events: args.events,
            clock: args.clock,
            buffer,
            rollups: PendingRollups::default(),
            sightings: LatestSightings::default(),
            timer_set: false,
            retry: None,
            flush_duration: DurationHistogram::default(),
            dead_letters: 0,
            fenced: args.fenced,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: PersistMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            // A state superseded before it was written leaves its sync's report.
            PersistMsg::Converge(c) => {
                if let Some((old, fence)) = state.buffer.push_converge(*c) {
                    receive_report(state, old, fence);
                }
            }
            PersistMsg::Report(r) => receive_report(state, r, None),
            PersistMsg::FencedReport(r, f) => receive_report(state, r, Some(f)),
            PersistMsg::Audit(a) => state.buffer.push_audit(a, None),
            PersistMsg::FencedAudit(a, f) => state.buffer.push_audit(a, Some(f)),
            PersistMsg::Flush(reply) => {
                let result = match flush(state).await {
                    Ok(()) => write_rollups(state, true).await,
                    Err(e) => Err(e),
                };
                let result = result.map_err(|e| e.to_string());
                let _ = reply.send(result);
                return Ok(());
            }
            PersistMsg::QueueDepth(reply) => {
                let _ = reply.send((state.depth(), state.retry.is_some()));
                return Ok(());
            }
            PersistMsg::Stats(reply) => {
                let _ = reply.send(PersistenceStats {
                    queued: state.depth(),
                    retrying: state.retry.is_some(),
                    flush_duration: state.flush_duration.clone(),
                    dead_letters: state.dead_letters,
                    buffer: state.buffer.sizes(),
                    pending_sightings: state.sightings.len(),
                    pending_rollups: state.rollups.len(),
                });
                return Ok(());
            }
            PersistMsg::FlushTick => {
                state.timer_set = false;
                if let Err(e) = flush(state).await {
                    let delay = next_retry(state);
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, queued = state.depth(), "database write failed, will retry");
                    arm(&myself, state, delay);
                }
                return Ok(());
            }
        }
        if state.retry.is_none() && state.depth() >= state.config.batch_size {
            if let Err(e) = flush(state).await {
                let delay = next_retry(state);
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "database write failed, will retry");
                arm(&myself, state, delay);
            }
        } else if state.depth() > 0 || !state.sightings.is_empty() {
            let delay = Duration::from_millis(state.config.flush_interval_ms);
            arm(&myself, state, delay);
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if state.depth() > 0
            && let Err(e) = flush(state).await
        {
            tracing::error!(error = %e, lost = state.depth(), "final flush failed");
        }
        if let Err(e) = write_rollups(state, true).await {
            tracing::error!(error = %e, lost = state.rollups.len(), "final write of the hourly rollups failed");
        }
        Ok(())
    }
}

/// Schedules a FlushTick unless one is pending.
fn arm(myself: &ActorRef<PersistMsg>, state: &mut PersistenceState, delay: Duration) {
    if !state.timer_set {
        state.timer_set = true;
        myself.send_after(delay, || PersistMsg::FlushTick);
    }
}

fn next_retry(state: &mut PersistenceState) -> Duration {
    let min = Duration::from_millis(state.config.retry_min_ms);
    let max = Duration::from_millis(state.config.retry_max_ms);
    let next = state.retry.map_or(min, |d| (d * 2).min(max));
    state.retry = Some(next);
    next
}

/// Writes the whole buffer, in chunks of at most `batch_size` items, one transaction each
/// (see `write`). Each chunk written is acknowledged and its events published; a chunk that
/// fails goes back into the buffer for the next attempt, after the chunks already durable.
/// A row the database refuses is no failure: it goes to `dead_letters`. Every written
/// report is folded into the pending rollups, which are written too when due.
async fn flush(state: &mut PersistenceState) -> Result<(), StoreError> {
    while state.depth() > 0 {
        let mut chunk = state.buffer.take(state.config.batch_size);
        let started = std::time::Instant::now();
        let written = write::write(&state.db, &mut chunk, state.clock.now()).await;
        // Fenced items are dropped whether or not the rest was written: a lease that moved
        // on never comes back under the same epoch.
        for (out, items) in std::mem::take(&mut chunk.fenced).into_values() {
            state.fenced.report(FencedWrites { out, items });
        }
        let written = match written {
            Ok(w) => w,
            Err(e) => {
                state.buffer.put_back(chunk);
                return Err(e);
            }
        };
        state.flush_duration.observe(started.elapsed());
        state.dead_letters += written.dead_letters as u64;
        // The converges' reports first, then the others: as `write` returns them.
        let weights = std::iter::repeat_n(1, chunk.converges.len()).chain(chunk.report_weights());
        state.rollups.fold(written.runs.iter().zip(weights));
        publish(state, &chunk.converges, written.changes);
    }
    state.sightings.write(&state.db, &state.fenced).await?;
    write_rollups(state, false).await?;
    if state.retry.take().is_some() {
        tracing::info!("database writes resumed");
    }
    Ok(())
}

/// Takes a sync report in: one an operator needs as a row (a failure) waits in the buffer;
/// a quiet one (see [`SyncRunRecord::kept_raw`]) is counted in its hour's rollup and noted
/// as its account's latest sighting at once, so it takes no place of its own.
fn receive_report(state: &mut PersistenceState, report: SyncRunRecord, fence: Option<Fence>) {
    if report.kept_raw() {
        state.buffer.push_report(report, fence);
    } else {
        state.sightings.note(&report, fence);
        state.rollups.fold([(&report, 1)]);
    }
}

/// Writes the pending rollups when due (or at once with `force`); a failed write
/// puts them back for the next attempt.
async fn write_rollups(state: &mut PersistenceState, force: bool) -> Result<(), StoreError> {
    let now = state.clock.now();
    if state.rollups.is_empty() || !(force || state.rollups.due(now)) {
        return Ok(());
    }
    let rollups = state.rollups.take(now);
    match write::write_rollups(&state.db, &rollups, now).await {
        Ok(letters) => {
            state.dead_letters += letters as u64;
            Ok(())
        }
        Err(e) => {
            state.rollups.put_back(rollups);
            Err(e)
        }
    }
}

/// Acknowledges the written states and publishes what they changed.
fn publish(state: &PersistenceState, converges: &[Converge], changes: Vec<Converged>) {
    for (c, done) in converges.iter().zip(changes) {
        if let Some(to) = &c.ack_to {
            // The sender may have been replaced meanwhile: then nobody waits for this.
            to.ack(c.seq);
        }
        for divergence in done.opened {
            state.events.send(ReconcilerEvent::DivergenceOpened {
                account_id: c.account_id.clone(),
                divergence,
            });
        }
        for fingerprint in done.resolved {
            state.events.send(ReconcilerEvent::DivergenceResolved {
                account_id: c.account_id.clone(),
                fingerprint,
            });
        }
    }
}
