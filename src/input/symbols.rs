//! Symbol files: `{"XAUUSD": {"digits": 2}, "US30": {"pip_size": "1"}}`.

use std::collections::BTreeMap;

use super::record::InputError;
use super::text::{self, MAX_SYMBOL_BYTES, text_problem};
use crate::domain::pips::{MAX_DIGITS, price_step_problem};
use crate::domain::{SymbolSpec, SymbolTable};

/// Parses a symbols JSON object from `text`; `source` names it in errors.
pub fn parse_symbols(source: &str, text: &str) -> Result<SymbolTable, InputError> {
    let specs: BTreeMap<String, SymbolSpec> = serde_json::from_str(text)
        .map_err(|e| InputError::whole(source, format!("invalid symbols file: {e}")))?;
    for (symbol, spec) in &specs {
        if let Some(reason) = text_problem(symbol, MAX_SYMBOL_BYTES) {
            return Err(InputError {
                file: source.to_owned(),
                index: None,
                field: Some("symbol".to_owned()),
                value: Some(text::shown(symbol, 60)),
                reason,
            });
        }
        let bad = |field: &str, value: String, reason: &str| InputError {
            file: source.to_owned(),
            index: None,
            field: Some(format!("{symbol}.{field}")),
            value: Some(value),
            reason: reason.to_owned(),
        };
        for (field, value) in [("pip_size", spec.pip_size), ("point", spec.point)] {
            if let Some(v) = value
                && let Some(reason) = price_step_problem(v)
            {
                return Err(bad(field, v.to_string(), &reason));
            }
        }
        if let Some(d) = spec.digits.filter(|d| *d > MAX_DIGITS) {
            let reason = format!("must be between 0 and {MAX_DIGITS}");
            return Err(bad("digits", d.to_string(), &reason));
        }
    }
    Ok(specs.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::zero_pip(r#"{"US30": {"pip_size": "0"}}"#, "US30.pip_size", "0")]
    #[case::vanishing_pip(
        r#"{"US30": {"pip_size": "1e-28"}}"#,
        "US30.pip_size",
        "0.0000000000000000000000000001"
    )]
    #[case::vanishing_point(
        r#"{"X": {"digits": 5, "point": 0.00000000001}}"#,
        "X.point",
        "0.00000000001"
    )]
    #[case::huge_point(r#"{"X": {"point": 1000001}}"#, "X.point", "1000001")]
    #[case::digits(r#"{"X": {"digits": 11}}"#, "X.digits", "11")]
    fn out_of_bounds_specs_name_symbol_field_and_value(
        #[case] text: &str,
        #[case] field: &str,
        #[case] value: &str,
    ) {
        let e = parse_symbols("symbols.json", text).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(field), "{e}");
        assert_eq!(e.value.as_deref(), Some(value), "{e}");
        assert!(e.to_string().starts_with("symbols.json"), "{e}");
    }

    #[test]
    fn the_bounds_themselves_are_accepted() {
        let text = r#"{"A": {"pip_size": "0.0000000001"}, "B": {"point": 1000000, "digits": 10}}"#;
        assert!(parse_symbols("symbols.json", text).is_ok());
    }
}
