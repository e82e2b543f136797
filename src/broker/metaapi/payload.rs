//! MetaApi's payloads into domain values: positions (through the shared positions reader),
//! account information, and symbol specifications.

use rust_decimal::Decimal;

use crate::broker::BrokerError;
use crate::broker::wire::{self, Object};
use crate::domain::{BrokerPosition, SymbolSpec};

/// Balance, equity and margins of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balances {
    /// Balance in the account currency.
    pub balance: Decimal,
    /// Equity.
    pub equity: Decimal,
    /// Margin in use.
    pub margin: Decimal,
    /// Free margin.
    pub free_margin: Decimal,
}

/// `GET …/positions`: a JSON array of MetaApi positions. Duplicate ids, negative volumes,
/// NaN and missing fields are malformed, named by index and field.
pub fn positions(text: &str) -> Result<Vec<BrokerPosition>, BrokerError> {
    wire::positions("positions", text)
}

/// `GET …/account-information`: balance, equity, margin and freeMargin are required.
pub fn account_information(text: &str) -> Result<Balances, BrokerError> {
    let o = Object::parse("account_information", text)?;
    Ok(Balances {
        balance: o.decimal("balance")?,
        equity: o.decimal("equity")?,
        margin: o.decimal("margin")?,
        free_margin: o.decimal("freeMargin")?,
    })
}

/// `GET …/symbols/{symbol}/specification`: `pipSize` when MetaApi gives one, `digits`
/// and `point` otherwise (one of `pipSize` and `digits` is required).
pub fn symbol_specification(symbol: &str, text: &str) -> Result<SymbolSpec, BrokerError> {
    let source = format!("specification[{symbol}]");
    let o = Object::parse(&source, text)?;
    let spec = SymbolSpec {
        pip_size: plausible(&o, "pipSize")?,
        digits: o.opt_u32("digits", 10)?,
        point: plausible(&o, "point")?,
    };
    if spec.pip_size.is_none() && spec.digits.is_none() {
        return Err(o.error("digits", "missing required field (and no pipSize)"));
    }
    if let Some(name) = o.opt_string("symbol")?
        && !name.eq_ignore_ascii_case(symbol)
    {
        return Err(o.error(
            "symbol",
            format!("specification of another symbol (asked for {symbol})"),
        ));
    }
    Ok(spec)
}

/// The largest pip size or point believed: beyond it a price step is an error in the data
/// (and `10 × point` could overflow).
const MAX_PRICE_STEP: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// An optional price step: strictly positive and at most [`MAX_PRICE_STEP`].
fn plausible(o: &Object<'_>, field: &str) -> Result<Option<Decimal>, BrokerError> {
    match o.opt_positive(field)? {
        Some(d) if d > MAX_PRICE_STEP => {
            Err(o.error(field, format!("implausibly large (above {MAX_PRICE_STEP})")))
        }
        other => Ok(other),
    }
}
