//! `[guards]`: drawdown rules, market guards, alert sinks and which accounts auto-close.

use std::str::FromStr;

use chrono::NaiveTime;
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::drawdown::{DailyReference, DrawdownRule, Limit, RuleKind, TrailingBasis};
use super::market::{MarketRule, Session};

/// Largest `alert_lead_secs`: one day.
pub const MAX_ALERT_LEAD_SECS: u64 = 86_400;

/// Largest `confirm_jump_pct`: a tenfold move.
pub const MAX_CONFIRM_JUMP_PCT: u32 = 1_000;

/// Largest `blind_after_secs`: one day.
pub const MAX_BLIND_AFTER_SECS: u64 = 86_400;

/// Largest `webhook.backoff_ms`: one hour.
pub const MAX_WEBHOOK_BACKOFF_MS: u64 = 3_600_000;

/// Largest `max_attempts` of a sink (each retry doubles the delay): 20.
pub const MAX_SINK_ATTEMPTS: u32 = 20;

/// Largest `stale_secs` of a market guard: one day.
pub const MAX_STALE_SECS: u64 = 86_400;

/// `[guards]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardsConfig {
    /// Seconds between a breach alert and the automatic close (the operator's window; at
    /// most [`MAX_ALERT_LEAD_SECS`]).
    pub alert_lead_secs: u64,
    /// Accounts whose breaches close positions (`"*"` = all). Default: none, detect-only.
    pub auto_close: Vec<String>,
    /// What a breach's close round closes and cancels: the whole account (default) or
    /// only the bot's positions and orders.
    pub close_scope: CloseScope,
    /// A snapshot whose equity moved more than this percentage from the previous one, or
    /// whose balance or equity is zero or less, counts only once the next snapshot
    /// confirms it (1 to [`MAX_CONFIRM_JUMP_PCT`]).
    pub confirm_jump_pct: u32,
    /// Seconds without a good snapshot after which a guarded account's guards are blind,
    /// and an alert says so (1 to [`MAX_BLIND_AFTER_SECS`]).
    pub blind_after_secs: u64,
    /// `[guards.webhook]`.
    pub webhook: WebhookConfig,
    /// `[guards.nats]`, which moved to `[nats]`: any value is refused at start-up with a
    /// message naming the new settings (one NATS client per process, alerts through
    /// JetStream).
    pub nats: Option<Moved>,
    /// `[[guards.drawdown]]`.
    pub drawdown: Vec<DrawdownConfig>,
    /// `[[guards.market]]` (a symbol in at most one of them).
    pub market: Vec<MarketConfig>,
}

impl Default for GuardsConfig {
    fn default() -> Self {
        Self {
            alert_lead_secs: 10,
            auto_close: Vec::new(),
            close_scope: CloseScope::Account,
            confirm_jump_pct: 50,
            blind_after_secs: 120,
            webhook: WebhookConfig::default(),
            nats: None,
            drawdown: Vec::new(),
            market: Vec::new(),
        }
    }
}

/// What a breach's close round closes and cancels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseScope {
    /// Every position and pending order of the account, as prop-firm rules count the
    /// whole account.
    #[default]
    Account,
    /// Only the bot's positions and pending orders (`[reconcile.scope]`).
    Bot,
}

/// `[guards.webhook]`: a JSON POST per alert, retried with backoff.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Where to POST; empty = off. Never logged (it may carry a token).
    pub url: String,
    /// Attempts at most (at most [`MAX_SINK_ATTEMPTS`]).
    pub max_attempts: u32,
    /// First retry delay in milliseconds (doubles; at most [`MAX_WEBHOOK_BACKOFF_MS`]).
    pub backoff_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_attempts: 5,
            backoff_ms: 500,
        }
    }
}

/// A section that moved: whatever it holds is read and ignored, and its presence is
/// refused with a message naming the new place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved;

impl<'de> Deserialize<'de> for Moved {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Moved)
    }
}

/// One `[[guards.drawdown]]` rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrawdownConfig {
    /// Name, in alerts and the audit trail.
    pub name: String,
    /// Accounts it applies to (`"*"` = all).
    #[serde(default = "all")]
    pub accounts: Vec<String>,
    /// `daily_loss`, `max_loss` or `trailing_max_loss`.
    pub kind: String,
    /// Daily loss: `balance` or `higher_of_balance_and_equity`.
    #[serde(default)]
    pub reference: Option<String>,
    /// Daily loss / trailing: local time the day starts, `HH:MM`.
    #[serde(default)]
    pub reset_at: Option<String>,
    /// IANA time zone of `reset_at` (default UTC).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Max loss / trailing: the initial balance.
    #[serde(default, with = "crate::domain::decimal_serde::option")]
    pub initial_balance: Option<Decimal>,
    /// Trailing: `balance` or `equity`.
    #[serde(default)]
    pub basis: Option<String>,
    /// Warn level: `"400"` or `"4%"`.
    pub warn: String,
    /// Breach level: `"500"` or `"5%"`.
    pub breach: String,
}

