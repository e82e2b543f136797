//! Scheduler: sends the supervisor one `Tick` per slot, `spread_slots` slots per interval,
//! so accounts (each pinned to a slot by a stable hash) are spread over the interval and
//! the broker is not hit in one burst. Missed ticks are skipped, never bunched; the
//! supervisor coalesces per account (a sync still running skips its tick).

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::supervisor::SupervisorMsg;

/// Largest `interval_ms`: one day.
pub const MAX_INTERVAL_MS: u64 = 86_400_000;

/// Largest `sync_timeout_ms`: one hour.
pub const MAX_SYNC_TIMEOUT_MS: u64 = 3_600_000;

/// Largest `accounts_refresh_secs`: one day.
pub const MAX_ACCOUNTS_REFRESH_SECS: u64 = 86_400;

/// `[scheduler]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// Time between two syncs of the same account, in milliseconds (the seed's 10 s; at
    /// most [`MAX_INTERVAL_MS`]).
    pub interval_ms: u64,
    /// Slots the interval is divided into; accounts are spread over them.
    pub spread_slots: u32,
    /// Broker calls in flight at most, over all accounts (the seed's design had 5).
    pub max_in_flight: usize,
    /// Timeout of one broker call, in milliseconds (at most [`MAX_SYNC_TIMEOUT_MS`]).
    pub sync_timeout_ms: u64,
    /// How often `run` re-reads the `accounts` table, in seconds (0 = never; at most
    /// [`MAX_ACCOUNTS_REFRESH_SECS`]).
    pub accounts_refresh_secs: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            interval_ms: 10_000,
            spread_slots: 10,
            max_in_flight: 512,
            sync_timeout_ms: 5_000,
            accounts_refresh_secs: 30,
        }
    }
}

impl SchedulerConfig {
    /// Invalid values, each with its key path.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.interval_ms == 0 {
            out.push("scheduler.interval_ms: must be greater than 0".into());
        }
        if self.spread_slots == 0 || u64::from(self.spread_slots) > self.interval_ms.max(1) {
            out.push("scheduler.spread_slots: must be between 1 and interval_ms".into());
        }
        if self.max_in_flight == 0 {
            out.push("scheduler.max_in_flight: must be at least 1".into());
        }
        if self.sync_timeout_ms == 0 {
            out.push("scheduler.sync_timeout_ms: must be greater than 0".into());
        }
        for (key, value, max) in [
            ("interval_ms", self.interval_ms, MAX_INTERVAL_MS),
            ("sync_timeout_ms", self.sync_timeout_ms, MAX_SYNC_TIMEOUT_MS),
            (
                "accounts_refresh_secs",
                self.accounts_refresh_secs,
                MAX_ACCOUNTS_REFRESH_SECS,
            ),
        ] {
            if value > max {
                out.push(format!("scheduler.{key} = {value}: must be at most {max}"));
            }
        }
        out
    }

    /// The interval as a duration.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }
}

/// Messages of the Scheduler (it only ticks).
#[derive(Debug)]
pub enum SchedulerMsg {}

#[cfg(feature = "cluster")]
impl ractor::Message for SchedulerMsg {}

/// The actor.
pub struct Scheduler;

/// Dependencies of the Scheduler.
pub struct SchedulerArgs {
    /// Who gets the ticks.
    pub supervisor: ActorRef<SupervisorMsg>,
    /// Settings.
    pub config: SchedulerConfig,
}

/// Its state: the ticking task, aborted on stop.
pub struct SchedulerState {
    args: SchedulerArgs,
    task: Option<JoinHandle<()>>,
}

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for Scheduler {
    type Msg = SchedulerMsg;
    type State = SchedulerState;
    type Arguments = SchedulerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: SchedulerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(SchedulerState { args, task: None })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let supervisor = state.args.supervisor.clone();
        let slots = state.args.config.spread_slots.max(1);
        let period = state.args.config.interval() / slots;
        let refresh_every = match state.args.config.accounts_refresh_secs {
            0 => None,
            secs => Some(
                (Duration::from_secs(secs).as_millis() / period.as_millis().max(1)).max(1) as u64,
            ),
        };
        state.task = Some(tokio::spawn(async move {
            let mut timer = tokio::time::interval(period);
            timer.set_missed_tick_behavior(MissedTickBehavior::Skip);
            let mut n: u64 = 0;
            loop {
                timer.tick().await;
                let slot = (n % u64::from(slots)) as u32;
                if supervisor.cast(SupervisorMsg::Tick { slot }).is_err() {
                    return;
                }
                n += 1;
                if refresh_every.is_some_and(|every| n.is_multiple_of(every)) {
                    let _ = supervisor.cast(SupervisorMsg::RefreshAccounts);
                }
            }
        }));
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(task) = state.task.take() {
            task.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: SchedulerMsg,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {}
    }
}
