//! The `mt5-reconciler` binary: command line → logging → library.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = mt5_reconciler::cli::Cli::parse();
    // The service logs its progress; one-shot commands speak through their output.
    let default = match cli.command {
        mt5_reconciler::cli::Command::Run { .. } => "info",
        _ => "error",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .init();
    mt5_reconciler::cli::run(cli).await
}
