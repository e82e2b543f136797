//! Tolerances and match windows, with per-symbol overrides.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::judge::LiveRules;
use super::pips::{SymbolTable, UnknownPipSize};
use super::scope::Scopes;

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

/// The largest tolerance accepted, 10⁹ (pips or percent): far beyond any useful one.
/// With pip sizes at most [`crate::domain::pips::MAX_PRICE_STEP`] (10⁶), a match window
/// stays within 10¹⁵, and matching saturates rather than overflows even past it.
pub const MAX_TOLERANCE: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

impl ToleranceOverride {
    /// Every out-of-bounds value, each named by `path` and its key
    /// (`reconcile.sl_pips = -1: …`): tolerances lie within 0..=[`MAX_TOLERANCE`].
    pub fn problems(&self, path: &str) -> Vec<String> {
        [
            ("entry_slippage_pips", self.entry_slippage_pips),
            ("volume_pct", self.volume_pct),
            ("sl_pips", self.sl_pips),
            ("tp_pips", self.tp_pips),
            ("match_price_pips", self.match_price_pips),
            ("match_volume_pct", self.match_volume_pct),
        ]
        .into_iter()
        .filter_map(|(key, value)| {
            let v = value?;
            let reason = if v.is_sign_negative() && !v.is_zero() {
                "must not be negative".to_owned()
            } else if v > MAX_TOLERANCE {
                format!("must be at most {MAX_TOLERANCE}")
            } else {
                return None;
            };
            Some(format!("{path}.{key} = {v}: {reason}"))
        })
        .collect()
    }

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
    /// How the service judges divergences across syncs (grace, confirmation); `reconcile`
    /// itself, a function of one snapshot, does not read it.
    pub live: LiveRules,
    /// Which positions and orders are the bot's, per account (default: everything).
    pub scopes: Scopes,
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

