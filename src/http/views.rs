//! The public JSON shape of a stored divergence, and the divergence filters as people type
//! them. Shared by `GET /api/divergences` and `mt5-reconciler divergences`, so both accept
//! and print exactly the same things. Likewise for the risk guards' alerts
//! (`GET /api/alerts`, `mt5-reconciler alerts list`).

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{CloseDetail, DivergenceKind};
use crate::store::{
    Acknowledgement, AlertRecord, AlertStatus, DivergenceFilter, MAX_PAGE, StoredDivergence,
};

/// Alerts listed when no limit is given.
pub const DEFAULT_ALERT_LIMIT: u64 = 50;

/// A stored alert as JSON: decimals as strings, `null` where a field does not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertView {
    /// Alert id (what `cancel` takes).
    pub id: String,
    /// Account.
    pub account_id: String,
    /// `warn` or `breach`.
    pub kind: String,
    /// The rule that fired.
    pub rule: String,
    /// Loss measured.
    pub loss: Option<String>,
    /// The reference the loss is measured from.
    pub reference: Option<String>,
    /// When positions will be (or were to be) closed; `null` for detect-only.
    pub close_at: Option<DateTime<Utc>>,
    /// `alerted`, `pending_close`, `closing`, `closed`, `failed`, `cancelled` or `ended`.
    pub status: AlertStatus,
    /// Whether an operator can still cancel its enforcement.
    pub cancellable: bool,
    /// A sentence for people.
    pub message: String,
    /// When it was raised.
    pub created_at: DateTime<Utc>,
}

impl From<&AlertRecord> for AlertView {
    fn from(a: &AlertRecord) -> Self {
        Self {
            id: a.id.clone(),
            account_id: a.account_id.clone(),
            kind: a.kind.clone(),
            rule: a.rule.clone(),
            loss: a.loss.map(|d| d.to_string()),
            reference: a.reference.map(|d| d.to_string()),
            close_at: a.close_at,
            status: a.status,
            cancellable: a.status.enforcing(),
            message: a.message.clone(),
            created_at: a.created_at,
        }
    }
}

/// Alert filters as text (query string): `account` and `limit`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertParams {
    /// Account id.
    pub account: Option<String>,
    /// Rows, newest first, 1 to 1000 (default 50).
    pub limit: Option<String>,
}

impl AlertParams {
    /// The account (empty = all) and the limit; the error names the bad value.
    pub fn filter(&self) -> Result<(Option<String>, u64), String> {
        let account = self.account.clone().filter(|a| !a.trim().is_empty());
        let limit = match self.limit.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_ALERT_LIMIT,
            Some(l) => alert_limit(l)?,
        };
        Ok((account, limit))
    }
}

/// Parses an alert limit: 1 to 1000.
pub fn alert_limit(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        _ => Err(format!("limit = {text:?}: expected 1 to {MAX_PAGE}")),
    }
}

/// A stored divergence as JSON: decimals as strings, `null` where a field does not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DivergenceView {
    /// Row id (the pagination cursor).
    pub id: i64,
    /// Account.
    pub account_id: String,
    /// Kind, snake_case.
    pub kind: &'static str,
    /// Canonical symbol.
    pub symbol: String,
    /// Broker ticket, when a position is involved.
    pub ticket: Option<u64>,
    /// Bot trade id, when a trade is involved.
    pub trade_id: Option<String>,
    /// The bot's value.
    pub expected: Option<String>,
    /// The broker's value.
    pub actual: Option<String>,
    /// Signed difference.
    pub delta: Option<String>,
    /// Unit of `delta`: `pips`, `percent` or `lots`.
    pub unit: Option<&'static str>,
    /// `open` or `resolved`.
    pub status: &'static str,
    /// When it was first seen.
    pub first_seen: DateTime<Utc>,
    /// When a sync last observed it, accurate to a minute
    /// ([`crate::store::LAST_SEEN_PRECISION`]); it stays so once resolved.
    pub last_seen: DateTime<Utc>,
    /// When it went away.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Stable identity across syncs.
    pub fingerprint: String,
    /// How the broker closed the position (`closed_at_broker`, `partially_closed`);
    /// `null` otherwise.
    pub close: Option<CloseView>,
    /// An operator's acknowledgement (the divergence then needs no attention); `null`
    /// when none.
    pub acknowledgement: Option<AckView>,
}

/// An operator's acknowledgement of a divergence, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AckView {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub by: String,
    /// Why.
    pub note: String,
}

