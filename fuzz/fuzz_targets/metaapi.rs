//! MetaApi payloads: positions, account information, a symbol specification and the
//! answer to a close, each parsed or refused as malformed, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mt5_reconciler::broker::metaapi;

fuzz_target!(|text: &str| {
    let _ = metaapi::positions(text);
    let _ = metaapi::account_information(text);
    if let Ok(spec) = metaapi::symbol_specification("XAUUSD", text) {
        let _ = spec.pip_size();
    }
    let _ = metaapi::close_result(7, text);
});