/// One `[[guards.market]]` guard.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketConfig {
    /// Symbols it applies to.
    pub symbols: Vec<String>,
    /// Largest move between two snapshots, in pips.
    #[serde(default, with = "crate::domain::decimal_serde::option")]
    pub max_gap_pips: Option<Decimal>,
    /// Calm snapshots after a gap before the guard clears (default 2).
    #[serde(default = "two")]
    pub gap_clear_after_snapshots: u32,
    /// Widest spread, in pips.
    #[serde(default, with = "crate::domain::decimal_serde::option")]
    pub max_spread_pips: Option<Decimal>,
    /// Oldest acceptable quote, in seconds (at most [`MAX_STALE_SECS`]).
    #[serde(default)]
    pub stale_secs: Option<u64>,
    /// Sessions such as `"Mon-Fri 00:05-23:55"` or, crossing midnight, the FX week
    /// `"Sun-Thu 22:00-21:00"` (each session belongs to the day it opens; empty: always
    /// open).
    #[serde(default)]
    pub sessions: Vec<String>,
    /// IANA time zone of the sessions (default UTC).
    #[serde(default)]
    pub time_zone: Option<String>,
}

fn two() -> u32 {
    2
}

fn all() -> Vec<String> {
    vec!["*".into()]
}

fn zone(path: &str, name: &Option<String>) -> Result<Tz, String> {
    let name = name.as_deref().unwrap_or("UTC");
    Tz::from_str(name).map_err(|_| format!("{path}.time_zone = {name:?}: not an IANA time zone"))
}

fn time(path: &str, text: &Option<String>) -> Result<NaiveTime, String> {
    let text = text.as_deref().unwrap_or("00:00");
    NaiveTime::parse_from_str(text, "%H:%M")
        .map_err(|_| format!("{path}.reset_at = {text:?}: expected HH:MM"))
}

impl DrawdownConfig {
    /// The rule, or every problem with its key path.
    pub fn rule(&self, path: &str) -> Result<DrawdownRule, Vec<String>> {
        let mut problems = Vec::new();
        let limit = |key: &str, v: &str, problems: &mut Vec<String>| {
            Limit::parse(v)
                .map_err(|e| problems.push(format!("{path}.{key}: {e}")))
                .ok()
        };
        let warn = limit("warn", &self.warn, &mut problems);
        let breach = limit("breach", &self.breach, &mut problems);
        let initial = || {
            self.initial_balance
                .filter(|b| *b > Decimal::ZERO)
                .ok_or_else(|| {
                    format!("{path}.initial_balance: required for {} and > 0", self.kind)
                })
        };
        let kind = match self.kind.as_str() {
            "daily_loss" => {
                let reference = match self.reference.as_deref().unwrap_or("balance") {
                    "balance" => Ok(DailyReference::Balance),
                    "higher_of_balance_and_equity" => Ok(DailyReference::HigherOfBalanceAndEquity),
                    other => Err(format!(
                        "{path}.reference = {other:?}: expected balance or higher_of_balance_and_equity"
                    )),
                };
                match (
                    reference,
                    time(path, &self.reset_at),
                    zone(path, &self.time_zone),
                ) {
                    (Ok(reference), Ok(reset_at), Ok(zone)) => Some(RuleKind::DailyLoss {
                        reference,
                        reset_at,
                        zone,
                    }),
                    (a, b, c) => {
                        problems.extend([a.err(), b.err(), c.err()].into_iter().flatten());
                        None
                    }
                }
            }
            "max_loss" => match initial() {
                Ok(initial_balance) => Some(RuleKind::MaxLoss { initial_balance }),
                Err(e) => {
                    problems.push(e);
                    None
                }
            },
            "trailing_max_loss" => {
                let basis = match self.basis.as_deref().unwrap_or("balance") {
                    "balance" => Ok(TrailingBasis::Balance),
                    "equity" => Ok(TrailingBasis::Equity),
                    other => Err(format!(
                        "{path}.basis = {other:?}: expected balance or equity"
                    )),
                };
                match (
                    initial(),
                    basis,
                    time(path, &self.reset_at),
                    zone(path, &self.time_zone),
                ) {
                    (Ok(initial_balance), Ok(basis), Ok(reset_at), Ok(zone)) => {
                        Some(RuleKind::TrailingMaxLoss {
                            initial_balance,
                            basis,
                            reset_at,
                            zone,
                        })
                    }
                    (a, b, c, d) => {
                        problems.extend([a.err(), b.err(), c.err(), d.err()].into_iter().flatten());
                        None
                    }
                }
            }
            other => {
                problems.push(format!(
                    "{path}.kind = {other:?}: expected daily_loss, max_loss or trailing_max_loss"
                ));
                None
            }
        };
        match (kind, warn, breach) {
            (Some(kind), Some(warn), Some(breach)) if problems.is_empty() => Ok(DrawdownRule {
                name: self.name.clone(),
                kind,
                warn,
                breach,
            }),
            _ => Err(problems),
        }
    }
}

