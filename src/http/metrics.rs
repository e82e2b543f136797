//! `GET /metrics`: Prometheus text format, derived at scrape time from the supervisor's
//! `Status`, the persistence actor's figures and one grouped count of open divergences.
//! Written by hand: the format is a few lines per family and needs no crate.

use std::fmt::{Display, Write};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::api::{open_counts, persistence_stats, tree_status};
use super::server::AppState;
use crate::actors::Status;
use crate::actors::status::{DURATION_BUCKETS, DurationHistogram, PersistenceStats};
use crate::store::OpenCount;

/// The content type Prometheus expects.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`. 503 when the supervisor does not answer (the scrape then fails, which
/// Prometheus reports as `up == 0`).
pub(super) async fn handler(State(state): State<AppState>) -> Response {
    let s = &state.0;
    let status = match tree_status(s).await {
        Ok(st) => st,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("supervisor not answering: {e}\n"),
            )
                .into_response();
        }
    };
    let persistence = persistence_stats(s).await.ok();
    let counts = open_counts(s).await;
    let body = render(&status, persistence.as_ref(), counts.as_deref());
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

/// The whole exposition. `counts` is `None` when the database could not be read.
pub fn render(
    status: &Status,
    persistence: Option<&PersistenceStats>,
    counts: Option<&[OpenCount]>,
) -> String {
    let mut o = Out(String::new());
    let accounts = &status.accounts;

    o.family("mt5r_accounts", "gauge", "Accounts by breaker state.");
    let mut by_state = std::collections::BTreeMap::<&str, u64>::new();
    for name in ["running", "backing_off", "open", "half_open", "disabled"] {
        by_state.insert(name, 0);
    }
    for a in accounts {
        *by_state.entry(a.state.as_str()).or_default() += 1;
    }
    for (state, n) in &by_state {
        o.sample("mt5r_accounts", &[("state", state)], n);
    }
    o.family(
        "mt5r_account_state",
        "gauge",
        "1 for the account's current breaker state.",
    );
    for a in accounts {
        let labels = [
            ("account", a.id.as_str()),
            ("broker", &a.broker),
            ("state", &a.state),
        ];
        o.sample("mt5r_account_state", &labels, 1);
    }
    o.family(
        "mt5r_syncs_total",
        "counter",
        "Syncs by account and result (ok, failed).",
    );
    for a in accounts {
        o.sample(
            "mt5r_syncs_total",
            &[("account", &a.id), ("result", "ok")],
            a.syncs_ok,
        );
        let failed = [("account", a.id.as_str()), ("result", "failed")];
        o.sample("mt5r_syncs_total", &failed, a.syncs_failed);
    }
    let help = "Failed syncs by account and error class (timeout, retryable, permanent, malformed, crash).";
    o.family("mt5r_sync_failures_total", "counter", help);
    for a in accounts {
        for (class, n) in &a.failures_by_class {
            o.sample(
                "mt5r_sync_failures_total",
                &[("account", &a.id), ("class", class)],
                n,
            );
        }
    }
    let mut syncs = DurationHistogram::default();
    accounts.iter().for_each(|a| syncs.merge(&a.sync_duration));
    let help = "Duration of successful syncs (broker snapshot, trades, reconcile), all accounts.";
    o.histogram("mt5r_sync_duration_seconds", help, &syncs);
    let help = "End of the account's last successful sync, unix seconds.";
    o.family("mt5r_last_sync_timestamp_seconds", "gauge", help);
    for a in accounts {
        if let Some(at) = a.last_sync_at {
            let secs = at.timestamp_millis() as f64 / 1000.0;
            o.sample(
                "mt5r_last_sync_timestamp_seconds",
                &[("account", &a.id)],
                secs,
            );
        }
    }
    let help = "Failures since the account's last successful sync.";
    o.family("mt5r_consecutive_failures", "gauge", help);
    for a in accounts {
        let n = a.consecutive_failures;
        o.sample("mt5r_consecutive_failures", &[("account", &a.id)], n);
    }
    let help =
        "Breaker transitions by account and audit event (backoff_started, circuit_opened …).";
    o.family("mt5r_breaker_transitions_total", "counter", help);
    for a in accounts {
        for (event, n) in &a.transitions_by_kind {
            let labels = [("account", a.id.as_str()), ("event", event)];
            o.sample("mt5r_breaker_transitions_total", &labels, n);
        }
    }
    o.family(
        "mt5r_actor_restarts_total",
        "counter",
        "Restarts of the account's sync actor.",
    );
    for a in accounts {
        o.sample(
            "mt5r_actor_restarts_total",
            &[("account", &a.id)],
            a.restarts,
        );
    }
    o.family(
        "mt5r_positions",
        "gauge",
        "Broker positions at the last successful sync.",
    );
    for a in accounts {
        o.sample("mt5r_positions", &[("account", &a.id)], a.positions);
    }
    if let Some(counts) = counts {
        let help = "Open divergences by account and kind, as stored.";
        o.family("mt5r_open_divergences", "gauge", help);
        for c in counts {
            let labels = [("account", c.account_id.as_str()), ("kind", &c.kind)];
            o.sample("mt5r_open_divergences", &labels, c.count);
        }
    }
    let help = "1 when the database answered this scrape's query.";
    o.family("mt5r_database_up", "gauge", help);
    o.sample("mt5r_database_up", &[], u8::from(counts.is_some()));

    let sch = &status.scheduler;
    o.gauge(
        "mt5r_scheduler_interval_seconds",
        "Tick interval.",
        sch.interval.as_secs_f64(),
    );
    o.gauge(
        "mt5r_scheduler_ticking",
        "1 while ticks are dispatched.",
        u8::from(sch.ticking),
    );
    o.counter(
        "mt5r_ticks_total",
        "Ticks received (one per slot).",
        sch.ticks,
    );
    let help = "Account ticks skipped because the account's previous sync was still running.";
    o.counter("mt5r_skipped_ticks_total", help, sch.skipped_ticks);
    o.gauge(
        "mt5r_syncs_in_flight",
        "Syncs running now.",
        sch.syncs_in_flight,
    );
    let help = "Broker calls running now (bounded by scheduler.max_in_flight).";
    o.gauge(
        "mt5r_broker_calls_in_flight",
        help,
        sch.broker_calls_in_flight,
    );
    let help = "From a tick to the end of the last sync it started.";
    o.histogram("mt5r_tick_duration_seconds", help, &sch.tick_duration);

    if let Some(n) = &status.nats {
        let counters = [
            (
                "mt5r_nats_events_queued_total",
                "Events put on the NATS publisher's channel.",
                n.events_queued,
            ),
            (
                "mt5r_nats_events_published_total",
                "Events the JetStream stream acknowledged.",
                n.events_published,
            ),
            (
                "mt5r_nats_events_dropped_total",
                "Events dropped because the publisher's channel was full (NATS slow or away).",
                n.events_dropped,
            ),
            (
                "mt5r_nats_events_failed_total",
                "Events given up after every publish attempt failed.",
                n.events_failed,
            ),
            (
                "mt5r_nats_trades_processed_total",
                "Trade events from NATS written and acknowledged.",
                n.trades_processed,
            ),
            (
                "mt5r_nats_trades_duplicates_total",
                "Trade events from NATS already applied (redelivered or older): acknowledged, nothing written.",
                n.trades_duplicates,
            ),
            (
                "mt5r_nats_trades_terminated_total",
                "Trade events from NATS terminated as poison (unreadable or invalid).",
                n.trades_terminated,
            ),
        ];
        for (name, help, value) in counters {
            o.counter(name, help, value);
        }
        let help = "Trade events the NATS consumer has not been delivered yet (its last reading).";
        o.gauge("mt5r_nats_trades_lag", help, n.trades_lag);
    }

    if let Some(p) = persistence {
        let help = "Items buffered for the database, not yet durable.";
        o.gauge("mt5r_persistence_queue_depth", help, p.queued);
        let help = "1 while database writes are failing and being retried.";
        o.gauge("mt5r_persistence_retrying", help, u8::from(p.retrying));
        let help = "Items the database refused since start, kept in dead_letters.";
        o.counter("mt5r_persistence_dead_letters_total", help, p.dead_letters);
        let help = "Accounts whose latest quiet sync waits to move last_seen.";
        o.gauge(
            "mt5r_persistence_pending_sightings",
            help,
            p.pending_sightings,
        );
        let help = "Account-hours of sync counts waiting to be added to the stored rollups.";
        o.gauge("mt5r_persistence_pending_rollups", help, p.pending_rollups);
        let help = "Duration of a successful persistence flush (one transaction).";
        o.histogram(
            "mt5r_persistence_flush_duration_seconds",
            help,
            &p.flush_duration,
        );
    }
    o.0
}

