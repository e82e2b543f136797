//! `GET /metrics`: the service's figures in the Prometheus text format, or OpenMetrics when
//! the scraper asks for it (`Accept: application/openmetrics-text`), encoded by
//! `prometheus-client`. Nothing is kept between scrapes: each scrape takes the supervisor's
//! `Status`, the persistence actor's figures and one grouped count of open divergences,
//! and a collector turns that snapshot into metric families.

use std::fmt;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text as openmetrics_text;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, NoLabelSet, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::api::{open_counts, persistence_stats, tree_status};
use super::server::AppState;
use crate::actors::Status;
use crate::actors::status::{DURATION_BUCKETS, DurationHistogram, PersistenceStats};
use crate::store::OpenCount;

/// The exposition formats a scraper may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4 (the default).
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// What the `Accept` header asks for: OpenMetrics when it names it, else Prometheus.
    pub fn negotiate(headers: &HeaderMap) -> Self {
        let asks = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("application/openmetrics-text"));
        if asks {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => prometheus_text::CONTENT_TYPE,
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// `GET /metrics`. 503 when the supervisor does not answer (the scrape then fails, which
/// Prometheus reports as `up == 0`).
#[utoipa::path(get, path = "/metrics", tag = "status",
    responses((status = 200, description = "Prometheus text format 0.0.4, or OpenMetrics 1.0 when the Accept header asks for application/openmetrics-text", body = String, content_type = "text/plain"),
        (status = 503, description = "The tree did not answer", body = super::openapi::ErrorBody)))]
pub(super) async fn handler(State(state): State<AppState>, headers: HeaderMap) -> Response {
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
    let snapshot = Snapshot {
        status,
        persistence: persistence_stats(s).await.ok(),
        counts: open_counts(s).await,
        aggregate: !s.metrics_per_account,
    };
    let format = Format::negotiate(&headers);
    match render(snapshot, format) {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("metrics could not be encoded: {e}\n"),
        )
            .into_response(),
    }
}

/// What one scrape exposes. `counts` is `None` when the database could not be read.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The supervisor's status.
    pub status: Status,
    /// The persistence actor's figures, when it answered.
    pub persistence: Option<PersistenceStats>,
    /// Open divergences by account and kind, when the database answered.
    pub counts: Option<Vec<OpenCount>>,
    /// Sum the per-account series over accounts (`[http] metrics_per_account = false`).
    pub aggregate: bool,
}

/// The whole exposition of `snapshot` in `format`.
pub fn render(snapshot: Snapshot, format: Format) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut out = String::new();
    match format {
        Format::Prometheus => prometheus_text::encode(&mut out, &registry)?,
        Format::OpenMetrics => openmetrics_text::encode(&mut out, &registry)?,
    }
    Ok(out)
}

/// Labels of one sample.
type Labels<'a> = Vec<(&'a str, &'a str)>;

/// Writes families into one descriptor encoder; with `aggregate`, samples labelled by
/// account are folded over accounts.
struct Families<'e> {
    encoder: DescriptorEncoder<'e>,
    aggregate: bool,
}

/// How samples of several accounts fold into one when series are not per account.
#[derive(Debug, Clone, Copy)]
enum Fold {
    Sum,
    Max,
    Min,
}

/// A sample value that can be folded.
trait Foldable: Copy + PartialOrd + std::ops::Add<Output = Self> {}
impl Foldable for u64 {}
impl Foldable for f64 {}
impl Foldable for usize {}
impl Foldable for i64 {}

/// `samples` as they are, or (with `aggregate`) without their `account` label, samples
/// left with the same labels folded by `fold`, in label order.
fn folded<'a, V: Foldable>(
    aggregate: bool,
    fold: Fold,
    samples: impl IntoIterator<Item = (Labels<'a>, V)>,
) -> Vec<(Labels<'a>, V)> {
    if !aggregate {
        return samples.into_iter().collect();
    }
    let mut out = std::collections::BTreeMap::<Labels<'a>, V>::new();
    for (mut labels, v) in samples {
        labels.retain(|(k, _)| *k != "account");
        out.entry(labels)
            .and_modify(|have| {
                *have = match fold {
                    Fold::Sum => *have + v,
                    Fold::Max if v > *have => v,
                    Fold::Min if v < *have => v,
                    _ => *have,
                }
            })
            .or_insert(v);
    }
    out.into_iter().collect()
}

