//! Which positions and pending orders are the bot's: its magic numbers and/or a comment
//! prefix, per account. What lies outside the scope is *external*: listed, never matched
//! to a bot trade (except by the trade's own ticket, which is its identity), and never a
//! divergence unless the account asks for it ([`ExternalPolicy::Divergence`]).
//!
//! A scope with neither magics nor prefix is the whole account (every position is the
//! bot's), which is also what an account without a configured scope gets.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::facts::PendingOrder;
use super::model::BrokerPosition;

/// What becomes of a position outside the bot's scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExternalPolicy {
    /// Listed as external, never a divergence (the default).
    #[default]
    List,
    /// Listed as external and raised as `unexpected_at_broker`.
    Divergence,
}

/// The positions and orders one account's bot owns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Expert-advisor magic numbers of the bot (empty: none by magic).
    pub magics: BTreeSet<i64>,
    /// A prefix of the comment (or MetaApi client id) the bot writes (`None`: none by
    /// comment).
    pub comment_prefix: Option<String>,
    /// What becomes of what lies outside.
    pub external: ExternalPolicy,
}

impl Scope {
    /// Whether this scope is the whole account.
    pub fn is_everything(&self) -> bool {
        self.magics.is_empty() && self.comment_prefix.is_none()
    }

    /// Whether something with this magic, comment and client id is the bot's: its magic
    /// is listed, or its comment or client id starts with the prefix. Case-sensitive.
    pub fn owns(&self, magic: i64, comment: &str, client_id: Option<&str>) -> bool {
        if self.is_everything() || self.magics.contains(&magic) {
            return true;
        }
        self.comment_prefix.as_deref().is_some_and(|prefix| {
            comment.starts_with(prefix) || client_id.is_some_and(|c| c.starts_with(prefix))
        })
    }

    /// Whether position `p` is the bot's.
    pub fn owns_position(&self, p: &BrokerPosition) -> bool {
        self.owns(p.magic, &p.comment, p.client_id.as_deref())
    }

    /// Whether pending order `o` is the bot's.
    pub fn owns_order(&self, o: &PendingOrder) -> bool {
        self.owns(o.magic, &o.comment, o.client_id.as_deref())
    }
}

/// The scope of every account: a default, and accounts that replace it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes {
    /// For every account without an entry of its own.
    pub default: Scope,
    /// Per-account scopes, by account id.
    pub accounts: BTreeMap<String, Scope>,
}

impl Scopes {
    /// The scope of `account`.
    pub fn for_account(&self, account: &str) -> &Scope {
        self.accounts.get(account).unwrap_or(&self.default)
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn scope(magics: &[i64], prefix: Option<&str>) -> Scope {
        Scope {
            magics: magics.iter().copied().collect(),
            comment_prefix: prefix.map(str::to_owned),
            external: ExternalPolicy::List,
        }
    }

    #[rstest]
    #[case::no_scope_owns_everything(&[], None, 0, "manual", None, true)]
    #[case::listed_magic(&[7, 9], None, 9, "", None, true)]
    #[case::unlisted_magic(&[7, 9], None, 8, "bot-1", None, false)]
    #[case::comment_prefix(&[], Some("bot-"), 0, "bot-17", None, true)]
    #[case::prefix_is_case_sensitive(&[], Some("bot-"), 0, "BOT-17", None, false)]
    #[case::prefix_in_the_client_id(&[], Some("bot-"), 0, "", Some("bot-17"), true)]
    #[case::either_one_is_enough(&[7], Some("bot-"), 0, "bot-1", None, true)]
    #[case::neither(&[7], Some("bot-"), 8, "x-bot-1", Some("manual"), false)]
    fn a_position_is_the_bots_by_magic_or_comment_prefix(
        #[case] magics: &[i64],
        #[case] prefix: Option<&str>,
        #[case] magic: i64,
        #[case] comment: &str,
        #[case] client_id: Option<&str>,
        #[case] owned: bool,
    ) {
        assert_eq!(scope(magics, prefix).owns(magic, comment, client_id), owned);
    }

    #[test]
    fn an_account_entry_replaces_the_default() {
        let scopes = Scopes {
            default: scope(&[7], None),
            accounts: BTreeMap::from([("live-2".to_owned(), scope(&[], None))]),
        };
        assert!(!scopes.for_account("live-1").owns(8, "", None));
        assert!(scopes.for_account("live-2").owns(8, "", None));
    }
}
