//! `[reconcile.scope]`: which positions and orders are the bot's, by default and per
//! account (`[reconcile.scope.accounts.ID]`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::domain::{ExternalPolicy, Scope, Scopes};

/// `[reconcile.scope]`: the default scope, and accounts with their own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScopeConfig {
    /// The bot's magic numbers.
    pub magics: Vec<i64>,
    /// A prefix of the comments (or MetaApi client ids) the bot writes.
    pub comment_prefix: Option<String>,
    /// What becomes of positions outside the scope (default `list`).
    pub external: Option<ExternalPolicy>,
    /// `[reconcile.scope.accounts.ID]`: scopes of single accounts.
    pub accounts: BTreeMap<String, AccountScopeConfig>,
}

/// `[reconcile.scope.accounts.ID]`: replaces `magics` and `comment_prefix` of the default
/// together (what it leaves out is unset, not inherited); `external` falls back to the
/// default's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountScopeConfig {
    /// The bot's magic numbers on this account.
    pub magics: Vec<i64>,
    /// The bot's comment prefix on this account.
    pub comment_prefix: Option<String>,
    /// What becomes of positions outside the scope on this account.
    pub external: Option<ExternalPolicy>,
}

impl ScopeConfig {
    /// The scopes this section describes. Call after [`Self::problems`] found nothing.
    pub fn scopes(&self) -> Scopes {
        let external = self.external.unwrap_or_default();
        let scope = |magics: &[i64], prefix: &Option<String>, external| Scope {
            magics: magics.iter().copied().collect(),
            comment_prefix: prefix.clone(),
            external,
        };
        Scopes {
            default: scope(&self.magics, &self.comment_prefix, external),
            accounts: self
                .accounts
                .iter()
                .map(|(id, a)| {
                    let own = scope(&a.magics, &a.comment_prefix, a.external.unwrap_or(external));
                    (id.clone(), own)
                })
                .collect(),
        }
    }

    /// Every invalid value, each with its key path: a magic number that is not positive
    /// (0 is what positions opened by hand carry) or is listed twice, an empty prefix, an
    /// empty account id.
    pub fn problems(&self) -> Vec<String> {
        let mut out = problems("reconcile.scope", &self.magics, &self.comment_prefix);
        for (id, a) in &self.accounts {
            let path = format!("reconcile.scope.accounts.{id}");
            if id.trim().is_empty() {
                out.push(format!(
                    "reconcile.scope.accounts.{id:?}: an account id must not be empty"
                ));
            }
            out.extend(problems(&path, &a.magics, &a.comment_prefix));
        }
        out
    }
}