impl Families<'_> {
    /// A gauge family with its samples (summed over accounts when aggregated).
    fn gauges<'a, V: EncodeGaugeValue + Foldable>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, V)>,
    ) -> fmt::Result {
        self.gauges_folded(name, help, Fold::Sum, samples)
    }

    /// A gauge family with its samples, folded by `fold` over accounts when aggregated.
    fn gauges_folded<'a, V: EncodeGaugeValue + Foldable>(
        &mut self,
        name: &str,
        help: &str,
        fold: Fold,
        samples: impl IntoIterator<Item = (Labels<'a>, V)>,
    ) -> fmt::Result {
        let samples = folded(self.aggregate, fold, samples);
        let mut m = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, v) in samples {
            if labels.is_empty() {
                m.encode_gauge(&v)?;
            } else {
                m.encode_family(&labels)?.encode_gauge(&v)?;
            }
        }
        Ok(())
    }

    /// A counter family with its samples (summed over accounts when aggregated); `name`
    /// is the sample name, ending in `_total`.
    fn counters<'a, V: EncodeCounterValue + Foldable>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, V)>,
    ) -> fmt::Result {
        let samples = folded(self.aggregate, Fold::Sum, samples);
        let family = name.strip_suffix("_total").unwrap_or(name);
        let mut m = self
            .encoder
            .encode_descriptor(family, help, None, MetricType::Counter)?;
        for (labels, v) in samples {
            if labels.is_empty() {
                m.encode_counter::<NoLabelSet, _, f64>(&v, None)?;
            } else {
                m.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, f64>(&v, None)?;
            }
        }
        Ok(())
    }

    /// A histogram of durations, over [`DURATION_BUCKETS`].
    fn histogram(&mut self, name: &str, help: &str, h: &DurationHistogram) -> fmt::Result {
        let mut buckets: Vec<(f64, u64)> =
            DURATION_BUCKETS.iter().copied().zip(h.buckets).collect();
        let below: u64 = h.buckets.iter().sum();
        buckets.push((f64::INFINITY, h.count.saturating_sub(below)));
        self.encoder
            .encode_descriptor(name, help, None, MetricType::Histogram)?
            .encode_histogram::<NoLabelSet>(h.sum.as_secs_f64(), h.count, &buckets, None)
    }
}

impl Collector for Snapshot {
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        let mut o = Families {
            encoder,
            aggregate: self.aggregate,
        };
        let accounts = &self.status.accounts;

