//! Reference market data for the simulation: prices, digits and USD rates of FX majors.
//!
//! Prices are handled as integer *points* (the smallest quoted step) while generating, so
//! every generated price has exactly the symbol's digits. A pip is 10 points (3- and
//! 5-digit quotes), which is what the FX-name rule of the domain assumes.

use rust_decimal::Decimal;

use crate::domain::{BrokerPosition, Price, Side};

/// Points per pip for 3- and 5-digit quotes.
pub(super) const POINTS_PER_PIP: i64 = 10;
/// Units of base currency in one lot.
const CONTRACT_SIZE: i64 = 100_000;
/// Account leverage used for the margin estimate (1:100).
const LEVERAGE: i64 = 100;

/// Reference mid prices in points, with their digits.
const REFERENCE: &[(&str, i64, u32)] = &[
    ("EURUSD", 108_500, 5),
    ("GBPUSD", 127_000, 5),
    ("USDJPY", 151_200, 3),
    ("USDCHF", 88_000, 5),
    ("AUDUSD", 66_000, 5),
    ("USDCAD", 136_000, 5),
    ("NZDUSD", 61_000, 5),
    ("EURJPY", 163_500, 3),
    ("GBPJPY", 192_000, 3),
    ("EURGBP", 85_500, 5),
    ("EURCHF", 95_500, 5),
    ("AUDJPY", 99_800, 3),
];

/// USD value of one unit of a currency (approximate, for profit and margin only).
const USD_RATES: &[(&str, i64, u32)] = &[
    ("USD", 1, 0),
    ("EUR", 1085, 3),
    ("GBP", 127, 2),
    ("JPY", 66, 4),
    ("CHF", 1136, 3),
    ("AUD", 66, 2),
    ("CAD", 735, 3),
    ("NZD", 61, 2),
];

/// How a symbol is quoted in the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Quote {
    /// Reference mid price in points.
    pub(super) mid: i64,
    /// Decimal places of the quote.
    pub(super) digits: u32,
}

/// The quote of `symbol`: the reference table, else 100.000 for a JPY quote, else 1.00000.
pub(super) fn quote(symbol: &str) -> Quote {
    let upper = symbol.to_ascii_uppercase();
    if let Some(&(_, mid, digits)) = REFERENCE.iter().find(|(s, _, _)| *s == upper) {
        return Quote { mid, digits };
    }
    if upper.ends_with("JPY") {
        Quote {
            mid: 100_000,
            digits: 3,
        }
    } else {
        Quote {
            mid: 100_000,
            digits: 5,
        }
    }
}

/// A price from points, never below one point (so `Price::new` cannot panic).
pub(super) fn price(points: i64, digits: u32) -> Price {
    Price::new(Decimal::new(points.max(1), digits))
}

/// USD per unit of the currency `code` (1 when unknown).
fn usd_rate(code: &str) -> Decimal {
    USD_RATES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or(Decimal::ONE, |&(_, n, scale)| Decimal::new(n, scale))
}

/// Base and quote currency codes of a six-letter pair (empty strings otherwise).
fn currencies(symbol: &str) -> (&str, &str) {
    match (symbol.get(..3), symbol.get(3..6)) {
        (Some(base), Some(quote)) if symbol.len() == 6 => (base, quote),
        _ => ("", ""),
    }
}

/// Floating profit in USD of a position at `current`, rounded to cents.
pub(super) fn profit(
    symbol: &str,
    side: Side,
    volume: Decimal,
    open: Decimal,
    current: Decimal,
) -> Decimal {
    let upper = symbol.to_ascii_uppercase();
    let (_, quote) = currencies(&upper);
    let direction = match side {
        Side::Buy => Decimal::ONE,
        Side::Sell => Decimal::NEGATIVE_ONE,
    };
    ((current - open) * direction * volume * Decimal::from(CONTRACT_SIZE) * usd_rate(quote))
        .round_dp(2)
}

/// Margin in USD that `positions` tie up at the simulated leverage, rounded to cents.
pub(super) fn margin(positions: &[BrokerPosition]) -> Decimal {
    positions
        .iter()
        .map(|p| {
            let upper = p.symbol.to_ascii_uppercase();
            let (base, _) = currencies(&upper);
            p.volume.get() * Decimal::from(CONTRACT_SIZE) * usd_rate(base) / Decimal::from(LEVERAGE)
        })
        .sum::<Decimal>()
        .round_dp(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    #[test]
    fn quotes_profit_and_margin_are_plausible() {
        assert_eq!(price(quote("EURUSD").mid, 5).get(), dec!(1.08500));
        assert_eq!(price(quote("usdjpy").mid, 3).get(), dec!(151.200));
        assert_eq!(quote("USDMXN").digits, 5);
        assert_eq!(quote("CADJPY").digits, 3);
        // 10 pips on 1 lot of EURUSD is 100 USD.
        assert_eq!(
            profit("EURUSD", Side::Buy, dec!(1), dec!(1.08500), dec!(1.08600)),
            dec!(100.00)
        );
        assert_eq!(
            profit("EURUSD", Side::Sell, dec!(1), dec!(1.08500), dec!(1.08600)),
            dec!(-100.00)
        );
        assert_eq!(price(-5, 5).get(), dec!(0.00001));
    }
}
