//! Positions files in either format (MetaApi or MT5 records): parsed or refused, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = mt5_reconciler::input::parse_positions("fuzz", text);
});
