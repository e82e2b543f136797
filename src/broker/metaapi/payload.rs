//! MetaApi's payloads into domain values: positions, pending orders and deals (through the
//! shared readers of [`crate::input`]), account information, symbol specifications,
//! current prices, and the answers to trades.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::broker::BrokerError;
use crate::broker::wire::{self, Object};
use crate::domain::pips::{MAX_DIGITS, MAX_PRICE_STEP, MIN_PRICE_STEP};
use crate::domain::{BrokerPosition, Deal, MarginMode, PendingOrder, Quote, SymbolSpec};

/// MetaApi's `marginMode` values.
const MARGIN_MODES: &[(&str, MarginMode)] = &[
    ("ACCOUNT_MARGIN_MODE_RETAIL_HEDGING", MarginMode::Hedging),
    ("ACCOUNT_MARGIN_MODE_RETAIL_NETTING", MarginMode::Netting),
    ("ACCOUNT_MARGIN_MODE_EXCHANGE", MarginMode::Exchange),
];

/// Balance, equity and margins of an account, and how it books positions.
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
    /// `marginMode`; `None` when MetaApi left it out.
    pub margin_mode: Option<MarginMode>,
}

/// `GET …/positions`: a JSON array of MetaApi positions. Duplicate ids, negative volumes,
/// NaN and missing fields are malformed, named by index and field.
pub fn positions(text: &str) -> Result<Vec<BrokerPosition>, BrokerError> {
    wire::positions("positions", text)
}

/// `GET …/account-information`: balance, equity, margin and freeMargin are required;
/// `marginMode`, when given, must be one of `ACCOUNT_MARGIN_MODE_RETAIL_HEDGING`,
/// `…_RETAIL_NETTING` or `…_EXCHANGE`.
pub fn account_information(text: &str) -> Result<Balances, BrokerError> {
    let o = Object::parse("account_information", text)?;
    let margin_mode = match o.opt_string("marginMode")? {
        None => None,
        Some(mode) => match MARGIN_MODES.iter().find(|(name, _)| *name == mode) {
            Some((_, mode)) => Some(*mode),
            None => {
                let known: Vec<&str> = MARGIN_MODES.iter().map(|(name, _)| *name).collect();
                let reason = format!("unknown margin mode (expected {})", known.join(", "));
                return Err(o.error("marginMode", reason));
            }
        },
    };
    Ok(Balances {
        balance: o.decimal("balance")?,
        equity: o.decimal("equity")?,
        margin: o.decimal("margin")?,
        free_margin: o.decimal("freeMargin")?,
        margin_mode,
    })
}

/// `GET …/orders`: a JSON array of MetaApi pending orders (read by
/// [`crate::input::parse_orders`]: the same validation and text bounds as positions).
pub fn orders(text: &str) -> Result<Vec<PendingOrder>, BrokerError> {
    crate::input::parse_orders("orders", text).map_err(wire::from_input)
}

/// `GET …/history-deals/position/{position_id}`: a JSON array of MetaApi deals (read by
/// [`crate::input::parse_deals`]). Deals that are not a buy or a sell (balance, credit …)
/// and deals of another position are left out.
pub fn position_deals(position_id: u64, text: &str) -> Result<Vec<Deal>, BrokerError> {
    let source = format!("history_deals[{position_id}]");
    let mut deals = crate::input::parse_deals(&source, text).map_err(wire::from_input)?;
    deals.retain(|d| d.position_id == position_id);
    Ok(deals)
}

