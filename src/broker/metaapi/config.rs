//! `[broker.metaapi]`: where MetaApi is, where its token comes from, and how hard we may
//! press it. The token itself is never part of the configuration: only the name of the
//! environment variable that holds it.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// MetaApi's MetaTrader client API in its New York region (regions differ: use the URL of
/// the region your accounts are deployed in).
pub const DEFAULT_BASE_URL: &str = "https://mt-client-api-v1.new-york.agiliumtrade.ai";

/// The environment variable read for the token when `token_env` is not set.
pub const DEFAULT_TOKEN_ENV: &str = "METAAPI_TOKEN";

/// Configuration of the MetaApi adapter. Every field has a default; unknown keys are
/// refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetaApiConfig {
    /// Base URL of the MetaTrader client API (`https://…`; `http://` only to a loopback
    /// address or `localhost`).
    pub base_url: String,
    /// Name of the environment variable holding the API token.
    pub token_env: String,
    /// Timeout of one HTTP request, body included, in milliseconds.
    pub request_timeout_ms: u64,
    /// Timeout of establishing a connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Requests in flight at most (MetaApi is one host per adapter).
    pub max_concurrent_requests: usize,
    /// Largest response body read, in bytes; a bigger answer is malformed.
    pub max_body_bytes: usize,
}

impl Default for MetaApiConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            token_env: DEFAULT_TOKEN_ENV.to_owned(),
            request_timeout_ms: 4_000,
            connect_timeout_ms: 2_000,
            max_concurrent_requests: 32,
            max_body_bytes: crate::broker::wire::MAX_PAYLOAD_BYTES,
        }
    }
}

impl MetaApiConfig {
    /// Timeout of one request.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Every invalid value, each named by its key (`broker.metaapi.<key>`).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        match reqwest::Url::parse(&self.base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && !url.cannot_be_a_base() => {
                if url.scheme() == "http" && !is_loopback(&url) {
                    out.push(format!(
                        "broker.metaapi.base_url = {:?}: plain http:// is allowed only to this \
                         machine (127.0.0.1, ::1, localhost); use https:// so the token is \
                         never sent in clear text",
                        self.base_url
                    ));
                }
                if !url.username().is_empty() || url.password().is_some() {
                    out.push(
                        "broker.metaapi.base_url: must not carry credentials (the token comes \
                         from token_env)"
                            .into(),
                    );
                }
            }
            _ => out.push(format!(
                "broker.metaapi.base_url = {:?}: expected an http:// or https:// URL",
                self.base_url
            )),
        }
        let env_ok = !self.token_env.is_empty()
            && self
                .token_env
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !env_ok {
            out.push(format!(
                "broker.metaapi.token_env = {:?}: expected the NAME of an environment variable \
                 (letters, digits, underscores), never the token itself",
                self.token_env
            ));
        }
        if self.request_timeout_ms == 0 {
            out.push("broker.metaapi.request_timeout_ms: must be greater than 0".into());
        }
        if self.connect_timeout_ms == 0 {
            out.push("broker.metaapi.connect_timeout_ms: must be greater than 0".into());
        }
        if self.max_concurrent_requests == 0 {
            out.push("broker.metaapi.max_concurrent_requests: must be at least 1".into());
        }
        if self.max_body_bytes < 1024 {
            out.push("broker.metaapi.max_body_bytes: must be at least 1024".into());
        }
        out
    }
}

/// Whether `url` names this machine: a loopback address or `localhost`.
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// The MetaApi token. Its `Debug` hides the value and it has no `Display`, so it cannot
/// reach a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

/// The token could not be read. Names the variable, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The variable is not set (or not UTF-8).
    #[error("environment variable {0} is not set: export the MetaApi token in it")]
    Missing(String),
    /// The variable is set but empty or blank.
    #[error("environment variable {0} is empty")]
    Empty(String),
    /// The value cannot be sent in an HTTP header (control characters …).
    #[error("environment variable {0} holds characters an HTTP header cannot carry")]
    Unusable(String),
}

impl Token {
    /// A token from its value (for a host that keeps its own secrets, and for tests).
    pub fn new(value: impl Into<String>) -> Result<Self, TokenError> {
        Self::checked(value.into(), "(given)")
    }

    /// Reads the token from environment variable `name`.
    pub fn from_env(name: &str) -> Result<Self, TokenError> {
        let value = std::env::var(name).map_err(|_| TokenError::Missing(name.to_owned()))?;
        Self::checked(value, name)
    }

    fn checked(value: String, name: &str) -> Result<Self, TokenError> {
        let value = value.trim().to_owned();
        if value.is_empty() {
            return Err(TokenError::Empty(name.to_owned()));
        }
        if reqwest::header::HeaderValue::from_str(&value).is_err() {
            return Err(TokenError::Unusable(name.to_owned()));
        }
        Ok(Self(value))
    }

    /// The secret value: only for the `auth-token` header and for redaction.
    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}
