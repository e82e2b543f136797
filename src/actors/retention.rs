//! RetentionActor: keeps the database bounded by deleting rows past their age.
//!
//! Every `interval_secs` (and once at start) it runs a *pass*: for each table with an age
//! (`[retention]`, `0` = forever), batches of at most `batch_size` rows are deleted by key
//! (see `store::prune_batch`), one statement per message, with `batch_pause_ms` between
//! batches, until a batch removes fewer than `batch_size`. Each statement is short, so
//! the persistence actor's writes to the same tables never wait long behind it, and
//! between batches the actor is free to stop. A pass ends with one log line saying what
//! it removed per table. A tick while a pass is under way is dropped (ticks coalesce).
//!
//! "Now" is the tree's [`Clock`], so tests and the load harness can age rows by advancing
//! time instead of waiting. A database error ends the pass (logged); the next tick starts
//! a new one.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use sea_orm::DatabaseConnection;
use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::store::{self, Aged};

/// Largest age of any kind: 100 years, far inside what the clock can subtract.
pub const MAX_RETENTION_DAYS: u32 = 36_500;
/// Largest `interval_secs`: a day.
pub const MAX_RETENTION_INTERVAL_SECS: u64 = 86_400;
/// Largest `batch_size`.
pub const MAX_RETENTION_BATCH: u64 = 100_000;
/// Largest `batch_pause_ms`: a minute.
pub const MAX_RETENTION_PAUSE_MS: u64 = 60_000;

/// `[retention]`: how long rows are kept, in days (`0` = forever), and how the pruning runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// `sync_runs` rows (failures and syncs that changed something), by start time.
    pub sync_runs_days: u32,
    /// Hourly rollups of every sync, by hour.
    pub sync_rollups_days: u32,
    /// Resolved divergences, by resolution time (open ones are never deleted).
    pub resolved_divergences_days: u32,
    /// Alerts that no longer enforce (`alerted`, `cancelled`, `ended`), by their last
    /// change (an alert that may still close positions is never deleted).
    pub alerts_days: u32,
    /// Audit events, by time.
    pub audit_events_days: u32,
    /// Dead letters, by the last time the item was refused.
    pub dead_letters_days: u32,
    /// Equity samples of the dashboard's chart, by time.
    pub equity_samples_days: u32,
    /// Seconds between two passes (1 to a day).
    pub interval_secs: u64,
    /// Rows deleted per statement at most (1 to 100000).
    pub batch_size: u64,
    /// Pause between two statements, in milliseconds (at most a minute).
    pub batch_pause_ms: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            sync_runs_days: 7,
            sync_rollups_days: 400,
            resolved_divergences_days: 90,
            alerts_days: 400,
            audit_events_days: 400,
            dead_letters_days: 400,
            equity_samples_days: 30,
            interval_secs: 300,
            batch_size: 1_000,
            batch_pause_ms: 50,
        }
    }
}

impl RetentionConfig {
    /// Nothing is ever deleted.
    pub fn forever() -> Self {
        Self {
            sync_runs_days: 0,
            sync_rollups_days: 0,
            resolved_divergences_days: 0,
            alerts_days: 0,
            audit_events_days: 0,
            dead_letters_days: 0,
            equity_samples_days: 0,
            ..Self::default()
        }
    }

    /// The age of `what` in days (0 = forever), with its key.
    pub fn days(&self, what: Aged) -> (&'static str, u32) {
        match what {
            Aged::SyncRuns => ("sync_runs_days", self.sync_runs_days),
            Aged::SyncRollups => ("sync_rollups_days", self.sync_rollups_days),
            Aged::ResolvedDivergences => {
                ("resolved_divergences_days", self.resolved_divergences_days)
            }
            Aged::Alerts => ("alerts_days", self.alerts_days),
            Aged::AuditEvents => ("audit_events_days", self.audit_events_days),
            Aged::DeadLetters => ("dead_letters_days", self.dead_letters_days),
            Aged::EquitySamples => ("equity_samples_days", self.equity_samples_days),
        }
    }

