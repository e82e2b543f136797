//! Alerts and their sinks: the log always; a webhook (JSON POST) and NATS (one subject per
//! account) when configured. Sending never blocks a sync: each delivery runs in its own
//! task and retries with backoff. Webhook URLs are never logged (they may carry a token).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::config::{NatsConfig, WebhookConfig};

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
    nats: Option<NatsConfig>,
}

impl Sinks {
    /// Sinks as configured (empty URL / address = off). A webhook client that cannot be
    /// built (no TLS roots on the machine) is logged and left off: the log still alerts.
    pub fn new(webhook: &WebhookConfig, nats: &NatsConfig) -> Self {
        let webhook = (!webhook.url.is_empty())
            .then(|| match webhook_client() {
                Ok(client) => Some((client, webhook.clone())),
                Err(e) => {
                    tracing::error!(error = %e, "webhook sink off: cannot build its http client");
                    None
                }
            })
            .flatten();
        let nats = (!nats.address.is_empty()).then(|| nats.clone());
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
        if let Some(config) = &self.nats {
            let subject = subject(&config.subject_prefix, &alert.account_id);
            let (config, id) = (config.clone(), alert.id.clone());
            tokio::spawn(async move {
                let mut delay = Duration::from_millis(200);
                for attempt in 1..=config.max_attempts.max(1) {
                    match publish(&config.address, &subject, &body).await {
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

/// Publishes one message with the NATS text protocol and waits for the server's PONG, so
/// a success means the server accepted it.
pub async fn publish(address: &str, subject: &str, payload: &[u8]) -> Result<(), String> {
    let io = async {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let info = lines
            .next_line()
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        if !info.starts_with("INFO") {
            return Err(format!(
                "not a NATS server (said {:?})",
                info.chars().take(40).collect::<String>()
            ));
        }
        let mut msg = format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"name\":\"mt5-reconciler\"}}\r\nPUB {subject} {}\r\n",
            payload.len()
        )
        .into_bytes();
        msg.extend_from_slice(payload);
        msg.extend_from_slice(b"\r\nPING\r\n");
        write.write_all(&msg).await.map_err(|e| e.to_string())?;
        while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
            if line.starts_with("PONG") {
                return Ok(());
            }
            if line.starts_with("-ERR") {
                return Err(line);
            }
        }
        Err("connection closed before PONG".into())
    };
    tokio::time::timeout(Duration::from_secs(5), io)
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
