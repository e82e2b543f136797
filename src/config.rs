//! Typed configuration, read from `config.toml`. Every section has defaults that run as
//! they are; unknown keys are refused so that a typo never silently falls back to a default.

mod scope;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::actors::{PersistenceConfig, RetentionConfig, SchedulerConfig, SupervisionConfig};
use crate::broker::metaapi::MetaApiConfig;
use crate::broker::mt5_export::{Mt5ExportConfig, is_safe_account_dir};
use crate::broker::sim::SimConfig;
use crate::domain::close_reasons::MAX_CLOSE_LOOKUP_SYNCS;
use crate::domain::decimal_serde;
use crate::domain::judge::{MAX_CONFIRM_SYNCS, MAX_GRACE_SECS, MAX_PENDING_ORDER_SECS};
use crate::domain::{DivergenceKind, LiveRules};
use crate::domain::{ReconcileRules, SymbolSpec, SymbolTable, ToleranceOverride, Tolerances};
use crate::guards::GuardsConfig;

pub use scope::{AccountScopeConfig, ScopeConfig};

/// The default database: an SQLite file in the working directory, created on first use.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://mt5-reconciler.db?mode=rwc";

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "config.toml";

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line, column and key.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[database]`.
    pub database: DatabaseConfig,
    /// `[reconcile]`: tolerances, match windows, overrides, aliases.
    pub reconcile: ReconcileConfig,
    /// `[symbols.NAME]`: pip sizes or digits per symbol.
    pub symbols: BTreeMap<String, SymbolSpec>,
    /// `[scheduler]`: interval, spreading, the cap on broker calls, timeouts.
    pub scheduler: SchedulerConfig,
    /// `[supervision]`: the per-account circuit breaker.
    pub supervision: SupervisionConfig,
    /// `[persistence]`: batching and retries of database writes.
    pub persistence: PersistenceConfig,
    /// `[retention]`: how long rows are kept, and how old ones are deleted.
    pub retention: RetentionConfig,
    /// `[broker]`: which connectors run, and their settings.
    pub broker: BrokerConfig,
    /// `[[accounts]]`: accounts to supervise besides those of the `accounts` table.
    pub accounts: Vec<AccountConfig>,
    /// `[guards]`: drawdown and market guards, alerts, automatic closes.
    pub guards: GuardsConfig,
    /// `[http]`: the status API, metrics and dashboard, and their bearer token.
    pub http: crate::http::HttpConfig,
    /// `[nats]`: events out on JetStream, the bot's trade events in.
    pub nats: crate::nats::NatsConfig,
    /// `[ha]`: several instances sharing the accounts of one PostgreSQL database.
    pub ha: crate::actors::lease::HaConfig,
    /// `[clock]`: a skew of the wall clock, for testing a node whose clock is off.
    pub clock: crate::clock::ClockConfig,
}

/// `[broker]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Connectors to start. The simulated broker (`sim`) supervises its own accounts.
    pub enabled: Vec<String>,
    /// `[broker.sim]`: the simulated broker.
    pub sim: SimConfig,
    /// `[broker.metaapi]`: the MetaApi REST adapter.
    pub metaapi: MetaApiConfig,
    /// `[broker.mt5_export]`: the files written by `bridge/mt5_export.py`.
    pub mt5_export: Mt5ExportConfig,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            enabled: vec!["sim".to_owned()],
            sim: SimConfig::default(),
            metaapi: MetaApiConfig::default(),
            mt5_export: Mt5ExportConfig::default(),
        }
    }
}

/// Connector names the service knows.
pub const KNOWN_BROKERS: &[&str] = &["sim", "metaapi", "mt5_export"];

/// One `[[accounts]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// Our account id (for `mt5_export`, also the name of its export directory).
    pub id: String,
    /// Connector: one of `[broker] enabled`.
    #[serde(default = "default_broker")]
    pub broker: String,
    /// MetaApi's id of the account, when it differs from `id` (`broker = "metaapi"` only).
    #[serde(default)]
    pub metaapi_account_id: Option<String>,
}

