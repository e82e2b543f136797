//! Symbol files, and the pip size of every symbol they accept: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(table) = mt5_reconciler::input::parse_symbols("fuzz", text) {
        for (symbol, _) in table.iter() {
            let _ = table.pip_size(symbol);
        }
    }
});
