//! Logging: one subscriber for the binary, `pretty` lines for people or `json` lines for a
//! log collector, filtered by `RUST_LOG`; and the run ids that tie one sync's lines together.
//!
//! Secrets never reach a log line: tokens are read from the environment and compared, never
//! formatted, and database URLs are logged through `store::redact_url`.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::EnvFilter;

/// How log lines are written (to standard error).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event, coloured on a terminal.
    #[default]
    Pretty,
    /// One JSON object per event, with the current span's fields (`account`, `run_id`).
    Json,
}

/// Installs the global subscriber. `RUST_LOG` wins over `default_filter` when it is set and
/// valid; an invalid `RUST_LOG` is reported on standard error and the default applies.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!("warning: RUST_LOG={spec:?} ignored: {e}");
            EnvFilter::new(default_filter)
        }),
        _ => EnvFilter::new(default_filter),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// A new id for one sync run: `<process start, hex seconds>-<sequence>`, unique within a
/// process and, in practice, across restarts.
pub fn next_run_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(1);
    static EPOCH: OnceLock<u64> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    format!("{epoch:x}-{}", SEQ.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_unique_and_share_the_process_prefix() {
        let a = next_run_id();
        let b = next_run_id();
        assert_ne!(a, b);
        assert_eq!(a.split('-').next(), b.split('-').next());
    }
}