fn default_broker() -> String {
    "sim".to_owned()
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// sea-orm connection URL (SQLite or PostgreSQL).
    pub url: String,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_DATABASE_URL.to_owned(),
        }
    }
}

/// `[reconcile]`: the default tolerances (each key may be left out), overrides, aliases.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconcileConfig {
    /// See [`Tolerances::entry_slippage_pips`].
    #[serde(with = "decimal_serde::option")]
    pub entry_slippage_pips: Option<Decimal>,
    /// See [`Tolerances::volume_pct`].
    #[serde(with = "decimal_serde::option")]
    pub volume_pct: Option<Decimal>,
    /// See [`Tolerances::sl_pips`].
    #[serde(with = "decimal_serde::option")]
    pub sl_pips: Option<Decimal>,
    /// See [`Tolerances::tp_pips`].
    #[serde(with = "decimal_serde::option")]
    pub tp_pips: Option<Decimal>,
    /// See [`Tolerances::match_price_pips`].
    #[serde(with = "decimal_serde::option")]
    pub match_price_pips: Option<Decimal>,
    /// See [`Tolerances::match_volume_pct`].
    #[serde(with = "decimal_serde::option")]
    pub match_volume_pct: Option<Decimal>,
    /// `[reconcile.overrides.SYMBOL]`: per-symbol tolerances.
    pub overrides: BTreeMap<String, ToleranceOverride>,
    /// `[reconcile.aliases]`: broker spelling → canonical symbol.
    pub aliases: BTreeMap<String, String>,
    /// A trade or position first seen or changed this recently (seconds, on this
    /// service's clock) is in flight: its divergences are held (default 5).
    pub grace_secs: Option<u64>,
    /// `[reconcile.confirm_syncs]`: divergence kind → consecutive syncs that must observe
    /// it before it is raised (defaults: 2 for missing, unexpected and cancelled orders,
    /// 1 otherwise).
    pub confirm_syncs: BTreeMap<String, u32>,
    /// Syncs on which a vanished or shrunk position's deals are looked up without finding
    /// its closing deals before it is `missing_at_broker` or `volume_mismatch` (default 2).
    pub close_lookup_syncs: Option<u32>,
    /// Seconds a bot trade may wait on a pending order, on this service's clock from when
    /// it first saw it waiting, before it is `order_unfilled` (default a day; 0: for ever).
    pub max_pending_order_secs: Option<u64>,
    /// `[reconcile.scope]`: which positions and orders are the bot's.
    pub scope: ScopeConfig,
}

impl ReconcileConfig {
    /// The live rules: the defaults with what this section sets on top. Call after
    /// [`Self::live_problems`] found nothing: unknown kinds are skipped here.
    pub fn live(&self) -> LiveRules {
        let mut live = LiveRules::default();
        if let Some(secs) = self.grace_secs {
            live.grace = chrono::TimeDelta::seconds(secs.min(MAX_GRACE_SECS) as i64);
        }
        for (kind, n) in &self.confirm_syncs {
            if let Ok(kind) = kind.parse::<DivergenceKind>() {
                live.confirm_syncs.insert(kind, *n);
            }
        }
        if let Some(n) = self.close_lookup_syncs {
            live.close_lookup_syncs = n.clamp(1, MAX_CLOSE_LOOKUP_SYNCS);
        }
        if let Some(secs) = self.max_pending_order_secs {
            live.max_pending_order = (secs > 0)
                .then(|| chrono::TimeDelta::seconds(secs.min(MAX_PENDING_ORDER_SECS) as i64));
        }
        live
    }

