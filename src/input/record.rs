//! A JSON object read field by field, with errors that name source, index, field and value.

use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::value::RawValue;

use super::PositionFormat;
use super::text::{MAX_ID_BYTES, text_problem};
use crate::domain::decimal_serde::parse_decimal;
use crate::domain::{Price, Volume};

/// Bad input: where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InputError {
    /// File path, or another label for where the input came from.
    pub file: String,
    /// Index of the array element, when the problem is inside one.
    pub index: Option<usize>,
    /// Field name, when one field is at fault.
    pub field: Option<String>,
    /// The offending value as it appeared in the input (shortened).
    pub value: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(i) = self.index {
            write!(f, ": element {i}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ", field {field:?}")?;
        }
        if let Some(v) = &self.value {
            write!(f, ", value {v}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl InputError {
    /// A problem with the whole source (not JSON, not an array …).
    pub fn whole(source: &str, reason: impl Into<String>) -> Self {
        Self {
            file: source.to_owned(),
            index: None,
            field: None,
            value: None,
            reason: reason.into(),
        }
    }
}

/// Shortens a raw value for an error message (60 characters, control characters escaped).
fn shown(raw: &str) -> String {
    super::text::shown(raw, 60)
}

/// Parses `bytes` as a JSON array and returns its elements unparsed.
pub fn array<'a>(source: &str, text: &'a str) -> Result<Vec<&'a RawValue>, InputError> {
    let trimmed = text.trim_start();
    if !trimmed.starts_with('[') {
        let reason = if trimmed.is_empty() {
            "empty input: expected a JSON array".to_owned()
        } else {
            "expected a JSON array of objects".to_owned()
        };
        return Err(InputError::whole(source, reason));
    }
    serde_json::from_str(text).map_err(|e| InputError::whole(source, format!("invalid JSON: {e}")))
}

/// The format of an order or deal record, from its `type`: text in MetaApi's payloads
/// (`ORDER_TYPE_BUY_LIMIT`, `DEAL_TYPE_SELL`), a number in the MT5 package's records.
/// `what` names the kind of record in the error.
pub fn detect_by_type(record: &Record<'_>, what: &str) -> Result<PositionFormat, InputError> {
    if record.is_text("type") {
        Ok(PositionFormat::MetaApi)
    } else if record.is_number("type") {
        Ok(PositionFormat::Mt5)
    } else if record.has("type") {
        Err(record.error(
            "type",
            format!("neither a MetaApi {what} (type as text) nor an MT5 record (type as a number)"),
        ))
    } else {
        Err(record.error("type", "missing required field"))
    }
}

/// Refuses element `record` of format `this` in a file whose element 0 is `first`.
pub fn same_format(
    record: &Record<'_>,
    first: PositionFormat,
    this: PositionFormat,
) -> Result<(), InputError> {
    if this == first {
        return Ok(());
    }
    Err(InputError {
        file: record.source.to_owned(),
        index: Some(record.index),
        field: None,
        value: None,
        reason: format!("mixes formats: element 0 is {first:?}, this one is {this:?}"),
    })
}

