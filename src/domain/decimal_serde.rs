//! Lenient, exact decimal (de)serialisation for configuration files.
//!
//! Accepts a string (`"0.0001"`), an integer, or a float. A float is read through its
//! shortest round-trip text, so `0.1` in TOML becomes exactly `0.1`. Always written as a
//! string. NaN and infinities are refused.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Parses decimal text, plain or scientific, refusing NaN and infinities by name.
pub fn parse_decimal(text: &str) -> Result<Decimal, String> {
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    if lower.contains("nan") || lower.contains("inf") {
        return Err(format!("{text:?} is not a finite number"));
    }
    Decimal::from_str(trimmed)
        .or_else(|_| Decimal::from_scientific(trimmed))
        .map_err(|_| format!("{text:?} is not a decimal number"))
}

struct DecimalVisitor;

impl Visitor<'_> for DecimalVisitor {
    type Value = Decimal;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a decimal number or a string holding one")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
        parse_decimal(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
        if !v.is_finite() {
            return Err(E::custom(format!("{v} is not a finite number")));
        }
        parse_decimal(&v.to_string()).map_err(E::custom)
    }
}

/// Deserialises a required decimal.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    d.deserialize_any(DecimalVisitor)
}

/// Serialises a decimal as a string.
pub fn serialize<S: Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// The same for `Option<Decimal>` (absent or null → `None`).
pub mod option {
    use super::*;

    struct OptVisitor;

    impl<'de> Visitor<'de> for OptVisitor {
        type Value = Option<Decimal>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a decimal number, a string holding one, or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            super::deserialize(d).map(Some)
        }
    }

    /// Deserialises an optional decimal.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        d.deserialize_option(OptVisitor)
    }

    /// Serialises an optional decimal as a string or null.
    pub fn serialize<S: Serializer>(value: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    #[derive(serde::Deserialize)]
    struct T {
        #[serde(with = "super")]
        v: Decimal,
    }

    #[test]
    fn floats_strings_and_integers_are_exact() {
        let t: T = toml::from_str("v = 0.1").unwrap();
        assert_eq!(t.v, dec!(0.1));
        let t: T = toml::from_str("v = \"1.08512\"").unwrap();
        assert_eq!(t.v, dec!(1.08512));
        let t: T = toml::from_str("v = 5").unwrap();
        assert_eq!(t.v, dec!(5));
    }

    #[test]
    fn nan_and_infinity_are_refused() {
        assert!(toml::from_str::<T>("v = nan").is_err());
        assert!(toml::from_str::<T>("v = \"Infinity\"").is_err());
        assert!(parse_decimal("NaN").is_err());
        assert_eq!(parse_decimal("1e-4"), Ok(dec!(0.0001)));
    }
}