    /// Out-of-bounds grace, confirmation and pending-order settings, each with its key and
    /// value.
    pub fn live_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(secs) = self
            .max_pending_order_secs
            .filter(|s| *s > MAX_PENDING_ORDER_SECS)
        {
            out.push(format!(
                "reconcile.max_pending_order_secs = {secs}: must be at most \
                 {MAX_PENDING_ORDER_SECS} (90 days; 0 = for ever)"
            ));
        }
        if let Some(secs) = self.grace_secs.filter(|s| *s > MAX_GRACE_SECS) {
            out.push(format!(
                "reconcile.grace_secs = {secs}: must be at most {MAX_GRACE_SECS} (an hour)"
            ));
        }
        for (kind, n) in &self.confirm_syncs {
            if let Err(e) = kind.parse::<DivergenceKind>() {
                let known: Vec<&str> = DivergenceKind::ALL.iter().map(|k| k.as_str()).collect();
                out.push(format!(
                    "reconcile.confirm_syncs.{kind} = {n}: {e}; known kinds: {}",
                    known.join(", ")
                ));
            } else if !(1..=MAX_CONFIRM_SYNCS).contains(n) {
                out.push(format!(
                    "reconcile.confirm_syncs.{kind} = {n}: must be from 1 to {MAX_CONFIRM_SYNCS}"
                ));
            }
        }
        if let Some(n) = self
            .close_lookup_syncs
            .filter(|n| !(1..=MAX_CLOSE_LOOKUP_SYNCS).contains(n))
        {
            out.push(format!(
                "reconcile.close_lookup_syncs = {n}: must be from 1 to {MAX_CLOSE_LOOKUP_SYNCS}"
            ));
        }
        out
    }

    /// The default tolerances as a partial set.
    pub fn tolerances(&self) -> ToleranceOverride {
        ToleranceOverride {
            entry_slippage_pips: self.entry_slippage_pips,
            volume_pct: self.volume_pct,
            sl_pips: self.sl_pips,
            tp_pips: self.tp_pips,
            match_price_pips: self.match_price_pips,
            match_volume_pct: self.match_volume_pct,
        }
    }
}

