//! `[http]`: where the status API listens, and the bearer-token rule.
//!
//! The rule: a token set in the environment variable named by `token_env` is required by
//! every endpoint except `/healthz` and the dashboard's static page. Bound to anything but
//! a loopback address, the token is mandatory: `run` refuses to start without it.

use std::fmt;
use std::net::SocketAddr;

use serde::Deserialize;

use crate::config_env::ENV_PREFIX;

/// The default address: loopback only, so nothing is exposed by accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9187";

/// The default name of the environment variable holding the bearer token.
pub const DEFAULT_TOKEN_ENV: &str = "MT5_RECONCILER_TOKEN";

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Whether `run` serves HTTP at all.
    pub enabled: bool,
    /// `IP:port` to listen on (port 0: any free port, logged at start).
    pub listen: String,
    /// Name of the environment variable that holds the bearer token.
    pub token_env: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: DEFAULT_LISTEN.to_owned(),
            token_env: DEFAULT_TOKEN_ENV.to_owned(),
        }
    }
}

impl HttpConfig {
    /// Invalid values, each with its key path.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.listen.parse::<SocketAddr>().is_err() {
            out.push(format!(
                "http.listen = {:?}: expected IP:port, e.g. {DEFAULT_LISTEN} or 0.0.0.0:9187",
                self.listen
            ));
        }
        let name_ok = !self.token_env.is_empty()
            && !self.token_env.starts_with(|c: char| c.is_ascii_digit())
            && self
                .token_env
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            out.push(format!(
                "http.token_env = {:?}: expected an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
                self.token_env
            ));
        } else if self.token_env.starts_with(ENV_PREFIX) {
            out.push(format!(
                "http.token_env = {:?}: names starting with {ENV_PREFIX} are read as configuration overrides",
                self.token_env
            ));
        }
        out
    }

    /// The address to bind; `problems()` has already refused anything else.
    pub fn addr(&self) -> Result<SocketAddr, HttpError> {
        self.listen.parse().map_err(|_| HttpError::BadAddress {
            listen: self.listen.clone(),
        })
    }
}

/// Why the HTTP server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// `http.listen` is not an `IP:port`.
    #[error("http.listen = {listen:?}: expected IP:port")]
    BadAddress {
        /// The configured value.
        listen: String,
    },
    /// Bound beyond loopback without a token.
    #[error(
        "http.listen = {addr} is not a loopback address, so the API needs a bearer token: set \
         the environment variable {var} (every endpoint but /healthz and the dashboard's static \
         page then requires `Authorization: Bearer <token>`), or listen on 127.0.0.1"
    )]
    MissingToken {
        /// The address.
        addr: SocketAddr,
        /// The variable that should hold the token.
        var: String,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

impl HttpError {
    /// True when the configuration (or the environment) is at fault, not the machine.
    pub fn is_config(&self) -> bool {
        !matches!(self, HttpError::Bind { .. })
    }
}

/// A bearer token. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token (not empty: an empty variable means no token).
    pub fn new(value: impl Into<String>) -> Option<Self> {
        let value = value.into();
        (!value.trim().is_empty()).then_some(Self(value))
    }

    /// Whether an `Authorization` header value carries this token, compared in time that
    /// does not depend on where the first difference is.
    pub fn accepts(&self, header: &str) -> bool {
        let Some(given) = header.strip_prefix("Bearer ") else {
            return false;
        };
        let (a, b) = (given.trim().as_bytes(), self.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The token the configuration asks for, read from the environment: `Ok(None)` when none
/// is set and the address is loopback; an error when none is set and it is not.
pub fn resolve_token(config: &HttpConfig) -> Result<Option<Token>, HttpError> {
    let token = std::env::var(&config.token_env).ok().and_then(Token::new);
    check_token(config, token)
}

/// [`resolve_token`] with the token given rather than read from the environment.
pub fn check_token(config: &HttpConfig, token: Option<Token>) -> Result<Option<Token>, HttpError> {
    let addr = config.addr()?;
    if token.is_none() && config.enabled && !addr.ip().is_loopback() {
        return Err(HttpError::MissingToken {
            addr,
            var: config.token_env.clone(),
        });
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening(listen: &str) -> HttpConfig {
        HttpConfig {
            listen: listen.into(),
            ..HttpConfig::default()
        }
    }

    #[test]
    fn beyond_loopback_a_token_is_mandatory() {
        let err = check_token(&listening("0.0.0.0:9187"), None).unwrap_err();
        assert!(err.is_config());
        assert!(err.to_string().contains(DEFAULT_TOKEN_ENV), "{err}");
        assert!(check_token(&listening("0.0.0.0:9187"), Token::new("t")).is_ok());
        assert!(matches!(
            check_token(&listening("127.0.0.1:1"), None),
            Ok(None)
        ));
        assert!(matches!(check_token(&listening("[::1]:1"), None), Ok(None)));
        let off = HttpConfig {
            enabled: false,
            ..listening("0.0.0.0:1")
        };
        assert!(check_token(&off, None).is_ok());
    }

    #[test]
    fn tokens_compare_exactly_and_never_print() {
        let t = Token::new("s3cret").unwrap();
        assert!(t.accepts("Bearer s3cret"));
        assert!(!t.accepts("Bearer s3cre"));
        assert!(!t.accepts("Bearer s3cret2"));
        assert!(!t.accepts("Basic s3cret"));
        assert!(!t.accepts("s3cret"));
        assert!(!format!("{t:?} {t}").contains("s3cret"));
        assert!(Token::new("  ").is_none());
    }

    #[test]
    fn bad_listen_and_token_env_are_reported_with_their_path() {
        let c = HttpConfig {
            listen: "localhost".into(),
            token_env: "MT5R_TOKEN".into(),
            enabled: true,
        };
        let p = c.problems().join("\n");
        assert!(p.contains("http.listen = \"localhost\""), "{p}");
        assert!(p.contains("http.token_env = \"MT5R_TOKEN\""), "{p}");
        assert!(HttpConfig::default().problems().is_empty());
    }
}
