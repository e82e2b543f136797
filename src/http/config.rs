//! `[http]`: where the status API listens, and the bearer-token rule.
//!
//! The rule: two bearer tokens, each read from the environment variable its setting
//! names. The write token (`token_env`) is accepted everywhere; the read token
//! (`read_token_env`) only by reads (`GET`), and a write given it answers 403. When either
//! is set, every endpoint except `/healthz` and the dashboard's static page needs one.
//! Bound to anything but a loopback address, the write token is mandatory: `run` refuses
//! to start without it. Token values are trimmed of surrounding whitespace when read and
//! when compared.

use std::fmt;
use std::net::SocketAddr;

use serde::Deserialize;

use crate::config_env::ENV_PREFIX;

/// The default address: loopback only, so nothing is exposed by accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9187";

/// The default name of the environment variable holding the write token.
pub const DEFAULT_TOKEN_ENV: &str = "MT5_RECONCILER_TOKEN";

/// The default name of the environment variable holding the read token.
pub const DEFAULT_READ_TOKEN_ENV: &str = "MT5_RECONCILER_READ_TOKEN";

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Whether `run` serves HTTP at all.
    pub enabled: bool,
    /// `IP:port` to listen on (port 0: any free port, logged at start).
    pub listen: String,
    /// Name of the environment variable that holds the write token (accepted everywhere).
    pub token_env: String,
    /// Name of the environment variable that holds the read token (reads only).
    pub read_token_env: String,
    /// Whether `/metrics` has a series per account; `false` sums them over accounts (a
    /// fleet of tens of thousands of accounts would otherwise give millions of series).
    pub metrics_per_account: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: DEFAULT_LISTEN.to_owned(),
            token_env: DEFAULT_TOKEN_ENV.to_owned(),
            read_token_env: DEFAULT_READ_TOKEN_ENV.to_owned(),
            metrics_per_account: true,
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
        for (key, name) in [
            ("token_env", &self.token_env),
            ("read_token_env", &self.read_token_env),
        ] {
            let name_ok = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !name_ok {
                out.push(format!(
                    "http.{key} = {name:?}: expected an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
                ));
            } else if name.starts_with(ENV_PREFIX) {
                out.push(format!(
                    "http.{key} = {name:?}: names starting with {ENV_PREFIX} are read as configuration overrides"
                ));
            }
        }
        if self.token_env == self.read_token_env {
            out.push(format!(
                "http.read_token_env = {:?}: must differ from http.token_env",
                self.read_token_env
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
    /// Bound beyond loopback without a write token.
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

/// A bearer token, trimmed of surrounding whitespace. Its `Debug` and `Display` never
/// show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token, trimmed (not empty: an empty variable means no token).
    pub fn new(value: impl Into<String>) -> Option<Self> {
        let value = value.into();
        let trimmed = value.trim();
        (!trimmed.is_empty()).then(|| Self(trimmed.to_owned()))
    }

    /// Whether an `Authorization` header value carries this token (trimmed), compared in
    /// constant time: the SHA-256 digests of both are compared whole, so neither the
    /// position of the first difference nor the length of the token shows in the timing.
    pub fn accepts(&self, header: &str) -> bool {
        use sha2::{Digest, Sha256};
        let Some(given) = header.strip_prefix("Bearer ") else {
            return false;
        };
        let (a, b) = (
            Sha256::digest(given.trim().as_bytes()),
            Sha256::digest(self.0.as_bytes()),
        );
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}

/// The two tokens: `write` is accepted everywhere, `read` by reads only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    /// The write token (`token_env`).
    pub write: Option<Token>,
    /// The read token (`read_token_env`).
    pub read: Option<Token>,
}

impl Tokens {
    /// Only a write token.
    pub fn write(token: Token) -> Self {
        Self {
            write: Some(token),
            read: None,
        }
    }

    /// Whether any token is set (then every guarded request needs one).
    pub fn any(&self) -> bool {
        self.write.is_some() || self.read.is_some()
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

/// The tokens the configuration asks for, read (and trimmed) from the environment; an
/// error when no write token is set and the address is not loopback.
pub fn resolve_tokens(config: &HttpConfig) -> Result<Tokens, HttpError> {
    let read = |name: &str| std::env::var(name).ok().and_then(Token::new);
    check_tokens(
        config,
        Tokens {
            write: read(&config.token_env),
            read: read(&config.read_token_env),
        },
    )
}

/// [`resolve_tokens`] with the tokens given rather than read from the environment.
pub fn check_tokens(config: &HttpConfig, tokens: Tokens) -> Result<Tokens, HttpError> {
    let addr = config.addr()?;
    if tokens.write.is_none() && config.enabled && !addr.ip().is_loopback() {
        return Err(HttpError::MissingToken {
            addr,
            var: config.token_env.clone(),
        });
    }
    Ok(tokens)
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
        let none = Tokens::default;
        let err = check_tokens(&listening("0.0.0.0:9187"), none()).unwrap_err();
        assert!(err.is_config());
        assert!(err.to_string().contains(DEFAULT_TOKEN_ENV), "{err}");
        let write = Tokens::write(Token::new("t").unwrap());
        assert!(check_tokens(&listening("0.0.0.0:9187"), write).is_ok());
        let read_only = Tokens {
            write: None,
            read: Token::new("r"),
        };
        assert!(check_tokens(&listening("0.0.0.0:9187"), read_only).is_err());
        assert_eq!(
            check_tokens(&listening("127.0.0.1:1"), none()).ok(),
            Some(none())
        );
        assert!(check_tokens(&listening("[::1]:1"), none()).is_ok());
        let off = HttpConfig {
            enabled: false,
            ..listening("0.0.0.0:1")
        };
        assert!(check_tokens(&off, none()).is_ok());
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
    fn tokens_are_trimmed_where_read_and_where_compared() {
        // A token file or a `.env` line often ends with a newline.
        let t = Token::new(" s3cret\n").unwrap();
        assert!(t.accepts("Bearer s3cret"));
        assert!(t.accepts("Bearer  s3cret "));
        assert!(!t.accepts("Bearer s3cret\n2"));
    }

    #[test]
    fn bad_listen_and_token_env_are_reported_with_their_path() {
        let c = HttpConfig {
            listen: "localhost".into(),
            token_env: "MT5R_TOKEN".into(),
            read_token_env: "MT5R_TOKEN".into(),
            enabled: true,
            metrics_per_account: true,
        };
        let p = c.problems().join("\n");
        assert!(p.contains("http.listen = \"localhost\""), "{p}");
        assert!(p.contains("http.token_env = \"MT5R_TOKEN\""), "{p}");
        assert!(p.contains("http.read_token_env = \"MT5R_TOKEN\""), "{p}");
        assert!(HttpConfig::default().problems().is_empty());
    }
}