        let mut by_state = std::collections::BTreeMap::<&str, u64>::new();
        for name in ["running", "backing_off", "open", "half_open", "disabled"] {
            by_state.insert(name, 0);
        }
        for a in accounts {
            *by_state.entry(a.state.as_str()).or_default() += 1;
        }
        o.gauges(
            "mt5r_accounts",
            "Accounts by breaker state.",
            by_state
                .iter()
                .map(|(state, n)| (vec![("state", *state)], *n)),
        )?;
        o.gauges(
            "mt5r_account_state",
            "1 for the account's current breaker state.",
            accounts.iter().map(|a| {
                let labels = vec![
                    ("account", a.id.as_str()),
                    ("broker", a.broker.as_str()),
                    ("state", a.state.as_str()),
                ];
                (labels, 1u64)
            }),
        )?;
        o.counters(
            "mt5r_syncs_total",
            "Syncs by account and result (ok, failed).",
            accounts.iter().flat_map(|a| {
                [
                    (
                        vec![("account", a.id.as_str()), ("result", "ok")],
                        a.syncs_ok,
                    ),
                    (
                        vec![("account", a.id.as_str()), ("result", "failed")],
                        a.syncs_failed,
                    ),
                ]
            }),
        )?;
        o.counters(
            "mt5r_sync_failures_total",
            "Failed syncs by account and error class (timeout, retryable, permanent, malformed, crash).",
            accounts.iter().flat_map(|a| {
                a.failures_by_class
                    .iter()
                    .map(|(class, n)| (vec![("account", a.id.as_str()), ("class", class.as_str())], *n))
            }),
        )?;
        let mut syncs = DurationHistogram::default();
        accounts.iter().for_each(|a| syncs.merge(&a.sync_duration));
        o.histogram(
            "mt5r_sync_duration_seconds",
            "Duration of successful syncs (broker snapshot, trades, reconcile), all accounts.",
            &syncs,
        )?;
        o.gauges_folded(
            "mt5r_last_sync_timestamp_seconds",
            "End of the account's last successful sync, unix seconds (aggregated: the oldest).",
            Fold::Min,
            accounts.iter().filter_map(|a| {
                let at = a.last_sync_at?;
                let secs = at.timestamp_millis() as f64 / 1000.0;
                Some((vec![("account", a.id.as_str())], secs))
            }),
        )?;
        o.gauges_folded(
            "mt5r_consecutive_failures",
            "Failures since the account's last successful sync (aggregated: the most).",
            Fold::Max,
            accounts.iter().map(|a| {
                (
                    vec![("account", a.id.as_str())],
                    u64::from(a.consecutive_failures),
                )
            }),
        )?;
        o.counters(
            "mt5r_breaker_transitions_total",
            "Breaker transitions by account and audit event (backoff_started, circuit_opened …).",
            accounts.iter().flat_map(|a| {
                a.transitions_by_kind.iter().map(|(event, n)| {
                    (
                        vec![("account", a.id.as_str()), ("event", event.as_str())],
                        *n,
                    )
                })
            }),
        )?;
        o.counters(
            "mt5r_actor_restarts_total",
            "Restarts of the account's sync actor.",
            accounts
                .iter()
                .map(|a| (vec![("account", a.id.as_str())], a.restarts)),
        )?;
        o.gauges(
            "mt5r_positions",
            "Broker positions at the last successful sync.",
            accounts
                .iter()
                .map(|a| (vec![("account", a.id.as_str())], a.positions)),
        )?;
        if let Some(counts) = &self.counts {
            o.gauges(
                "mt5r_open_divergences",
                "Open divergences by account and kind, as stored.",
                counts.iter().map(|c| {
                    (
                        vec![
                            ("account", c.account_id.as_str()),
                            ("kind", c.kind.as_str()),
                        ],
                        c.count,
                    )
                }),
            )?;
        }
        o.gauges(
            "mt5r_database_up",
            "1 when the database answered this scrape's query.",
            [(vec![], u64::from(self.counts.is_some()))],
        )?;

        let sch = &self.status.scheduler;
        o.gauges(
            "mt5r_scheduler_interval_seconds",
            "Tick interval.",
            [(vec![], sch.interval.as_secs_f64())],
        )?;
        o.gauges(
            "mt5r_scheduler_ticking",
            "1 while ticks are dispatched.",
            [(vec![], u64::from(sch.ticking))],
        )?;
        o.counters(
            "mt5r_ticks_total",
            "Ticks received (one per slot).",
            [(vec![], sch.ticks)],
        )?;
        o.counters(
            "mt5r_skipped_ticks_total",
            "Account ticks skipped because the account's previous sync was still running.",
            [(vec![], sch.skipped_ticks)],
        )?;
        o.gauges(
            "mt5r_syncs_in_flight",
            "Syncs running now.",
            [(vec![], sch.syncs_in_flight)],
        )?;
        o.gauges(
            "mt5r_broker_calls_in_flight",
            "Broker calls running now (bounded by scheduler.max_in_flight).",
            [(vec![], sch.broker_calls_in_flight)],
        )?;
        o.histogram(
            "mt5r_tick_duration_seconds",
            "From a tick to the end of the last sync it started.",
            &sch.tick_duration,
        )?;

