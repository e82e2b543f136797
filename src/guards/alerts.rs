//! Alerts and their sinks: the log always; a webhook (JSON POST) and NATS (one subject per
//! account) when configured. Sending never blocks a sync: each delivery runs in its own
//! task and retries with backoff. Webhook URLs are never logged (they may carry a token),
//! nor are NATS credentials (only the server's host and port are).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::config::{NatsConfig, WebhookConfig};

/// How long one NATS attempt may take: connecting (at start-up or after a loss) and
/// publishing. The sink's only timer: the client has no deadline of its own on a flush.
const NATS_DEADLINE: Duration = Duration::from_secs(5);

/// Something an operator must know: a warning, a breach, a close and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// Stable id (used to cancel a scheduled close).
    pub id: String,
    /// Account.
    pub account_id: String,
    /// What happened: `warn`, `breach`, `close_cancelled`, `close_postponed`,
    /// `close_confirmed`, `close_failed`.
    pub kind: String,
    /// The rule involved.
    pub rule: String,
    /// Loss measured, when a rule fired.
    pub loss: Option<Decimal>,
    /// Reference the loss is measured from.
    pub reference: Option<Decimal>,
    /// When positions will be closed, if they will.
    pub close_at: Option<DateTime<Utc>>,
    /// A sentence for people.
    pub message: String,
    /// When it was raised.
    pub at: DateTime<Utc>,
}

/// Where alerts go.
#[derive(Debug, Clone, Default)]
pub struct Sinks {
    webhook: Option<(reqwest::Client, WebhookConfig)>,
    /// One NATS client for every clone of the sinks: one connection, which the client
    /// restores by itself when it is lost.
    nats: Option<(async_nats::Client, NatsConfig)>,
}

impl Sinks {
    /// Sinks as configured (empty URL / address = off). A webhook client that cannot be
    /// built (no TLS roots on the machine) is logged and left off, as is a NATS address
    /// that does not parse (the configuration check refuses one): the log still alerts.
    /// The NATS connection is made in the background: a server that does not answer at
    /// start-up is a warning, and the client keeps trying.
    pub async fn new(webhook: &WebhookConfig, nats: &NatsConfig) -> Self {
        let webhook = (!webhook.url.is_empty())
            .then(|| match webhook_client() {
                Ok(client) => Some((client, webhook.clone())),
                Err(e) => {
                    tracing::error!(error = %e, "webhook sink off: cannot build its http client");
                    None
                }
            })
            .flatten();
        let nats = if nats.address.is_empty() {
            None
        } else {
            match nats_client(&nats.address).await {
                Ok(client) => Some((client, nats.clone())),
                Err(e) => {
                    tracing::error!(error = %e, "nats sink off");
                    None
                }
            }
        };
        Self { webhook, nats }
    }

