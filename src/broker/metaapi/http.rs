//! The HTTP side of the MetaApi adapter: one reused connection pool, a timeout per
//! request, a cap on requests in flight, and size-limited bodies.
//!
//! | failure | class |
//! |---|---|
//! | no answer within `request_timeout_ms` | `Timeout` |
//! | connection refused, reset or cut off | `Retryable` |
//! | a non-success status | see [`super::classify`] |
//! | a body over `max_body_bytes`, or not UTF-8 | `Malformed` |
//! | a redirect off the configured origin (never followed) | `Retryable` |
//!
//! Messages never carry the token: every error is redacted before it leaves.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Url};
use tokio::sync::Semaphore;

use super::classify::{Failure, Subject, classify};
use super::config::{MetaApiConfig, Token};
use crate::broker::BrokerError;
use crate::broker::wire::malformed;

/// Error bodies are read up to this size only (they are short JSON objects).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The MetaApi HTTP client. Cheap to clone: clones share the pool and the cap.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    base: Url,
    token: Token,
    limit: Arc<Semaphore>,
    timeout: Duration,
    max_body: usize,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("base", &self.base.as_str())
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The adapter could not be set up (bad URL, no TLS). Carries no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot set up the MetaApi client: {0}")]
pub struct SetupError(pub String);

impl Http {
    /// A client for `config`, authenticating with `token`.
    pub fn new(config: &MetaApiConfig, token: Token) -> Result<Self, SetupError> {
        if let Some(p) = config.problems().into_iter().next() {
            return Err(SetupError(p));
        }
        let base = Url::parse(&config.base_url).map_err(|e| SetupError(e.to_string()))?;
        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(token.expose())
            .map_err(|_| SetupError("the token cannot be sent in a header".into()))?;
        auth.set_sensitive(true);
        headers.insert("auth-token", auth);
        headers.insert("accept", HeaderValue::from_static("application/json"));
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .default_headers(headers)
            .redirect(same_origin_redirects())
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .pool_max_idle_per_host(config.max_concurrent_requests)
            .user_agent(concat!("mt5-reconciler/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SetupError(e.to_string()))?;
        Ok(Self {
            client,
            base,
            token,
            limit: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            timeout: config.request_timeout(),
            max_body: config.max_body_bytes,
        })
    }

    /// `base/users/current/accounts/{account}/{tail…}`, each segment percent-encoded.
    pub fn url(&self, account: &str, tail: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend(["users", "current", "accounts", account])
                .extend(tail);
        }
        url
    }

    /// GETs `url` and returns its body as text; `what` names the payload in errors.
    pub async fn get(&self, url: Url, what: &str, subject: Subject) -> Result<String, BrokerError> {
        self.send(Method::GET, url, None, what, subject).await
    }

    /// POSTs `body` (JSON) to `url` and returns the answer's body as text. Sent once:
    /// reqwest does not retry a POST, and the caller decides what a failure means.
    pub async fn post_json(
        &self,
        url: Url,
        body: &serde_json::Value,
        what: &str,
        subject: Subject,
    ) -> Result<String, BrokerError> {
        self.send(Method::POST, url, Some(body.to_string()), what, subject)
            .await
    }

    /// One request under the cap on requests in flight, with the timeout and body cap.
    async fn send(
        &self,
        method: Method,
        url: Url,
        json: Option<String>,
        what: &str,
        subject: Subject,
    ) -> Result<String, BrokerError> {
        let _permit = self
            .limit
            .acquire()
            .await
            .map_err(|_| BrokerError::Retryable {
                reason: "the MetaApi client is shutting down".into(),
                retry_after: None,
            })?;
        let path = format!("{method} {}", url.path());
        let mut request = self.client.request(method, url);
        if let Some(json) = json {
            request = request.header(CONTENT_TYPE, "application/json").body(json);
        }
        let request = request.timeout(self.timeout).send();
        let mut response = request.await.map_err(|e| self.transport(&path, &e))?;
        let status = response.status();
        if status.is_success() {
            let body = read_limited(&mut response, self.max_body)
                .await
                .map_err(|e| self.body_error(&path, what, e))?;
            return String::from_utf8(body)
                .map_err(|_| malformed(what, "the response body is not UTF-8"));
        }
        let headers = response.headers().clone();
        let body = read_limited(&mut response, MAX_ERROR_BODY)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let failure = Failure {
            status,
            retry_after: headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()),
            body: &body,
            subject,
            path: &path,
        };
        Err(self.redacted(classify(&failure, Utc::now())))
    }

