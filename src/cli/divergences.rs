//! `mt5-reconciler divergences`: the stored divergences, filtered, newest first.
//!
//! Same filters, same JSON as `GET /api/divergences`.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{SecondsFormat, Utc};
use serde_json::json;

use super::{EXIT_BAD_INPUT, Format, ops};
use crate::http::views::{CloseView, DivergenceParams, DivergenceView};
use crate::store;

/// Arguments of `divergences`.
#[derive(Debug, clap::Args)]
pub struct DivergencesArgs {
    /// Only this account.
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
    /// Only `open` or only `resolved` divergences.
    #[arg(long, value_name = "open|resolved")]
    pub status: Option<String>,
    /// Only this kind, e.g. entry_slippage, sl_mismatch, missing_at_broker.
    #[arg(long)]
    pub kind: Option<String>,
    /// First seen at or after: RFC 3339, YYYY-MM-DD, or an age (90s, 15m, 24h, 7d).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// `yes`: only acknowledged divergences; `no`: only those not acknowledged.
    #[arg(long, value_name = "yes|no")]
    pub acknowledged: Option<String>,
    /// Rows to show, newest first (1 to 1000).
    #[arg(long, default_value_t = 100)]
    pub limit: u64,
    /// Only rows with an id below this one (the next page of an earlier listing).
    #[arg(long, value_name = "ID")]
    pub before: Option<i64>,
    /// Output format (default: table on a terminal, json otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Configuration file (default: ./config.toml when present, else built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Runs the command: 0 with the listing, 2 on a bad filter, 3 when the database is away.
pub async fn run(args: &DivergencesArgs) -> ExitCode {
    let params = DivergenceParams {
        account: args.account.clone(),
        status: args.status.clone(),
        kind: args.kind.clone(),
        since: args.since.clone(),
        acknowledged: args.acknowledged.clone(),
        before: args.before.map(|b| b.to_string()),
        limit: Some(args.limit.to_string()),
    };
    let filter = match params.filter(Utc::now()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let (_, db) = match ops::open(args.config.as_deref()).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let page = match store::query_divergences(&db, &filter).await {
        Ok(p) => p,
        Err(e) => return ops::store_failed("cannot list divergences", &e),
    };
    let items: Vec<DivergenceView> = page.items.iter().map(DivergenceView::from).collect();
    let text = match ops::format(args.format) {
        Format::Json => ops::json(&json!({ "items": items, "next_before": page.next_before })),
        Format::Table => table(&items, page.next_before),
    };
    ops::print(&text);
    ExitCode::SUCCESS
}

fn table(items: &[DivergenceView], next_before: Option<i64>) -> String {
    if items.is_empty() {
        return "no divergences".into();
    }
    let dash = || "-".to_owned();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|d| {
            vec![
                d.id.to_string(),
                d.first_seen.to_rfc3339_opts(SecondsFormat::Secs, true),
                d.account_id.clone(),
                d.kind.to_owned(),
                d.symbol.clone(),
                d.ticket.map_or_else(dash, |t| t.to_string()),
                d.trade_id.clone().unwrap_or_else(dash),
                d.expected.clone().unwrap_or_else(dash),
                d.actual.clone().unwrap_or_else(dash),
                match (&d.delta, d.unit) {
                    (Some(v), Some(u)) if v.starts_with('-') => format!("{v} {u}"),
                    (Some(v), Some(u)) => format!("+{v} {u}"),
                    _ => dash(),
                },
                d.close.as_ref().map_or_else(dash, close_cell),
                match &d.acknowledgement {
                    Some(_) => format!("{} (acknowledged)", d.status),
                    None => d.status.to_owned(),
                },
            ]
        })
        .collect();
    let header = [
        "ID",
        "FIRST SEEN",
        "ACCOUNT",
        "KIND",
        "SYMBOL",
        "TICKET",
        "TRADE",
        "EXPECTED",
        "ACTUAL",
        "DELTA",
        "CLOSE",
        "STATUS",
    ];
    let mut out = ops::table(&header, &rows);
    out.push_str(&format!("\n\n{} divergences", items.len()));
    if let Some(before) = next_before {
        out.push_str(&format!(" (more: --before {before})"));
    }
    out
}

/// A close for people: `stop_loss 0.5 @ 1.08000, profit -25.50`.
fn close_cell(c: &CloseView) -> String {
    format!(
        "{} {} @ {}, profit {}",
        c.reason, c.volume, c.price, c.profit
    )
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use rust_decimal::dec;

    use super::*;
    use crate::domain::{
        CloseDetail, DealReason, Divergence, DivergenceKind, Price, Unit, Value, Volume,
    };
    use crate::store::{DivergenceStatus, StoredDivergence};

    fn view(divergence: Divergence) -> DivergenceView {
        let at = DateTime::from_timestamp(1_790_000_000, 0).expect("a time");
        DivergenceView::from(&StoredDivergence {
            id: 1,
            account_id: "acc".into(),
            divergence,
            status: DivergenceStatus::Open,
            first_seen: at,
            last_seen: at,
            resolved_at: None,
            acknowledgement: None,
        })
    }

    #[test]
    fn the_table_shows_how_the_broker_closed_a_position() {
        let partial = Divergence::new(
            DivergenceKind::PartiallyClosed,
            "EURUSD".into(),
            Some(7),
            Some("t1".into()),
            Some(Value::Number(dec!(1))),
            Some(Value::Number(dec!(0.5))),
            Some((dec!(0.5), Unit::Lots)),
        )
        .with_close(CloseDetail {
            reason: DealReason::Mobile,
            price: Price::new(dec!(1.08050)),
            profit: dec!(-42.50),
            volume: Volume::new(dec!(0.5)),
            time: DateTime::from_timestamp(1_790_000_000, 0).expect("a time"),
        });
        let missing = Divergence::new(
            DivergenceKind::MissingAtBroker,
            "EURUSD".into(),
            Some(8),
            Some("t2".into()),
            Some(Value::Number(dec!(1))),
            None,
            None,
        );
        let text = table(&[view(partial), view(missing)], None);
        let lines: Vec<&str> = text.lines().collect();
        let header: Vec<&str> = lines[0].split_whitespace().rev().take(3).collect();
        assert_eq!(header, ["STATUS", "CLOSE", "DELTA"], "{text}");
        assert!(
            lines[1].contains("mobile 0.5 @ 1.08050, profit -42.50  open"),
            "{text}"
        );
        let last: Vec<&str> = lines[2].split_whitespace().rev().take(3).collect();
        assert_eq!(last, ["open", "-", "-"], "{text}");
    }
}