    /// Logs the alert and starts its deliveries.
    pub fn send(&self, alert: &Alert) {
        tracing::warn!(
            account = %alert.account_id, alert = %alert.id, kind = %alert.kind, rule = %alert.rule,
            loss = ?alert.loss, close_at = ?alert.close_at, "{}", alert.message
        );
        let Ok(body) = serde_json::to_vec(alert) else {
            return;
        };
        if let Some((client, config)) = &self.webhook {
            let (client, config, body, id) = (
                client.clone(),
                config.clone(),
                body.clone(),
                alert.id.clone(),
            );
            tokio::spawn(async move {
                let mut delay = Duration::from_millis(config.backoff_ms);
                for attempt in 1..=config.max_attempts.max(1) {
                    let sent = client
                        .post(&config.url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .map(|r| r.status().is_success());
                    match sent {
                        Ok(true) => return,
                        Ok(false) | Err(_) => {
                            tracing::warn!(alert = %id, attempt, "webhook delivery failed, will retry");
                        }
                    }
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                tracing::error!(alert = %id, "webhook delivery gave up");
            });
        }
        if let Some((client, config)) = &self.nats {
            let subject = subject(&config.subject_prefix, &alert.account_id);
            let (client, attempts, id) = (client.clone(), config.max_attempts, alert.id.clone());
            tokio::spawn(async move {
                let mut delay = Duration::from_millis(200);
                for attempt in 1..=attempts.max(1) {
                    match publish(&client, &subject, &body).await {
                        Ok(()) => return,
                        Err(e) => {
                            tracing::warn!(alert = %id, attempt, error = %e, "nats delivery failed, will retry")
                        }
                    }
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                tracing::error!(alert = %id, "nats delivery gave up");
            });
        }
    }
}

/// The webhook's HTTP client: rustls with ring (reqwest is built without a TLS provider of
/// its own, so one must be given) and the platform's roots.
fn webhook_client() -> Result<reqwest::Client, String> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_platform_verifier()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("mt5-reconciler/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

/// The NATS client of `address` (`host:port`, or a `nats://` / `tls://` URL), made once for
/// the process. It is returned at once: it connects in the background and, like after any
/// later loss, keeps reconnecting; publishing waits for the connection (see [`publish`]).
/// A first connection that does not come within [`NATS_DEADLINE`] is logged as a warning.
async fn nats_client(address: &str) -> Result<async_nats::Client, String> {
    let server: async_nats::ServerAddr = address
        .parse()
        .map_err(|e| format!("guards.nats.address: {e}"))?;
    // Host and port only: the address may carry a user and password.
    let at = format!("{}:{}", server.host(), server.port());
    let client = async_nats::ConnectOptions::new()
        .name("mt5-reconciler")
        .connection_timeout(NATS_DEADLINE)
        .retry_on_initial_connect()
        .connect(server)
        .await
        .map_err(|e| format!("nats {at}: {e}"))?;
    let probe = client.clone();
    tokio::spawn(async move {
        // A flush completes once the connection is up.
        match tokio::time::timeout(NATS_DEADLINE, probe.flush()).await {
            Ok(Ok(())) => tracing::info!(server = %at, "nats sink connected"),
            Ok(Err(e)) => tracing::warn!(
                server = %at, error = %e,
                "nats sink not connected; alerts go to the log, and to NATS once it connects"
            ),
            Err(_) => tracing::warn!(
                server = %at,
                "no NATS server answers; alerts go to the log, and to NATS once the client \
                 (which keeps trying) connects"
            ),
        }
    });
    Ok(client)
}

/// Publishes one message with core NATS, within [`NATS_DEADLINE`]. It first waits for the
/// connection (a flush is answered once the client is connected), so an attempt made
/// while the server is away queues nothing that a later attempt would repeat; then
/// publishes and flushes, so a success means the message was written to the server's
/// connection.
async fn publish(client: &async_nats::Client, subject: &str, payload: &[u8]) -> Result<(), String> {
    let io = async {
        client
            .flush()
            .await
            .map_err(|e| format!("not connected: {e}"))?;
        client
            .publish(subject.to_owned(), payload.to_vec().into())
            .await
            .map_err(|e| e.to_string())?;
        client.flush().await.map_err(|e| e.to_string())
    };
    tokio::time::timeout(NATS_DEADLINE, io)
        .await
        .map_err(|_| "timed out".to_owned())?
}

/// The NATS subject of an account's alerts: `<prefix>.<token>`, where the token is the
/// account id with every byte outside `A-Z a-z 0-9 _ -` written as `~XX` (upper-case hex;
/// `~` itself too), and an empty id written `~`. So the token is one subject token that
/// holds no `.`, `*`, `>` or white space, and two different ids never share a subject.
pub fn subject(prefix: &str, account_id: &str) -> String {
    use std::fmt::Write;
    let mut subject = format!("{prefix}.");
    if account_id.is_empty() {
        subject.push('~');
    }
    for b in account_id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            subject.push(char::from(b));
        } else {
            let _ = write!(subject, "~{b:02X}");
        }
    }
    subject
}

/// The id of the alert of `account`'s rule `rule` at `level` (`warn`, `breach`) on
/// trading day `day`: the same breach always has the same id, so a restart (or another
/// instance taking the account over) finds the stored alert instead of raising a second.
pub fn alert_id(account: &str, rule: &str, level: &str, day: chrono::NaiveDate) -> String {
    let key = format!("{account}\u{1f}{rule}\u{1f}{level}\u{1f}{day}");
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("al-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case("live-1", "mt5r.alerts.live-1")]
    #[case("acc_2", "mt5r.alerts.acc_2")]
    #[case("a b", "mt5r.alerts.a~20b")]
    #[case("a.b", "mt5r.alerts.a~2Eb")]
    #[case("*", "mt5r.alerts.~2A")]
    #[case(">", "mt5r.alerts.~3E")]
    #[case("a~2Eb", "mt5r.alerts.a~7E2Eb")]
    #[case("é", "mt5r.alerts.~C3~A9")]
    #[case("a\r\nPUB x 1", "mt5r.alerts.a~0D~0APUB~20x~201")]
    #[case("", "mt5r.alerts.~")]
    fn an_account_id_is_one_safe_subject_token(#[case] id: &str, #[case] expected: &str) {
        assert_eq!(subject("mt5r.alerts", id), expected);
    }

    #[test]
    fn different_account_ids_never_share_a_subject() {
        let ids = [
            "a.b", "a~2Eb", "a~2eb", "a b", "a_b", "a-b", "a*", "a>", "a~", "a~7E", "~", "~7E",
            "é", "~C3~A9", "e\u{301}", "A.B", "",
        ];
        let subjects: std::collections::BTreeSet<String> =
            ids.iter().map(|id| subject("p", id)).collect();
        assert_eq!(subjects.len(), ids.len(), "{subjects:?}");
        for s in &subjects {
            let token = s.strip_prefix("p.").unwrap();
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-~".contains(&b)),
                "{token}"
            );
        }
    }
}
