//! `[broker.sim]`: how many accounts the simulated broker holds and how noisy they are.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Deserialize;

use super::generate::account_id;
use crate::domain::MarginMode;
use crate::domain::pips::fx_name_pip_size;

/// Most positions one generated account may hold (keeps generated tickets unique).
pub const MAX_POSITIONS_PER_ACCOUNT: usize = 10_000;
/// Most accounts the simulated broker may generate.
pub const MAX_ACCOUNTS: usize = 1_000_000;

/// Configuration of the simulated broker. Every field has a default; unknown keys are
/// refused. Noise probabilities are percentages (0 = never, 100 = always) and are drawn
/// independently per bot trade, except `manual_position_pct` (per account).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Seed of every random choice: the same seed gives byte-identical accounts.
    pub seed: u64,
    /// Number of generated accounts, named `sim-001`, `sim-002`, …
    pub accounts: usize,
    /// Bot trades per generated account.
    pub positions_per_account: usize,
    /// Symbols to trade: six-letter fiat FX pairs, so their pip size is known.
    pub symbols: Vec<String>,
    /// Smallest simulated answer time of a snapshot, in milliseconds.
    pub latency_ms_min: u64,
    /// Largest simulated answer time of a snapshot, in milliseconds (uniform in between).
    pub latency_ms_max: u64,
    /// Account balance in the account currency (USD).
    #[serde(with = "crate::domain::decimal_serde")]
    pub balance: Decimal,
    /// Chance that a position was filled 6–15 pips away from the bot's entry.
    pub slippage_pct: u32,
    /// Chance that the broker holds only 50–80 % of the bot's volume.
    pub partial_volume_pct: u32,
    /// Chance that the stop loss was moved by 12–40 pips, removed, or added.
    pub moved_sl_pct: u32,
    /// Chance that an account holds one extra manual position the bot does not know.
    pub manual_position_pct: u32,
    /// Chance that a bot trade's position is gone at the broker (closed by its stop loss).
    pub closed_by_sl_pct: u32,
    /// How the accounts book positions: `hedging`, `netting` or `exchange`.
    pub margin_mode: MarginMode,
    /// Margin modes of single accounts, over `margin_mode`: `{ sim-002 = "netting" }`.
    pub margin_modes: BTreeMap<String, MarginMode>,
    /// How long, in seconds, a deal stays in an account's history.
    pub deal_history_secs: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            accounts: 5,
            positions_per_account: 8,
            symbols: ["EURUSD", "GBPUSD", "USDJPY", "USDCHF", "AUDUSD"]
                .map(String::from)
                .to_vec(),
            latency_ms_min: 20,
            latency_ms_max: 80,
            balance: Decimal::from(10_000),
            slippage_pct: 10,
            partial_volume_pct: 5,
            moved_sl_pct: 5,
            manual_position_pct: 5,
            closed_by_sl_pct: 5,
            margin_mode: MarginMode::Hedging,
            margin_modes: BTreeMap::new(),
            deal_history_secs: 86_400,
        }
    }
}

impl SimConfig {
    /// The same configuration with every noise probability at zero: the generated
    /// accounts then reconcile without a single divergence.
    pub fn without_noise(mut self) -> Self {
        self.slippage_pct = 0;
        self.partial_volume_pct = 0;
        self.moved_sl_pct = 0;
        self.manual_position_pct = 0;
        self.closed_by_sl_pct = 0;
        self
    }

