//! Reading broker payloads into domain values: one JSON object read field by field with
//! exact decimals, size-limited reads, and the conversion of input errors into
//! [`BrokerError::Malformed`] errors that name the offending field and value.
//!
//! Position arrays are parsed by [`crate::input::parse_positions`] (the same reader as the
//! `reconcile` command); this module covers the single objects around them (account
//! information, symbol specifications) and the error mapping.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde_json::value::RawValue;

use chrono::{DateTime, Utc};

use super::BrokerError;
use crate::domain::decimal_serde::parse_decimal;
use crate::domain::{BrokerPosition, Quote};
use crate::input::{InputError, parse_positions};

/// The largest payload read from a broker or an export file (4 MiB): a bigger one is
/// refused as malformed rather than buffered.
pub const MAX_PAYLOAD_BYTES: usize = 4 * 1024 * 1024;

/// Shortens a raw value for an error message (60 characters), control characters
/// escaped: a broker's text never carries a NUL into a stored error.
pub fn shown(raw: &str) -> String {
    crate::input::text::shown(raw, 60)
}

/// A malformed-data error about `field`.
pub fn malformed(field: impl Into<String>, reason: impl Into<String>) -> BrokerError {
    BrokerError::Malformed {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Maps an input error to a malformed-data error: the field becomes `file[index].field`
/// and the reason carries the offending value.
pub fn from_input(e: InputError) -> BrokerError {
    let mut field = e.file;
    if let Some(i) = e.index {
        field.push_str(&format!("[{i}]"));
    }
    if let Some(f) = e.field {
        field.push('.');
        field.push_str(&f);
    }
    let reason = match e.value {
        Some(v) => format!("value {v}: {}", e.reason),
        None => e.reason,
    };
    malformed(field, reason)
}

/// Parses a positions array (MetaApi positions or MT5 `positions_get()` records);
/// `source` names the payload in errors (e.g. `positions`).
pub fn positions(source: &str, text: &str) -> Result<Vec<BrokerPosition>, BrokerError> {
    parse_positions(source, text).map_err(from_input)
}

/// One JSON object of a payload, read field by field.
pub struct Object<'a> {
    source: &'a str,
    fields: BTreeMap<String, &'a RawValue>,
}

impl<'a> Object<'a> {
    /// Parses `text` as one JSON object; `source` names it in errors.
    pub fn parse(source: &'a str, text: &'a str) -> Result<Self, BrokerError> {
        if !text.trim_start().starts_with('{') {
            return Err(malformed(source, "expected a JSON object"));
        }
        let fields = serde_json::from_str(text)
            .map_err(|e| malformed(source, format!("invalid JSON: {e}")))?;
        Ok(Self { source, fields })
    }

    /// An error about `field` of this object, naming its value when it has one.
    pub fn error(&self, field: &str, reason: impl Into<String>) -> BrokerError {
        let reason = reason.into();
        let reason = match self.get(field) {
            Some(raw) => format!("value {}: {reason}", shown(raw.get())),
            None => reason,
        };
        malformed(format!("{}.{field}", self.source), reason)
    }

    fn get(&self, field: &str) -> Option<&'a RawValue> {
        self.fields
            .get(field)
            .copied()
            .filter(|r| r.get() != "null")
    }

    /// A decimal given as a JSON number or a string holding one, read exactly; NaN and
    /// infinities are refused.
    pub fn opt_decimal(&self, field: &str) -> Result<Option<Decimal>, BrokerError> {
        let Some(raw) = self.get(field) else {
            return Ok(None);
        };
        let text = raw.get();
        let parsed = if text.starts_with('"') {
            serde_json::from_str::<String>(text)
                .map_err(|e| e.to_string())
                .and_then(|s| parse_decimal(&s))
        } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            parse_decimal(text)
        } else {
            Err("expected a number".to_owned())
        };
        parsed.map(Some).map_err(|reason| self.error(field, reason))
    }

    /// A required decimal.
    pub fn decimal(&self, field: &str) -> Result<Decimal, BrokerError> {
        self.opt_decimal(field)?
            .ok_or_else(|| self.error(field, "missing required field"))
    }

    /// An optional strictly positive decimal.
    pub fn opt_positive(&self, field: &str) -> Result<Option<Decimal>, BrokerError> {
        match self.opt_decimal(field)? {
            Some(d) if d <= Decimal::ZERO => Err(self.error(field, "must be greater than zero")),
            other => Ok(other),
        }
    }

    /// An optional whole number within `0..=max`.
    pub fn opt_u32(&self, field: &str, max: u32) -> Result<Option<u32>, BrokerError> {
        let Some(raw) = self.get(field) else {
            return Ok(None);
        };
        match raw.get().parse::<u32>() {
            Ok(v) if v <= max => Ok(Some(v)),
            _ => Err(self.error(field, format!("expected a whole number from 0 to {max}"))),
        }
    }

    /// An optional boolean (`true` or `false`).
    pub fn opt_bool(&self, field: &str) -> Result<Option<bool>, BrokerError> {
        match self.get(field).map(RawValue::get) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(self.error(field, "expected true or false")),
        }
    }

    /// An optional string.
    pub fn opt_string(&self, field: &str) -> Result<Option<String>, BrokerError> {
        let Some(raw) = self.get(field) else {
            return Ok(None);
        };
        serde_json::from_str::<String>(raw.get())
            .map(Some)
            .map_err(|_| self.error(field, "expected a string"))
    }
}

