//! Alerts and their sinks: the log always; a webhook (JSON POST) when configured; and the
//! tree's event port, from which the NATS publisher (`[nats]`) takes them. Sending never
//! blocks a sync: a webhook delivery runs in its own task and retries with backoff.
//! Webhook URLs are never logged (they may carry a token).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::OutputPort;
use rust_decimal::Decimal;
use serde::Serialize;

use super::config::WebhookConfig;
use crate::actors::ReconcilerEvent;
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
    /// The tree's event port: the NATS publisher, when there is one, subscribes to it.
    events: Option<Arc<OutputPort<ReconcilerEvent>>>,
}

impl Sinks {
    /// Sinks as configured (an empty URL = no webhook), sending each alert to `events` too.
    /// A webhook client that cannot be built (no TLS roots on the machine) is logged and
    /// left off: the log still alerts.
    pub fn new(webhook: &WebhookConfig, events: Arc<OutputPort<ReconcilerEvent>>) -> Self {
        let webhook = (!webhook.url.is_empty())
            .then(|| match webhook_client() {
                Ok(client) => Some((client, webhook.clone())),
                Err(e) => {
                    tracing::error!(error = %e, "webhook sink off: cannot build its http client");
                    None
                }
            })
            .flatten();
        Self {
            webhook,
            events: Some(events),
        }
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
        if let Some(events) = &self.events {
            events.send(ReconcilerEvent::Alert(alert.clone()));
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
