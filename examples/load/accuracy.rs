//! Scenario `accuracy`: how right the raised divergences are. The real tree reconciles a
//! simulated trading day (`TradingDay`: a bot whose records reach the broker late, stops
//! it catches up with, limit orders, another advisor, ticket changes, netting accounts,
//! and faults planted at random times with known truth) for `--accounts` accounts and
//! `--minutes` simulated minutes at a 10 s interval, on a clock running `SPEED` times as
//! fast as real time (the tree's interval, grace and confirmation all follow it).
//!
//! Every committed divergence (the tree's durable `DivergenceOpened` events, stamped on
//! the tree's clock when they arrive) is judged against the truth. Per kind and overall:
//! precision (raised that were real), recall (planted that were raised as their kind),
//! and detection latency from the fault to the committed row, against the sync that must
//! raise it. A raised divergence that is not real is counted by cause: a race (fill in
//! flight, stop the bot has not caught up with yet, …), a planted fault raised as another
//! kind (a hand close as `missing_at_broker`), or an ordinary event of a context the
//! reconciliation must tell apart (the other advisor's positions, outside the bot's magic
//! number; a waiting order; a netting account).
//!
//! The same day runs twice: with the default live rules (grace and confirmation) and with
//! `LiveRules::immediate()` (every snapshot judged alone), so the gain is visible. Faults
//! stop two simulated minutes before the end, so the last ones have time to be raised.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use mt5_reconciler::actors::{
    AccountSpec, PersistenceConfig, ReconcilerEvent, SchedulerConfig, Status, SupervisionConfig,
    SupervisorArgs, TreeConfig,
};
use mt5_reconciler::broker::Connector;
use mt5_reconciler::broker::sim::day::{
    BOT_MAGIC, Context, DayConfig, Finding, Planted, TradingDay,
};
use mt5_reconciler::clock::Clock;
use mt5_reconciler::domain::{
    Divergence, DivergenceKind, LiveRules, ReconcileRules, Scope, Scopes,
};
use mt5_reconciler::service::{self, Reconciler};
use ractor::{Actor, ActorProcessingErr, ActorRef, OutputPort};

use crate::Args;
use crate::measure::{quantile, verdict};

type Res = Result<(), String>;

/// How much faster than real time the clock runs (a simulated hour in ten minutes).
const SPEED: u32 = 6;
/// The same for a smoke run (four simulated minutes in four seconds).
const SMOKE_SPEED: u32 = 60;
/// Simulated seconds between two syncs of an account.
const INTERVAL_SECS: u64 = 10;
/// Simulated minutes at the end without new faults.
const QUIET_MINUTES: i64 = 2;

/// A divergence committed, when the collector received it (tree clock).
struct Opened {
    account: String,
    divergence: Divergence,
    at: DateTime<Utc>,
}

/// Collects the tree's committed divergences with the tree's clock.
struct Collector;

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for Collector {
    type Msg = ReconcilerEvent;
    type State = (Clock, Arc<Mutex<Vec<Opened>>>);
    type Arguments = (Clock, Arc<Mutex<Vec<Opened>>>);

    async fn pre_start(
        &self,
        _m: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _m: ActorRef<Self::Msg>,
        e: ReconcilerEvent,
        (clock, seen): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let ReconcilerEvent::DivergenceOpened {
            account_id,
            divergence,
        } = e
        {
            let at = clock.now();
            seen.lock().map_err(|e| e.to_string())?.push(Opened {
                account: account_id,
                divergence,
                at,
            });
        }
        Ok(())
    }
}

/// What one run raised, with the day it ran on and the tree's last status.
struct Run {
    day: Arc<TradingDay>,
    opened: Vec<Opened>,
    status: Status,
}