fn problems(path: &str, magics: &[i64], prefix: &Option<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, &magic) in magics.iter().enumerate() {
        if magic <= 0 {
            out.push(format!(
                "{path}.magics[{i}] = {magic}: must be from 1 to {} (0 is the magic of \
                 positions opened by hand)",
                i64::MAX
            ));
        } else if !seen.insert(magic) {
            let first = magics.iter().position(|&m| m == magic).unwrap_or(i);
            out.push(format!(
                "{path}.magics[{i}] = {magic}: listed twice (also magics[{first}])"
            ));
        }
    }
    if prefix.as_deref() == Some("") {
        out.push(format!(
            "{path}.comment_prefix = \"\": must not be empty (leave it out to match no comment)"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use chrono::TimeDelta;

    use crate::config::Config;
    use crate::domain::{ExternalPolicy, Scope};
    use crate::guards::config::CloseScope;

    #[test]
    fn a_default_scope_and_accounts_that_replace_it() {
        let config = Config::parse(
            "[reconcile.scope]\nmagics = [7, 9]\ncomment_prefix = \"bot:\"\nexternal = \"divergence\"\n\
             [reconcile.scope.accounts.live-2]\nmagics = [11]\n\
             [reconcile.scope.accounts.\"eu.live 3\"]\nexternal = \"list\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let scopes = config.reconcile_rules(None).scopes;
        let default = Scope {
            magics: [7, 9].into(),
            comment_prefix: Some("bot:".into()),
            external: ExternalPolicy::Divergence,
        };
        assert_eq!(scopes.for_account("live-1"), &default);
        assert_eq!(
            scopes.for_account("live-2"),
            &Scope {
                magics: [11].into(),
                comment_prefix: None,
                external: ExternalPolicy::Divergence,
            },
            "magics and prefix replaced together, external inherited"
        );
        let everything = scopes.for_account("eu.live 3");
        assert!(everything.is_everything());
        assert_eq!(everything.external, ExternalPolicy::List);
    }

    #[test]
    fn no_scope_is_everything() {
        let scopes = Config::parse("").unwrap().reconcile_rules(None).scopes;
        assert!(scopes.for_account("any").is_everything());
    }

    #[test]
    fn bad_scopes_are_refused_with_their_path_and_value() {
        let err = Config::parse(
            "[reconcile.scope]\nmagics = [7, 0, 7, -3]\ncomment_prefix = \"\"\n\
             [reconcile.scope.accounts.live-2]\nmagics = [5, 5]\n",
        )
        .unwrap_err();
        for expected in [
            "reconcile.scope.magics[1] = 0: must be from 1 to 9223372036854775807",
            "reconcile.scope.magics[2] = 7: listed twice (also magics[0])",
            "reconcile.scope.magics[3] = -3: must be from 1",
            "reconcile.scope.comment_prefix = \"\": must not be empty",
            "reconcile.scope.accounts.live-2.magics[1] = 5: listed twice",
        ] {
            assert!(err.contains(expected), "{expected:?} not in:\n{err}");
        }
        for (text, needles) in [
            (
                "[reconcile.scope]\nexternal = \"raise\"\n",
                ["external", "raise", "list", "divergence"],
            ),
            (
                "[reconcile.scope]\nmagics = [18446744073709551615]\n",
                ["magics", "18446744073709551615", "", ""],
            ),
            (
                "[guards]\nclose_scope = \"mine\"\n",
                ["close_scope", "mine", "account", "bot"],
            ),
        ] {
            let err = Config::parse(text).unwrap_err();
            for needle in needles {
                assert!(err.contains(needle), "{needle:?} not in:\n{err}");
            }
        }
    }

    #[test]
    fn the_error_names_the_file() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"[reconcile.scope]\nmagics = [0]\n")
            .unwrap();
        let err = Config::from_file(file.path()).unwrap_err().to_string();
        let name = file.path().display().to_string();
        assert!(err.contains(&name), "{err}");
        assert!(err.contains("reconcile.scope.magics[0] = 0"), "{err}");
    }

    #[test]
    fn pending_orders_wait_a_day_by_default_for_ever_at_0_and_at_most_90_days() {
        let live = |text: &str| Config::parse(text).map(|c| c.reconcile_rules(None).live);
        assert_eq!(
            live("").unwrap().max_pending_order,
            Some(TimeDelta::days(1))
        );
        assert_eq!(
            live("[reconcile]\nmax_pending_order_secs = 0\n")
                .unwrap()
                .max_pending_order,
            None
        );
        assert_eq!(
            live("[reconcile]\nmax_pending_order_secs = 7776000\n")
                .unwrap()
                .max_pending_order,
            Some(TimeDelta::days(90))
        );
        let err = live("[reconcile]\nmax_pending_order_secs = 7776001\n").unwrap_err();
        assert!(
            err.contains("reconcile.max_pending_order_secs = 7776001: must be at most 7776000"),
            "{err}"
        );
    }

    #[test]
    fn the_guards_close_the_whole_account_unless_told_otherwise() {
        assert_eq!(
            Config::parse("").unwrap().guards.close_scope,
            CloseScope::Account
        );
        let config = Config::parse("[guards]\nclose_scope = \"bot\"\n").unwrap();
        assert_eq!(config.guards.close_scope, CloseScope::Bot);
    }
}
