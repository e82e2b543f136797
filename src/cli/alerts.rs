//! `mt5-reconciler alerts list|cancel`: the risk guards' alerts, newest first, and an
//! operator's cancel of a scheduled automatic close.
//!
//! Same JSON as `GET /api/alerts`; `cancel` is `POST /api/alerts/{id}/cancel`. A cancel
//! must land before the close is due (`guards.alert_lead_secs` after the breach): the
//! account's actor reads the alert's status when the time comes and closes nothing if it
//! was cancelled.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{SecondsFormat, Utc};
use clap::Subcommand;
use serde_json::json;

use super::{EXIT_BAD_INPUT, Format, ops};
use crate::http::views::{AlertView, DEFAULT_ALERT_LIMIT};
use crate::store::{self, CancelOutcome};

/// Exit code of `cancel` when there is nothing to cancel (unknown or not pending).
const EXIT_NOT_PENDING: u8 = 1;

/// Arguments of `alerts`.
#[derive(Debug, clap::Args)]
pub struct AlertsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: AlertsAction,
    /// Configuration file (default: ./config.toml when present, else built-in defaults).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

/// The `alerts` sub-commands.
#[derive(Debug, Subcommand)]
pub enum AlertsAction {
    /// The stored alerts, newest first, with their status.
    List {
        /// Only this account.
        #[arg(long, value_name = "ID")]
        account: Option<String>,
        /// Rows to show, newest first (1 to 1000).
        #[arg(long, default_value_t = DEFAULT_ALERT_LIMIT)]
        limit: u64,
        /// Output format (default: table on a terminal, json otherwise).
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Stop the enforcement of an alert: its pending close, or the closes of a breach
    /// that still holds (audited with who and why).
    Cancel {
        /// Alert id, as `alerts list` shows it (or `--account`).
        #[arg(required_unless_present = "account", conflicts_with = "account")]
        id: Option<String>,
        /// Stop every enforcement of this account instead of one alert's.
        #[arg(long)]
        account: Option<String>,
        /// Who cancels, for the audit trail (default: the USER environment variable).
        #[arg(long)]
        by: Option<String>,
        /// Why, for the audit trail.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// Runs the command: 0 listed or cancelled, 1 nothing to cancel, 2 bad input,
/// 3 database away.
pub async fn run(args: &AlertsArgs) -> ExitCode {
    if let AlertsAction::List { limit, .. } = &args.action
        && !(1..=store::MAX_PAGE).contains(limit)
    {
        eprintln!("error: --limit {limit}: expected 1 to {}", store::MAX_PAGE);
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let (_, db) = match ops::open(args.config.as_deref()).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    match &args.action {
        AlertsAction::List {
            account,
            limit,
            format,
        } => {
            let rows = match store::list_alerts(&db, account.as_deref(), *limit).await {
                Ok(r) => r,
                Err(e) => return ops::store_failed("cannot list alerts", &e),
            };
            let items: Vec<AlertView> = rows.iter().map(AlertView::from).collect();
            let text = match ops::format(*format) {
                Format::Json => ops::json(&json!({ "items": items })),
                Format::Table => table(&items),
            };
            ops::print(&text);
            ExitCode::SUCCESS
        }
        AlertsAction::Cancel {
            id,
            account,
            by,
            reason,
        } => {
            let by = by
                .clone()
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "cli".into());
            match (id, account) {
                (Some(id), _) => cancel(&db, id, &by, reason).await,
                (None, Some(account)) => cancel_account(&db, account, &by, reason).await,
                (None, None) => ExitCode::from(EXIT_BAD_INPUT),
            }
        }
    }
}

async fn cancel_account(
    db: &sea_orm::DatabaseConnection,
    account: &str,
    by: &str,
    reason: &str,
) -> ExitCode {
    match store::cancel_account_enforcement(db, account, Utc::now(), by, reason).await {
        Ok(ids) if ids.is_empty() => {
            eprintln!("error: account {account} has no alert that still closes positions");
            ExitCode::from(EXIT_NOT_PENDING)
        }
        Ok(ids) => {
            ops::print(&format!(
                "account {account}: enforcement cancelled ({}); nothing more will be closed for it",
                ids.join(", ")
            ));
            ExitCode::SUCCESS
        }
        Err(e) => ops::store_failed(&format!("cannot cancel the enforcement of {account}"), &e),
    }
}

async fn cancel(db: &sea_orm::DatabaseConnection, id: &str, by: &str, reason: &str) -> ExitCode {
    match store::cancel_enforcement(db, id, Utc::now(), by, reason).await {
        Ok(CancelOutcome::Cancelled) => {
            ops::print(&format!(
                "alert {id}: enforcement cancelled; nothing more will be closed for it"
            ));
            ExitCode::SUCCESS
        }
        Ok(CancelOutcome::NotCancellable(status)) => {
            eprintln!(
                "error: alert {id} is {status}, nothing to cancel: {}",
                status.not_cancellable_reason()
            );
            ExitCode::from(EXIT_NOT_PENDING)
        }
        Ok(CancelOutcome::Unknown) => {
            eprintln!("error: no alert {id:?}; see `mt5-reconciler alerts list`");
            ExitCode::from(EXIT_NOT_PENDING)
        }
        Err(e) => ops::store_failed(&format!("cannot cancel alert {id}"), &e),
    }
}

fn table(items: &[AlertView]) -> String {
    if items.is_empty() {
        return "no alerts".into();
    }
    let dash = || "-".to_owned();
    let time = |t: &chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|a| {
            vec![
                a.id.clone(),
                time(&a.created_at),
                a.account_id.clone(),
                a.kind.clone(),
                a.rule.clone(),
                a.loss.clone().unwrap_or_else(dash),
                a.reference.clone().unwrap_or_else(dash),
                a.close_at.as_ref().map_or_else(dash, time),
                a.status.to_string(),
            ]
        })
        .collect();
    let header = [
        "ID",
        "RAISED",
        "ACCOUNT",
        "KIND",
        "RULE",
        "LOSS",
        "REFERENCE",
        "CLOSE AT",
        "STATUS",
    ];
    let pending = items.iter().filter(|a| a.cancellable).count();
    let mut out = ops::table(&header, &rows);
    out.push_str(&format!("\n\n{} alerts", items.len()));
    if pending > 0 {
        out.push_str(&format!(
            ", {pending} pending a close (cancel: mt5-reconciler alerts cancel ID)"
        ));
    }
    out
}