    /// Every invalid value, each named by its key (`broker.sim.<key>`).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.latency_ms_min > self.latency_ms_max {
            out.push(format!(
                "broker.sim.latency_ms_min = {} is greater than broker.sim.latency_ms_max = {}",
                self.latency_ms_min, self.latency_ms_max
            ));
        }
        for (key, pct) in [
            ("slippage_pct", self.slippage_pct),
            ("partial_volume_pct", self.partial_volume_pct),
            ("moved_sl_pct", self.moved_sl_pct),
            ("manual_position_pct", self.manual_position_pct),
            ("closed_by_sl_pct", self.closed_by_sl_pct),
        ] {
            if pct > 100 {
                out.push(format!(
                    "broker.sim.{key} = {pct}: must be between 0 and 100"
                ));
            }
        }
        if self.accounts > MAX_ACCOUNTS {
            out.push(format!(
                "broker.sim.accounts = {}: must be at most {MAX_ACCOUNTS}",
                self.accounts
            ));
        }
        if self.positions_per_account > MAX_POSITIONS_PER_ACCOUNT {
            out.push(format!(
                "broker.sim.positions_per_account = {}: must be at most {MAX_POSITIONS_PER_ACCOUNT}",
                self.positions_per_account
            ));
        }
        for id in self.margin_modes.keys() {
            let n = id
                .strip_prefix("sim-")
                .and_then(|n| n.parse::<usize>().ok());
            if !n.is_some_and(|n| n >= 1 && n <= self.accounts && *id == account_id(n)) {
                out.push(format!(
                    "broker.sim.margin_modes.{id}: no such generated account (sim-001 to {})",
                    account_id(self.accounts)
                ));
            }
        }
        if self.deal_history_secs == 0 {
            out.push("broker.sim.deal_history_secs = 0: must be greater than 0".to_owned());
        }
        if self.balance <= Decimal::ZERO {
            out.push(format!(
                "broker.sim.balance = {}: must be greater than zero",
                self.balance
            ));
        }
        if self.symbols.is_empty() && self.positions_per_account > 0 {
            out.push("broker.sim.symbols: must name at least one symbol".to_owned());
        }
        for (i, symbol) in self.symbols.iter().enumerate() {
            if fx_name_pip_size(symbol).is_none() {
                out.push(format!(
                    "broker.sim.symbols[{i}] = {symbol:?}: must be a six-letter fiat FX pair such as EURUSD"
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_partial_tables_keep_them() {
        assert!(SimConfig::default().problems().is_empty());
        let c: SimConfig = toml::from_str("seed = 7\nbalance = \"2500.50\"").unwrap();
        assert_eq!(c.seed, 7);
        assert_eq!(c.balance, Decimal::new(250_050, 2));
        assert_eq!(c.accounts, SimConfig::default().accounts);
        assert!(c.symbols.iter().any(|s| s.ends_with("JPY")));
        let c: SimConfig = toml::from_str("margin_mode = \"netting\"").unwrap();
        assert_eq!(c.margin_mode, MarginMode::Netting);
        let c: SimConfig = toml::from_str("margin_modes = { sim-002 = \"exchange\" }").unwrap();
        assert_eq!(c.margin_modes["sim-002"], MarginMode::Exchange);
        assert!(c.problems().is_empty());
        assert!(toml::from_str::<SimConfig>("margin_mode = \"both\"").is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_reported_by_key() {
        assert!(toml::from_str::<SimConfig>("sed = 7").is_err());
        let c = SimConfig {
            latency_ms_min: 90,
            latency_ms_max: 10,
            slippage_pct: 101,
            closed_by_sl_pct: 300,
            symbols: vec!["EURUSD".into(), "XAUUSD".into()],
            balance: Decimal::ZERO,
            deal_history_secs: 0,
            margin_modes: [("sim-9".to_owned(), MarginMode::Netting)].into(),
            ..SimConfig::default()
        };
        let problems = c.problems().join("\n");
        for key in [
            "broker.sim.latency_ms_min",
            "broker.sim.slippage_pct",
            "broker.sim.closed_by_sl_pct",
            "broker.sim.symbols[1]",
            "broker.sim.balance",
            "broker.sim.deal_history_secs",
            "broker.sim.margin_modes.sim-9",
        ] {
            assert!(problems.contains(key), "{key} missing from {problems}");
        }
        assert_eq!(c.problems().len(), 7);
    }
}