impl MarketConfig {
    /// One rule per symbol, or every problem with its key path.
    pub fn rules(&self, path: &str) -> Result<Vec<MarketRule>, Vec<String>> {
        let mut problems = Vec::new();
        let zone = zone(path, &self.time_zone)
            .map_err(|e| problems.push(e))
            .ok();
        let sessions: Vec<Session> = self
            .sessions
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                Session::parse(s)
                    .map_err(|e| problems.push(format!("{path}.sessions[{i}]: {e}")))
                    .ok()
            })
            .collect();
        if self.symbols.is_empty() {
            problems.push(format!("{path}.symbols: list at least one symbol"));
        }
        if let Some(secs) = self.stale_secs.filter(|s| *s > MAX_STALE_SECS) {
            problems.push(format!(
                "{path}.stale_secs = {secs}: must be at most {MAX_STALE_SECS}"
            ));
        }
        let Some(zone) = zone.filter(|_| problems.is_empty()) else {
            return Err(problems);
        };
        Ok(self
            .symbols
            .iter()
            .map(|s| MarketRule {
                symbol: s.to_ascii_uppercase(),
                max_gap_pips: self.max_gap_pips,
                gap_clear_after: self.gap_clear_after_snapshots.max(1),
                max_spread_pips: self.max_spread_pips,
                stale_secs: self.stale_secs,
                sessions: sessions.clone(),
                zone,
            })
            .collect())
    }
}