impl From<&Acknowledgement> for AckView {
    fn from(a: &Acknowledgement) -> Self {
        Self {
            at: a.at,
            by: a.by.clone(),
            note: a.note.clone(),
        }
    }
}

/// How the broker closed a position, from its closing deals, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloseView {
    /// The last closing deal's reason: `stop_loss`, `take_profit`, `stop_out`, `client`,
    /// `mobile`, `web` (those three by hand), `expert` or `other`.
    pub reason: &'static str,
    /// Whether a person closed it by hand (desktop, mobile or web terminal).
    pub manual: bool,
    /// Close price, weighted by the volume of each closing deal.
    pub price: String,
    /// Realised profit of the closing deals, in the account currency.
    pub profit: String,
    /// Volume the closing deals took, in lots.
    pub volume: String,
    /// When the last closing deal executed (broker time).
    pub time: DateTime<Utc>,
}

impl From<&CloseDetail> for CloseView {
    fn from(c: &CloseDetail) -> Self {
        Self {
            reason: c.reason.as_str(),
            manual: c.reason.is_manual(),
            price: c.price.to_string(),
            profit: c.profit.to_string(),
            volume: c.volume.to_string(),
            time: c.time,
        }
    }
}

impl From<&StoredDivergence> for DivergenceView {
    fn from(s: &StoredDivergence) -> Self {
        let d = &s.divergence;
        Self {
            id: s.id,
            account_id: s.account_id.clone(),
            kind: d.kind.as_str(),
            symbol: d.symbol.clone(),
            ticket: d.ticket,
            trade_id: d.trade_id.clone(),
            expected: d.expected.map(|v| v.to_string()),
            actual: d.actual.map(|v| v.to_string()),
            delta: d.delta.map(|v| v.to_string()),
            unit: d.unit.map(|u| u.as_str()),
            status: s.status.as_str(),
            first_seen: s.first_seen,
            last_seen: s.last_seen,
            resolved_at: s.resolved_at,
            fingerprint: d.fingerprint.clone(),
            close: d.close.as_deref().map(CloseView::from),
            acknowledgement: s.acknowledgement.as_ref().map(AckView::from),
        }
    }
}

/// Divergence filters as text (query string or command line), checked by [`Self::filter`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DivergenceParams {
    /// Account id.
    pub account: Option<String>,
    /// `open` or `resolved`.
    pub status: Option<String>,
    /// A divergence kind, e.g. `entry_slippage`.
    pub kind: Option<String>,
    /// First seen at or after: RFC 3339, a date (`2026-01-31`), or an age (`90s`, `15m`,
    /// `24h`, `7d`).
    pub since: Option<String>,
    /// `yes`: only acknowledged divergences; `no`: only those not acknowledged.
    pub acknowledged: Option<String>,
    /// Cursor: only ids below this (`next_before` of the previous page).
    pub before: Option<String>,
    /// Rows per page, 1 to 1000 (default 100).
    pub limit: Option<String>,
}

impl DivergenceParams {
    /// The store filter; the error names every bad parameter and its value.
    pub fn filter(&self, now: DateTime<Utc>) -> Result<DivergenceFilter, String> {
        let mut problems = Vec::new();
        let mut f = DivergenceFilter {
            account: self.account.clone().filter(|a| !a.is_empty()),
            ..DivergenceFilter::default()
        };
        let given = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        if let Some(s) = given(&self.status) {
            match s.parse() {
                Ok(status) => f.status = Some(status),
                Err(e) => problems.push(format!("status: {e}")),
            }
        }
        if let Some(k) = given(&self.kind) {
            match k.parse::<DivergenceKind>() {
                Ok(kind) => f.kind = Some(kind),
                Err(e) => problems.push(format!(
                    "kind: {e} (expected one of {})",
                    DivergenceKind::ALL.map(DivergenceKind::as_str).join(", ")
                )),
            }
        }
        if let Some(s) = given(&self.since) {
            match parse_since(&s, now) {
                Ok(t) => f.since = Some(t),
                Err(e) => problems.push(format!("since: {e}")),
            }
        }
        if let Some(a) = given(&self.acknowledged) {
            match a.trim() {
                "yes" | "true" => f.acknowledged = Some(true),
                "no" | "false" => f.acknowledged = Some(false),
                _ => problems.push(format!("acknowledged = {a:?}: expected yes or no")),
            }
        }
        if let Some(b) = given(&self.before) {
            match b.trim().parse::<i64>() {
                Ok(id) => f.before = Some(id),
                Err(_) => problems.push(format!("before = {b:?}: expected a row id")),
            }
        }
        if let Some(l) = given(&self.limit) {
            match l.trim().parse::<u64>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => f.limit = n,
                _ => problems.push(format!("limit = {l:?}: expected 1 to {MAX_PAGE}")),
            }
        }
        if problems.is_empty() {
            Ok(f)
        } else {
            Err(problems.join("; "))
        }
    }
}

