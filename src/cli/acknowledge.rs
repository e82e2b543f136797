//! `mt5-reconciler acknowledge ID --note …`: an operator acknowledges an open divergence
//! (a known manual hedge, a broker's partial fill accepted). The divergence stays in the
//! record and is shown apart; it no longer counts as needing attention. Audited as
//! `divergence_acknowledged` with who and the note.
//!
//! The same as `POST /api/divergences/{id}/acknowledge`.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;

use super::{EXIT_BAD_INPUT, ops};
use crate::store::{self, AckOutcome};

/// Exit code when there is nothing to acknowledge (unknown, resolved, or done before).
const EXIT_NOTHING: u8 = 1;

/// Arguments of `acknowledge`.
#[derive(Debug, clap::Args)]
pub struct AcknowledgeArgs {
    /// Divergence id, as `divergences` shows it.
    pub id: i64,
    /// Why it needs no attention (required), e.g. "known manual hedge".
    #[arg(long)]
    pub note: String,
    /// Who acknowledges, for the audit trail (default: the USER environment variable).
    #[arg(long)]
    pub by: Option<String>,
    /// Configuration file (default: ./config.toml when present, else built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Runs the command: 0 acknowledged, 1 nothing to acknowledge, 2 bad input, 3 database
/// away.
pub async fn run(args: &AcknowledgeArgs) -> ExitCode {
    let by = args
        .by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into());
    let (by, note) = match store::check_ack(&by, &args.note) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let (_, db) = match ops::open(args.config.as_deref()).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let id = args.id;
    match store::acknowledge_divergence(&db, id, &by, &note, Utc::now()).await {
        Ok(AckOutcome::Acknowledged) => {
            ops::print(&format!("divergence {id} acknowledged by {by}: {note}"));
            ExitCode::SUCCESS
        }
        Ok(AckOutcome::Already(a)) => {
            eprintln!(
                "error: divergence {id} was acknowledged by {} at {}: {}",
                a.by,
                a.at.to_rfc3339(),
                a.note
            );
            ExitCode::from(EXIT_NOTHING)
        }
        Ok(AckOutcome::Resolved) => {
            eprintln!("error: divergence {id} is resolved: nothing to acknowledge");
            ExitCode::from(EXIT_NOTHING)
        }
        Ok(AckOutcome::Unknown) => {
            eprintln!("error: no divergence {id}");
            ExitCode::from(EXIT_NOTHING)
        }
        Err(e) => ops::store_failed(&format!("cannot acknowledge divergence {id}"), &e),
    }
}
