//! `GET /api/divergences/export`: the divergence list as CSV, with the filters of
//! `GET /api/divergences` (account, kind, status, age, acknowledged), newest first, every
//! page of it up to [`EXPORT_MAX`] rows. One row per divergence; empty cells where a field
//! does not apply.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{SecondsFormat, Utc};

use super::api::error;
use super::server::AppState;
use super::views::{DivergenceParams, DivergenceView};
use crate::store::{self, MAX_PAGE};

/// Most rows one export holds.
pub const EXPORT_MAX: usize = 100_000;

/// The CSV columns, in order.
const HEADER: [&str; 18] = [
    "id",
    "account_id",
    "kind",
    "symbol",
    "ticket",
    "trade_id",
    "expected",
    "actual",
    "delta",
    "unit",
    "status",
    "first_seen",
    "last_seen",
    "resolved_at",
    "acknowledged_at",
    "acknowledged_by",
    "acknowledged_note",
    "fingerprint",
];

/// A CSV cell: quoted when it holds a comma, a quote or a line break; a leading `=`, `+`,
/// `-` or `@` of text is prefixed with `'` so a spreadsheet does not run it as a formula.
fn cell(text: &str) -> String {
    let text = match text.chars().next() {
        Some('=' | '+' | '@') => format!("'{text}"),
        Some('-') if text.parse::<f64>().is_err() => format!("'{text}"),
        _ => text.to_owned(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// One CSV line (with its line break).
pub(super) fn line(d: &DivergenceView) -> String {
    let time = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    let ack = d.acknowledgement.as_ref();
    let cells = [
        d.id.to_string(),
        d.account_id.clone(),
        d.kind.to_owned(),
        d.symbol.clone(),
        d.ticket.map(|t| t.to_string()).unwrap_or_default(),
        d.trade_id.clone().unwrap_or_default(),
        d.expected.clone().unwrap_or_default(),
        d.actual.clone().unwrap_or_default(),
        d.delta.clone().unwrap_or_default(),
        d.unit.unwrap_or_default().to_owned(),
        d.status.to_owned(),
        time(d.first_seen),
        time(d.last_seen),
        d.resolved_at.map(time).unwrap_or_default(),
        ack.map(|a| time(a.at)).unwrap_or_default(),
        ack.map(|a| a.by.clone()).unwrap_or_default(),
        ack.map(|a| a.note.clone()).unwrap_or_default(),
        d.fingerprint.clone(),
    ];
    let mut out = cells.iter().map(|c| cell(c)).collect::<Vec<_>>().join(",");
    out.push_str("\r\n");
    out
}

/// `GET /api/divergences/export?account=&status=&kind=&since=&acknowledged=`: CSV.
#[utoipa::path(get, path = "/api/divergences/export", tag = "status",
    params(("account" = Option<String>, Query, description = "Account id"),
        ("status" = Option<String>, Query, description = "`open` or `resolved`"),
        ("kind" = Option<String>, Query, description = "A divergence kind, e.g. `entry_slippage`"),
        ("since" = Option<String>, Query, description = "First seen at or after: RFC 3339, a date, or an age (`90s`, `15m`, `24h`, `7d`)"),
        ("acknowledged" = Option<String>, Query, description = "`yes`: only acknowledged; `no`: only those not acknowledged")),
    responses((status = 200, description = "Newest first, at most 100,000 rows", body = String, content_type = "text/csv"),
        (status = 503, description = "Database away", body = super::openapi::ErrorBody)))]
pub(super) async fn export(
    State(state): State<AppState>,
    params: Result<Query<DivergenceParams>, QueryRejection>,
) -> Response {
    let params = match params {
        Ok(Query(p)) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    if params.before.is_some() || params.limit.is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "before, limit: the export holds every page; filter with account, status, kind, since, acknowledged",
        );
    }
    let mut filter = match params.filter(Utc::now()) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    filter.limit = MAX_PAGE;
    let mut out = HEADER.join(",");
    out.push_str("\r\n");
    let mut rows = 0;
    loop {
        let page = match store::query_divergences(&state.0.db, &filter).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot export divergences");
                return error(StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
            }
        };
        for d in page.items.iter().take(EXPORT_MAX - rows) {
            out.push_str(&line(&DivergenceView::from(d)));
        }
        rows += page.items.len();
        match page.next_before {
            Some(before) if rows < EXPORT_MAX => filter.before = Some(before),
            _ => break,
        }
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"divergences.csv\"",
            ),
        ],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[rstest::rstest]
    #[case("EURUSD", "EURUSD")]
    #[case("-1.5", "-1.5")]
    #[case("a,b", "\"a,b\"")]
    #[case("say \"hi\"", "\"say \"\"hi\"\"\"")]
    #[case("=cmd()", "'=cmd()")]
    #[case("-x", "'-x")]
    fn cells_are_quoted_and_never_formulas(#[case] text: &str, #[case] want: &str) {
        assert_eq!(cell(text), want);
    }
}
