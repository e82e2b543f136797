//! Environment overrides of the configuration: `MT5R_<SECTION>__<KEY>=value` sets
//! `section.key`, e.g. `MT5R_SCHEDULER__INTERVAL_MS=5000` → `scheduler.interval_ms`.
//!
//! Every variable that starts with [`ENV_PREFIX`] is an override; `__` separates the levels
//! and names are lowercased (symbol names are case-insensitive). A value is read as a TOML
//! value when it is one (`5000`, `true`, `["sim"]`, `[{id = "a"}]`) and as a string
//! otherwise (`postgres://…`). Overrides are merged into the parsed file before it is
//! deserialized, so they are checked exactly like the file; each bad override is reported
//! with its variable and key path, all at once.

use std::path::Path;

use crate::config::{Config, ConfigError};

/// The prefix of override variables.
pub const ENV_PREFIX: &str = "MT5R_";

/// The separator of key levels in a variable name.
pub const SEPARATOR: &str = "__";

/// One override: the variable, the key path it sets, and its raw value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// Variable name, e.g. `MT5R_SCHEDULER__INTERVAL_MS`.
    pub var: String,
    /// Key path, e.g. `["scheduler", "interval_ms"]`.
    pub path: Vec<String>,
    /// The value as given.
    pub raw: String,
}

impl Override {
    fn dotted(&self) -> String {
        self.path.join(".")
    }
}

/// The overrides among `vars`, by variable name; malformed names are problems.
pub fn overrides(vars: impl IntoIterator<Item = (String, String)>) -> (Vec<Override>, Vec<String>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (var, raw) in vars {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let path: Vec<String> = rest.split(SEPARATOR).map(str::to_lowercase).collect();
        if path.iter().any(String::is_empty) {
            problems.push(format!(
                "{var}: empty key (levels are separated by {SEPARATOR}, e.g. {ENV_PREFIX}SCHEDULER{SEPARATOR}INTERVAL_MS)"
            ));
            continue;
        }
        out.push(Override { var, path, raw });
    }
    out.sort_by(|a, b| a.var.cmp(&b.var));
    (out, problems)
}

/// The overrides in this process's environment.
pub fn from_process_env() -> (Vec<Override>, Vec<String>) {
    let mut problems = Vec::new();
    let vars = std::env::vars_os().filter_map(|(k, v)| {
        let k = k.into_string().ok()?;
        if !k.starts_with(ENV_PREFIX) {
            return None;
        }
        match v.into_string() {
            Ok(v) => Some((k, v)),
            Err(_) => {
                problems.push(format!("{k}: value is not valid UTF-8"));
                None
            }
        }
    });
    let (found, more) = overrides(vars.collect::<Vec<_>>());
    problems.extend(more);
    (found, problems)
}

/// Loads a configuration text (from `source`) with this process's overrides applied.
pub fn load(source: &Path, text: &str) -> Result<Config, ConfigError> {
    let (found, problems) = from_process_env();
    apply(text, &found, problems).map_err(|message| ConfigError::Invalid {
        path: source.to_owned(),
        message,
    })
}

/// Parses `text`, applies `overrides` and validates the result; the error lists every
/// problem (those in `problems` first), each with its variable or key path.
pub fn apply(text: &str, overrides: &[Override], problems: Vec<String>) -> Result<Config, String> {
    if overrides.is_empty() && problems.is_empty() {
        return Config::parse(text);
    }
    // The file alone first, so that its own mistakes are reported with line and column.
    let file: toml::Table =
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
    let _: Config = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
    let mut problems = problems;
    let mut merged = file;
    for o in overrides {
        match apply_one(&merged, o) {
            Ok(next) => merged = next,
            Err(problem) => problems.push(problem),
        }
    }
    let config = merged
        .try_into::<Config>()
        .map_err(|e| format!("after environment overrides: {}", one_line(&e)))?;
    problems.extend(config.problems());
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems.join("\n"))
    }
}

/// `table` with `o` applied, if the result still fits the schema: the value as TOML first,
/// then as a plain string.
fn apply_one(table: &toml::Table, o: &Override) -> Result<toml::Table, String> {
    let mut error = String::new();
    let typed = toml::from_str::<toml::Table>(&format!("v = {}", o.raw))
        .ok()
        .and_then(|mut t| t.remove("v"));
    let as_string = toml::Value::String(o.raw.clone());
    for value in typed.into_iter().chain([as_string]) {
        let mut candidate = table.clone();
        set(&mut candidate, &o.path, value).map_err(|e| format!("{}: {e}", o.var))?;
        match candidate.clone().try_into::<Config>() {
            Ok(_) => return Ok(candidate),
            Err(e) if error.is_empty() => error = one_line(&e),
            Err(_) => {}
        }
    }
    Err(format!("{} ({}): {error}", o.var, o.dotted()))
}

