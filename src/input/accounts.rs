//! Account bodies of the API: `{"id", "broker", "name"?}` or an array of them; and the
//! optional `{"version"}` body of a trade close.

use std::collections::HashSet;

use serde_json::value::RawValue;

use super::record::{InputError, Record, array};
use super::text::{MAX_ID_BYTES, MAX_SYMBOL_BYTES};
use crate::config::KNOWN_BROKERS;

/// Fields an account object may carry.
const FIELDS: &[&str] = &["id", "broker", "name"];

/// Longest account name, in bytes.
pub(super) const MAX_NAME_BYTES: usize = 255;

/// An account to add or update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInput {
    /// Account id.
    pub id: String,
    /// Connector: one of the known brokers.
    pub broker: String,
    /// Display name (default: the id).
    pub name: Option<String>,
}

/// Parses one account object or an array of them; `source` names the input in errors.
pub fn parse_accounts(source: &str, text: &str) -> Result<Vec<AccountInput>, InputError> {
    let trimmed = text.trim_start();
    let items: Vec<&RawValue> = if trimmed.starts_with('{') {
        vec![
            serde_json::from_str(text)
                .map_err(|e| InputError::whole(source, format!("not valid JSON: {e}")))?,
        ]
    } else {
        array(source, text)?
    };
    let mut ids = HashSet::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    for (index, raw) in items.into_iter().enumerate() {
        let r = Record::parse(source, index, raw)?;
        if let Some(unknown) = r.keys().find(|k| !FIELDS.contains(k)) {
            return Err(r.error(
                unknown,
                format!("unknown field (expected one of {})", FIELDS.join(", ")),
            ));
        }
        let id = r.text("id", MAX_ID_BYTES)?;
        if id.trim().is_empty() {
            return Err(r.error("id", "must not be empty"));
        }
        if !ids.insert(id.clone()) {
            return Err(r.error("id", "duplicate account id"));
        }
        let broker = r.text("broker", MAX_SYMBOL_BYTES)?;
        if !KNOWN_BROKERS.contains(&broker.as_str()) {
            return Err(r.error(
                "broker",
                format!("unknown broker (known: {})", KNOWN_BROKERS.join(", ")),
            ));
        }
        let name = r
            .opt_text("name", MAX_NAME_BYTES)?
            .filter(|n| !n.is_empty());
        out.push(AccountInput { id, broker, name });
    }
    Ok(out)
}

/// The version of a close body: empty (no version) or `{"version": N}`.
pub fn parse_close(source: &str, text: &str) -> Result<Option<u64>, InputError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let raw: &RawValue = serde_json::from_str(text)
        .map_err(|e| InputError::whole(source, format!("not valid JSON: {e}")))?;
    let r = Record::parse(source, 0, raw)?;
    if let Some(unknown) = r.keys().find(|k| *k != "version") {
        return Err(r.error(unknown, "unknown field (expected only version)"));
    }
    super::trades::version(&r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_one_object_or_an_array_and_errors_name_index_field_and_value() {
        let one = parse_accounts("body", r#"{"id": "a1", "broker": "sim"}"#).unwrap();
        assert_eq!(one[0].id, "a1");
        let many = r#"[{"id": "a1", "broker": "sim"}, {"id": "a2", "broker": "mt4"}]"#;
        let err = parse_accounts("body", many).unwrap_err();
        assert_eq!(err.index, Some(1));
        assert_eq!(err.field.as_deref(), Some("broker"));
        assert!(
            err.value.as_deref().is_some_and(|v| v.contains("mt4")),
            "{err}"
        );
        let err = parse_accounts("body", r#"[{"id": "a1", "brokr": "sim"}]"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("brokr"));
    }

    #[test]
    fn a_close_body_is_empty_or_a_version() {
        assert_eq!(parse_close("body", "").unwrap(), None);
        assert_eq!(parse_close("body", r#"{"version": 7}"#).unwrap(), Some(7));
        let max = format!(r#"{{"version": "{}"}}"#, u64::MAX);
        assert_eq!(parse_close("body", &max).unwrap(), Some(u64::MAX));
        let err = parse_close("body", r#"{"version": -1}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("version"));
        assert!(parse_close("body", r#"{"v": 1}"#).is_err());
    }
}