/// A point in time: RFC 3339 (`2026-01-31T08:00:00Z`), a UTC date (`2026-01-31`), or an age
/// before `now` (`90s`, `15m`, `24h`, `7d`).
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(t) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(day.and_time(NaiveTime::MIN).and_utc());
    }
    let bad = || format!("{text:?}: expected RFC 3339, YYYY-MM-DD, or an age like 15m, 24h, 7d");
    let (split, _) = t.char_indices().last().ok_or_else(bad)?;
    let (n, unit) = t.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let age = match unit {
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        _ => None,
    }
    .filter(|_| n >= 0)
    .ok_or_else(bad)?;
    now.checked_sub_signed(age).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DivergenceStatus;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-02-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[rstest::rstest]
    #[case("2026-01-31T08:00:00Z", "2026-01-31T08:00:00+00:00")]
    #[case("2026-01-31T09:00:00+01:00", "2026-01-31T08:00:00+00:00")]
    #[case("2026-01-31", "2026-01-31T00:00:00+00:00")]
    #[case("90s", "2026-02-01T11:58:30+00:00")]
    #[case("15m", "2026-02-01T11:45:00+00:00")]
    #[case("24h", "2026-01-31T12:00:00+00:00")]
    #[case("7d", "2026-01-25T12:00:00+00:00")]
    fn since_accepts_times_dates_and_ages(#[case] text: &str, #[case] want: &str) {
        assert_eq!(parse_since(text, now()).unwrap().to_rfc3339(), want);
    }

    #[rstest::rstest]
    #[case("")]
    #[case("yesterday")]
    #[case("5w")]
    #[case("-3h")]
    #[case("h")]
    #[case("5é")]
    fn since_refuses_anything_else(#[case] text: &str) {
        assert!(parse_since(text, now()).is_err(), "{text}");
    }

    #[rstest::rstest]
    #[case(None, None, Ok((None, DEFAULT_ALERT_LIMIT)))]
    #[case(Some("acc-1"), Some("5"), Ok((Some("acc-1"), 5)))]
    #[case(Some(""), Some(" 1000 "), Ok((None, 1000)))]
    #[case(None, Some("0"), Err("limit = \"0\""))]
    #[case(None, Some("1001"), Err("limit = \"1001\""))]
    #[case(None, Some("ten"), Err("limit = \"ten\""))]
    fn alert_filters_take_an_account_and_a_bounded_limit(
        #[case] account: Option<&str>,
        #[case] limit: Option<&str>,
        #[case] want: Result<(Option<&str>, u64), &str>,
    ) {
        let params = AlertParams {
            account: account.map(str::to_owned),
            limit: limit.map(str::to_owned),
        };
        match (params.filter(), want) {
            (Ok((a, l)), Ok((wa, wl))) => assert_eq!((a.as_deref(), l), (wa, wl)),
            (Err(e), Err(part)) => assert!(e.contains(part), "{part} in {e}"),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn filters_parse_and_every_bad_one_is_named() {
        let ok = DivergenceParams {
            account: Some("a".into()),
            status: Some("open".into()),
            kind: Some("sl_mismatch".into()),
            limit: Some("5".into()),
            before: Some("42".into()),
            ..DivergenceParams::default()
        };
        let f = ok.filter(now()).unwrap();
        assert_eq!(f.status, Some(DivergenceStatus::Open));
        assert_eq!(f.kind, Some(DivergenceKind::SlMismatch));
        assert_eq!((f.limit, f.before), (5, Some(42)));
        let bad = DivergenceParams {
            status: Some("closed".into()),
            kind: Some("slippage".into()),
            since: Some("soon".into()),
            limit: Some("0".into()),
            before: Some("x".into()),
            acknowledged: Some("maybe".into()),
            ..DivergenceParams::default()
        };
        let err = bad.filter(now()).unwrap_err();
        for part in [
            "status:",
            "kind:",
            "since:",
            "limit = \"0\"",
            "before = \"x\"",
            "acknowledged = \"maybe\"",
        ] {
            assert!(err.contains(part), "{part} in {err}");
        }
    }
}