        if let Some(n) = &self.status.nats {
            for (name, help, value) in [
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
            ] {
                o.counters(name, help, [(vec![], value)])?;
            }
            o.gauges(
                "mt5r_nats_trades_lag",
                "Trade events the NATS consumer has not been delivered yet (its last reading).",
                [(vec![], n.trades_lag)],
            )?;
        }

        if let Some(h) = &self.status.ha {
            o.gauges(
                "mt5r_ha_owned_accounts",
                "Accounts whose lease this instance holds.",
                [(vec![], h.owned_accounts)],
            )?;
            o.gauges(
                "mt5r_ha_live_instances",
                "Live instances at the last heartbeat, this one included.",
                [(vec![], h.live_instances)],
            )?;
            o.gauges(
                "mt5r_ha_database_away",
                "1 while the database has been away longer than a lease (no account is owned).",
                [(vec![], u64::from(h.database_away))],
            )?;
            o.counters(
                "mt5r_ha_leases_acquired_total",
                "Leases this instance took.",
                [(vec![], h.leases_acquired)],
            )?;
            o.counters(
                "mt5r_ha_leases_lost_total",
                "Leases this instance gave up or lost.",
                [(vec![], h.leases_lost)],
            )?;
            o.counters(
                "mt5r_ha_fenced_writes_total",
                "Writes refused because their account's lease had moved on (dropped).",
                [(vec![], h.fenced_writes)],
            )?;
        }