    /// These rules with the broker's symbol specifications added, each under its canonical
    /// symbol. DESIGN: "pip size from configuration first, then broker symbol digits, then
    /// the FX-name rule": a configured entry that determines a pip size wins over the
    /// broker's; a configured entry that determines none (a `point` alone) gives way to it.
    /// Broker specs that determine no pip size are ignored, and when several broker
    /// spellings share a canonical symbol the first in symbol order is used.
    pub fn with_broker_symbols(&self, broker: &SymbolTable) -> ReconcileRules {
        let mut symbols = SymbolTable::new();
        for (symbol, spec) in broker.iter() {
            let canonical = self.canonical(symbol);
            if spec.pip_size().is_some() && symbols.get(&canonical).is_none() {
                symbols.insert(&canonical, spec.clone());
            }
        }
        for (symbol, spec) in self.symbols.iter() {
            if spec.pip_size().is_some() || symbols.get(symbol).is_none() {
                symbols.insert(symbol, spec.clone());
            }
        }
        ReconcileRules {
            defaults: self.defaults,
            overrides: self.overrides.clone(),
            symbols,
            aliases: self.aliases.clone(),
            live: self.live.clone(),
            scopes: self.scopes.clone(),
        }
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
            live: LiveRules::default(),
            scopes: Scopes::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SymbolSpec;
    use rstest::rstest;
    use rust_decimal::dec;

    fn spec(pip_size: Option<Decimal>, digits: Option<u32>) -> SymbolSpec {
        SymbolSpec {
            pip_size,
            digits,
            point: None,
        }
    }

    fn table(entries: &[(&str, SymbolSpec)]) -> SymbolTable {
        entries
            .iter()
            .map(|(s, spec)| ((*s).to_owned(), spec.clone()))
            .collect()
    }

    /// Configured `[symbols]`: gold by pip size, the Swiss franc pair by a bare point, and
    /// an alias for a suffixed broker spelling.
    fn configured() -> ReconcileRules {
        let point_only = SymbolSpec {
            point: Some(dec!(0.001)),
            ..SymbolSpec::default()
        };
        ReconcileRules::with_maps(
            Tolerances::default(),
            BTreeMap::new(),
            table(&[
                ("XAUUSD", spec(Some(dec!(0.1)), None)),
                ("USDCHF", point_only),
            ]),
            BTreeMap::from([("US30.cash".to_owned(), "US30".to_owned())]),
        )
    }

    #[rstest]
    #[case::configured_pip_size_wins("XAUUSD", &[("XAUUSD", spec(Some(dec!(0.01)), Some(2)))], Ok(dec!(0.1)))]
    #[case::broker_digits_win_over_the_fx_rule("USDHUF", &[("USDHUF", spec(None, Some(2)))], Ok(dec!(0.01)))]
    #[case::broker_pip_size_wins_over_the_fx_rule("AUDNZD", &[("AUDNZD", spec(Some(dec!(0.001)), Some(5)))], Ok(dec!(0.001)))]
    #[case::only_the_broker_knows("XAGUSD", &[("XAGUSD", spec(None, Some(3)))], Ok(dec!(0.01)))]
    #[case::alias_rekeys("US30", &[("us30.cash", spec(None, Some(1)))], Ok(dec!(0.1)))]
    #[case::config_without_pip_gives_way("USDCHF", &[("USDCHF", spec(None, Some(4)))], Ok(dec!(0.0001)))]
    #[case::useless_broker_spec_is_ignored("EURUSD", &[("EURUSD", spec(None, None))], Ok(dec!(0.0001)))]
    #[case::fx_rule_without_broker("GBPJPY", &[], Ok(dec!(0.01)))]
    #[case::still_unknown("BTCUSD", &[("XAGUSD", spec(None, Some(3)))], Err(()))]
    fn broker_symbols_rank_below_configuration_and_above_the_fx_rule(
        #[case] symbol: &str,
        #[case] broker: &[(&str, SymbolSpec)],
        #[case] expected: Result<Decimal, ()>,
    ) {
        let rules = configured().with_broker_symbols(&table(broker));
        assert_eq!(rules.pip_size(symbol).map_err(|_| ()), expected);
    }

    #[test]
    fn a_symbol_only_the_broker_knows_becomes_reconcilable() {
        use crate::domain::{BotTrade, BrokerPosition, Price, Side, Volume, reconcile};
        let trade = BotTrade {
            id: "t1".into(),
            account: "acc".into(),
            symbol: "XAUUSD".into(),
            side: Side::Buy,
            volume: Volume::new(dec!(1)),
            entry_price: Price::new(dec!(2000.00)),
            sl: None,
            tp: None,
            ticket: Some(7),
            client_id: None,
            opened_at: None,
        };
        let position = BrokerPosition::for_test(7, "XAUUSD", Side::Buy, dec!(1), dec!(2000.50));
        let bare = ReconcileRules::default();
        assert!(
            reconcile(
                std::slice::from_ref(&trade),
                std::slice::from_ref(&position),
                &bare
            )
            .is_err()
        );
        let broker = table(&[("XAUUSD", spec(None, Some(2)))]);
        let rules = bare.with_broker_symbols(&broker);
        let result = reconcile(&[trade], &[position], &rules).expect("reconcilable");
        // 0.50 at 0.01 per pip: 50 pips of slippage, above the default 5.
        assert_eq!(result.divergences.len(), 1, "{:?}", result.divergences);
    }

    #[test]
    fn tolerances_are_bounded_on_both_sides_and_named_by_path() {
        let o = ToleranceOverride {
            sl_pips: Some(dec!(-1)),
            match_price_pips: Some(dec!(1000000000.1)),
            match_volume_pct: Some(MAX_TOLERANCE),
            tp_pips: Some(dec!(0)),
            ..ToleranceOverride::default()
        };
        assert_eq!(
            o.problems("reconcile.overrides.XAUUSD"),
            [
                "reconcile.overrides.XAUUSD.sl_pips = -1: must not be negative",
                "reconcile.overrides.XAUUSD.match_price_pips = 1000000000.1: must be at most 1000000000",
            ]
        );
        assert!(
            ToleranceOverride::default()
                .problems("reconcile")
                .is_empty()
        );
    }

    #[test]
    fn the_rest_of_the_rules_is_kept() {
        let mut rules = configured();
        rules.defaults.sl_pips = dec!(42);
        let merged = rules.with_broker_symbols(&table(&[("XAGUSD", spec(None, Some(3)))]));
        assert_eq!(merged.defaults, rules.defaults);
        assert_eq!(merged.aliases, rules.aliases);
        assert_eq!(merged.overrides, rules.overrides);
        assert_eq!(rules.with_broker_symbols(&SymbolTable::new()), rules);
    }
}
