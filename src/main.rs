//! The `mt5-reconciler` binary: command line → logging → library.

use std::process::ExitCode;

use clap::Parser;

/// With the `mimalloc` feature, mimalloc instead of the system allocator: a sync allocates
/// many small strings on the runtime's worker threads, where glibc's malloc takes about a
/// third of the CPU per sync (at the cost of more resident memory; BENCHMARKS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    #[cfg(not(feature = "mimalloc"))]
    mt5_reconciler::memory::cap_malloc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(mt5_reconciler::cli::EXIT_RUNTIME)
        }
    }
}

async fn run() -> ExitCode {
    let cli = mt5_reconciler::cli::Cli::parse();
    // The service logs its progress; one-shot commands speak through their output.
    let default = match cli.command {
        mt5_reconciler::cli::Command::Run { .. } => {
            #[cfg(not(feature = "mimalloc"))]
            mt5_reconciler::memory::spawn_trim(mt5_reconciler::memory::TRIM_EVERY);
            "info"
        }
        _ => "error",
    };
    mt5_reconciler::telemetry::init(cli.log_format, default);
    mt5_reconciler::cli::run(cli).await
}
