//! Validated value types: sides, prices and volumes over `rust_decimal::Decimal`.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Why a value was refused by a `new_checked` constructor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The value must be strictly greater than zero.
    #[error("must be greater than zero, got {0}")]
    NotPositive(Decimal),
    /// The value must be zero or greater.
    #[error("must not be negative, got {0}")]
    Negative(Decimal),
    /// The value is below any real one: dividing by it would overflow arithmetic.
    #[error("must be at least {min}, got {value}")]
    TooSmall {
        /// The value given.
        value: Decimal,
        /// The smallest accepted.
        min: Decimal,
    },
    /// The value is beyond any real price or volume (and would overflow arithmetic).
    #[error("must be at most {max}, got {value}")]
    TooLarge {
        /// The value given.
        value: Decimal,
        /// The largest accepted.
        max: Decimal,
    },
    /// The text is not `buy` or `sell`.
    #[error("unknown side {0:?} (expected \"buy\" or \"sell\")")]
    UnknownSide(String),
}

/// Direction of a trade or position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Long.
    Buy,
    /// Short.
    Sell,
}

impl Side {
    /// The lowercase name used in files, the database and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Side {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "buy" => Ok(Side::Buy),
            "sell" => Ok(Side::Sell),
            _ => Err(ValueError::UnknownSide(s.to_owned())),
        }
    }
}

macro_rules! positive_decimal {
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "Decimal", into = "Decimal")]
        pub struct $name(Decimal);

        impl $name {
            /// The smallest value accepted.
            pub const MIN: Decimal = $min;

            /// The largest value accepted: far beyond any real one, small enough that pip
            /// and percentage arithmetic can never overflow.
            pub const MAX: Decimal = $max;

            /// Validates that `value` is strictly positive and within
            /// [`Self::MIN`]..=[`Self::MAX`].
            pub fn new_checked(value: Decimal) -> Result<Self, ValueError> {
                if value <= Decimal::ZERO {
                    Err(ValueError::NotPositive(value))
                } else if value < Self::MIN {
                    Err(ValueError::TooSmall { value, min: Self::MIN })
                } else if value > Self::MAX {
                    Err(ValueError::TooLarge { value, max: Self::MAX })
                } else {
                    Ok(Self(value))
                }
            }

            /// Builds from a known-good value; panics if it is out of bounds.
            /// Meant for literals and tests, never for outside data.
            pub fn new(value: Decimal) -> Self {
                match Self::new_checked(value) {
                    Ok(v) => v,
                    Err(e) => panic!("invalid {}: {e}", stringify!($name)),
                }
            }

            /// The underlying decimal.
            pub fn get(self) -> Decimal {
                self.0
            }
        }

        impl TryFrom<Decimal> for $name {
            type Error = ValueError;
            fn try_from(value: Decimal) -> Result<Self, Self::Error> {
                Self::new_checked(value)
            }
        }

        impl From<$name> for Decimal {
            fn from(value: $name) -> Decimal {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

positive_decimal!(
    /// A price quoted by the broker; strictly positive (any scale up to 28), at most 10¹².
    /// Prices are only ever subtracted and divided by a pip size (at least 10⁻¹⁰), so a
    /// tiny price needs no floor.
    Price,
    Decimal::from_parts(1, 0, 0, false, 28),
    Decimal::from_parts(3_567_587_328, 232, 0, false, 0)
);
positive_decimal!(
    /// A volume in lots; at least 10⁻⁸, at most 10⁹.
    ///
    /// The floor: MT5's volume step is 0.01 lots at most brokers, 0.001 or 0.0001 at a
    /// few; 10⁻⁸ leaves four orders of magnitude below the finest of them. Volumes are
    /// divided by each other (percent differences), and with both bounds the largest
    /// quotient, 10⁹ / 10⁻⁸ · 100 = 10¹⁹, stays far inside a decimal's range.
    Volume,
    Decimal::from_parts(1, 0, 0, false, 8),
    Decimal::from_parts(1_000_000_000, 0, 0, false, 0)
);

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    #[test]
    fn zero_and_negative_volumes_are_refused() {
        assert_eq!(
            Volume::new_checked(dec!(0)),
            Err(ValueError::NotPositive(dec!(0)))
        );
        assert!(Volume::new_checked(dec!(-0.01)).is_err());
        assert_eq!(
            Volume::new_checked(dec!(0.01)).map(Volume::get),
            Ok(dec!(0.01))
        );
    }

    #[test]
    fn vanishing_volumes_are_refused_and_any_positive_price_is_kept() {
        assert_eq!(Volume::MIN, dec!(0.00000001));
        assert!(Volume::new_checked(dec!(0.00000001)).is_ok());
        assert_eq!(
            Volume::new_checked(Decimal::new(1, 28)),
            Err(ValueError::TooSmall {
                value: Decimal::new(1, 28),
                min: Volume::MIN
            })
        );
        let err = Volume::new_checked(dec!(0.000000009)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "must be at least 0.00000001, got 0.000000009"
        );
        assert!(Price::new_checked(Decimal::new(1, 28)).is_ok());
    }

    #[test]
    fn absurdly_large_values_are_refused() {
        assert_eq!(Price::MAX, dec!(1_000_000_000_000));
        assert_eq!(Volume::MAX, dec!(1_000_000_000));
        assert!(Price::new_checked(dec!(1_000_000_000_000)).is_ok());
        assert!(matches!(
            Price::new_checked(dec!(7e28)),
            Err(ValueError::TooLarge { .. })
        ));
        assert!(Volume::new_checked(dec!(1_000_000_001)).is_err());
    }

    #[test]
    fn side_parses_case_insensitively_and_refuses_others() {
        assert_eq!("BUY".parse::<Side>(), Ok(Side::Buy));
        assert_eq!("sell".parse::<Side>(), Ok(Side::Sell));
        assert!("long".parse::<Side>().is_err());
    }
}
