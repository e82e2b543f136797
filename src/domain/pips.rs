//! Pip sizes: how a price difference becomes a number of pips.
//!
//! Order of precedence (DESIGN.md, "Pips"):
//! 1. the configured `[symbols.NAME]` entry (its `pip_size`, else its digits);
//! 2. the broker's specification of the symbol (its `pipSize`, else its digits), merged in
//!    by [`crate::domain::ReconcileRules::with_broker_symbols`];
//! 3. the FX-name rule: a six-letter pair of fiat currencies, 0.01 when the quote is JPY,
//!    0.0001 otherwise.
//!
//! Within one spec, an explicit pip size wins over digits; digits 3 or 5 → 10 × point,
//! otherwise the point itself.
//!
//! Anything else (metals, indices, crypto) must be configured: an unknown pip size is an
//! error naming the symbol, never a guess.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// What is known about a symbol: any of an explicit pip size, digits and point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymbolSpec {
    /// Explicit pip size; wins over everything else.
    #[serde(default, with = "crate::domain::decimal_serde::option")]
    pub pip_size: Option<Decimal>,
    /// Number of decimal places the broker quotes.
    #[serde(default)]
    pub digits: Option<u32>,
    /// Smallest price step; `10^-digits` when absent.
    #[serde(default, with = "crate::domain::decimal_serde::option")]
    pub point: Option<Decimal>,
}

impl SymbolSpec {
    /// The pip size this spec alone determines, if any, normalised (`0.00010` → `0.0001`).
    /// Never panics: digits beyond what a decimal can hold, a `10 × point` that overflows,
    /// or a result that is not positive determine nothing (configuration and payloads are
    /// bounded before they get here).
    pub fn pip_size(&self) -> Option<Decimal> {
        let pip = match self.pip_size {
            Some(pip) => pip,
            None => {
                let digits = self.digits?;
                let point = match self.point {
                    Some(point) => point,
                    None => Decimal::try_new(1, digits).ok()?,
                };
                if digits == 3 || digits == 5 {
                    point.checked_mul(Decimal::TEN)?
                } else {
                    point
                }
            }
        };
        (pip > Decimal::ZERO).then(|| pip.normalize())
    }

    /// Every out-of-bounds value, each named by `path` and its key (`symbols.XAUUSD`
    /// → `symbols.XAUUSD.point = 0: …`): price steps must pass [`price_step_problem`],
    /// digits be at most [`MAX_DIGITS`].
    pub fn problems(&self, path: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (key, value) in [("pip_size", self.pip_size), ("point", self.point)] {
            if let Some((v, reason)) = value.and_then(|v| Some((v, price_step_problem(v)?))) {
                out.push(format!("{path}.{key} = {v}: {reason}"));
            }
        }
        if let Some(d) = self.digits.filter(|d| *d > MAX_DIGITS) {
            out.push(format!(
                "{path}.digits = {d}: must be between 0 and {MAX_DIGITS}"
            ));
        }
        out
    }
}

/// The largest pip size or point believed: beyond it a price step is an error in the data
/// or the configuration.
pub const MAX_PRICE_STEP: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// The smallest pip size or point believed, 10⁻¹⁰: the point of a symbol quoted with
/// [`MAX_DIGITS`] decimals. Price differences are divided by the pip size; with prices
/// at most 10¹² ([`crate::domain::Price::MAX`]) a difference is at most 10²² pips, far
/// inside a decimal's range, where a pip of 10⁻²⁸ would overflow it.
pub const MIN_PRICE_STEP: Decimal = Decimal::from_parts(1, 0, 0, false, 10);

/// Why `step` cannot be a pip size or point, if it cannot: it must lie within
/// [`MIN_PRICE_STEP`]..=[`MAX_PRICE_STEP`].
pub fn price_step_problem(step: Decimal) -> Option<String> {
    if step <= Decimal::ZERO || step > MAX_PRICE_STEP {
        Some(format!(
            "must be greater than 0 and at most {MAX_PRICE_STEP}"
        ))
    } else if step < MIN_PRICE_STEP {
        Some(format!(
            "must be at least {MIN_PRICE_STEP} (the point of a {MAX_DIGITS}-digit quote)"
        ))
    } else {
        None
    }
}

