//! Tolerances and match windows, with per-symbol overrides.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::pips::{SymbolTable, UnknownPipSize};

/// Thresholds for one symbol. A divergence is raised when a difference is *strictly
/// greater* than its tolerance; the match windows are inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tolerances {
    /// Entry slippage in pips (seed: 5).
    #[serde(with = "super::decimal_serde")]
    pub entry_slippage_pips: Decimal,
    /// Volume difference in percent of the bot's volume (seed: 10).
    #[serde(with = "super::decimal_serde")]
    pub volume_pct: Decimal,
    /// Stop-loss difference in pips (seed: 10).
    #[serde(with = "super::decimal_serde")]
    pub sl_pips: Decimal,
    /// Take-profit difference in pips (seed: 10).
    #[serde(with = "super::decimal_serde")]
    pub tp_pips: Decimal,
    /// Heuristic match window on entry price, in pips (seed: 2; default 20).
    #[serde(with = "super::decimal_serde")]
    pub match_price_pips: Decimal,
    /// Heuristic match window on volume, in percent (seed: 5; default 50).
    #[serde(with = "super::decimal_serde")]
    pub match_volume_pct: Decimal,
}

impl Default for Tolerances {
    fn default() -> Self {
        Self {
            entry_slippage_pips: Decimal::from(5),
            volume_pct: Decimal::from(10),
            sl_pips: Decimal::from(10),
            tp_pips: Decimal::from(10),
            match_price_pips: Decimal::from(20),
            match_volume_pct: Decimal::from(50),
        }
    }
}

/// A partial [`Tolerances`] for one symbol: absent fields fall back to the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToleranceOverride {
    /// See [`Tolerances::entry_slippage_pips`].
    #[serde(default, with = "super::decimal_serde::option")]
    pub entry_slippage_pips: Option<Decimal>,
    /// See [`Tolerances::volume_pct`].
    #[serde(default, with = "super::decimal_serde::option")]
    pub volume_pct: Option<Decimal>,
    /// See [`Tolerances::sl_pips`].
    #[serde(default, with = "super::decimal_serde::option")]
    pub sl_pips: Option<Decimal>,
    /// See [`Tolerances::tp_pips`].
    #[serde(default, with = "super::decimal_serde::option")]
    pub tp_pips: Option<Decimal>,
    /// See [`Tolerances::match_price_pips`].
    #[serde(default, with = "super::decimal_serde::option")]
    pub match_price_pips: Option<Decimal>,
    /// See [`Tolerances::match_volume_pct`].
    #[serde(default, with = "super::decimal_serde::option")]
    pub match_volume_pct: Option<Decimal>,
}

impl ToleranceOverride {
    /// These values over `base`.
    pub fn apply(&self, base: Tolerances) -> Tolerances {
        Tolerances {
            entry_slippage_pips: self.entry_slippage_pips.unwrap_or(base.entry_slippage_pips),
            volume_pct: self.volume_pct.unwrap_or(base.volume_pct),
            sl_pips: self.sl_pips.unwrap_or(base.sl_pips),
            tp_pips: self.tp_pips.unwrap_or(base.tp_pips),
            match_price_pips: self.match_price_pips.unwrap_or(base.match_price_pips),
            match_volume_pct: self.match_volume_pct.unwrap_or(base.match_volume_pct),
        }
    }
}

/// Everything `reconcile` needs to know besides the data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileRules {
    /// Tolerances for every symbol without an override.
    pub defaults: Tolerances,
    /// Per-symbol overrides, keyed by canonical symbol.
    pub overrides: BTreeMap<String, ToleranceOverride>,
    /// Pip sizes.
    pub symbols: SymbolTable,
    /// Broker or bot spelling → canonical symbol (e.g. `EURUSD.m` → `EURUSD`), upper-case.
    pub aliases: BTreeMap<String, String>,
}

impl ReconcileRules {
    /// The canonical (upper-case, de-aliased) form of `symbol`.
    pub fn canonical(&self, symbol: &str) -> String {
        let upper = symbol.trim().to_ascii_uppercase();
        match self.aliases.get(&upper) {
            Some(target) => target.to_ascii_uppercase(),
            None => upper,
        }
    }

    /// Tolerances for a canonical symbol.
    pub fn tolerances(&self, canonical: &str) -> Tolerances {
        match self.overrides.get(canonical) {
            Some(o) => o.apply(self.defaults),
            None => self.defaults,
        }
    }

    /// Pip size for a canonical symbol.
    pub fn pip_size(&self, canonical: &str) -> Result<Decimal, UnknownPipSize> {
        self.symbols.pip_size(canonical)
    }

    /// Builds rules with upper-cased keys for overrides and aliases.
    pub fn with_maps(
        defaults: Tolerances,
        overrides: BTreeMap<String, ToleranceOverride>,
        symbols: SymbolTable,
        aliases: BTreeMap<String, String>,
    ) -> Self {
        Self {
            defaults,
            overrides: overrides
                .into_iter()
                .map(|(k, v)| (k.to_ascii_uppercase(), v))
                .collect(),
            symbols,
            aliases: aliases
                .into_iter()
                .map(|(k, v)| (k.to_ascii_uppercase(), v.to_ascii_uppercase()))
                .collect(),
        }
    }
}