impl Config {
    /// Loads `path`, or `config.toml` in the working directory when it exists, or defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            Some(p) => Self::from_file(p),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                Self::from_file(Path::new(DEFAULT_CONFIG_FILE))
            }
            None => crate::config_env::load(Path::new("(built-in defaults)"), ""),
        }
    }

    /// Loads and validates one file, with the `MT5R_…` environment overrides applied
    /// (see [`crate::config_env`]).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        crate::config_env::load(path, &text)
    }

    /// Parses and validates TOML text; the error lists every problem found.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Config =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems.join("\n"))
        }
    }

    /// Every invalid value, each with its key path.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.extend(self.reconcile.tolerances().problems("reconcile"));
        out.extend(self.reconcile.live_problems());
        out.extend(self.reconcile.scope.problems());
        for (symbol, o) in &self.reconcile.overrides {
            out.extend(o.problems(&format!("reconcile.overrides.{symbol}")));
        }
        out.extend(self.scheduler.problems());
        out.extend(self.guards.problems());
        out.extend(self.supervision.problems());
        out.extend(self.broker.sim.problems());
        out.extend(self.broker.metaapi.problems());
        out.extend(self.broker.mt5_export.problems());
        out.extend(self.http.problems());
        out.extend(self.nats.problems());
        out.extend(self.persistence.problems());
        out.extend(self.retention.problems());
        out.extend(self.ha.problems());
        out.extend(self.clock.problems());
        if self.ha.enabled && !self.database.url.starts_with("postgres") {
            out.push(format!(
                "ha.enabled = true: needs PostgreSQL, but database.url = {:?} is not; \
                 SQLite is single-instance",
                crate::store::redact_url(&self.database.url)
            ));
        }
        for name in &self.broker.enabled {
            if !KNOWN_BROKERS.contains(&name.as_str()) {
                out.push(format!(
                    "broker.enabled: unknown broker {name:?} (known: {})",
                    KNOWN_BROKERS.join(", ")
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        // The MetaApi account each `metaapi` entry reads and closes: its
        // `metaapi_account_id`, else its own id. Two entries on one would both close it.
        let mut remote: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, a) in self.accounts.iter().enumerate() {
            if a.broker != "metaapi" {
                continue;
            }
            let (key, value) = match &a.metaapi_account_id {
                Some(m) => ("metaapi_account_id", m.as_str()),
                None => ("id", a.id.as_str()),
            };
            match remote.get(value) {
                // The same id listed twice is reported as such below.
                Some(&first) if self.accounts[first].id != a.id => out.push(format!(
                    "accounts[{i}].{key} = {value:?}: the same MetaApi account as accounts[{first}]"
                )),
                Some(_) => {}
                None => {
                    remote.insert(value, i);
                }
            }
        }
        for (i, a) in self.accounts.iter().enumerate() {
            if a.id.trim().is_empty() {
                out.push(format!("accounts[{i}].id: must not be empty"));
            }
            if !seen.insert(a.id.as_str()) {
                out.push(format!("accounts[{i}].id = {:?}: listed twice", a.id));
            }
            if !self.broker.enabled.contains(&a.broker) {
                out.push(format!(
                    "accounts[{i}].broker = {:?}: not in broker.enabled",
                    a.broker
                ));
            }
            match &a.metaapi_account_id {
                Some(_) if a.broker != "metaapi" => out.push(format!(
                    "accounts[{i}].metaapi_account_id: only for broker = \"metaapi\""
                )),
                Some(m) if m.trim().is_empty() => out.push(format!(
                    "accounts[{i}].metaapi_account_id: must not be empty"
                )),
                _ => {}
            }
            if a.broker == "mt5_export" && !is_safe_account_dir(&a.id) {
                out.push(format!(
                    "accounts[{i}].id = {:?}: an mt5_export account id names its export \
                     directory (letters, digits, - _ . only)",
                    a.id
                ));
            }
        }
        for (symbol, spec) in &self.symbols {
            out.extend(spec.problems(&format!("symbols.{symbol}")));
        }
        out
    }

    /// The reconcile rules this configuration describes, with `extra` symbols on top.
    pub fn reconcile_rules(&self, extra: Option<&SymbolTable>) -> ReconcileRules {
        let defaults = self.reconcile.tolerances().apply(Tolerances::default());
        let mut symbols: SymbolTable = self.symbols.clone().into_iter().collect();
        if let Some(extra) = extra {
            symbols.merge(extra);
        }
        ReconcileRules {
            live: self.reconcile.live(),
            scopes: self.reconcile.scope.scopes(),
            ..ReconcileRules::with_maps(
                defaults,
                self.reconcile.overrides.clone(),
                symbols,
                self.reconcile.aliases.clone(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    #[test]
    fn ha_needs_postgres_and_names_its_bounds() {
        let err = Config::parse("[ha]\nenabled = true\n").unwrap_err();
        assert!(err.contains("ha.enabled = true: needs PostgreSQL"), "{err}");
        let err = Config::parse(
            "[database]\nurl = \"postgres://u@h/db\"\n[ha]\nenabled = true\nttl_secs = 6\nrenew_secs = 3\n",
        )
        .unwrap_err();
        assert!(err.contains("ha.renew_secs = 3"), "{err}");
        let ok = Config::parse(
            "[database]\nurl = \"postgres://u@h/db\"\n[ha]\nenabled = true\ninstance_id = \"a\"\n",
        )
        .unwrap();
        assert_eq!(ok.ha.instance_id.as_deref(), Some("a"));
    }

    #[test]
    fn grace_and_confirmation_are_read_and_bounded() {
        let config = Config::parse(
            "[reconcile]\ngrace_secs = 8\n[reconcile.confirm_syncs]\nsl_mismatch = 3\n",
        )
        .unwrap();
        let live = config.reconcile_rules(None).live;
        assert_eq!(live.grace, chrono::TimeDelta::seconds(8));
        assert_eq!(live.confirm(DivergenceKind::SlMismatch), 3);
        assert_eq!(
            live.confirm(DivergenceKind::MissingAtBroker),
            2,
            "default kept"
        );
        assert_eq!(live.close_lookup_syncs, 2, "default kept");
        assert_eq!(
            live.confirm(DivergenceKind::ClosedAtBroker),
            2,
            "default kept"
        );
        let config = Config::parse("[reconcile]\nclose_lookup_syncs = 5\n").unwrap();
        assert_eq!(config.reconcile_rules(None).live.close_lookup_syncs, 5);
        assert_eq!(
            Config::parse("").unwrap().reconcile_rules(None).live,
            LiveRules::default()
        );
        let err = Config::parse(
            "[reconcile]\ngrace_secs = 3601\nclose_lookup_syncs = 0\n\
             [reconcile.confirm_syncs]\nmissing = 2\nsl_mismatch = 0\n",
        )
        .unwrap_err();
        for want in [
            "reconcile.grace_secs = 3601: must be at most 3600",
            "reconcile.close_lookup_syncs = 0: must be from 1 to 100",
            "reconcile.confirm_syncs.missing = 2: unknown divergence kind \"missing\"; known kinds: entry_slippage",
            "reconcile.confirm_syncs.sl_mismatch = 0: must be from 1 to 100",
        ] {
            assert!(err.contains(want), "{want} not in {err}");
        }
    }

    #[test]
    fn the_shipped_config_parses_and_matches_the_defaults() {
        let text = include_str!("../config.toml");
        let config = Config::parse(text).expect("config.toml must parse");
        let rules = config.reconcile_rules(None);
        assert_eq!(rules.defaults, Tolerances::default());
        assert_eq!(rules.live, LiveRules::default());
        assert_eq!(
            rules.scopes,
            crate::domain::Scopes::default(),
            "everything is the bot's"
        );
        assert_eq!(config.database.url, DEFAULT_DATABASE_URL);
        // The file documents the defaults: it must not drift from them.
        assert_eq!(config.scheduler, SchedulerConfig::default());
        assert_eq!(config.supervision, SupervisionConfig::default());
        assert_eq!(config.persistence, PersistenceConfig::default());
        assert_eq!(config.retention, RetentionConfig::default());
        assert_eq!(config.broker.sim, SimConfig::default());
        assert_eq!(config.broker.enabled, ["sim"]);
        assert_eq!(config.guards, GuardsConfig::default(), "no guard is active");
    }

    #[test]
    fn the_documented_guard_examples_are_valid() {
        let text = include_str!("../config.toml");
        let start = text.find("\n[guards]\n").expect("a [guards] section");
        let end = start
            + text[start..]
                .find("\n[broker]\n")
                .expect("[broker] after it");
        // Uncomment the example tables and keys, not the prose.
        let is_toml = |l: &str| {
            l.starts_with('[')
                || l.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                })
        };
        let guards: Vec<&str> = text[start..end]
            .lines()
            .map(|l| l.strip_prefix("# ").filter(|l| is_toml(l)).unwrap_or(l))
            .collect();
        let config = Config::parse(&guards.join("\n")).unwrap_or_else(|e| panic!("{e}"));
        let g = &config.guards;
        assert_eq!((g.drawdown.len(), g.market.len()), (3, 1), "{g:#?}");
        assert_eq!(g.drawdown_rules("live-1").len(), 3);
        assert_eq!(
            g.drawdown_rules("live-2").len(),
            2,
            "daily-5pct is live-1's"
        );
        assert_eq!(g.market_rules().len(), 2, "one per symbol");
        assert!(!g.webhook.url.is_empty() && g.nats.is_none());
        assert!(!g.closes("live-1"), "auto_close stays empty: detect-only");
    }

    #[test]
    fn seed_windows_are_reachable_and_overrides_apply() {
        let config = Config::parse(
            "[reconcile]\nmatch_price_pips = 2\nmatch_volume_pct = 5\n\
             [reconcile.overrides.xauusd]\nentry_slippage_pips = \"30\"\n\
             [symbols.XAUUSD]\ndigits = 2\n",
        )
        .unwrap();
        let rules = config.reconcile_rules(None);
        assert_eq!(rules.defaults.match_price_pips, dec!(2));
        assert_eq!(rules.defaults.match_volume_pct, dec!(5));
        assert_eq!(rules.tolerances("XAUUSD").entry_slippage_pips, dec!(30));
        assert_eq!(rules.tolerances("XAUUSD").sl_pips, dec!(10));
        assert_eq!(rules.pip_size("XAUUSD"), Ok(dec!(0.01)));
    }

    #[test]
    fn typos_and_bad_values_are_reported_with_their_path() {
        let err = Config::parse("[reconcile]\nslippage_pips = 5\n").unwrap_err();
        assert!(err.contains("slippage_pips"), "{err}");
        let err = Config::parse("[reconcile]\nsl_pips = -1\ntp_pips = -2\n").unwrap_err();
        assert!(err.contains("reconcile.sl_pips = -1"), "{err}");
        assert!(err.contains("reconcile.tp_pips = -2"), "{err}");
    }

    #[test]
    fn two_accounts_on_one_metaapi_account_are_refused() {
        let accounts = "[broker]\nenabled = [\"metaapi\"]\n\
             [[accounts]]\nid = \"live-1\"\nbroker = \"metaapi\"\nmetaapi_account_id = \"abc\"\n\
             [[accounts]]\nid = \"live-2\"\nbroker = \"metaapi\"\n\
             [[accounts]]\nid = \"live-3\"\nbroker = \"metaapi\"\nmetaapi_account_id = \"abc\"\n\
             [[accounts]]\nid = \"abc\"\nbroker = \"metaapi\"\n";
        let err = Config::parse(accounts).unwrap_err();
        for expected in [
            "accounts[2].metaapi_account_id = \"abc\": the same MetaApi account as accounts[0]",
            "accounts[3].id = \"abc\": the same MetaApi account as accounts[0]",
        ] {
            assert!(err.contains(expected), "{expected:?} not in:\n{err}");
        }
        assert!(!err.contains("accounts[1]"), "{err}");
        // Distinct ids are fine.
        Config::parse(
            "[broker]\nenabled = [\"metaapi\"]\n\
             [[accounts]]\nid = \"live-1\"\nbroker = \"metaapi\"\nmetaapi_account_id = \"abc\"\n\
             [[accounts]]\nid = \"live-2\"\nbroker = \"metaapi\"\n",
        )
        .unwrap();
    }

    #[test]
    fn tolerances_beyond_their_bound_are_refused_with_their_path() {
        let err = Config::parse(
            "[reconcile]\nmatch_price_pips = \"10000000000\"\n\
             [reconcile.overrides.XAUUSD]\nsl_pips = \"-1\"\n",
        )
        .unwrap_err();
        for needle in [
            "reconcile.match_price_pips = 10000000000: must be at most",
            "reconcile.overrides.XAUUSD.sl_pips = -1: must not be negative",
        ] {
            assert!(err.contains(needle), "{needle} in {err}");
        }
    }

    #[test]
    fn durations_beyond_their_bounds_are_refused_with_their_path() {
        let err = Config::parse(
            "[scheduler]\ninterval_ms = 86400001\nsync_timeout_ms = 3600001\n\
             accounts_refresh_secs = 86401\n\
             [supervision]\nmin_backoff_ms = 86400001\nmax_backoff_ms = 18446744073709551615\n\
             window_secs = 86401\nopen_for_secs = 86401\nmax_open_for_secs = 86401\n\
             [persistence]\nflush_interval_ms = 3600001\nretry_min_ms = 0\n\
             retry_max_ms = 3600001\n\
             [guards]\nalert_lead_secs = 18446744073709551615\n\
             [guards.webhook]\nbackoff_ms = 3600001\nmax_attempts = 21\n\
             [nats]\nmax_attempts = 4294967295\n\
             [[guards.market]]\nsymbols = [\"EURUSD\"]\nstale_secs = 9223372036854775808\n\
             [retention]\naudit_events_days = 36501\ninterval_secs = 86401\nbatch_size = 0\n",
        )
        .unwrap_err();
        for expected in [
            "scheduler.interval_ms = 86400001: must be at most 86400000",
            "scheduler.sync_timeout_ms = 3600001: must be at most 3600000",
            "scheduler.accounts_refresh_secs = 86401: must be at most 86400",
            "supervision.min_backoff_ms = 86400001: must be at most 86400000",
            "supervision.max_backoff_ms = 18446744073709551615: must be at most 86400000",
            "supervision.window_secs = 86401: must be at most 86400",
            "supervision.open_for_secs = 86401: must be at most 86400",
            "supervision.max_open_for_secs = 86401: must be at most 86400",
            "persistence.flush_interval_ms = 3600001: must be at most 3600000",
            "persistence.retry_min_ms = 0: must be > 0 and <= retry_max_ms",
            "persistence.retry_max_ms = 3600001: must be at most 3600000",
            "guards.alert_lead_secs = 18446744073709551615: must be at most 86400",
            "guards.webhook.backoff_ms = 3600001: must be at most 3600000",
            "guards.webhook.max_attempts = 21: must be at most 20",
            "nats.max_attempts = 4294967295: must be between 1 and 20",
            "guards.market[0].stale_secs = 9223372036854775808: must be at most 86400",
            "retention.audit_events_days = 36501: must be at most 36500 (0 = forever)",
            "retention.interval_secs = 86401: must be between 1 and 86400",
            "retention.batch_size = 0: must be between 1 and 100000",
        ] {
            assert!(err.contains(expected), "{expected:?} not in:\n{err}");
        }
        // The bounds themselves are accepted.
        Config::parse(
            "[scheduler]\ninterval_ms = 86400000\nsync_timeout_ms = 3600000\n\
             [supervision]\nmax_backoff_ms = 86400000\nmax_open_for_secs = 86400\n\
             [guards]\nalert_lead_secs = 86400\n\
             [retention]\nsync_runs_days = 36500\naudit_events_days = 0\ninterval_secs = 86400\n",
        )
        .unwrap();
    }

    #[rstest::rstest]
    #[case("[guards.nats]\naddress = \"127.0.0.1:4222\"\n")]
    #[case("[guards.nats]\n")]
    #[case("[guards]\nnats = {}\n")]
    fn the_old_nats_section_is_refused_with_its_new_name(#[case] text: &str) {
        let err = Config::parse(text).unwrap_err();
        assert!(err.contains("guards.nats: moved to [nats]"), "{err}");
        assert!(err.contains("servers"), "{err}");
    }

    #[test]
    fn a_nats_section_that_cannot_work_is_refused_with_its_path() {
        let err =
            Config::parse("[nats]\nservers = [\"ws://h:4222\"]\nstream = \"a b\"\n").unwrap_err();
        assert!(err.contains("nats.servers[0] = \"ws://h:4222\""), "{err}");
        assert!(err.contains("nats.stream = \"a b\""), "{err}");
        Config::parse("[nats]\nservers = [\"127.0.0.1:4222\"]\n[nats.trades]\nstream = \"BOT\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn absurd_symbol_specs_are_refused_with_their_path() {
        let err = Config::parse(
            "[symbols.XAUUSD]\npip_size = \"0\"\n\
             [symbols.US30]\ndigits = 5\npoint = \"79228162514264337593543950335\"\n\
             [symbols.BTCUSD]\ndigits = 40\n\
             [symbols.XAGUSD]\npoint = \"-0.001\"\n",
        )
        .unwrap_err();
        for expected in [
            "symbols.XAUUSD.pip_size = 0: must be greater than 0",
            "symbols.US30.point = 79228162514264337593543950335: must be greater than 0 and at most 1000000",
            "symbols.BTCUSD.digits = 40: must be between 0 and 10",
            "symbols.XAGUSD.point = -0.001",
        ] {
            assert!(err.contains(expected), "{expected} not in {err}");
        }
        let fine = Config::parse("[symbols.US30]\npip_size = \"1000000\"\n").unwrap();
        assert_eq!(
            fine.reconcile_rules(None).pip_size("US30"),
            Ok(dec!(1000000))
        );
    }
}
