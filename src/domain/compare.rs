//! The divergence rules on a trade (or a netting account's net of trades) paired with a
//! position, and the checked arithmetic they use.

use rust_decimal::Decimal;

use super::divergence::{Divergence, DivergenceKind, Unit, Value};
use super::model::{BotTrade, BrokerPosition};
use super::reconcile::ReconcileError;
use super::rules::Tolerances;
use super::values::{Price, Side};

/// Decimal places kept in a reported delta.
const DELTA_DP: u32 = 4;

/// `(b − a) / a · 100`, the change from `a` to `b` in percent of `a`; `None` when a
/// decimal cannot hold it (or `a` is zero).
pub(super) fn pct_change(a: Decimal, b: Decimal) -> Option<Decimal> {
    b.checked_sub(a)?
        .checked_div(a)?
        .checked_mul(Decimal::ONE_HUNDRED)
}

/// `(b − a) / pip`, a price difference in pips; `None` when a decimal cannot hold it.
pub(super) fn pips_between(a: Decimal, b: Decimal, pip: Decimal) -> Option<Decimal> {
    b.checked_sub(a)?.checked_div(pip)
}

/// The divergence rules on a matched pair (all "strictly greater than" the tolerance).
pub(super) fn compare(
    trade: &BotTrade,
    pos: &BrokerPosition,
    symbol: &str,
    pip: Decimal,
    tol: &Tolerances,
    out: &mut Vec<Divergence>,
) -> Result<(), ReconcileError> {
    let out_of_range = |field, expected: Decimal, actual: Decimal, pip: Option<Decimal>| {
        let mut value = format!("{expected} against {actual}");
        if let Some(pip) = pip {
            value.push_str(&format!(" at pip size {pip}"));
        }
        ReconcileError::OutOfRange {
            trade_id: trade.id.clone(),
            ticket: pos.ticket,
            field,
            value,
        }
    };
    let mut push = |kind, expected, actual, delta: Option<(Decimal, Unit)>| {
        let delta = delta.map(|(d, u)| (d.round_dp(DELTA_DP).normalize(), u));
        out.push(Divergence::new(
            kind,
            symbol.to_owned(),
            Some(pos.ticket),
            Some(trade.id.clone()),
            expected,
            actual,
            delta,
        ));
    };
    let num = |p: Price| Some(Value::Number(p.get()));

    if trade.side != pos.side {
        push(
            DivergenceKind::SideMismatch,
            Some(Value::Side(trade.side)),
            Some(Value::Side(pos.side)),
            None,
        );
    }

    // Positive slippage is worse for the trader: a buy filled higher, a sell filled lower.
    let (entry, open) = (trade.entry_price.get(), pos.open_price.get());
    let raw = pips_between(entry, open, pip)
        .ok_or_else(|| out_of_range("open_price", entry, open, Some(pip)))?;
    let slippage = if trade.side == Side::Buy { raw } else { -raw };
    if slippage.abs() > tol.entry_slippage_pips {
        push(
            DivergenceKind::EntrySlippage,
            num(trade.entry_price),
            num(pos.open_price),
            Some((slippage, Unit::Pips)),
        );
    }

    let (tv, pv) = (trade.volume.get(), pos.volume.get());
    let volume_delta = pct_change(tv, pv).ok_or_else(|| out_of_range("volume", tv, pv, None))?;
    if volume_delta.abs() > tol.volume_pct {
        push(
            DivergenceKind::VolumeMismatch,
            Some(Value::Number(tv)),
            Some(Value::Number(pv)),
            Some((volume_delta, Unit::Percent)),
        );
    }

    for (kind, field, expected, actual, limit) in [
        (
            DivergenceKind::SlMismatch,
            "sl",
            trade.sl,
            pos.sl,
            tol.sl_pips,
        ),
        (
            DivergenceKind::TpMismatch,
            "tp",
            trade.tp,
            pos.tp,
            tol.tp_pips,
        ),
    ] {
        match (expected, actual) {
            (Some(e), Some(a)) => {
                let (want, got) = (e.get(), a.get());
                let d = pips_between(want, got, pip)
                    .ok_or_else(|| out_of_range(field, want, got, Some(pip)))?;
                if d.abs() > limit {
                    push(kind, num(e), num(a), Some((d, Unit::Pips)));
                }
            }
            (None, None) => {}
            (e, a) => push(kind, e.and_then(num), a.and_then(num), None),
        }
    }
    Ok(())
}
