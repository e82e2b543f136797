//! Classification of MetaApi's non-success answers into [`BrokerError`]s:
//!
//! | answer | class |
//! |---|---|
//! | 408, 5xx, other 4xx | `Retryable` |
//! | 429 | `Retryable`, `retry_after` from `metadata.recommendedRetryTime` or `Retry-After` |
//! | 400, 401, 403, 404 (unknown account; symbol for a specification; position or order for a trade) | `Permanent` |
//!
//! The message keeps MetaApi's error name and message (shortened); the caller redacts it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;

use crate::broker::BrokerError;
use crate::broker::wire::shown;

/// A broker's recommended delay longer than this is capped (and logged): a clock error
/// should not park an account for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3_600);

/// What a request is about, which decides what a 404 means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// An account endpoint: 404 means the account is unknown (permanent).
    Account,
    /// A symbol endpoint: 404 means the symbol is unknown (permanent for that symbol).
    Symbol,
    /// A trade on one position: 404 means the account or the position is unknown
    /// (permanent: there is nothing to close).
    Position,
    /// A trade on one pending order: 404 means the account or the order is unknown.
    Order,
}

/// A non-success answer, as classified by [`classify`].
#[derive(Debug, Clone, Copy)]
pub struct Failure<'a> {
    /// HTTP status.
    pub status: StatusCode,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<&'a str>,
    /// The body (MetaApi sends `{id, error, message, metadata}`).
    pub body: &'a str,
    /// What the request was about.
    pub subject: Subject,
    /// The request's method and path (`GET /users/…`), for the message.
    pub path: &'a str,
}

/// Classifies a non-success answer received at `now`.
pub fn classify(f: &Failure<'_>, now: DateTime<Utc>) -> BrokerError {
    let detail: Option<serde_json::Value> = serde_json::from_str(f.body).ok();
    let text = |key: &str| {
        detail
            .as_ref()
            .and_then(|d| d.get(key))
            .and_then(|v| v.as_str())
            .map(shown)
    };
    let mut reason = format!("{}: HTTP {}", f.path, f.status.as_u16());
    if let Some(name) = text("error") {
        reason.push_str(&format!(" {name}"));
    }
    if let Some(message) = text("message") {
        reason.push_str(&format!(": {message}"));
    }
    match f.status.as_u16() {
        429 => {
            let recommended = detail
                .as_ref()
                .and_then(|d| d.pointer("/metadata/recommendedRetryTime"))
                .and_then(|v| v.as_str());
            BrokerError::Retryable {
                reason,
                retry_after: retry_after(recommended, f.retry_after, now),
            }
        }
        401 | 403 => BrokerError::Permanent(format!("{reason} (check the token and its access)")),
        404 => BrokerError::Permanent(match f.subject {
            Subject::Account => format!("{reason} (unknown account)"),
            Subject::Symbol => format!("{reason} (unknown symbol)"),
            Subject::Position => format!("{reason} (unknown account or position)"),
            Subject::Order => format!("{reason} (unknown account or order)"),
        }),
        400 => BrokerError::Permanent(reason),
        _ => BrokerError::Retryable {
            reason,
            retry_after: None,
        },
    }
}

/// The delay a 429 asks for: `metadata.recommendedRetryTime` (an ISO time) first, then the
/// `Retry-After` header (seconds or an HTTP date). A time in the past means no delay;
/// anything beyond [`MAX_RETRY_AFTER`] is capped.
pub fn retry_after(
    recommended: Option<&str>,
    header: Option<&str>,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let at = |t: DateTime<Utc>| (t - now).to_std().unwrap_or(Duration::ZERO);
    let delay = recommended
        .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
        .map(|t| at(t.with_timezone(&Utc)))
        .or_else(|| {
            let h = header?.trim();
            match h.parse::<u64>() {
                Ok(secs) => Some(Duration::from_secs(secs)),
                Err(_) => DateTime::parse_from_rfc2822(h)
                    .ok()
                    .map(|t| at(t.with_timezone(&Utc))),
            }
        })?;
    if delay > MAX_RETRY_AFTER {
        tracing::warn!(asked = ?delay, capped = ?MAX_RETRY_AFTER, "retry delay capped");
    }
    Some(delay.min(MAX_RETRY_AFTER))
}