impl GuardsConfig {
    /// Every invalid value, each with its key path.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.alert_lead_secs > MAX_ALERT_LEAD_SECS {
            out.push(format!(
                "guards.alert_lead_secs = {}: must be at most {MAX_ALERT_LEAD_SECS}",
                self.alert_lead_secs
            ));
        }
        if !(1..=MAX_CONFIRM_JUMP_PCT).contains(&self.confirm_jump_pct) {
            out.push(format!(
                "guards.confirm_jump_pct = {}: must be from 1 to {MAX_CONFIRM_JUMP_PCT}",
                self.confirm_jump_pct
            ));
        }
        if !(1..=MAX_BLIND_AFTER_SECS).contains(&self.blind_after_secs) {
            out.push(format!(
                "guards.blind_after_secs = {}: must be from 1 to {MAX_BLIND_AFTER_SECS}",
                self.blind_after_secs
            ));
        }
        if self.webhook.backoff_ms > MAX_WEBHOOK_BACKOFF_MS {
            out.push(format!(
                "guards.webhook.backoff_ms = {}: must be at most {MAX_WEBHOOK_BACKOFF_MS}",
                self.webhook.backoff_ms
            ));
        }
        if self.webhook.max_attempts > MAX_SINK_ATTEMPTS {
            out.push(format!(
                "guards.webhook.max_attempts = {}: must be at most {MAX_SINK_ATTEMPTS}",
                self.webhook.max_attempts
            ));
        }
        if self.nats.is_some() {
            out.push(
                "guards.nats: moved to [nats] (address → servers = [\"…\"], subject_prefix \
                 and max_attempts keep their names); alerts are now published through \
                 JetStream on <subject_prefix>.alert.<kind>.<account>"
                    .into(),
            );
        }
        for (i, d) in self.drawdown.iter().enumerate() {
            if let Err(p) = d.rule(&format!("guards.drawdown[{i}]")) {
                out.extend(p);
            }
        }
        for (i, m) in self.market.iter().enumerate() {
            if let Err(p) = m.rules(&format!("guards.market[{i}]")) {
                out.extend(p);
            }
        }
        // One guard per symbol: a second entry for a symbol would silently replace the
        // first's settings.
        // Canonical symbol → the entry and the path that first listed it.
        let mut guarded: std::collections::HashMap<String, (usize, String)> = Default::default();
        for (i, m) in self.market.iter().enumerate() {
            for (j, symbol) in m.symbols.iter().enumerate() {
                let path = format!("guards.market[{i}].symbols[{j}]");
                let canonical = symbol.to_ascii_uppercase();
                match guarded.get(&canonical) {
                    Some((entry, first)) if *entry != i => {
                        out.push(format!(
                            "{path} = {symbol:?}: {canonical} is already guarded by {first}"
                        ));
                    }
                    Some(_) => {}
                    None => {
                        guarded.insert(canonical, (i, path));
                    }
                }
            }
        }
        out
    }

    /// The configured checks that cannot work on `account` because its broker gives no
    /// quotes (spread and quote age need the broker's bid, ask and time), each naming the
    /// rule, the account and the reason.
    pub fn unworkable_checks(&self, account: &str, quotes_available: bool) -> Vec<String> {
        if quotes_available {
            return Vec::new();
        }
        self.market
            .iter()
            .enumerate()
            .filter(|(_, m)| m.max_spread_pips.is_some() || m.stale_secs.is_some())
            .map(|(i, m)| {
                format!(
                    "guards.market[{i}] ({}): max_spread_pips and stale_secs cannot work on \
                     account {account}: its broker gives no quotes",
                    m.symbols.join(", ")
                )
            })
            .collect()
    }

    /// Whether any guard is configured at all.
    pub fn any(&self) -> bool {
        !self.drawdown.is_empty() || !self.market.is_empty()
    }

    /// Whether breaches on `account` close positions.
    pub fn closes(&self, account: &str) -> bool {
        self.auto_close.iter().any(|a| a == "*" || a == account)
    }

    /// The drawdown rules that apply to `account` (invalid ones are skipped: `problems`
    /// refuses them at start-up).
    pub fn drawdown_rules(&self, account: &str) -> Vec<DrawdownRule> {
        self.drawdown
            .iter()
            .enumerate()
            .filter(|(_, d)| d.accounts.iter().any(|a| a == "*" || a == account))
            .filter_map(|(i, d)| d.rule(&format!("guards.drawdown[{i}]")).ok())
            .collect()
    }

    /// Every market rule (per canonical symbol).
    pub fn market_rules(&self) -> Vec<MarketRule> {
        self.market
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.rules(&format!("guards.market[{i}]")).ok())
            .flatten()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let config: GuardsConfig = toml::from_str(
            r#"
            [[drawdown]]
            name = "d"
            kind = "daily_loss"
            reference = "peak"
            time_zone = "Mars/Olympus"
            warn = "4%"
            breach = "-5"
            [[market]]
            symbols = ["EURUSD"]
            sessions = ["weekdays"]
            "#,
        )
        .unwrap();
        let p = config.problems().join("\n");
        for needle in [
            "guards.drawdown[0].breach",
            "guards.drawdown[0].reference = \"peak\"",
            "guards.drawdown[0].time_zone = \"Mars/Olympus\"",
            "guards.market[0].sessions[0]",
        ] {
            assert!(p.contains(needle), "{needle} missing in:\n{p}");
        }
    }

    #[test]
    fn a_symbol_in_two_market_guards_is_refused_with_both_paths() {
        let config: GuardsConfig = toml::from_str(
            r#"
            [[market]]
            symbols = ["GBPUSD", "EURUSD"]
            max_spread_pips = 3
            [[market]]
            symbols = ["USDJPY"]
            [[market]]
            symbols = ["eurusd"]
            max_spread_pips = 10
            "#,
        )
        .unwrap();
        let p = config.problems().join("\n");
        assert_eq!(
            p,
            "guards.market[2].symbols[0] = \"eurusd\": EURUSD is already guarded by \
             guards.market[0].symbols[1]"
        );
        let one_each: GuardsConfig = toml::from_str(
            "[[market]]\nsymbols = [\"EURUSD\"]\n[[market]]\nsymbols = [\"GBPUSD\"]\n",
        )
        .unwrap();
        assert!(one_each.problems().is_empty());
    }

    #[test]
    fn detect_only_is_the_default() {
        let config = GuardsConfig::default();
        assert!(!config.closes("acc-1"));
        let config = GuardsConfig {
            auto_close: vec!["acc-1".into()],
            ..GuardsConfig::default()
        };
        assert!(config.closes("acc-1") && !config.closes("acc-2"));
    }
}
