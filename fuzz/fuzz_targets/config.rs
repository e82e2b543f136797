//! `config.toml`: parsed and validated or refused, and the reconcile rules of an accepted
//! one built, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(config) = mt5_reconciler::config::Config::parse(text) {
        let _ = config.reconcile_rules(None);
    }
});
