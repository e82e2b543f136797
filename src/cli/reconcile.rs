//! `mt5-reconciler reconcile`: one offline reconciliation of two files (and, with them,
//! the account's pending orders, deals and margin mode when given).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use chrono::Utc;
use rust_decimal::Decimal;
use serde::Serialize;

use super::{EXIT_BAD_INPUT, Format, ReconcileArgs, load_config};
use crate::domain::close_tracker::Answer;
use crate::domain::{
    AccountSnapshot, Book, BotTrade, CloseLookups, Divergence, External, Match, MatchMethod,
    Reconciliation, SymbolTable, reconcile_book,
};
use crate::http::views::CloseView;
use crate::input;

/// Account name given to trades read by the offline command.
const OFFLINE_ACCOUNT: &str = "offline";

/// What the offline command read.
#[derive(Debug)]
pub struct Loaded {
    /// `--symbols`, when given.
    pub symbols: Option<SymbolTable>,
    /// The bot's trades.
    pub trades: Vec<BotTrade>,
    /// The account as the files describe it: positions, pending orders (`None` without
    /// `--orders`), deals and margin mode; no money (balance and equity are zero) and no
    /// quotes.
    pub snapshot: AccountSnapshot,
}

/// Reads every file `args` names; the first bad one is the error.
pub fn load(args: &ReconcileArgs) -> Result<Loaded, input::InputError> {
    let symbols = args
        .symbols
        .as_deref()
        .map(input::read_symbols)
        .transpose()?;
    let positions = input::read_positions(&args.positions)?;
    let account = args.account.as_deref().unwrap_or(OFFLINE_ACCOUNT);
    let trades = input::read_trades(&args.trades, account)?;
    let orders = args.orders.as_deref().map(input::read_orders).transpose()?;
    let deals = match args.deals.as_deref() {
        Some(path) => input::read_deals(path)?,
        None => Vec::new(),
    };
    let snapshot = AccountSnapshot {
        balance: Decimal::ZERO,
        equity: Decimal::ZERO,
        margin: Decimal::ZERO,
        free_margin: Decimal::ZERO,
        positions,
        quotes: Vec::new(),
        taken_at: Utc::now(),
        margin_mode: args.margin_mode.map(Into::into),
        orders,
        deals,
    };
    Ok(Loaded {
        symbols,
        trades,
        snapshot,
    })
}

/// Runs the command; exit 0 when nothing diverges, 1 when something does, 2 on bad input.
pub fn run(args: &ReconcileArgs) -> ExitCode {
    let Some(config) = load_config(args.config.as_deref()) else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let Loaded {
        symbols,
        trades,
        snapshot,
    } = match load(args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let positions = &snapshot.positions;
    let rules = config.reconcile_rules(symbols.as_ref());
    let scope = match &args.account {
        Some(account) => rules.scopes.for_account(account),
        None => &rules.scopes.default,
    };
    let mut result = match reconcile_book(&trades, Book::from(&snapshot), scope, &rules) {
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
    explain_closes(&mut result, &trades, &snapshot);
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

/// A trade whose position is gone, or shrank, and whose closing deals are in `--deals`
/// becomes `closed_at_broker` or `partially_closed` with the close's detail, as in the
/// service; without its deals it stays as the matching saw it (one file is one look, so
/// nothing waits for a lagging history).
fn explain_closes(result: &mut Reconciliation, trades: &[BotTrade], snapshot: &AccountSnapshot) {
    let mut lookups = CloseLookups::default();
    let questions = lookups.questions(trades, &snapshot.positions, result);
    let answers = questions
        .into_iter()
        .map(|q| (q, Answer::Snapshot))
        .collect();
    lookups.settle(&mut result.divergences, answers, &snapshot.deals, 1);
    result.divergences.sort_by(|a, b| {
        let key = |d: &Divergence| (d.trade_id.is_none(), d.trade_id.clone(), d.ticket, d.kind);
        key(a).cmp(&key(b))
    });
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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use rstest::rstest;

    use super::*;
    use crate::cli::MarginModeArg;
    use crate::domain::{DealReason, MarginMode};

    fn example(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/data")
            .join(name)
    }

    fn args(prefix: &str) -> ReconcileArgs {
        ReconcileArgs {
            positions: example(&format!("{prefix}-positions.json")),
            trades: example(&format!("{prefix}-trades.json")),
            symbols: None,
            orders: None,
            deals: None,
            margin_mode: None,
            account: None,
            config: None,
            format: None,
        }
    }

    #[rstest]
    #[case::metaapi("metaapi", 2, 3, 33230187)]
    #[case::mt5("mt5", 2, 3, 1201497744)]
    fn orders_deals_and_the_margin_mode_fill_the_snapshot(
        #[case] prefix: &str,
        #[case] orders: usize,
        #[case] deals: usize,
        #[case] stop_loss_deal: u64,
    ) {
        let mut a = args(prefix);
        let plain = load(&a).expect("the examples read");
        assert_eq!(plain.snapshot.orders, None, "no --orders: unknown");
        assert!(plain.snapshot.deals.is_empty());
        assert_eq!(plain.snapshot.margin_mode, None);
        a.orders = Some(example(&format!("{prefix}-orders.json")));
        a.deals = Some(example(&format!("{prefix}-deals.json")));
        a.margin_mode = Some(MarginModeArg::Netting);
        let full = load(&a).expect("the examples read");
        assert_eq!(full.snapshot.positions, plain.snapshot.positions);
        assert_eq!(full.trades, plain.trades);
        assert_eq!(full.snapshot.orders.map(|o| o.len()), Some(orders));
        assert_eq!(full.snapshot.deals.len(), deals, "balance deals left out");
        let sl = full
            .snapshot
            .deals
            .iter()
            .find(|d| d.reason == DealReason::StopLoss)
            .map(|d| d.ticket);
        assert_eq!(sl, Some(stop_loss_deal));
        assert_eq!(full.snapshot.margin_mode, Some(MarginMode::Netting));
    }

    #[rstest]
    #[case::orders(true, r#"[{"id": "1", "type": "ORDER_TYPE_BUY_LIMIT", "symbol": "EURUSD", "openPrice": 1.1, "time": "2020-04-20T08:38:58Z", "currentVolume": "lots"}]"#, "currentVolume")]
    #[case::deals(false, r#"[{"ticket": 1, "type": 0, "entry": 7, "position_id": 1, "symbol": "EURUSD", "volume": 1, "price": 1, "time": 1}]"#, "entry")]
    fn a_bad_orders_or_deals_file_names_file_element_field_and_value(
        #[case] orders: bool,
        #[case] text: &str,
        #[case] field: &str,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.json");
        std::fs::write(&path, text).expect("written");
        let mut a = args("metaapi");
        if orders {
            a.orders = Some(path.clone());
        } else {
            a.deals = Some(path.clone());
        }
        let e = load(&a).expect_err("bad input");
        assert_eq!(e.file, path.display().to_string());
        assert_eq!((e.index, e.field.as_deref()), (Some(0), Some(field)), "{e}");
        assert!(e.value.is_some(), "{e}");
    }
}
