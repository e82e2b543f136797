//! Replays the fuzz corpora (`fuzz/corpus/<target>/`) through the library's parsing
//! functions, as the fuzz targets in `fuzz/fuzz_targets/` call them, without libFuzzer:
//! every input that once found a panic stays a regression test of plain `cargo test`.

use std::path::Path;

use mt5_reconciler::broker::metaapi;
use mt5_reconciler::config::Config;
use mt5_reconciler::domain::{ReconcileRules, SymbolTable, reconcile};
use mt5_reconciler::input::{parse_positions, parse_symbols, parse_trades};

/// What the fuzz target `target` does with `text`; a panic fails the test.
fn replay(target: &str, text: &str) {
    match target {
        "positions" => drop(parse_positions("fuzz", text)),
        "trades" => drop(parse_trades("fuzz", text, "acc")),
        "symbols" => {
            if let Ok(table) = parse_symbols("fuzz", text) {
                for (symbol, _) in table.iter() {
                    let _ = table.pip_size(symbol);
                }
            }
        }
        "metaapi" => {
            let _ = metaapi::positions(text);
            let _ = metaapi::account_information(text);
            if let Ok(spec) = metaapi::symbol_specification("XAUUSD", text) {
                let _ = spec.pip_size();
            }
            let _ = metaapi::close_result(7, text);
        }
        "config" => {
            if let Ok(config) = Config::parse(text) {
                let _ = config.reconcile_rules(None);
            }
        }
        "reconcile" => replay_reconcile(text),
        other => panic!("no fuzz target {other:?}: add it here and in fuzz/Cargo.toml"),
    }
}

/// Positions, trades and optional symbols separated by `---` lines, parsed then
/// reconciled.
fn replay_reconcile(text: &str) {
    let mut parts = text.split("\n---\n");
    let (Some(positions), Some(trades)) = (parts.next(), parts.next()) else {
        return;
    };
    let symbols = match parts.next().map(|s| parse_symbols("symbols", s)) {
        Some(Ok(table)) => table,
        Some(Err(_)) => return,
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
}

#[test]
fn every_corpus_input_replays_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut replayed = 0;
    for target in std::fs::read_dir(&root).expect("fuzz/corpus exists") {
        let target = target.expect("a corpus directory");
        let name = target.file_name().to_string_lossy().into_owned();
        for file in std::fs::read_dir(target.path()).expect("a readable corpus") {
            let path = file.expect("a corpus file").path();
            let bytes = std::fs::read(&path).expect("a readable corpus file");
            // libFuzzer's `&str` targets skip inputs that are not UTF-8: so does the replay.
            if let Ok(text) = std::str::from_utf8(&bytes) {
                replay(&name, text);
                replayed += 1;
            }
        }
    }
    assert!(replayed > 0, "no corpus found under {}", root.display());
}
