//! `mt5-reconciler reconcile`: one offline reconciliation of two files.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use serde::Serialize;

use super::{EXIT_BAD_INPUT, Format, ReconcileArgs, load_config};
use crate::domain::{
    Book, Divergence, External, Match, MatchMethod, Reconciliation, reconcile_book,
};
use crate::http::views::CloseView;
use crate::input;

/// Account name given to trades read by the offline command.
const OFFLINE_ACCOUNT: &str = "offline";

/// Runs the command; exit 0 when nothing diverges, 1 when something does, 2 on bad input.
pub fn run(args: &ReconcileArgs) -> ExitCode {
    let Some(config) = load_config(args.config.as_deref()) else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let loaded = (|| {
        let symbols = args
            .symbols
            .as_deref()
            .map(input::read_symbols)
            .transpose()?;
        let positions = input::read_positions(&args.positions)?;
        let account = args.account.as_deref().unwrap_or(OFFLINE_ACCOUNT);
        let trades = input::read_trades(&args.trades, account)?;
        Ok::<_, input::InputError>((symbols, positions, trades))
    })();
    let (symbols, positions, trades) = match loaded {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let rules = config.reconcile_rules(symbols.as_ref());
    let scope = match &args.account {
        Some(account) => rules.scopes.for_account(account),
        None => &rules.scopes.default,
    };
    let result = match reconcile_book(&trades, Book::positions(&positions), scope, &rules) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "error: {} against {}: {e}",
                args.positions.display(),
                args.trades.display()
            );
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let format = args.format.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Json
    });
    let text = match format {
        Format::Json => json(&result),
        Format::Table => table(&result, trades.len(), positions.len()),
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(out, "{text}");
    if result.divergences.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[derive(Serialize)]
struct JsonOut<'a> {
    matched: &'a [Match],
    divergences: Vec<JsonDivergence<'a>>,
    /// Positions outside the bot's scope; left out when there are none.
    #[serde(skip_serializing_if = "<[External]>::is_empty")]
    external: &'a [External],
}

/// The public shape of a divergence: decimals as strings, null where a field does not apply.
#[derive(Serialize)]
struct JsonDivergence<'a> {
    kind: &'static str,
    symbol: &'a str,
    ticket: Option<u64>,
    trade_id: Option<&'a str>,
    expected: Option<String>,
    actual: Option<String>,
    delta: Option<String>,
    unit: Option<&'static str>,
    /// How the broker closed the position; `null` here, where no deals are read.
    close: Option<CloseView>,
}

impl<'a> From<&'a Divergence> for JsonDivergence<'a> {
    fn from(d: &'a Divergence) -> Self {
        Self {
            kind: d.kind.as_str(),
            symbol: &d.symbol,
            ticket: d.ticket,
            trade_id: d.trade_id.as_deref(),
            expected: d.expected.map(|v| v.to_string()),
            actual: d.actual.map(|v| v.to_string()),
            delta: d.delta.map(|v| v.to_string()),
            unit: d.unit.map(|u| u.as_str()),
            close: d.close.as_deref().map(CloseView::from),
        }
    }
}

/// The `--format json` document.
pub fn json(r: &Reconciliation) -> String {
    let out = JsonOut {
        matched: &r.matched,
        divergences: r.divergences.iter().map(JsonDivergence::from).collect(),
        external: &r.external,
    };
    serde_json::to_string_pretty(&out).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The `--format table` text: a summary line, the external positions, the divergences,
/// a count by kind.
pub fn table(r: &Reconciliation, trades: usize, positions: usize) -> String {
    let by = |m: MatchMethod| r.matched.iter().filter(|x| x.method == m).count();
    let mut s = format!(
        "matched {} of {trades} trades with {positions} positions \
         (by ticket {}, by client id {}, heuristic {})\n",
        r.matched.len(),
        by(MatchMethod::Ticket),
        by(MatchMethod::ClientId),
        by(MatchMethod::Heuristic),
    );
    if !r.external.is_empty() {
        s.push_str(&format!(
            "{} external (outside the bot's scope, not compared):\n",
            r.external.len()
        ));
        for e in &r.external {
            let comment = if e.comment.is_empty() {
                String::new()
            } else {
                format!(" comment {:?}", e.comment)
            };
            s.push_str(&format!(
                "  {} {} {} {} {} magic {}{comment}\n",
                e.holding.as_str(),
                e.ticket,
                e.symbol,
                e.side,
                e.volume,
                e.magic
            ));
        }
    }
    if r.divergences.is_empty() {
        s.push_str("no divergences");
        return s;
    }
    let dash = || "-".to_owned();
    let rows: Vec<[String; 7]> = r
        .divergences
        .iter()
        .map(|d| {
            [
                d.kind.to_string(),
                d.symbol.clone(),
                d.ticket.map_or_else(dash, |t| t.to_string()),
                d.trade_id.clone().unwrap_or_else(dash),
                d.expected.map_or_else(dash, |v| v.to_string()),
                d.actual.map_or_else(dash, |v| v.to_string()),
                match (d.delta, d.unit) {
                    (Some(v), Some(u)) => format!("{v:+} {}", u.as_str()),
                    _ => dash(),
                },
            ]
        })
        .collect();
    let header = [
        "KIND", "SYMBOL", "TICKET", "TRADE", "EXPECTED", "ACTUAL", "DELTA",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &[String]| {
        let joined: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        s.push('\n');
        s.push_str(joined.join("  ").trim_end());
    };
    line(&header.map(str::to_owned));
    for row in &rows {
        line(row);
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &r.divergences {
        *counts.entry(d.kind.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    s.push_str(&format!(
        "\n\n{} divergences: {}",
        r.divergences.len(),
        parts.join(", ")
    ));
    s
}
