//! `mt5-reconciler demo`: a few rounds against the simulated broker on SQLite in the
//! current directory, then a summary a person can read.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ractor::OutputPort;

use super::{EXIT_BAD_INPUT, EXIT_RUNTIME, load_config};
use crate::actors::{SupervisorArgs, SupervisorMsg};
use crate::broker::BrokerError;
use crate::broker::sim::Fault;
use crate::guards::GuardsConfig;
use crate::guards::config::DrawdownConfig;
use crate::service::{self, Reconciler};

/// Audit kinds that are breaker transitions.
const BREAKER_EVENTS: &[&str] = &[
    "backoff_started",
    "actor_restarted",
    "circuit_opened",
    "circuit_half_open",
    "circuit_closed",
    "account_disabled",
    "account_enabled",
];
use crate::store::{self, DivergenceStatus};

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Simulated accounts.
    #[arg(long, default_value_t = 5)]
    pub accounts: usize,
    /// Rounds (each account is synced once per round).
    #[arg(long, default_value_t = 8)]
    pub rounds: u32,
    /// Milliseconds between rounds.
    #[arg(long, default_value_t = 500)]
    pub interval_ms: u64,
    /// Seed of the simulated broker.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// SQLite file to write (replaced on each run).
    #[arg(long, default_value = "mt5-reconciler-demo.db")]
    pub database: PathBuf,
    /// Configuration file for tolerances and symbols (default: ./config.toml if present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Runs the demo.
