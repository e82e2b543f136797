//! Scenario `setup`: how long a platform takes to set up its accounts and their open
//! trades on a fresh SQLite database, the bulk way and one account at a time.
//!
//! Bulk: `accounts import accounts.jsonl` then `trades import trades.jsonl`, run through
//! the command line's own code in this process (the same parsing, checks and writes as
//! the binary; only the process start is saved, a few milliseconds each). One at a time:
//! `accounts add` and `trades import --account` per account, each a process of the release
//! binary built next to this harness (`target/release/mt5-reconciler`: `cargo build
//! --release` first), for a sample of accounts, the time then scaled to all of them.
//!
//! `--accounts` (default 10,000; smoke 50) accounts of 20 trades each.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::Parser;
use mt5_reconciler::cli::{self, Cli};
use mt5_reconciler::store;

use crate::Args;
use crate::measure::verdict;

type Res = Result<(), String>;

/// Trades per account.
const TRADES: usize = 20;
/// The goal for 10,000 accounts of 20 trades (both commands).
const GOAL: Duration = Duration::from_secs(10);

/// The trades of account `a`, as a JSON array.
fn trades_json(a: usize) -> String {
    let mut out = String::from("[");
    for t in 0..TRADES {
        if t > 0 {
            out.push(',');
        }
        let side = if t % 2 == 0 { "buy" } else { "sell" };
        let _ = write!(
            out,
            r#"{{"id":"t{t}","symbol":"EURUSD","side":"{side}","volume":"0.{:02}","entry_price":"1.{:05}","sl":"1.00000","ticket":{}}}"#,
            t + 1,
            8_000 + t,
            a * 100 + t + 1
        );
    }
    out.push(']');
    out
}

/// Writes `config.toml`, `accounts.jsonl` and `trades.jsonl` for `n` accounts into `dir`.
fn write_files(dir: &Path, n: usize, db: &str) -> Result<(), String> {
    let url = format!("sqlite://{}?mode=rwc", dir.join(db).display());
    let io = |e: std::io::Error| e.to_string();
    std::fs::write(
        dir.join("config.toml"),
        format!("[database]\nurl = \"{url}\"\n"),
    )
    .map_err(io)?;
    let mut accounts = String::new();
    let mut trades = String::new();
    for a in 0..n {
        let _ = writeln!(accounts, r#"{{"id":"acc-{a}","broker":"sim"}}"#);
        let _ = writeln!(
            trades,
            r#"{{"account":"acc-{a}","trades":{}}}"#,
            trades_json(a)
        );
    }
    std::fs::write(dir.join("accounts.jsonl"), accounts).map_err(io)?;
    std::fs::write(dir.join("trades.jsonl"), trades).map_err(io)?;
    Ok(())
}

/// Runs one command line in this process; its wall time.
pub(crate) async fn in_process(args: &[&str]) -> Result<Duration, String> {
    let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let code = cli::run(cli).await;
    let took = started.elapsed();
    if code == ExitCode::SUCCESS {
        Ok(took)
    } else {
        Err(format!("{args:?} failed: {code:?}"))
    }
}

/// The binary of this harness's profile, if built.
pub(crate) fn release_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("mt5-reconciler");
    bin.is_file().then_some(bin)
}

/// One account at a time, as processes: `sample` accounts; the wall time.
fn one_at_a_time(bin: &Path, dir: &Path, sample: usize) -> Result<Duration, String> {
    let config = dir.join("config.toml");
    let config = config.to_string_lossy();
    let started = Instant::now();
    for a in 0..sample {
        let id = format!("acc-{a}");
        let file = dir.join(format!("{id}.json"));
        std::fs::write(&file, trades_json(a)).map_err(|e| e.to_string())?;
        let file = file.to_string_lossy();
        for args in [
            vec![
                "accounts", "add", &id, "--broker", "sim", "--config", &config,
            ],
            vec![
                "trades",
                "import",
                &file,
                "--account",
                &id,
                "--config",
                &config,
            ],
        ] {
            let out = Command::new(bin)
                .args(&args)
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!(
                    "{args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    Ok(started.elapsed())
}

/// The scenario: see the module documentation.
pub async fn setup(args: &Args) -> Res {
    let n = args
        .accounts
        .unwrap_or(if args.smoke { 50 } else { 10_000 });
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let d = dir.path();
    write_files(d, n, "bulk.db")?;
    let config = d.join("config.toml").to_string_lossy().into_owned();
    let accounts = d.join("accounts.jsonl").to_string_lossy().into_owned();
    let trades = d.join("trades.jsonl").to_string_lossy().into_owned();
    println!("# setup accounts={n} trades_per_account={TRADES} db=sqlite (fresh file)");
    let base = ["mt5-reconciler", "--log-format", "pretty"];
    let a = in_process(
        &[
            &base[..],
            &["accounts", "import", &accounts, "--config", &config],
        ]
        .concat(),
    )
    .await?;
    let t = in_process(
        &[
            &base[..],
            &["trades", "import", &trades, "--config", &config],
        ]
        .concat(),
    )
    .await?;
    // Everything is there.
    let url = format!("sqlite://{}?mode=rwc", d.join("bulk.db").display());
    let db = store::connect(&url).await.map_err(|e| e.to_string())?;
    let stored = store::list_accounts(&db)
        .await
        .map_err(|e| e.to_string())?
        .len();
    let last = store::open_trades(&db, &format!("acc-{}", n - 1))
        .await
        .map_err(|e| e.to_string())?
        .len();
    if stored != n || last != TRADES {
        return Err(format!(
            "setup: {stored} accounts stored, the last with {last} trades"
        ));
    }
    let total = a + t;
    let goal = GOAL.mul_f64(n as f64 / 10_000.0);
    println!(
        "setup bulk accounts_import_s={:.2} trades_import_s={:.2} total_s={:.2} goal_s={:.1} {}",
        a.as_secs_f64(),
        t.as_secs_f64(),
        total.as_secs_f64(),
        goal.as_secs_f64(),
        verdict(total <= goal)
    );

    let sample = if args.smoke { 3 } else { 200 }.min(n);
    match release_binary() {
        None => println!(
            "setup one_at_a_time skipped: no mt5-reconciler binary next to the harness (cargo build --release)"
        ),
        Some(bin) => {
            let single = tempfile::tempdir().map_err(|e| e.to_string())?;
            write_files(single.path(), 0, "single.db")?;
            let took = one_at_a_time(&bin, single.path(), sample)?;
            let scaled = took.mul_f64(n as f64 / sample as f64);
            println!(
                "setup one_at_a_time sample_accounts={sample} processes={} sample_s={:.2} scaled_to_{n}_s={:.0} bulk_speed_up={:.0}x",
                sample * 2,
                took.as_secs_f64(),
                scaled.as_secs_f64(),
                scaled.as_secs_f64() / total.as_secs_f64().max(1e-9)
            );
        }
    }
    Ok(())
}
