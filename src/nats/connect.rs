//! One NATS client for the process, made at start-up from `[nats]`: secrets read from the
//! environment (never logged, never in an error), the creds file read and checked, TLS
//! on ring, and the events stream checked (or created). Anything that cannot work is an
//! error naming its setting; a server that does not answer yet is not: the client keeps
//! reconnecting, and the stream is checked once it answers.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, stream};

use super::config::NatsConfig;

/// How long the start-up check of the stream waits for the server.
const STARTUP_DEADLINE: Duration = Duration::from_secs(5);

/// NATS is configured but cannot work. Carries setting names, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NatsError(pub String);

/// Whether the events stream was found at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCheck {
    /// It exists (or was created).
    Ready,
    /// No server answered within the start-up deadline: checked again before publishing.
    Unreachable,
}

/// The connect options `config` describes, with its secrets read. Errors name the setting.
pub async fn options(config: &NatsConfig) -> Result<async_nats::ConnectOptions, NatsError> {
    let mut options = async_nats::ConnectOptions::new()
        .name("mt5-reconciler")
        .connection_timeout(STARTUP_DEADLINE)
        .retry_on_initial_connect();
    if !config.token_env.is_empty() {
        options = options.token(secret(&config.token_env, "nats.token_env")?);
    }
    if !config.user.is_empty() {
        let password = secret(&config.password_env, "nats.password_env")?;
        options = options.user_and_password(config.user.clone(), password);
    }
    if !config.creds_file.is_empty() {
        // Read here (not by the client) so that an unreadable file fails the start-up.
        let text = tokio::fs::read_to_string(&config.creds_file)
            .await
            .map_err(|e| {
                NatsError(format!(
                    "nats.creds_file = {:?}: cannot read it: {e}",
                    config.creds_file
                ))
            })?;
        options = options.credentials(&text).map_err(|_| {
            NatsError(format!(
                "nats.creds_file = {:?}: not a NATS creds file (a JWT and an NKey seed)",
                config.creds_file
            ))
        })?;
    }
    if !config.ca_file.is_empty() {
        std::fs::File::open(&config.ca_file).map_err(|e| {
            NatsError(format!(
                "nats.ca_file = {:?}: cannot read it: {e}",
                config.ca_file
            ))
        })?;
        options = options.add_root_certificates(PathBuf::from(&config.ca_file));
    }
    if config.tls_required {
        options = options.require_tls(true);
    }
    Ok(options)
}

/// Reads the secret in environment variable `name` (`key` is the setting naming it).
fn secret(name: &str, key: &str) -> Result<String, NatsError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
        Ok(_) => Err(NatsError(format!(
            "{key}: environment variable {name} is empty"
        ))),
        Err(_) => Err(NatsError(format!(
            "{key}: environment variable {name} is not set"
        ))),
    }
}

/// The client for `config` (which must be enabled). It returns once the options are
/// valid: the connection is made in the background and restored whenever it is lost.
pub async fn connect(config: &NatsConfig) -> Result<async_nats::Client, NatsError> {
    if let Some(p) = config.problems().into_iter().next() {
        return Err(NatsError(p));
    }
    let mut servers = Vec::new();
    for (i, s) in config.servers.iter().enumerate() {
        let addr: async_nats::ServerAddr = s
            .parse()
            .map_err(|e| NatsError(format!("nats.servers[{i}] = {s:?}: {e}")))?;
        servers.push(addr);
    }
    let at = hosts(config);
    let client = options(config)
        .await?
        .connect(servers)
        .await
        .map_err(|e| NatsError(format!("nats.servers ({at}): {e}")))?;
    Ok(client)
}

/// The servers' hosts and ports, for logs (no user, no password).
pub fn hosts(config: &NatsConfig) -> String {
    config
        .servers
        .iter()
        .filter_map(|s| s.parse::<async_nats::ServerAddr>().ok())
        .map(|a| format!("{}:{}", a.host(), a.port()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The stream `config.stream` holds events under `<subject_prefix>.>`.
pub fn stream_config(config: &NatsConfig) -> stream::Config {
    stream::Config {
        name: config.stream.clone(),
        subjects: vec![format!("{}.>", config.subject_prefix)],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    }
}

/// Makes sure the events stream exists (creating it when `create_stream` says so).
/// `Err` when it is missing and may not be created, or cannot be created.
pub async fn ensure_stream(
    js: &jetstream::Context,
    config: &NatsConfig,
) -> Result<(), EnsureError> {
    match js.get_stream(&config.stream).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => {
            if !config.create_stream {
                return Err(EnsureError::Fatal(format!(
                    "nats.stream = {:?}: no such JetStream stream; create it (subjects \
                     \"{}.>\") or set nats.create_stream = true",
                    config.stream, config.subject_prefix
                )));
            }
            js.create_stream(stream_config(config)).await.map_err(|e| {
                EnsureError::Fatal(format!(
                    "nats.stream = {:?}: cannot create it: {e}",
                    config.stream
                ))
            })?;
            tracing::info!(stream = %config.stream, "nats stream created");
            Ok(())
        }
        Err(e) => Err(EnsureError::Unreachable(e.to_string())),
    }
}

/// Why the stream is not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnsureError {
    /// Missing and not to be created, or refused: the operator must act.
    Fatal(String),
    /// The server did not answer.
    Unreachable(String),
}

fn is_not_found(e: &jetstream::context::GetStreamError) -> bool {
    use async_nats::jetstream::context::GetStreamErrorKind;
    matches!(e.kind(), GetStreamErrorKind::JetStream(j)
        if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}

/// The start-up check: the stream exists (or was created) → `Ready`; no answer within
/// the deadline → `Unreachable` (a warning; checked again before publishing); missing
/// and not to be created → the error.
pub async fn check_stream(
    js: &jetstream::Context,
    config: &NatsConfig,
) -> Result<StreamCheck, NatsError> {
    match tokio::time::timeout(STARTUP_DEADLINE, ensure_stream(js, config)).await {
        Ok(Ok(())) => Ok(StreamCheck::Ready),
        Ok(Err(EnsureError::Fatal(e))) => Err(NatsError(e)),
        Ok(Err(EnsureError::Unreachable(e))) => {
            tracing::warn!(servers = %hosts(config), error = %e, "nats does not answer yet; events wait for it");
            Ok(StreamCheck::Unreachable)
        }
        Err(_) => {
            tracing::warn!(servers = %hosts(config), "nats does not answer yet; events wait for it");
            Ok(StreamCheck::Unreachable)
        }
    }
}