    /// What a pass at `now` deletes: each table with an age, and the time before which
    /// its rows are old.
    pub fn cutoffs(&self, now: DateTime<Utc>) -> Vec<(Aged, DateTime<Utc>)> {
        Aged::ALL
            .into_iter()
            .filter_map(|what| {
                let days = self.days(what).1;
                (days > 0).then(|| {
                    let age = TimeDelta::days(i64::from(days.min(MAX_RETENTION_DAYS)));
                    (
                        what,
                        now.checked_sub_signed(age)
                            .unwrap_or(DateTime::<Utc>::MIN_UTC),
                    )
                })
            })
            .collect()
    }

    /// Invalid values, each with its key path.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for what in Aged::ALL {
            let (key, days) = self.days(what);
            if days > MAX_RETENTION_DAYS {
                out.push(format!(
                    "retention.{key} = {days}: must be at most {MAX_RETENTION_DAYS} (0 = forever)"
                ));
            }
        }
        for (key, value, max) in [
            (
                "interval_secs",
                self.interval_secs,
                MAX_RETENTION_INTERVAL_SECS,
            ),
            ("batch_size", self.batch_size, MAX_RETENTION_BATCH),
        ] {
            if value == 0 || value > max {
                out.push(format!(
                    "retention.{key} = {value}: must be between 1 and {max}"
                ));
            }
        }
        if self.batch_pause_ms > MAX_RETENTION_PAUSE_MS {
            out.push(format!(
                "retention.batch_pause_ms = {}: must be at most {MAX_RETENTION_PAUSE_MS}",
                self.batch_pause_ms
            ));
        }
        out
    }
}

/// What one pass removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassSummary {
    /// The pass's "now" (ages are counted back from it).
    pub at: DateTime<Utc>,
    /// Rows removed per table with an age, in the order of [`Aged::ALL`].
    pub removed: Vec<(Aged, u64)>,
    /// Statements run.
    pub statements: u64,
    /// Passes finished so far, this one included.
    pub passes: u64,
}

impl PassSummary {
    /// Rows removed from `what` (0 when it has no age).
    pub fn removed_from(&self, what: Aged) -> u64 {
        self.removed
            .iter()
            .find(|(w, _)| *w == what)
            .map_or(0, |(_, n)| *n)
    }
}

/// Messages of the RetentionActor.
pub enum RetentionMsg {
    /// Start a pass unless one is under way.
    Tick,
    /// Internal: the next batch of the pass under way.
    Batch,
    /// The summary of the last finished pass, if any.
    LastPass(RpcReplyPort<Option<PassSummary>>),
}

#[cfg(feature = "cluster")]
impl ractor::Message for RetentionMsg {}

/// Dependencies of the RetentionActor.
pub struct RetentionArgs {
    /// The database.
    pub db: DatabaseConnection,
    /// Ages and batching.
    pub config: RetentionConfig,
    /// The tree's clock: rows are old relative to it.
    pub clock: Clock,
}

/// The actor (empty: everything lives in its state).
pub struct RetentionActor;

/// A pass under way.
struct Pass {
    at: DateTime<Utc>,
    cutoffs: Vec<(Aged, DateTime<Utc>)>,
    next: usize,
    removed: Vec<(Aged, u64)>,
    statements: u64,
}