/// Reads a JSON array of `what` records (orders, deals) given by ticket, MetaApi or MT5
/// spelled (detected per record, one format per file), each by the reader of its format
/// (`None`: a record that is left out); a ticket given twice is refused.
pub fn ticketed<T>(
    source: &str,
    text: &str,
    what: &str,
    metaapi: impl Fn(&Record<'_>) -> Result<Option<T>, InputError>,
    mt5: impl Fn(&Record<'_>) -> Result<Option<T>, InputError>,
    ticket: impl Fn(&T) -> u64,
) -> Result<Vec<T>, InputError> {
    let items = array(source, text)?;
    let mut format = None;
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    for (index, raw) in items.into_iter().enumerate() {
        let record = Record::parse(source, index, raw)?;
        let this = detect_by_type(&record, what)?;
        same_format(&record, *format.get_or_insert(this), this)?;
        let (item, key) = match this {
            PositionFormat::MetaApi => (metaapi(&record)?, "id"),
            PositionFormat::Mt5 => (mt5(&record)?, "ticket"),
        };
        let Some(item) = item else { continue };
        if !seen.insert(ticket(&item)) {
            return Err(record.error(key, format!("duplicate {what} ticket")));
        }
        out.push(item);
    }
    Ok(out)
}

/// An object's fields, unparsed, in key order; of a key given twice the last counts (as
/// in a map). One allocation per object, where a map allocates per node.
struct Fields<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Fields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Fields<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut v = Vec::with_capacity(map.size_hint().unwrap_or(24));
                while let Some(entry) = map.next_entry::<&'de str, &'de RawValue>()? {
                    v.push(entry);
                }
                // Stable: of equal keys, the later stays later; keep that one.
                v.sort_by(|a, b| a.0.cmp(b.0));
                v.reverse();
                v.dedup_by(|a, b| a.0 == b.0);
                v.reverse();
                Ok(Fields(v))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// One object of an array.
pub struct Record<'a> {
    source: &'a str,
    index: usize,
    fields: Vec<(&'a str, &'a RawValue)>,
}

impl<'a> Record<'a> {
    /// Parses element `index` of `source` as an object.
    pub fn parse(source: &'a str, index: usize, raw: &'a RawValue) -> Result<Self, InputError> {
        let Fields(fields) = serde_json::from_str(raw.get()).map_err(|_| InputError {
            file: source.to_owned(),
            index: Some(index),
            field: None,
            value: Some(shown(raw.get())),
            reason: "expected a JSON object".to_owned(),
        })?;
        Ok(Self {
            source,
            index,
            fields,
        })
    }

    /// Whether `field` is present and not null.
    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    /// Field names present.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _)| *k)
    }

    /// An error about `field` of this record.
    pub fn error(&self, field: &str, reason: impl Into<String>) -> InputError {
        InputError {
            file: self.source.to_owned(),
            index: Some(self.index),
            field: Some(field.to_owned()),
            value: self.get(field).map(|r| shown(r.get())),
            reason: reason.into(),
        }
    }

    fn get(&self, field: &str) -> Option<&'a RawValue> {
        let at = self
            .fields
            .binary_search_by(|(k, _)| (*k).cmp(field))
            .ok()?;
        Some(self.fields[at].1).filter(|r| r.get() != "null")
    }

    fn required(&self, field: &str) -> Result<&'a RawValue, InputError> {
        self.get(field)
            .ok_or_else(|| self.error(field, "missing required field"))
    }

    /// A decimal given as a JSON number or a string, read exactly.
    pub fn opt_decimal(&self, field: &str) -> Result<Option<Decimal>, InputError> {
        let Some(raw) = self.get(field) else {
            return Ok(None);
        };
        let text = raw.get();
        let parsed = if text.starts_with('"') {
            let s: String =
                serde_json::from_str(text).map_err(|e| self.error(field, e.to_string()))?;
            parse_decimal(&s)
        } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            parse_decimal(text)
        } else {
            Err("expected a number".to_owned())
        };
        parsed.map(Some).map_err(|reason| self.error(field, reason))
    }

    /// A required decimal.
    pub fn decimal(&self, field: &str) -> Result<Decimal, InputError> {
        self.opt_decimal(field)?
            .ok_or_else(|| self.error(field, "missing required field"))
    }

    /// A required strictly positive volume.
    pub fn volume(&self, field: &str) -> Result<Volume, InputError> {
        Volume::new_checked(self.decimal(field)?).map_err(|e| self.error(field, e.to_string()))
    }

    /// A required strictly positive price.
    pub fn price(&self, field: &str) -> Result<Price, InputError> {
        Price::new_checked(self.decimal(field)?).map_err(|e| self.error(field, e.to_string()))
    }

    /// An optional price where absent, null or zero mean "not set"; negative is an error.
    pub fn optional_price(&self, field: &str) -> Result<Option<Price>, InputError> {
        match self.opt_decimal(field)? {
            None => Ok(None),
            Some(d) if d.is_zero() => Ok(None),
            Some(d) => Price::new_checked(d)
                .map(Some)
                .map_err(|e| self.error(field, e.to_string())),
        }
    }

    /// An optional string.
    pub fn opt_string(&self, field: &str) -> Result<Option<String>, InputError> {
        let Some(raw) = self.get(field) else {
            return Ok(None);
        };
        serde_json::from_str::<String>(raw.get())
            .map(Some)
            .map_err(|_| self.error(field, "expected a string"))
    }

    /// A required string.
    pub fn string(&self, field: &str) -> Result<String, InputError> {
        let s = self
            .opt_string(field)?
            .ok_or_else(|| self.error(field, "missing required field"))?;
        if s.trim().is_empty() {
            return Err(self.error(field, "must not be empty"));
        }
        Ok(s)
    }

    /// An optional string of at most `max` bytes without control characters
    /// ([`text_problem`]).
    pub fn opt_text(&self, field: &str, max: usize) -> Result<Option<String>, InputError> {
        let text = self.opt_string(field)?;
        self.bounded(field, text.as_deref(), max)?;
        Ok(text)
    }

    /// A required, non-empty string of at most `max` bytes without control characters.
    pub fn text(&self, field: &str, max: usize) -> Result<String, InputError> {
        let text = self.string(field)?;
        self.bounded(field, Some(&text), max)?;
        Ok(text)
    }

    fn bounded(&self, field: &str, text: Option<&str>, max: usize) -> Result<(), InputError> {
        match text.and_then(|t| text_problem(t, max)) {
            Some(reason) => Err(self.error(field, reason)),
            None => Ok(()),
        }
    }

    /// A string, or an integer turned into its decimal text (ids and tickets), of at most
    /// [`MAX_ID_BYTES`] bytes without control characters.
    pub fn opt_id(&self, field: &str) -> Result<Option<String>, InputError> {
        let Some(raw) = self.get(field) else {
            return Ok(None);
        };
        let text = raw.get();
        let id = if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() {
            Some(text.to_owned())
        } else {
            self.opt_string(field)
                .map_err(|_| self.error(field, "expected a string or a whole number"))?
        };
        self.bounded(field, id.as_deref(), MAX_ID_BYTES)?;
        Ok(id)
    }

    /// A ticket: a non-negative whole number, or a string holding one.
    pub fn opt_ticket(&self, field: &str) -> Result<Option<u64>, InputError> {
        let Some(id) = self.opt_id(field)? else {
            return Ok(None);
        };
        id.trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| self.error(field, "expected a ticket number"))
    }

    /// A required ticket.
    pub fn ticket(&self, field: &str) -> Result<u64, InputError> {
        self.opt_ticket(field)?
            .ok_or_else(|| self.error(field, "missing required field"))
    }

    /// A whole number; absent gives `default`.
    pub fn int_or(&self, field: &str, default: i64) -> Result<i64, InputError> {
        let Some(raw) = self.get(field) else {
            return Ok(default);
        };
        raw.get()
            .parse::<i64>()
            .map_err(|_| self.error(field, "expected a whole number"))
    }

    /// An optional ISO 8601 / RFC 3339 time.
    pub fn opt_time(&self, field: &str) -> Result<Option<DateTime<Utc>>, InputError> {
        let Some(text) = self.opt_string(field)? else {
            return Ok(None);
        };
        DateTime::parse_from_rfc3339(&text)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| self.error(field, format!("expected an ISO 8601 time: {e}")))
    }

    /// Whether `field` holds a JSON string (MetaApi spells its enums as text, the MT5
    /// package as numbers).
    pub fn is_text(&self, field: &str) -> bool {
        self.get(field).is_some_and(|r| r.get().starts_with('"'))
    }

    /// Whether `field` holds a JSON number.
    pub fn is_number(&self, field: &str) -> bool {
        self.get(field).is_some_and(|r| {
            r.get()
                .starts_with(|c: char| c == '-' || c.is_ascii_digit())
        })
    }

    /// A required time: `millis` (milliseconds since 1970) when present, else `secs`
    /// (seconds since 1970), both whole numbers; the error names `secs` when both are
    /// missing.
    pub fn unix_time_ms_or_s(&self, millis: &str, secs: &str) -> Result<DateTime<Utc>, InputError> {
        let Some(raw) = self.get(millis) else {
            return self.unix_time(secs);
        };
        let ms: i64 = raw
            .get()
            .parse()
            .map_err(|_| self.error(millis, "expected unix milliseconds as a whole number"))?;
        DateTime::from_timestamp_millis(ms).ok_or_else(|| self.error(millis, "time out of range"))
    }

    /// A required time in unix seconds.
    pub fn unix_time(&self, field: &str) -> Result<DateTime<Utc>, InputError> {
        let secs: i64 = self
            .required(field)?
            .get()
            .parse()
            .map_err(|_| self.error(field, "expected unix seconds as a whole number"))?;
        DateTime::from_timestamp(secs, 0).ok_or_else(|| self.error(field, "time out of range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: &str) -> Result<Record<'_>, InputError> {
        let raw: &RawValue = serde_json::from_str(text).unwrap();
        Record::parse("f.json", 3, raw)
    }

    #[test]
    fn fields_are_found_in_any_order_and_the_last_of_a_repeated_key_counts() {
        let r = record(r#"{"b": 2, "a": "x", "c": null, "b": 5, "z": 1}"#).unwrap();
        assert_eq!(r.keys().collect::<Vec<_>>(), ["a", "b", "c", "z"]);
        assert_eq!(r.get("b").map(RawValue::get), Some("5"));
        assert_eq!(r.get("a").map(RawValue::get), Some("\"x\""));
        assert!(r.get("c").is_none(), "null is absent");
        assert!(r.get("y").is_none() && !r.has("zz"));
        assert!(r.has("z"));
    }

    #[test]
    fn a_record_that_is_not_an_object_names_its_source_and_index() {
        let e = record("[1, 2]").err().expect("not an object");
        assert_eq!((e.file.as_str(), e.index), ("f.json", Some(3)));
        assert_eq!(e.reason, "expected a JSON object");
    }
}