/// The tree on a fresh day of `n` accounts for `minutes` simulated minutes, judging with
/// `live`.
async fn run(
    n: usize,
    minutes: i64,
    smoke: bool,
    label: &str,
    live: LiveRules,
) -> Result<Run, String> {
    let speed = if smoke { SMOKE_SPEED } else { SPEED };
    let config = DayConfig {
        seed: 7,
        accounts: n,
        faults_until: Some(TimeDelta::minutes((minutes - QUIET_MINUTES).max(1))),
        // A smoke run is short: a fault a minute per account, so that some are planted.
        fault_every_secs: if smoke {
            60
        } else {
            DayConfig::default().fault_every_secs
        },
        ..DayConfig::default()
    };
    let clock = Clock::following_tokio(config.start).with_speed(speed);
    let day = Arc::new(TradingDay::new(&config, clock));
    let (db, _dir) = crate::scenarios::sqlite_file().await?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (collector, collector_handle) = Actor::spawn(None, Collector, (clock, seen.clone()))
        .await
        .map_err(|e| e.to_string())?;
    let events = Arc::new(OutputPort::default());
    events.subscribe(collector.clone(), Some);
    let tree_config = TreeConfig {
        scheduler: SchedulerConfig {
            interval_ms: (INTERVAL_SECS * 1_000 / u64::from(speed)).max(1),
            spread_slots: 10,
            max_in_flight: n,
            sync_timeout_ms: 30_000,
            accounts_refresh_secs: 0,
        },
        supervision: SupervisionConfig::default(),
        // Committed promptly: a flush every 10 ms of real time is 60 ms of the day's.
        persistence: PersistenceConfig {
            flush_interval_ms: 10,
            ..PersistenceConfig::default()
        },
        guards: Default::default(),
        retention: Default::default(),
    };
    let tree = Reconciler::start(SupervisorArgs {
        db,
        config: tree_config,
        rules: Arc::new(ReconcileRules {
            live,
            scopes: Scopes {
                default: Scope {
                    magics: [BOT_MAGIC].into(),
                    ..Scope::default()
                },
                ..Scopes::default()
            },
            ..ReconcileRules::default()
        }),
        connectors: HashMap::from([(
            "day".to_owned(),
            Connector {
                broker: day.clone(),
                trades: day.clone(),
            },
        )]),
        accounts: day
            .account_ids()
            .into_iter()
            .map(|id| AccountSpec {
                id,
                broker: "day".into(),
            })
            .collect(),
        events,
        follow_accounts_table: false,
        clock,
    })
    .await
    .map_err(|e| e.to_string())?;
    let end = config.start + TimeDelta::minutes(minutes);
    let mut next_report = config.start + TimeDelta::minutes(10);
    while clock.now() < end {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if clock.now() >= next_report {
            let s = tree.status().await.map_err(|e| e.to_string())?;
            let opened = seen.lock().map_err(|e| e.to_string())?.len();
            println!(
                "accuracy rules={label} minute={} syncs_ok={} syncs_failed={} skipped_ticks={} committed_divergences={opened}",
                (next_report - config.start).num_minutes(),
                s.accounts.iter().map(|a| a.syncs_ok).sum::<u64>(),
                s.accounts.iter().map(|a| a.syncs_failed).sum::<u64>(),
                s.scheduler.skipped_ticks,
            );
            next_report += TimeDelta::minutes(10);
        }
    }
    service::flush(tree.actor(), None)
        .await
        .map_err(|e| e.to_string())?;
    let status = tree.status().await.map_err(|e| e.to_string())?;
    tree.abort().await;
    collector
        .drain_and_wait(Some(Duration::from_secs(30)))
        .await
        .map_err(|e| e.to_string())?;
    let _ = collector_handle.await;
    let opened = std::mem::take(&mut *seen.lock().map_err(|e| e.to_string())?);
    Ok(Run {
        day,
        opened,
        status,
    })
}

/// Figures of one kind.
#[derive(Default)]
struct Figures {
    /// Faults of this kind planted.
    planted: usize,
    /// … raised as this kind, with their latency.
    latencies: Vec<Duration>,
    /// … raised only as another kind, by that kind.
    raised_as: BTreeMap<DivergenceKind, usize>,
    /// Divergences of this kind raised.
    raised: usize,
    /// … that reported a planted fault of this kind.
    real: usize,
    /// … that reported a planted fault of another kind.
    stand_in: usize,
    /// … explained by an ordinary event of a context.
    context: BTreeMap<Context, usize>,
    /// … explained by nothing: races.
    races: usize,
}

