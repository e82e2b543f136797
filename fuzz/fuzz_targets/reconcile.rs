//! Parse then reconcile, end to end: positions, trades and (optionally) symbols separated
//! by lines holding `---`. Whatever the readers accept, `reconcile` returns `Ok` or `Err`,
//! never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mt5_reconciler::domain::{ReconcileRules, SymbolTable, reconcile};
use mt5_reconciler::input::{parse_positions, parse_symbols, parse_trades};

fuzz_target!(|text: &str| {
    let mut parts = text.split("\n---\n");
    let (Some(positions), Some(trades)) = (parts.next(), parts.next()) else {
        return;
    };
    let symbols = match parts.next() {
        Some(s) => match parse_symbols("symbols", s) {
            Ok(table) => table,
            Err(_) => return,
        },
        None => SymbolTable::new(),
    };
    let (Ok(positions), Ok(trades)) = (
        parse_positions("positions", positions),
        parse_trades("trades", trades, "acc"),
    ) else {
        return;
    };
    let rules = ReconcileRules {
        symbols,
        ..ReconcileRules::default()
    };
    let _ = reconcile(&trades, &positions, &rules);
});
