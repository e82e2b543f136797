//! Symbol files: `{"XAUUSD": {"digits": 2}, "US30": {"pip_size": "1"}}`.

use std::collections::BTreeMap;

use super::record::InputError;
use crate::domain::{SymbolSpec, SymbolTable};

/// Parses a symbols JSON object from `text`; `source` names it in errors.
pub fn parse_symbols(source: &str, text: &str) -> Result<SymbolTable, InputError> {
    let specs: BTreeMap<String, SymbolSpec> = serde_json::from_str(text)
        .map_err(|e| InputError::whole(source, format!("invalid symbols file: {e}")))?;
    for (symbol, spec) in &specs {
        let bad = |field: &str, value: String, reason: &str| InputError {
            file: source.to_owned(),
            index: None,
            field: Some(format!("{symbol}.{field}")),
            value: Some(value),
            reason: reason.to_owned(),
        };
        if let Some(p) = spec.pip_size.filter(|p| *p <= rust_decimal::Decimal::ZERO) {
            return Err(bad("pip_size", p.to_string(), "must be greater than zero"));
        }
        if let Some(p) = spec.point.filter(|p| *p <= rust_decimal::Decimal::ZERO) {
            return Err(bad("point", p.to_string(), "must be greater than zero"));
        }
        if let Some(d) = spec.digits.filter(|d| *d > 10) {
            return Err(bad("digits", d.to_string(), "must be between 0 and 10"));
        }
    }
    Ok(specs.into_iter().collect())
}