/// The most decimal places a symbol may be quoted with.
pub const MAX_DIGITS: u32 = 10;

/// The pip size of a symbol could not be determined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown pip size for symbol {symbol}: configure pip_size or digits for it")]
pub struct UnknownPipSize {
    /// The symbol, in canonical (upper-case) form.
    pub symbol: String,
}

/// Fiat currencies the FX-name rule recognises. Metals (XAU, XAG …) and crypto are
/// deliberately absent: their pip size is a convention that must be configured.
const FIAT: &[&str] = &[
    "AUD", "BRL", "CAD", "CHF", "CNH", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "ILS",
    "INR", "JPY", "KRW", "MXN", "NOK", "NZD", "PLN", "RUB", "SEK", "SGD", "THB", "TRY", "USD",
    "ZAR",
];

/// The FX-name rule alone: `Some` for a six-letter pair of fiat currencies.
pub fn fx_name_pip_size(symbol: &str) -> Option<Decimal> {
    if symbol.len() != 6 || !symbol.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let upper = symbol.to_ascii_uppercase();
    let (base, quote) = upper.split_at(3);
    if !FIAT.contains(&base) || !FIAT.contains(&quote) {
        return None;
    }
    Some(if quote == "JPY" {
        Decimal::new(1, 2)
    } else {
        Decimal::new(1, 4)
    })
}

/// Symbol specifications by canonical symbol, answering pip-size questions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolTable {
    specs: BTreeMap<String, SymbolSpec>,
}

impl SymbolTable {
    /// An empty table: only the FX-name rule applies.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the spec of `symbol` (stored upper-case).
    pub fn insert(&mut self, symbol: &str, spec: SymbolSpec) {
        self.specs.insert(symbol.to_ascii_uppercase(), spec);
    }

    /// Merges `other` over `self`: its entries win.
    pub fn merge(&mut self, other: &SymbolTable) {
        for (symbol, spec) in &other.specs {
            self.specs.insert(symbol.clone(), spec.clone());
        }
    }

    /// The specs, by upper-case symbol, in symbol order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SymbolSpec)> {
        self.specs.iter().map(|(s, spec)| (s.as_str(), spec))
    }

    /// The spec of `symbol` (any case), if the table has one.
    pub fn get(&self, symbol: &str) -> Option<&SymbolSpec> {
        self.specs.get(&symbol.to_ascii_uppercase())
    }

    /// Whether the table holds no spec at all.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// The pip size of `symbol` by the precedence in the module doc.
    pub fn pip_size(&self, symbol: &str) -> Result<Decimal, UnknownPipSize> {
        let upper = symbol.to_ascii_uppercase();
        self.specs
            .get(&upper)
            .and_then(SymbolSpec::pip_size)
            .or_else(|| fx_name_pip_size(&upper))
            .ok_or(UnknownPipSize { symbol: upper })
    }
}

