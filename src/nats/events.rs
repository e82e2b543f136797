//! What goes out on NATS: one JSON message per event of the tree, on a subject naming its
//! kind and account.
//!
//! | event | subject |
//! |---|---|
//! | divergence opened | `<prefix>.divergence.opened.<account>` |
//! | divergence resolved | `<prefix>.divergence.resolved.<account>` |
//! | breaker transition | `<prefix>.breaker.<event>.<account>` (`circuit_opened` …) |
//! | alert, close outcome | `<prefix>.alert.<kind>.<account>` (`breach`, `close_confirmed` …) |
//!
//! The account is one subject token (see [`token`]). The body is
//! `{"id", "type", "account", "at", "data"}`; `id` is also the `Nats-Msg-Id` header, so a
//! retried publish is stored once by the stream.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::actors::ReconcilerEvent;

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutEvent {
    /// Unique per message (the stream's deduplication id).
    pub id: String,
    /// `divergence.opened`, `divergence.resolved`, `breaker.<event>` or `alert.<kind>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Account id.
    pub account: String,
    /// When it happened (alerts, breaker transitions) or was committed (divergences).
    pub at: DateTime<Utc>,
    /// The event's own fields.
    pub data: serde_json::Value,
}

impl OutEvent {
    /// The message of `event`, with id `id`, stamped `now` where the event has no time.
    pub fn of(event: &ReconcilerEvent, id: String, now: DateTime<Utc>) -> Self {
        let (kind, account, at, data) = match event {
            ReconcilerEvent::DivergenceOpened {
                account_id,
                divergence,
            } => (
                "divergence.opened".to_owned(),
                account_id,
                now,
                serde_json::to_value(divergence).unwrap_or_default(),
            ),
            ReconcilerEvent::DivergenceResolved {
                account_id,
                fingerprint,
            } => (
                "divergence.resolved".to_owned(),
                account_id,
                now,
                serde_json::json!({ "fingerprint": fingerprint }),
            ),
            ReconcilerEvent::BreakerTransition {
                account_id,
                from,
                to,
                event,
                reason,
                at,
            } => (
                format!("breaker.{event}"),
                account_id,
                *at,
                serde_json::json!({ "from": from, "to": to, "reason": reason }),
            ),
            ReconcilerEvent::Alert(alert) => (
                format!("alert.{}", alert.kind),
                &alert.account_id,
                alert.at,
                serde_json::to_value(alert).unwrap_or_default(),
            ),
        };
        Self {
            id,
            kind,
            account: account.clone(),
            at,
            data,
        }
    }

    /// `<prefix>.<type tokens>.<account token>`.
    pub fn subject(&self, prefix: &str) -> String {
        let kind: Vec<String> = self.kind.split('.').map(token).collect();
        format!("{prefix}.{}.{}", kind.join("."), token(&self.account))
    }
}

/// `id` as one subject token: letters, digits, `_` and `-` stay; every other byte is
/// written `~XX` (upper-case hex; `~` itself too); an empty id is `~`. So the token holds
/// no `.`, `*`, `>` or white space, and two different ids never share a token.
pub fn token(id: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(id.len());
    if id.is_empty() {
        out.push('~');
    }
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "~{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case("live-1", "live-1")]
    #[case("acc_2", "acc_2")]
    #[case("a b", "a~20b")]
    #[case("a.b", "a~2Eb")]
    #[case("*", "~2A")]
    #[case(">", "~3E")]
    #[case("a~2Eb", "a~7E2Eb")]
    #[case("é", "~C3~A9")]
    #[case("a\r\nPUB x 1", "a~0D~0APUB~20x~201")]
    #[case("", "~")]
    fn an_account_id_is_one_safe_subject_token(#[case] id: &str, #[case] expected: &str) {
        assert_eq!(token(id), expected);
    }

    #[test]
    fn different_account_ids_never_share_a_token() {
        let ids = [
            "a.b", "a~2Eb", "a~2eb", "a b", "a_b", "a-b", "a*", "a>", "a~", "a~7E", "~", "~7E",
            "é", "~C3~A9", "e\u{301}", "A.B", "",
        ];
        let tokens: std::collections::BTreeSet<String> = ids.iter().map(|id| token(id)).collect();
        assert_eq!(tokens.len(), ids.len(), "{tokens:?}");
        for t in &tokens {
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-~".contains(&b)),
                "{t}"
            );
        }
    }

    #[test]
    fn each_event_has_its_subject_and_type() {
        let now = chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        let resolved = ReconcilerEvent::DivergenceResolved {
            account_id: "eu.live 1".into(),
            fingerprint: "fp".into(),
        };
        let e = OutEvent::of(&resolved, "x-1".into(), now);
        assert_eq!(e.subject("mt5r"), "mt5r.divergence.resolved.eu~2Elive~201");
        let json = serde_json::to_value(&e).unwrap_or_default();
        assert_eq!(json["type"], "divergence.resolved");
        assert_eq!(json["data"]["fingerprint"], "fp");
        let breaker = ReconcilerEvent::BreakerTransition {
            account_id: "a".into(),
            from: "running".into(),
            to: "open".into(),
            event: "circuit_opened".into(),
            reason: Some("retryable: HTTP 500".into()),
            at: now,
        };
        let e = OutEvent::of(&breaker, "x-2".into(), now);
        assert_eq!(e.subject("ops.mt5r"), "ops.mt5r.breaker.circuit_opened.a");
        assert_eq!(e.data["to"], "open");
    }
}