/// A deserialization error on one line (they end with a line naming the table).
fn one_line(e: &toml::de::Error) -> String {
    let text = e.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join(" ")
}

/// Sets `path` in `table`, creating tables on the way.
fn set(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("empty key".into());
    };
    let mut here = table;
    for (i, key) in parents.iter().enumerate() {
        let entry = here
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        here = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(format!("{} is not a table", path[..=i].join("."))),
        };
    }
    here.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<Override> {
        let (found, problems) = overrides(list.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        assert!(problems.is_empty(), "{problems:?}");
        found
    }

    #[test]
    fn overrides_set_nested_keys_with_typed_values() {
        let o = vars(&[
            ("MT5R_SCHEDULER__INTERVAL_MS", "5000"),
            ("MT5R_DATABASE__URL", "postgres://u@db:5432/x"),
            ("MT5R_HTTP__LISTEN", "0.0.0.0:9187"),
            ("MT5R_BROKER__ENABLED", "[\"sim\"]"),
            ("MT5R_SYMBOLS__XAUUSD__PIP_SIZE", "0.1"),
            ("OTHER", "ignored"),
        ]);
        let c = apply("[scheduler]\ninterval_ms = 10000\n", &o, vec![]).unwrap();
        assert_eq!(c.scheduler.interval_ms, 5000);
        assert_eq!(c.database.url, "postgres://u@db:5432/x");
        assert_eq!(c.http.listen, "0.0.0.0:9187");
        assert_eq!(c.broker.enabled, vec!["sim".to_string()]);
        assert!(c.symbols.contains_key("xauusd"));
    }

    #[test]
    fn a_numeric_looking_string_stays_a_string_where_a_string_is_expected() {
        let o = vars(&[
            ("MT5R_ACCOUNTS", "[{id = \"1234\"}]"),
            ("MT5R_HTTP__TOKEN_ENV", "TOK"),
        ]);
        let c = apply("", &o, vec![]).unwrap();
        assert_eq!(c.accounts[0].id, "1234");
        assert_eq!(c.http.token_env, "TOK");
    }

    #[test]
    fn every_bad_override_is_reported_at_once_with_its_variable_and_path() {
        let (o, problems) = overrides(
            [
                ("MT5R_SCHEDULER__INTERVALL_MS", "5"),
                ("MT5R_SCHEDULER__MAX_IN_FLIGHT", "many"),
                ("MT5R_DATABASE____URL", "x"),
                ("MT5R_SCHEDULER__SYNC_TIMEOUT_MS", "0"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let err = apply("", &o, problems).unwrap_err();
        assert!(
            err.contains("MT5R_SCHEDULER__INTERVALL_MS (scheduler.intervall_ms)"),
            "{err}"
        );
        assert!(
            err.contains("MT5R_SCHEDULER__MAX_IN_FLIGHT (scheduler.max_in_flight)"),
            "{err}"
        );
        assert!(err.contains("MT5R_DATABASE____URL: empty key"), "{err}");
        assert!(err.contains("scheduler.sync_timeout_ms"), "{err}");
        assert_eq!(err.lines().count(), 4, "{err}");
    }

    #[test]
    fn file_errors_keep_their_location_and_no_overrides_means_the_file_alone() {
        let o = vars(&[("MT5R_SCHEDULER__INTERVAL_MS", "5")]);
        let err = apply("[scheduler]\nbogus = 1\n", &o, vec![]).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        let c = apply(
            "[scheduler]\ninterval_ms = 7\nspread_slots = 1\n",
            &[],
            vec![],
        )
        .unwrap();
        assert_eq!(c.scheduler.interval_ms, 7);
    }

    #[test]
    fn setting_below_a_value_is_refused() {
        let o = vars(&[("MT5R_DATABASE__URL__X", "1")]);
        let err = apply("", &o, vec![]).unwrap_err();
        assert!(err.contains("MT5R_DATABASE__URL__X"), "{err}");
    }
}
