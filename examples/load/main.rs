//! The load harness: runs the real actor tree against the simulated broker and prints one
//! line per figure. A figure with a target ends in `ok` or `MISS`; the others are reported
//! as measured.
//!
//! Run all scenarios (numbers in BENCHMARKS.md): `cargo run --release --example load`
//! One scenario: `cargo run --release --example load -- --only tick` (or `close`,
//! `retention`, …)
//! Smoke run with tiny sizes (CI): `cargo run --example load -- --smoke`
//! The soak (not part of the full run): `cargo run --release --example load -- --only soak
//! --minutes 60 --accounts 1000` (`--db postgres` for PostgreSQL).
//! Accuracy on a simulated trading day (part of the smoke run, not of the full run):
//! `cargo run --example load -- --only accuracy --accounts 1000 --minutes 60`.
//! Bulk set-up against one account at a time: `cargo build --release && cargo run --release
//! --example load -- --only setup` (part of the smoke run).
//! The service binary on the MetaApi path against the fake MetaApi process, beside the
//! simulated broker (part of the smoke run, not of the full run): `cargo build --release
//! --bins --workspace && cargo run --release --example load -- --only metaapi`.
//! The dashboard overview's load time (only when named): `cargo run --release --example
//! load -- --only dashboard`.
//! Three instances sharing the accounts on PostgreSQL, one killed again and again, with
//! takeover times (part of the smoke run, not of the full run): `cargo build --release
//! --bins --workspace && cargo run --release --example load -- --only failover`.
//! With mimalloc (as the binary built with `--features mimalloc`): add `--features mimalloc`.

mod accuracy;
mod dashboard;
mod failover;
mod measure;
mod metaapi;
mod retention;
mod scenarios;
mod setup;
mod soak;

use clap::Parser;

/// The allocator the binary uses with the same feature (see `src/main.rs`).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Command line of the harness.
#[derive(Debug, Parser)]
#[command(about = "Load harness for mt5-reconciler")]
pub struct Args {
    /// Tiny sizes and short waits: checks that the harness works, measures nothing.
    #[arg(long)]
    pub smoke: bool,
    /// Run one scenario: tick, cpu, memory, persistence, latency, seed, close, retention,
    /// soak, accuracy, setup, metaapi, dashboard (the soak and dashboard run only when
    /// named; accuracy, setup and metaapi when named or in the smoke run).
    #[arg(long)]
    pub only: Option<String>,
    /// Accounts for the scale scenarios (default 10,000; smoke 50), for close and accuracy
    /// (default 1,000; smoke 20) and for retention (default 100; smoke 20).
    #[arg(long)]
    pub accounts: Option<usize>,
    /// PostgreSQL URL for the persistence scenario (default: DATABASE_URL, else
    /// postgres://postgres@127.0.0.1:5432/test when it answers).
    #[arg(long)]
    pub postgres: Option<String>,
    /// Length of the soak in minutes (default 60; smoke 4 "minutes" of 5 seconds), and of
    /// the accuracy run in simulated minutes (default 60; smoke 4).
    #[arg(long)]
    pub minutes: Option<u64>,
    /// Database of the soak: sqlite (default, a temporary file) or postgres (a schema of
    /// its own, reached through a proxy the soak owns).
    #[arg(long)]
    pub db: Option<String>,
    /// Share of the soak's snapshot calls that fail, per mille (default 50: 5 %).
    #[arg(long)]
    pub fail_per_mille: Option<u32>,
}

fn main() {
    // As the binary does (see `src/main.rs`).
    #[cfg(not(feature = "mimalloc"))]
    mt5_reconciler::memory::cap_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts")
        .block_on(run());
}

async fn run() {
    let args = Args::parse();
    // Memory first: its baseline is the RSS of a fresh process, before other scenarios
    // leave freed memory with the allocator.
    let all = [
        "memory",
        "tick",
        "cpu",
        "persistence",
        "latency",
        "seed",
        "close",
        "retention",
    ];
    let run: Vec<&str> = match &args.only {
        Some(one)
            if all.contains(&one.as_str())
                || [
                    "soak",
                    "accuracy",
                    "setup",
                    "metaapi",
                    "dashboard",
                    "failover",
                ]
                .contains(&one.as_str()) =>
        {
            vec![one.as_str()]
        }
        Some(other) => {
            eprintln!(
                "error: unknown scenario {other:?} (one of {}, soak, accuracy, setup, metaapi, dashboard, failover)",
                all.join(", ")
            );
            std::process::exit(2);
        }
        // The smoke run checks the accuracy scenario too: it takes seconds at smoke size.
        None if args.smoke => [&all[..], &["accuracy", "setup", "metaapi", "failover"]].concat(),
        None => all.to_vec(),
    };
    println!(
        "# mt5-reconciler load harness{}",
        if args.smoke {
            " (smoke: tiny sizes, numbers mean nothing)"
        } else {
            ""
        }
    );
    let arenas = std::env::var("MALLOC_ARENA_MAX")
        .unwrap_or_else(|_| mt5_reconciler::memory::MALLOC_ARENAS.to_string());
    let allocator = if cfg!(feature = "mimalloc") {
        "mimalloc".to_owned()
    } else {
        format!("system (glibc arenas {arenas})")
    };
    println!("# {}, allocator {allocator}", measure::machine());
    for name in run {
        let result = match name {
            "tick" => scenarios::tick_at_scale(&args).await,
            "cpu" => scenarios::cpu_per_sync(&args).await,
            "memory" => scenarios::memory_per_account(&args).await,
            "persistence" => scenarios::persistence_rate(&args).await,
            "latency" => scenarios::detection_latency(&args).await,
            "close" => scenarios::close_reaction(&args).await,
            "retention" => retention::retention_footprint(&args).await,
            "soak" => soak::soak(&args).await,
            "accuracy" => accuracy::accuracy(&args).await,
            "setup" => setup::setup(&args).await,
            "metaapi" => metaapi::metaapi(&args).await,
            "dashboard" => dashboard::dashboard(&args).await,
            "failover" => failover::failover(&args).await,
            _ => scenarios::seed_comparison(&args).await,
        };
        if let Err(e) = result {
            eprintln!("error: scenario {name}: {e}");
            std::process::exit(1);
        }
    }
}