    fn transport(&self, path: &str, e: &reqwest::Error) -> BrokerError {
        let error = if e.is_timeout() {
            BrokerError::Timeout(format!("{path}: no answer within {:?}", self.timeout))
        } else {
            BrokerError::Retryable {
                reason: format!("{path}: {}", describe(e)),
                retry_after: None,
            }
        };
        self.redacted(error)
    }

    fn body_error(&self, path: &str, what: &str, e: BodyError) -> BrokerError {
        match e {
            BodyError::TooLarge(n) => malformed(
                what,
                format!(
                    "the response body ({n} bytes or more) exceeds the limit of {} bytes",
                    self.max_body
                ),
            ),
            BodyError::Transport(e) => self.transport(path, &e),
        }
    }

    /// Removes the token from any text an error carries (also for errors made from an
    /// answer's body, which a server might echo the token into).
    pub fn redacted(&self, e: BrokerError) -> BrokerError {
        redact(e, self.token.expose())
    }
}

/// `e` with every occurrence of `secret` replaced.
pub fn redact(e: BrokerError, secret: &str) -> BrokerError {
    let clean = |s: String| {
        if secret.is_empty() {
            s
        } else {
            s.replace(secret, "<redacted>")
        }
    };
    match e {
        BrokerError::Timeout(m) => BrokerError::Timeout(clean(m)),
        BrokerError::Retryable {
            reason,
            retry_after,
        } => BrokerError::Retryable {
            reason: clean(reason),
            retry_after,
        },
        BrokerError::Permanent(m) => BrokerError::Permanent(clean(m)),
        BrokerError::Malformed { field, reason } => BrokerError::Malformed {
            field: clean(field),
            reason: clean(reason),
        },
    }
}

/// A reqwest error without its URL (kept out of messages on purpose).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_redirect() {
        "redirect refused"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "the response was cut off"
    } else if e.is_request() {
        "the request failed"
    } else {
        "transport error"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

enum BodyError {
    TooLarge(usize),
    Transport(reqwest::Error),
}

/// Reads the body chunk by chunk, refusing more than `max` bytes (before reading any when
/// the length is announced).
async fn read_limited(response: &mut reqwest::Response, max: usize) -> Result<Vec<u8>, BodyError> {
    if let Some(len) = response.content_length()
        && len > max as u64
    {
        return Err(BodyError::TooLarge(
            usize::try_from(len).unwrap_or(usize::MAX),
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge(body.len() + chunk.len()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Redirects are followed only within the configured origin (scheme, host and port), at
/// most 5: the `auth-token` header is a default header, and reqwest strips only the
/// standard credential headers when a redirect leaves the host, so following one elsewhere
/// would hand the token to whoever answers there.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let next = attempt.url();
        let off_origin = attempt.previous().first().is_some_and(|first| {
            (
                first.scheme(),
                first.host_str(),
                first.port_or_known_default(),
            ) != (next.scheme(), next.host_str(), next.port_or_known_default())
        });
        if off_origin {
            let to = next.origin().ascii_serialization();
            attempt.error(format!(
                "refused a redirect to {to}: the token is only sent to the configured base_url"
            ))
        } else if attempt.previous().len() > 5 {
            attempt.error("more than 5 redirects")
        } else {
            attempt.follow()
        }
    })
}

/// rustls with ring (already built for the database driver) and the platform's roots.
fn tls_config() -> Result<rustls::ClientConfig, SetupError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError(format!("tls: {e}")))?
        .with_platform_verifier()
        .map_err(|e| SetupError(format!("tls: {e}")))?
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