/// A quote of `symbol` at `time` from the `bid` and `ask` of `o`: both required, read
/// exactly, strictly positive (a terminal without a price sends 0), and the ask not below
/// the bid (a crossed quote would pass any spread limit).
pub fn quote(o: &Object<'_>, symbol: &str, time: DateTime<Utc>) -> Result<Quote, BrokerError> {
    let price = |field: &str| {
        o.opt_positive(field)?
            .ok_or_else(|| o.error(field, "missing required field"))
    };
    let (bid, ask) = (price("bid")?, price("ask")?);
    if ask < bid {
        return Err(o.error("ask", format!("below the bid {bid}")));
    }
    Ok(Quote {
        symbol: symbol.to_owned(),
        bid,
        ask,
        time,
    })
}

#[cfg(test)]
pub mod mutate;

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    #[test]
    fn object_fields_are_exact_and_errors_name_field_and_value() {
        let o = Object::parse(
            "account",
            r#"{"a": 0.1, "b": "2.50", "c": "NaN", "d": true, "e": null}"#,
        )
        .unwrap();
        assert_eq!(o.decimal("a"), Ok(dec!(0.1)));
        assert_eq!(o.decimal("b"), Ok(dec!(2.50)));
        assert_eq!(o.opt_decimal("e"), Ok(None));
        let Err(BrokerError::Malformed { field, reason }) = o.decimal("c") else {
            panic!("NaN must be refused");
        };
        assert_eq!(field, "account.c");
        assert!(
            reason.contains("\"NaN\"") && reason.contains("finite"),
            "{reason}"
        );
        let Err(BrokerError::Malformed { field, .. }) = o.decimal("d") else {
            panic!("a bool is not a number");
        };
        assert_eq!(field, "account.d");
        let Err(BrokerError::Malformed { field, reason }) = o.decimal("missing") else {
            panic!("missing must be an error");
        };
        assert_eq!(
            (field.as_str(), reason.as_str()),
            ("account.missing", "missing required field")
        );
    }

    #[test]
    fn input_errors_keep_index_field_and_value() {
        let text = r#"[{"id": "1", "type": "POSITION_TYPE_BUY", "symbol": "EURUSD",
            "volume": -0.1, "openPrice": 1.1, "time": "2020-04-17T04:30:03.223Z"}]"#;
        let Err(BrokerError::Malformed { field, reason }) = positions("positions", text) else {
            panic!("a negative volume must be refused");
        };
        assert_eq!(field, "positions[0].volume");
        assert!(reason.starts_with("value -0.1:"), "{reason}");
    }

    #[test]
    fn text_fields_of_payloads_are_bounded_and_errors_escape_them() {
        let text = r#"[{"id": "1", "type": "POSITION_TYPE_BUY", "symbol": "EUR\u0000USD",
            "volume": 1, "openPrice": 1.1, "time": "2020-04-17T04:30:03.223Z"}]"#;
        let Err(e @ BrokerError::Malformed { .. }) = positions("positions", text) else {
            panic!("a NUL in a symbol must be refused");
        };
        let BrokerError::Malformed { field, reason } = &e else {
            unreachable!()
        };
        assert_eq!(field, "positions[0].symbol");
        assert!(reason.contains("U+0000"), "{reason}");
        assert_eq!(shown("a\0b"), "a\\u{0}b");
    }

    #[test]
    fn quotes_need_positive_uncrossed_prices() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let read = |text: &str| quote(&Object::parse("q", text).unwrap(), "EURUSD", at);
        let q = read(r#"{"bid": 1.08012, "ask": "1.08020"}"#).expect("a quote");
        assert_eq!((q.bid, q.ask), (dec!(1.08012), dec!(1.08020)));
        assert_eq!((q.symbol.as_str(), q.time), ("EURUSD", at));
        for (text, field, value) in [
            (r#"{"bid": 0, "ask": 1.1}"#, "q.bid", "0"),
            (r#"{"bid": 1.1}"#, "q.ask", ""),
            (r#"{"bid": 1.2, "ask": 1.1}"#, "q.ask", "1.1"),
            (r#"{"bid": "NaN", "ask": 1.1}"#, "q.bid", "NaN"),
        ] {
            let Err(BrokerError::Malformed { field: f, reason }) = read(text) else {
                panic!("{text} must be refused");
            };
            assert_eq!(f, field, "{text}");
            assert!(reason.contains(value), "{reason}");
        }
    }

    #[test]
    fn non_objects_are_malformed() {
        for text in ["", "[]", "null", "{", "{\"a\": 1"] {
            assert!(
                matches!(Object::parse("x", text), Err(BrokerError::Malformed { .. })),
                "{text:?}"
            );
        }
    }
}