impl Figures {
    fn add(&mut self, o: &Figures) {
        self.planted += o.planted;
        self.latencies.extend(&o.latencies);
        for (k, v) in &o.raised_as {
            *self.raised_as.entry(*k).or_default() += v;
        }
        self.raised += o.raised;
        self.real += o.real;
        self.stand_in += o.stand_in;
        for (k, v) in &o.context {
            *self.context.entry(*k).or_default() += v;
        }
        self.races += o.races;
    }
}

type Key = (
    String,
    DivergenceKind,
    Option<String>,
    Option<u64>,
    DateTime<Utc>,
);

fn key(account: &str, p: &Planted) -> Key {
    (
        account.to_owned(),
        p.kind,
        p.trade_id.clone(),
        p.ticket,
        p.at,
    )
}

/// Judges every committed divergence of `run` against its day's truth.
fn figures(run: &Run) -> BTreeMap<DivergenceKind, Figures> {
    let mut by_kind: BTreeMap<DivergenceKind, Figures> = BTreeMap::new();
    let mut first_real: HashMap<Key, DateTime<Utc>> = HashMap::new();
    let mut first_other: HashMap<Key, DivergenceKind> = HashMap::new();
    for o in &run.opened {
        let f = by_kind.entry(o.divergence.kind).or_default();
        f.raised += 1;
        match run.day.classify(&o.account, &o.divergence, o.at) {
            Finding::Real(p) => {
                f.real += 1;
                first_real.entry(key(&o.account, &p)).or_insert(o.at);
            }
            Finding::OtherKind(p) => {
                f.stand_in += 1;
                first_other
                    .entry(key(&o.account, &p))
                    .or_insert(o.divergence.kind);
            }
            Finding::Context(c) => *f.context.entry(c).or_default() += 1,
            Finding::False => f.races += 1,
        }
    }
    for account in run.day.account_ids() {
        for p in run.day.truth(&account) {
            let f = by_kind.entry(p.kind).or_default();
            f.planted += 1;
            let k = key(&account, &p);
            if let Some(at) = first_real.get(&k) {
                f.latencies.push((*at - p.at).to_std().unwrap_or_default());
            } else if let Some(kind) = first_other.get(&k) {
                *f.raised_as.entry(*kind).or_default() += 1;
            }
        }
    }
    by_kind
}

fn pct(part: usize, whole: usize) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

/// One line of figures.
fn line(label: &str, what: &str, f: &mut Figures, bound: Option<Duration>) -> String {
    let detected = f.latencies.len();
    let (p50, p99) = (
        quantile(&mut f.latencies, 0.5),
        quantile(&mut f.latencies, 0.99),
    );
    let max = f.latencies.iter().max().copied().unwrap_or_default();
    let raised_as: Vec<String> = f
        .raised_as
        .iter()
        .map(|(k, n)| format!("{k}:{n}"))
        .collect();
    let contexts: Vec<String> = f
        .context
        .iter()
        .map(|(k, n)| format!("{}:{n}", k.as_str()))
        .collect();
    let latency = if detected == 0 {
        "latency_s(p50/p99/max)=-".to_owned()
    } else {
        format!(
            "latency_s(p50/p99/max)={}/{}/{}",
            secs(p50),
            secs(p99),
            secs(max)
        )
    };
    let bound = bound.map_or(String::new(), |b| {
        let within = detected == 0 || p99 <= b;
        format!(" bound_s={} {}", secs(b), verdict(within))
    });
    format!(
        "accuracy rules={label} {what} planted={} raised_as_kind={detected} recall={} raised_only_as_other={} raised={} real={} precision={} not_real(race/other_kind/context)={}/{}/{} contexts={} {latency}{bound}",
        f.planted,
        pct(detected, f.planted),
        if raised_as.is_empty() {
            "-".into()
        } else {
            raised_as.join(",")
        },
        f.raised,
        f.real,
        pct(f.real, f.raised),
        f.races,
        f.stand_in,
        f.context.values().sum::<usize>(),
        if contexts.is_empty() {
            "-".into()
        } else {
            contexts.join(",")
        },
    )
}