impl FromIterator<(String, SymbolSpec)> for SymbolTable {
    fn from_iter<I: IntoIterator<Item = (String, SymbolSpec)>>(iter: I) -> Self {
        let mut table = SymbolTable::new();
        for (symbol, spec) in iter {
            table.insert(&symbol, spec);
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use rust_decimal::dec;

    fn spec(pip_size: Option<Decimal>, digits: Option<u32>, point: Option<Decimal>) -> SymbolSpec {
        SymbolSpec {
            pip_size,
            digits,
            point,
        }
    }

    #[rstest]
    #[case::five_digit_major("EURUSD", dec!(0.0001))]
    #[case::lowercase("eurusd", dec!(0.0001))]
    #[case::jpy_quote("USDJPY", dec!(0.01))]
    #[case::jpy_cross("GBPJPY", dec!(0.01))]
    #[case::chf("USDCHF", dec!(0.0001))]
    fn fx_name_rule(#[case] symbol: &str, #[case] pip: Decimal) {
        assert_eq!(SymbolTable::new().pip_size(symbol), Ok(pip));
    }

    #[rstest]
    #[case::gold("XAUUSD")]
    #[case::silver("XAGUSD")]
    #[case::index("US30")]
    #[case::crypto("BTCUSD")]
    #[case::suffixed("EURUSD.m")]
    fn unknown_symbols_are_errors_not_guesses(#[case] symbol: &str) {
        let err = SymbolTable::new().pip_size(symbol).unwrap_err();
        assert_eq!(err.symbol, symbol.to_ascii_uppercase());
    }

    #[rstest]
    #[case::explicit_wins(spec(Some(dec!(1)), Some(5), None), dec!(1))]
    #[case::five_digits(spec(None, Some(5), None), dec!(0.0001))]
    #[case::three_digits(spec(None, Some(3), None), dec!(0.01))]
    #[case::two_digits_is_point(spec(None, Some(2), None), dec!(0.01))]
    #[case::four_digits_is_point(spec(None, Some(4), None), dec!(0.0001))]
    #[case::explicit_point(spec(None, Some(5), Some(dec!(0.00001))), dec!(0.0001))]
    fn configured_specs(#[case] s: SymbolSpec, #[case] pip: Decimal) {
        let mut table = SymbolTable::new();
        table.insert("XAUUSD", s);
        assert_eq!(table.pip_size("xauusd"), Ok(pip));
    }

    #[rstest]
    #[case::point_overflows(spec(None, Some(5), Some(Decimal::MAX)))]
    #[case::digits_beyond_a_decimal(spec(None, Some(40), None))]
    #[case::three_digits_overflow(spec(None, Some(3), Some(Decimal::MAX / dec!(2))))]
    #[case::zero_pip(spec(Some(Decimal::ZERO), None, None))]
    #[case::negative_pip(spec(Some(dec!(-0.1)), Some(2), None))]
    #[case::zero_point(spec(None, Some(2), Some(Decimal::ZERO)))]
    fn absurd_specs_determine_nothing_and_never_panic(#[case] s: SymbolSpec) {
        assert_eq!(s.pip_size(), None);
        let mut table = SymbolTable::new();
        table.insert("XAUUSD", s);
        assert!(table.pip_size("XAUUSD").is_err());
    }

    #[rstest]
    #[case::zero(dec!(0), true)]
    #[case::negative(dec!(-0.001), true)]
    #[case::below_the_floor(Decimal::new(1, 11), true)]
    #[case::vanishing(Decimal::new(1, 28), true)]
    #[case::the_floor(Decimal::new(1, 10), false)]
    #[case::a_pip(dec!(0.0001), false)]
    #[case::the_ceiling(MAX_PRICE_STEP, false)]
    #[case::above_the_ceiling(dec!(1000000.1), true)]
    fn price_steps_are_bounded_on_both_sides(#[case] step: Decimal, #[case] refused: bool) {
        assert_eq!(price_step_problem(step).is_some(), refused, "{step}");
        let spec = spec(Some(step), None, Some(step));
        let problems = spec.problems("symbols.X");
        assert_eq!(problems.len(), if refused { 2 } else { 0 }, "{problems:?}");
        if refused {
            let prefix = format!("symbols.X.pip_size = {step}: must be ");
            assert!(problems[0].starts_with(&prefix), "{problems:?}");
        }
        if step > Decimal::ZERO && step < MIN_PRICE_STEP {
            assert!(
                problems[1]
                    .ends_with("must be at least 0.0000000001 (the point of a 10-digit quote)"),
                "{problems:?}"
            );
        }
    }

    #[test]
    fn configuration_overrides_the_fx_rule() {
        let mut table = SymbolTable::new();
        table.insert("EURUSD", spec(Some(dec!(0.001)), None, None));
        assert_eq!(table.pip_size("EURUSD"), Ok(dec!(0.001)));
    }
}