        if let Some(p) = &self.persistence {
            o.gauges(
                "mt5r_persistence_queue_depth",
                "Items buffered for the database, not yet durable.",
                [(vec![], p.queued)],
            )?;
            o.gauges(
                "mt5r_persistence_retrying",
                "1 while database writes are failing and being retried.",
                [(vec![], u64::from(p.retrying))],
            )?;
            o.counters(
                "mt5r_persistence_dead_letters_total",
                "Items the database refused since start, kept in dead_letters.",
                [(vec![], p.dead_letters)],
            )?;
            o.gauges(
                "mt5r_persistence_pending_sightings",
                "Accounts whose latest quiet sync waits to move last_seen.",
                [(vec![], p.pending_sightings)],
            )?;
            o.gauges(
                "mt5r_persistence_pending_rollups",
                "Account-hours of sync counts waiting to be added to the stored rollups.",
                [(vec![], p.pending_rollups)],
            )?;
            o.histogram(
                "mt5r_persistence_flush_duration_seconds",
                "Duration of a successful persistence flush (one transaction).",
                &p.flush_duration,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::HeaderValue;

    use super::*;
    use crate::actors::AccountStatus;

    #[test]
    fn nats_counters_are_exported_only_with_nats() {
        let without = render(Snapshot::default(), Format::Prometheus).unwrap();
        assert!(!without.contains("mt5r_nats_"), "{without}");
        let snapshot = Snapshot {
            status: Status {
                nats: Some(crate::nats::NatsStatus {
                    events_dropped: 3,
                    trades_terminated: 2,
                    trades_lag: 7,
                    ..Default::default()
                }),
                ..Status::default()
            },
            ..Snapshot::default()
        };
        let text = render(snapshot, Format::Prometheus).unwrap();
        assert_lines(
            &text,
            &[
                "mt5r_nats_events_dropped_total 3",
                "mt5r_nats_trades_terminated_total 2",
                "mt5r_nats_trades_lag 7",
            ],
        );
    }

    #[test]
    fn lease_figures_are_exported_only_with_high_availability() {
        let without = render(Snapshot::default(), Format::Prometheus).unwrap();
        assert!(!without.contains("mt5r_ha_"), "{without}");
        let snapshot = Snapshot {
            status: Status {
                ha: Some(crate::actors::HaStatus {
                    instance_id: "a".into(),
                    owned_accounts: 10,
                    leases_acquired: 12,
                    leases_lost: 2,
                    live_instances: 3,
                    database_away: true,
                    fenced_writes: 4,
                }),
                ..Status::default()
            },
            ..Snapshot::default()
        };
        let text = render(snapshot, Format::Prometheus).unwrap();
        assert_lines(
            &text,
            &[
                "mt5r_ha_owned_accounts 10",
                "mt5r_ha_live_instances 3",
                "mt5r_ha_database_away 1",
                "mt5r_ha_leases_acquired_total 12",
                "mt5r_ha_leases_lost_total 2",
                "mt5r_ha_fenced_writes_total 4",
            ],
        );
    }

    fn sample() -> Snapshot {
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
        Snapshot {
            status: Status {
                accounts: vec![a],
                ..Status::default()
            },
            persistence: Some(PersistenceStats::default()),
            counts: Some(vec![OpenCount {
                account_id: "acc\"1".into(),
                kind: "sl_mismatch".into(),
                count: 4,
            }]),
            aggregate: false,
        }
    }

    #[test]
    fn aggregated_series_carry_no_account_and_fold_over_accounts() {
        let mut snap = sample();
        let mut b = snap.status.accounts[0].clone();
        b.id = "acc-2".into();
        b.state = "running".into();
        b.consecutive_failures = 4;
        snap.status.accounts[0].consecutive_failures = 1;
        snap.status.accounts.push(b);
        snap.counts.as_mut().unwrap().push(OpenCount {
            account_id: "acc-2".into(),
            kind: "sl_mismatch".into(),
            count: 1,
        });
        let per_account = render(snap.clone(), Format::Prometheus).unwrap();
        assert!(per_account.contains("account=\"acc-2\""));
        snap.aggregate = true;
        let text = render(snap, Format::Prometheus).unwrap();
        assert!(!text.contains("account="), "{text}");
        assert_lines(
            &text,
            &[
                "mt5r_syncs_total{result=\"ok\"} 6",
                "mt5r_syncs_total{result=\"failed\"} 4",
                "mt5r_sync_failures_total{class=\"timeout\"} 4",
                "mt5r_account_state{broker=\"sim\",state=\"open\"} 1",
                "mt5r_account_state{broker=\"sim\",state=\"running\"} 1",
                "mt5r_open_divergences{kind=\"sl_mismatch\"} 5",
                "mt5r_consecutive_failures 4",
            ],
        );
    }

    fn assert_lines(text: &str, lines: &[&str]) {
        for line in lines {
            assert!(
                text.lines().any(|l| l == *line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn families_histograms_and_labels_are_well_formed() {
        let text = render(sample(), Format::Prometheus).unwrap();
        assert_lines(
            &text,
            &[
                "# TYPE mt5r_syncs_total counter",
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
            ],
        );
        assert!(!text.contains("# EOF"), "{text}");
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
    fn openmetrics_names_counter_families_without_their_suffix_and_ends_with_eof() {
        let text = render(sample(), Format::OpenMetrics).unwrap();
        assert_lines(
            &text,
            &[
                "# TYPE mt5r_syncs counter",
                "mt5r_syncs_total{account=\"acc\\\"1\",result=\"ok\"} 3",
                "mt5r_database_up 1",
            ],
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn openmetrics_is_served_only_to_a_scraper_that_asks_for_it() {
        let mut headers = HeaderMap::new();
        assert_eq!(Format::negotiate(&headers), Format::Prometheus);
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            ),
        );
        assert_eq!(Format::negotiate(&headers), Format::OpenMetrics);
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/plain"));
        assert_eq!(Format::negotiate(&headers), Format::Prometheus);
    }

    #[test]
    fn every_metric_of_the_grafana_dashboard_is_exported() {
        let snapshot = Snapshot {
            persistence: Some(PersistenceStats::default()),
            counts: Some(Vec::new()),
            ..Snapshot::default()
        };
        let text = render(snapshot, Format::Prometheus).unwrap();
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
        let text = render(Snapshot::default(), Format::Prometheus).unwrap();
        assert!(text.contains("mt5r_database_up 0"));
        assert!(!text.contains("mt5r_open_divergences"));
        assert!(!text.contains("mt5r_persistence_queue_depth"));
    }
}