/// The text being written.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl Display) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    fn counter(&mut self, name: &str, help: &str, value: impl Display) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }

    fn histogram(&mut self, name: &str, help: &str, h: &DurationHistogram) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (le, n) in DURATION_BUCKETS.iter().zip(h.buckets) {
            cumulative += n;
            self.sample(&bucket, &[("le", &le.to_string())], cumulative);
        }
        self.sample(&bucket, &[("le", "+Inf")], h.count);
        self.sample(&format!("{name}_sum"), &[], h.sum.as_secs_f64());
        self.sample(&format!("{name}_count"), &[], h.count);
    }
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::actors::AccountStatus;

    #[test]
    fn nats_counters_are_exported_only_with_nats() {
        let without = render(&Status::default(), None, None);
        assert!(!without.contains("mt5r_nats_"), "{without}");
        let status = Status {
            nats: Some(crate::nats::NatsStatus {
                events_dropped: 3,
                trades_terminated: 2,
                trades_lag: 7,
                ..Default::default()
            }),
            ..Status::default()
        };
        let text = render(&status, None, None);
        for line in [
            "mt5r_nats_events_dropped_total 3",
            "mt5r_nats_trades_terminated_total 2",
            "mt5r_nats_trades_lag 7",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in:\n{text}");
        }
    }

    #[test]
    fn families_histograms_and_labels_are_well_formed() {
        let mut a = AccountStatus {
            id: "acc\"1".into(),
            broker: "sim".into(),
            state: "open".into(),
            syncs_ok: 3,
            syncs_failed: 2,
            ..AccountStatus::default()
        };
        a.failures_by_class.insert("timeout".into(), 2);
        a.transitions_by_kind.insert("circuit_opened".into(), 1);
        a.sync_duration.observe(Duration::from_millis(30));
        a.sync_duration.observe(Duration::from_secs(60));
        let status = Status {
            accounts: vec![a],
            ..Status::default()
        };
        let counts = [OpenCount {
            account_id: "acc\"1".into(),
            kind: "sl_mismatch".into(),
            count: 4,
        }];
        let text = render(&status, Some(&PersistenceStats::default()), Some(&counts));
        for line in [
            "mt5r_accounts{state=\"open\"} 1",
            "mt5r_accounts{state=\"running\"} 0",
            "mt5r_syncs_total{account=\"acc\\\"1\",result=\"failed\"} 2",
            "mt5r_sync_failures_total{account=\"acc\\\"1\",class=\"timeout\"} 2",
            "mt5r_breaker_transitions_total{account=\"acc\\\"1\",event=\"circuit_opened\"} 1",
            "mt5r_sync_duration_seconds_bucket{le=\"0.025\"} 0",
            "mt5r_sync_duration_seconds_bucket{le=\"0.05\"} 1",
            "mt5r_sync_duration_seconds_bucket{le=\"30\"} 1",
            "mt5r_sync_duration_seconds_bucket{le=\"+Inf\"} 2",
            "mt5r_sync_duration_seconds_count 2",
            "mt5r_sync_duration_seconds_sum 60.03",
            "mt5r_open_divergences{account=\"acc\\\"1\",kind=\"sl_mismatch\"} 4",
            "mt5r_database_up 1",
            "mt5r_persistence_queue_depth 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample belongs to the family declared last (families are not interleaved).
        let mut declared = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared = rest.split(' ').next().unwrap_or("").to_owned();
            } else if !line.starts_with('#') {
                assert!(line.starts_with(&declared), "{line} outside {declared}");
            }
        }
    }

    #[test]
    fn every_metric_of_the_grafana_dashboard_is_exported() {
        let text = render(
            &Status::default(),
            Some(&PersistenceStats::default()),
            Some(&[]),
        );
        let dashboard = include_str!("../../deploy/grafana-dashboard.json");
        let mut names: Vec<&str> = dashboard
            .match_indices("mt5r_")
            .map(|(i, _)| {
                let rest = &dashboard[i..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                rest[..end].trim_end_matches("_bucket")
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        assert!(names.len() > 10, "{names:?}");
        for name in names {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} is not exported"
            );
        }
    }

    #[test]
    fn without_a_database_the_counts_are_left_out_and_marked_down() {
        let text = render(&Status::default(), None, None);
        assert!(text.contains("mt5r_database_up 0"));
        assert!(!text.contains("mt5r_open_divergences"));
        assert!(!text.contains("mt5r_persistence_queue_depth"));
    }
}