/// Its state.
pub struct RetentionState {
    args: RetentionArgs,
    timer: Option<JoinHandle<()>>,
    pass: Option<Pass>,
    last: Option<PassSummary>,
    passes: u64,
}

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for RetentionActor {
    type Msg = RetentionMsg;
    type State = RetentionState;
    type Arguments = RetentionArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: RetentionArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(RetentionState {
            args,
            timer: None,
            pass: None,
            last: None,
            passes: 0,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let every = Duration::from_secs(state.args.config.interval_secs.max(1));
        state.timer = Some(myself.send_interval(every, || RetentionMsg::Tick));
        myself.send_message(RetentionMsg::Tick)?;
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(timer) = state.timer.take() {
            timer.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: RetentionMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RetentionMsg::Tick => start_pass(&myself, state),
            RetentionMsg::Batch => next_batch(&myself, state).await,
            RetentionMsg::LastPass(reply) => {
                let _ = reply.send(state.last.clone());
            }
        }
        Ok(())
    }
}

fn start_pass(myself: &ActorRef<RetentionMsg>, state: &mut RetentionState) {
    if state.pass.is_some() {
        return;
    }
    let at = state.args.clock.now();
    let cutoffs = state.args.config.cutoffs(at);
    state.pass = Some(Pass {
        at,
        removed: cutoffs.iter().map(|(w, _)| (*w, 0)).collect(),
        cutoffs,
        next: 0,
        statements: 0,
    });
    // A message per batch: the actor stays free to stop between them.
    let _ = myself.send_message(RetentionMsg::Batch);
}

async fn next_batch(myself: &ActorRef<RetentionMsg>, state: &mut RetentionState) {
    let limit = state.args.config.batch_size.max(1);
    let Some(pass) = state.pass.as_mut() else {
        return;
    };
    if let Some(&(what, before)) = pass.cutoffs.get(pass.next) {
        match store::prune_batch(&state.args.db, what, before, limit).await {
            Ok(n) => {
                pass.statements += 1;
                pass.removed[pass.next].1 += n;
                if n < limit {
                    pass.next += 1;
                }
            }
            Err(e) => {
                tracing::warn!(table = what.table(), error = %e, "retention pass stopped, the next one will retry");
                state.pass = None;
                return;
            }
        }
    }
    if pass.next < pass.cutoffs.len() {
        let pause = Duration::from_millis(state.args.config.batch_pause_ms);
        myself.send_after(pause, || RetentionMsg::Batch);
        return;
    }
    if let Some(pass) = state.pass.take() {
        state.passes += 1;
        let summary = PassSummary {
            at: pass.at,
            removed: pass.removed,
            statements: pass.statements,
            passes: state.passes,
        };
        log_summary(&summary);
        state.last = Some(summary);
    }
}

/// One line per pass: the rows removed per table, e.g.
/// `retention pass removed=1200 detail="sync_runs 1000, audit_events 200"`.
fn log_summary(summary: &PassSummary) {
    let total: u64 = summary.removed.iter().map(|(_, n)| n).sum();
    let detail = summary
        .removed
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(w, n)| format!("{} {n}", w.table()))
        .collect::<Vec<_>>()
        .join(", ");
    tracing::info!(
        removed = total,
        detail = %if detail.is_empty() { "nothing past its age".to_owned() } else { detail },
        statements = summary.statements,
        "retention pass"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_forever_and_ages_count_back_from_now() {
        let now: DateTime<Utc> = "2026-12-03T00:00:00Z".parse().unwrap_or_default();
        assert!(RetentionConfig::forever().cutoffs(now).is_empty());
        let config = RetentionConfig {
            sync_runs_days: 7,
            audit_events_days: 0,
            ..RetentionConfig::forever()
        };
        let cutoffs = config.cutoffs(now);
        assert_eq!(cutoffs.len(), 1);
        assert_eq!(cutoffs[0].0, Aged::SyncRuns);
        assert_eq!(cutoffs[0].1.to_rfc3339(), "2026-11-26T00:00:00+00:00");
        let far = RetentionConfig {
            audit_events_days: MAX_RETENTION_DAYS,
            ..RetentionConfig::forever()
        };
        assert_eq!(
            far.cutoffs(DateTime::<Utc>::MIN_UTC)[0].1,
            DateTime::<Utc>::MIN_UTC
        );
    }

    #[test]
    fn bad_values_are_named_with_their_key() {
        let config = RetentionConfig {
            audit_events_days: MAX_RETENTION_DAYS + 1,
            interval_secs: 0,
            batch_size: MAX_RETENTION_BATCH + 1,
            batch_pause_ms: MAX_RETENTION_PAUSE_MS + 1,
            ..RetentionConfig::default()
        };
        let problems = config.problems();
        for expected in [
            "retention.audit_events_days = 36501: must be at most 36500",
            "retention.interval_secs = 0: must be between 1 and 86400",
            "retention.batch_size = 100001: must be between 1 and 100000",
            "retention.batch_pause_ms = 60001: must be at most 60000",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(expected)),
                "{expected}: {problems:?}"
            );
        }
        assert!(RetentionConfig::default().problems().is_empty());
    }
}