pub async fn run(args: &DemoArgs) -> ExitCode {
    let Some(mut config) = load_config(args.config.as_deref()) else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    if args.accounts == 0 || args.rounds == 0 || args.interval_ms == 0 {
        eprintln!("error: --accounts, --rounds and --interval-ms must be at least 1");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    // A short interval and a touchy breaker, so that a few seconds show everything.
    config.broker.enabled = vec!["sim".into()];
    config.broker.sim.accounts = args.accounts;
    config.broker.sim.seed = args.seed;
    config.accounts.clear();
    config.scheduler.interval_ms = args.interval_ms;
    config.scheduler.spread_slots = 5.min(args.interval_ms as u32).max(1);
    config.supervision.min_backoff_ms = (args.interval_ms / 2).max(1);
    config.supervision.max_backoff_ms = args.interval_ms * 4;
    config.supervision.max_failures = 3;
    config.supervision.open_for_secs = 1;
    // A daily loss limit on every account; the second account closes on a breach.
    config.guards = demo_guards(
        args.interval_ms,
        &format!("sim-{:03}", 2.min(args.accounts)),
    );

    for suffix in ["", "-wal", "-shm"] {
        let mut p = args.database.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    let url = format!("sqlite://{}?mode=rwc", args.database.display());
    let db = match store::connect(&url).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let (connectors, accounts, sim) = service::from_config(&config, &db);
    let Some(sim) = sim else {
        return ExitCode::from(EXIT_RUNTIME);
    };
    // The last account's broker link fails a few times: watch its breaker at work.
    let flaky = accounts.last().map(|a| a.id.clone()).unwrap_or_default();
    let outage = (0..3).map(|_| {
        Fault::Error(BrokerError::Retryable {
            reason: "bridge restarting".into(),
            retry_after: None,
        })
    });
    sim.push_faults(&flaky, outage);
    // Start every account flat, so that only the losses made below move the guards.
    for a in &accounts {
        lose(&sim, &a.id, 0);
    }

    println!(
        "demo: {} simulated accounts, {} rounds of {} ms, database {}",
        accounts.len(),
        args.rounds,
        args.interval_ms,
        args.database.display()
    );
    let tree = SupervisorArgs {
        db: db.clone(),
        config: service::tree_config(&config),
        rules: Arc::new(config.reconcile_rules(None)),
        connectors,
        accounts: accounts.clone(),
        events: Arc::new(OutputPort::default()),
        follow_accounts_table: false,
        clock: crate::clock::Clock::real(),
    };
    let reconciler = match Reconciler::start(tree).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let half = args.rounds / 2;
    for round in 1..=args.rounds {
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
        if round == half {
            // A trader fixes one slipped stop loss by hand: the divergence resolves.
            fix_one(&sim, &accounts[0].id);
        }
        if round == 2 {
            // The market turns: the second account is 6 % down, past its 5 % daily limit;
            // the third 3.5 %, past the warning level.
            lose(&sim, &config.guards.auto_close[0], 600);
            if let Some(third) = accounts.get(2) {
                lose(&sim, &third.id, 350);
            }
        }
    }
    let _ = reconciler.actor().cast(SupervisorMsg::RefreshAccounts);
    let status = reconciler.status().await.ok();
    let stop = reconciler.shutdown(Duration::from_secs(5)).await;
    if !stop.flushed {
        eprintln!("error: not everything reached the database");
        return ExitCode::from(EXIT_RUNTIME);
    }
    let Some(status) = status else {
        return ExitCode::from(EXIT_RUNTIME);
    };
    summary(&db, &status).await;
    ExitCode::SUCCESS
}

/// The demo's guards: warn at 3 %, breach at 5 % of the day's starting balance; the
/// `closing` account closes its positions two rounds after the alert.
fn demo_guards(interval_ms: u64, closing: &str) -> GuardsConfig {
    GuardsConfig {
        alert_lead_secs: (2 * interval_ms).div_ceil(1000),
        auto_close: vec![closing.to_owned()],
        drawdown: vec![DrawdownConfig {
            name: "daily-5pct".into(),
            accounts: vec!["*".into()],
            kind: "daily_loss".into(),
            reference: Some("balance".into()),
            reset_at: Some("17:00".into()),
            time_zone: Some("America/New_York".into()),
            initial_balance: None,
            basis: None,
            warn: "3%".into(),
            breach: "5%".into(),
        }],
        ..GuardsConfig::default()
    }
}

/// Puts `account` `amount` in the red: no floating profit but one position's loss.
fn lose(sim: &crate::broker::sim::SimBroker, account: &str, amount: i64) {
    for (i, p) in sim.positions(account).iter().enumerate() {
        let profit = if i == 0 {
            rust_decimal::Decimal::from(-amount)
        } else {
            rust_decimal::Decimal::ZERO
        };
        sim.update_position(account, p.ticket, |pos| {
            (pos.profit, pos.swap) = (profit, rust_decimal::Decimal::ZERO)
        });
    }
}

/// Makes the first position of `account` that differs from its trade agree with it again.
fn fix_one(sim: &crate::broker::sim::SimBroker, account: &str) {
    let trades = sim.trades(account);
    for p in sim.positions(account) {
        let Some(t) = trades.iter().find(|t| t.ticket == Some(p.ticket)) else {
            continue;
        };
        let differs = (t.side, t.volume, t.entry_price, t.sl, t.tp)
            != (p.side, p.volume, p.open_price, p.sl, p.tp);
        if differs {
            sim.update_position(account, p.ticket, |pos| {
                (pos.side, pos.volume, pos.open_price, pos.sl, pos.tp) =
                    (t.side, t.volume, t.entry_price, t.sl, t.tp);
            });
            return;
        }
    }
}

async fn summary(db: &sea_orm::DatabaseConnection, status: &crate::actors::Status) {
    println!();
    println!(
        "{:<10} {:<11} {:>6} {:>7} {:>10} {:>17}",
        "ACCOUNT", "STATE", "SYNCS", "FAILED", "POSITIONS", "OPEN DIVERGENCES"
    );
    let mut by_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for a in &status.accounts {
        println!(
            "{:<10} {:<11} {:>6} {:>7} {:>10} {:>17}",
            a.id, a.state, a.syncs_ok, a.syncs_failed, a.positions, a.open_divergences
        );
        if let Ok(rows) = store::list_divergences(db, &a.id, None).await {
            for row in rows {
                let e = by_kind.entry(row.divergence.kind.to_string()).or_default();
                match row.status {
                    DivergenceStatus::Open => e.0 += 1,
                    DivergenceStatus::Resolved => e.1 += 1,
                }
            }
        }
    }
    println!();
    println!("{:<22} {:>5} {:>9}", "DIVERGENCE", "OPEN", "RESOLVED");
    for (kind, (open, resolved)) in &by_kind {
        println!("{kind:<22} {open:>5} {resolved:>9}");
    }
    println!();
    println!("breaker transitions:");
    let mut any = false;
    for a in status.accounts.iter().filter(|a| a.transitions > 0) {
        any = true;
        let events = store::list_audit(db, Some(&a.id)).await.unwrap_or_default();
        let path: Vec<String> = events
            .iter()
            .filter(|e| BREAKER_EVENTS.contains(&e.kind.as_str()))
            .filter_map(|e| {
                e.detail
                    .get("to")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })
            .collect();
        println!("  {}: running → {}", a.id, path.join(" → "));
    }
    if !any {
        println!("  none");
    }
    println!();
    println!("risk guards:");
    let alerts = store::list_alerts(db, None, 100).await.unwrap_or_default();
    if alerts.is_empty() {
        println!("  no alert");
    }
    for a in alerts.iter().rev() {
        let trail = store::list_audit(db, Some(&a.account_id))
            .await
            .unwrap_or_default();
        let closed = trail.iter().filter(|e| e.kind == "close_confirmed").count();
        let outcome = match a.status.as_str() {
            "closed" => format!("{closed} positions closed"),
            "alerted" => "alert only".to_owned(),
            other => other.replace('_', " "),
        };
        println!(
            "  {}: {} {} (loss {} of {}): {outcome}",
            a.account_id,
            a.rule,
            a.kind,
            a.loss.map_or("-".into(), |d| d.to_string()),
            a.reference.map_or("-".into(), |d| d.to_string())
        );
    }
    println!();
    let ok: u64 = status.accounts.iter().map(|a| a.syncs_ok).sum();
    let failed: u64 = status.accounts.iter().map(|a| a.syncs_failed).sum();
    println!(
        "{ok} syncs, {failed} failed, {} ticks skipped. Every divergence, sync and transition is stored.",
        status.scheduler.skipped_ticks
    );
}