/// The sync that must raise a fault of `kind` under `live`, plus a second for the commit:
/// `confirm_syncs` syncs, or the second when the grace holds the first (a change seen
/// less than `grace` ago).
fn bound(live: &LiveRules, kind: DivergenceKind) -> Duration {
    let confirm = live.confirm(kind);
    let syncs = if live.grace > TimeDelta::zero() {
        confirm.max(2)
    } else {
        confirm
    };
    Duration::from_secs(u64::from(syncs) * INTERVAL_SECS + 1)
}

/// The scenario: see the module documentation. `--accounts` (default 1,000; smoke 20),
/// `--minutes` simulated (default 60; smoke 4, on a clock 60 times as fast).
pub async fn accuracy(args: &Args) -> Res {
    let n = args.accounts.unwrap_or(if args.smoke { 20 } else { 1_000 });
    let minutes = args
        .minutes
        .map_or(if args.smoke { 4 } else { 60 }, |m| m as i64)
        .max(QUIET_MINUTES + 1);
    let speed = if args.smoke { SMOKE_SPEED } else { SPEED };
    let mut races_with_defaults = None;
    let mut defaults = None;
    for (label, live) in [
        ("default", LiveRules::default()),
        ("immediate", LiveRules::immediate()),
    ] {
        println!(
            "# accuracy rules={label} accounts={n} minutes={minutes} speed={speed} interval_s={INTERVAL_SECS} grace_s={} confirm(missing/unexpected/other)={}/{}/{} faults_until_min={}",
            live.grace.num_seconds(),
            live.confirm(DivergenceKind::MissingAtBroker),
            live.confirm(DivergenceKind::UnexpectedAtBroker),
            live.confirm(DivergenceKind::SlMismatch),
            minutes - QUIET_MINUTES,
        );
        let started = std::time::Instant::now();
        let run = run(n, minutes, args.smoke, label, live.clone()).await?;
        // The same day both times (read a moment after its end: later events may differ).
        let s = run.day.stats();
        println!(
            "accuracy rules={label} day: fills={} modifies={} bot_closes={} sl_hits={} tp_hits={} stop_outs={} caught_up={} orders_placed/filled/cancelled={}/{}/{} other_advisor_opens={} ticket_changes={} faults={} deals={}",
            s.fills,
            s.modifies,
            s.bot_closes,
            s.sl_hits,
            s.tp_hits,
            s.stop_outs,
            s.caught_up,
            s.orders_placed,
            s.orders_filled,
            s.orders_cancelled,
            s.other_opens,
            s.ticket_changes,
            s.faults,
            s.deals,
        );
        println!(
            "accuracy rules={label} tree: syncs_ok={} syncs_failed={} skipped_ticks={} committed_divergences={} wall_s={:.0}",
            run.status.accounts.iter().map(|a| a.syncs_ok).sum::<u64>(),
            run.status
                .accounts
                .iter()
                .map(|a| a.syncs_failed)
                .sum::<u64>(),
            run.status.scheduler.skipped_ticks,
            run.opened.len(),
            started.elapsed().as_secs_f64(),
        );
        let mut by_kind = figures(&run);
        let mut all = Figures::default();
        for (kind, f) in &mut by_kind {
            all.add(f);
            println!(
                "{}",
                line(label, &format!("kind={kind}"), f, Some(bound(&live, *kind)))
            );
        }
        println!("{}", line(label, "kind=all", &mut all, None));
        if label == "default" {
            races_with_defaults = Some(all.races);
            defaults = Some((all.real, all.raised, all.latencies.len(), all.planted));
        } else {
            println!(
                "accuracy races raised: default={} immediate={} (grace and confirmation hold {})",
                races_with_defaults.unwrap_or(0),
                all.races,
                all.races.saturating_sub(races_with_defaults.unwrap_or(0)),
            );
        }
        if run.opened.is_empty() {
            return Err(format!("accuracy rules={label}: nothing was raised"));
        }
    }
    let (real, raised, detected, planted) = defaults.unwrap_or_default();
    println!(
        "accuracy default_rules precision={} target>=99.9% {} recall={} target=100% {} races={}",
        pct(real, raised),
        verdict(real * 1000 >= raised * 999),
        pct(detected, planted),
        verdict(detected == planted),
        races_with_defaults.unwrap_or(0),
    );
    Ok(())
}