/// `GET …/symbols/{symbol}/specification`: `pipSize` when MetaApi gives one, `digits`
/// and `point` otherwise (one of `pipSize` and `digits` is required).
pub fn symbol_specification(symbol: &str, text: &str) -> Result<SymbolSpec, BrokerError> {
    let source = format!("specification[{symbol}]");
    let o = Object::parse(&source, text)?;
    let spec = SymbolSpec {
        pip_size: plausible(&o, "pipSize")?,
        digits: o.opt_u32("digits", MAX_DIGITS)?,
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

/// `GET …/symbols/{symbol}/current-price`: `bid`, `ask` (exact, strictly positive, the
/// ask not below the bid) and `time` (ISO-8601, UTC) are required; `symbol`, when given,
/// must be the one asked for. The quote carries the asked spelling of the symbol.
pub fn current_price(symbol: &str, text: &str) -> Result<Quote, BrokerError> {
    let source = format!("current_price[{symbol}]");
    let o = Object::parse(&source, text)?;
    if let Some(name) = o.opt_string("symbol")?
        && !name.eq_ignore_ascii_case(symbol)
    {
        return Err(o.error(
            "symbol",
            format!("price of another symbol (asked for {symbol})"),
        ));
    }
    let time = o
        .opt_string("time")?
        .ok_or_else(|| o.error("time", "missing required field"))?;
    let time = DateTime::parse_from_rfc3339(time.trim())
        .map_err(|e| o.error("time", format!("expected an ISO-8601 time: {e}")))?
        .with_timezone(&Utc);
    wire::quote(&o, symbol, time)
}

/// An optional price step: strictly positive, at least [`MIN_PRICE_STEP`] (a smaller one
/// would overflow the pip arithmetic) and at most [`MAX_PRICE_STEP`].
fn plausible(o: &Object<'_>, field: &str) -> Result<Option<Decimal>, BrokerError> {
    match o.opt_positive(field)? {
        Some(d) if d > MAX_PRICE_STEP => {
            Err(o.error(field, format!("implausibly large (above {MAX_PRICE_STEP})")))
        }
        Some(d) if d < MIN_PRICE_STEP => {
            Err(o.error(field, format!("implausibly small (below {MIN_PRICE_STEP})")))
        }
        other => Ok(other),
    }
}

/// Trade codes (MetaApi's `numericCode`, `stringCode`) of a trade that went through.
const DONE: &[(u32, &str)] = &[
    (10008, "TRADE_RETCODE_PLACED"),
    (10009, "TRADE_RETCODE_DONE"),
];

/// Codes saying there is no such open position.
const POSITION_GONE: &[(u32, &str)] = &[
    (10036, "TRADE_RETCODE_POSITION_CLOSED"),
    (4753, "ERR_TRADE_POSITION_NOT_FOUND"),
];

/// Codes saying there is no such pending order.
const ORDER_GONE: &[(u32, &str)] = &[(4754, "ERR_TRADE_ORDER_NOT_FOUND")];

/// Refusals a retry cannot change: an invalid request, algorithmic trading disabled.
const REFUSED: &[(u32, &str)] = &[
    (10013, "TRADE_RETCODE_INVALID"),
    (10026, "TRADE_RETCODE_SERVER_DISABLES_AT"),
    (10027, "TRADE_RETCODE_CLIENT_DISABLES_AT"),
];

/// What a trade answer says.
enum Outcome {
    Done,
    /// There is no such position or order (the reason says which code said so).
    Gone(String),
    Refused(String),
    Other(String),
}

/// Reads the answer (status 200) of `POST …/trade`; `what` names the trade in messages
/// (`close of position 7`), `gone` the codes saying its subject no longer exists. An
/// answer that cannot be read is `Retryable`: the outcome is unknown.
fn trade_outcome(
    what: &str,
    source: &str,
    gone: &[(u32, &str)],
    text: &str,
) -> Result<Outcome, BrokerError> {
    let read = Object::parse(source, text).and_then(|o| {
        let numeric = o.opt_u32("numericCode", u32::MAX)?;
        let string = o.opt_string("stringCode")?;
        if numeric.is_none() && string.is_none() {
            return Err(o.error("numericCode", "missing (and no stringCode)"));
        }
        Ok((numeric, string, o.opt_string("message").ok().flatten()))
    });
    let (numeric, string, message) = read.map_err(|e| BrokerError::Retryable {
        reason: format!("{what}: unreadable answer, outcome unknown: {e}"),
        retry_after: None,
    })?;
    let is = |codes: &[(u32, &str)]| {
        codes
            .iter()
            .any(|(n, s)| numeric == Some(*n) || string.as_deref() == Some(*s))
    };
    if is(DONE) {
        return Ok(Outcome::Done);
    }
    let mut code = string.clone().unwrap_or_default();
    if let Some(n) = numeric {
        code = format!("{code} ({n})").trim_start().to_owned();
    }
    if let Some(m) = &message {
        code.push_str(&format!(": {}", wire::shown(m)));
    }
    let not_found = string.as_deref().is_some_and(|s| s.contains("NOT_FOUND"))
        || message.is_some_and(|m| m.to_ascii_lowercase().contains("not found"));
    let reason = format!("{what}: {code}");
    Ok(if is(gone) || not_found {
        Outcome::Gone(reason)
    } else if is(REFUSED) {
        Outcome::Refused(reason)
    } else {
        Outcome::Other(reason)
    })
}

/// The answer (status 200) of `POST …/trade` to a `POSITION_CLOSE_ID` of `ticket`:
///
/// | answer | result |
/// |---|---|
/// | `TRADE_RETCODE_DONE` (10009), `TRADE_RETCODE_PLACED` (10008) | `Ok` |
/// | position closed (10036) or not found (4753, or a code or message saying so) | `Permanent` |
/// | invalid request, algorithmic trading disabled | `Permanent` |
/// | any other code (requote, market closed, timeout …) | `Retryable` |
/// | an answer that cannot be read | `Retryable`: the outcome is unknown |
///
/// A retryable close may have gone through: the caller checks the account before
/// trying again.
pub fn close_result(ticket: u64, text: &str) -> Result<(), BrokerError> {
    let what = format!("close of position {ticket}");
    let source = format!("trade[{ticket}]");
    match trade_outcome(&what, &source, POSITION_GONE, text)? {
        Outcome::Done => Ok(()),
        Outcome::Gone(reason) => Err(BrokerError::Permanent(format!(
            "{reason} (no such open position)"
        ))),
        Outcome::Refused(reason) => Err(BrokerError::Permanent(reason)),
        Outcome::Other(reason) => Err(BrokerError::Retryable {
            reason,
            retry_after: None,
        }),
    }
}

/// The answer (status 200) of `POST …/trade` to an `ORDER_CANCEL` of order `ticket`:
/// like [`close_result`], except that an order that is no longer pending (4754,
/// `ERR_TRADE_ORDER_NOT_FOUND`, or a code or message saying "not found") is `Ok`:
/// cancelling an order that is already gone (filled, cancelled, expired) is not an error.
pub fn cancel_result(ticket: u64, text: &str) -> Result<(), BrokerError> {
    let what = format!("cancel of order {ticket}");
    let source = format!("trade[order {ticket}]");
    match trade_outcome(&what, &source, ORDER_GONE, text)? {
        Outcome::Done => Ok(()),
        Outcome::Gone(reason) => {
            tracing::debug!(order = ticket, reason = %reason, "order already gone");
            Ok(())
        }
        Outcome::Refused(reason) => Err(BrokerError::Permanent(reason)),
        Outcome::Other(reason) => Err(BrokerError::Retryable {
            reason,
            retry_after: None,
        }),
    }
}
