//! Divergences, matches and the fingerprint that identifies a divergence across runs.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::facts::DealReason;
use super::values::{Price, Side, Volume};

/// What kind of difference was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DivergenceKind {
    /// Filled at a different price than the bot expected.
    EntrySlippage,
    /// Different volume.
    VolumeMismatch,
    /// Stop loss differs, or is set on one side only.
    SlMismatch,
    /// Take profit differs, or is set on one side only.
    TpMismatch,
    /// Buy at one side, sell at the other.
    SideMismatch,
    /// The bot has a trade the broker does not.
    MissingAtBroker,
    /// The broker has a position the bot does not know.
    UnexpectedAtBroker,
    /// The bot's trade is gone at the broker because this service closed it (a guard's
    /// enforced breach); its alert is the `actual` value. Open until the bot marks the
    /// trade closed.
    ClosedByService,
    /// The bot's trade is gone at the broker and a closing deal says why (stop loss, take
    /// profit, stop-out, by hand, another expert); close price and profit in its detail.
    ClosedAtBroker,
    /// Part of the position was closed at the broker (a partial-close deal); the closed
    /// volume is the delta.
    PartiallyClosed,
    /// The order a bot trade waited on is gone at the broker and no position took its
    /// place (cancelled, expired or rejected); the order's ticket is the divergence's.
    OrderCancelled,
    /// A bot trade's order is still pending after `max_pending_order_secs`; expected is
    /// the trade's volume, actual the order's volume still to fill.
    OrderUnfilled,
}

impl DivergenceKind {
    /// Every kind, in output order.
    pub const ALL: [DivergenceKind; 12] = [
        Self::EntrySlippage,
        Self::VolumeMismatch,
        Self::SlMismatch,
        Self::TpMismatch,
        Self::SideMismatch,
        Self::MissingAtBroker,
        Self::UnexpectedAtBroker,
        Self::ClosedByService,
        Self::ClosedAtBroker,
        Self::PartiallyClosed,
        Self::OrderCancelled,
        Self::OrderUnfilled,
    ];

    /// The snake_case name used in files, the database and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EntrySlippage => "entry_slippage",
            Self::VolumeMismatch => "volume_mismatch",
            Self::SlMismatch => "sl_mismatch",
            Self::TpMismatch => "tp_mismatch",
            Self::SideMismatch => "side_mismatch",
            Self::MissingAtBroker => "missing_at_broker",
            Self::UnexpectedAtBroker => "unexpected_at_broker",
            Self::ClosedByService => "closed_by_service",
            Self::ClosedAtBroker => "closed_at_broker",
            Self::PartiallyClosed => "partially_closed",
            Self::OrderCancelled => "order_cancelled",
            Self::OrderUnfilled => "order_unfilled",
        }
    }
}

impl fmt::Display for DivergenceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DivergenceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown divergence kind {s:?}"))
    }
}

/// Unit of a divergence's delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Pips of the symbol.
    Pips,
    /// Percent of the bot's value.
    Percent,
    /// Lots (the volume a partial close took).
    Lots,
}

impl Unit {
    /// The lowercase name used in output and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Pips => "pips",
            Unit::Percent => "percent",
            Unit::Lots => "lots",
        }
    }
}

impl FromStr for Unit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pips" => Ok(Unit::Pips),
            "percent" => Ok(Unit::Percent),
            "lots" => Ok(Unit::Lots),
            _ => Err(format!("unknown unit {s:?}")),
        }
    }
}

/// An expected or actual value: a number (price, volume) or a side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Value {
    /// A price or a volume, kept with the scale it was given in.
    Number(Decimal),
    /// A side, for `side_mismatch`.
    Side(Side),
    /// An alert of the risk guards (`al-` and 16 hex digits), for `closed_by_service`.
    Alert(u64),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(d) => fmt::Display::fmt(d, f),
            Value::Side(s) => fmt::Display::fmt(s, f),
            Value::Alert(id) => write!(f, "al-{id:016x}"),
        }
    }
}

impl FromStr for Value {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(side) = s.parse::<Side>() {
            return Ok(Value::Side(side));
        }
        if let Some(hex) = s.strip_prefix("al-")
            && hex.len() == 16
            && let Ok(id) = u64::from_str_radix(hex, 16)
        {
            return Ok(Value::Alert(id));
        }
        Decimal::from_str(s)
            .map(Value::Number)
            .map_err(|_| format!("{s:?} is neither a number, a side nor an alert id"))
    }
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One difference between what the bot believes and what the broker holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Divergence {
    /// What differs.
    pub kind: DivergenceKind,
    /// Canonical symbol.
    pub symbol: String,
    /// Broker ticket, when a position is involved.
    pub ticket: Option<u64>,
    /// Bot trade id, when a trade is involved.
    pub trade_id: Option<String>,
    /// The bot's value.
    pub expected: Option<Value>,
    /// The broker's value.
    pub actual: Option<Value>,
    /// Signed difference in `unit`; positive slippage is worse for the trader.
    #[serde(with = "super::decimal_serde::option")]
    pub delta: Option<Decimal>,
    /// Unit of `delta`.
    pub unit: Option<Unit>,
    /// Stable identity: the same divergence has the same fingerprint on every run.
    pub fingerprint: String,
    /// How the broker closed the position, for `closed_at_broker` and `partially_closed`
    /// (from its closing deals); `None` otherwise. Not part of the fingerprint.
    /// Boxed: most divergences have none, and they are kept and sent by the thousand.
    #[serde(default)]
    pub close: Option<Box<CloseDetail>>,
}

/// What a position's closing deals say: why, at what price, for what profit, how much
/// and when.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CloseDetail {
    /// The reason of the last closing deal (client, mobile and web are closes by hand).
    pub reason: DealReason,
    /// Close price, weighted by the volume of each closing deal.
    pub price: Price,
    /// Realised profit of the closing deals, in the account currency.
    #[serde(with = "super::decimal_serde")]
    pub profit: Decimal,
    /// Volume the closing deals took, in lots.
    pub volume: Volume,
    /// When the last closing deal executed (broker time, never compared with ours).
    pub time: DateTime<Utc>,
}

impl Divergence {
    /// Builds a divergence and computes its fingerprint.
    pub fn new(
        kind: DivergenceKind,
        symbol: String,
        ticket: Option<u64>,
        trade_id: Option<String>,
        expected: Option<Value>,
        actual: Option<Value>,
        delta: Option<(Decimal, Unit)>,
    ) -> Self {
        let fingerprint = fingerprint(kind, &symbol, ticket, trade_id.as_deref(), expected, actual);
        Self {
            kind,
            symbol,
            ticket,
            trade_id,
            expected,
            actual,
            delta: delta.map(|(d, _)| d),
            unit: delta.map(|(_, u)| u),
            fingerprint,
            close: None,
        }
    }

    /// The same divergence with the close its deals describe (its fingerprint unchanged:
    /// the same close is the same divergence on every sync).
    pub fn with_close(mut self, close: CloseDetail) -> Self {
        self.close = Some(Box::new(close));
        self
    }
}

/// 64-bit FNV-1a: tiny, stable across platforms and releases, no dependency. Text is
/// hashed as it is written, so a fingerprint needs no intermediate string.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

impl fmt::Write for Fnv1a {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}

/// The fingerprint of a divergence: a hash of its kind, symbol, ticket, trade id and the
/// normalised expected and actual values. The same observation always hashes the same;
/// a changed value (an SL moved again) is a new divergence, so the audit trail shows it.
pub fn fingerprint(
    kind: DivergenceKind,
    symbol: &str,
    ticket: Option<u64>,
    trade_id: Option<&str>,
    expected: Option<Value>,
    actual: Option<Value>,
) -> String {
    use fmt::Write as _;
    // The canonical text, fed to the hash piece by piece (writing to it cannot fail):
    // v1 ␟ kind ␟ symbol ␟ ticket ␟ trade id ␟ expected ␟ actual, with numbers normalised.
    let mut hash = Fnv1a::new();
    let sep = |h: &mut Fnv1a| h.bytes("\u{1f}".as_bytes());
    hash.bytes(b"v1");
    sep(&mut hash);
    hash.bytes(kind.as_str().as_bytes());
    sep(&mut hash);
    hash.bytes(symbol.as_bytes());
    sep(&mut hash);
    if let Some(t) = ticket {
        let _ = write!(hash, "{t}");
    }
    sep(&mut hash);
    hash.bytes(trade_id.unwrap_or_default().as_bytes());
    for value in [expected, actual] {
        sep(&mut hash);
        match value {
            Some(Value::Number(d)) => {
                let _ = write!(hash, "{}", d.normalize());
            }
            Some(Value::Side(s)) => hash.bytes(s.as_str().as_bytes()),
            Some(Value::Alert(id)) => {
                let _ = write!(hash, "al-{id:016x}");
            }
            None => {}
        }
    }
    format!("{:016x}", hash.0)
}

/// How a trade was paired with a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMethod {
    /// The trade's ticket equals the position's ticket or identifier.
    Ticket,
    /// The position's client id or comment equals the trade's client key.
    ClientId,
    /// Same symbol and side, entry and volume within the match windows (for a pending
    /// order: same symbol, side and volume, closest price).
    Heuristic,
    /// On a netting account: the trade is part of the net the symbol's one position is
    /// compared with.
    Netting,
}

/// A trade paired with a position.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Match {
    /// Bot trade id.
    pub trade_id: String,
    /// Broker ticket.
    pub ticket: u64,
    /// How they were paired.
    pub method: MatchMethod,
}

/// The outcome of [`super::reconcile()`]: every pairing and every divergence, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciliation {
    /// Pairs, sorted by trade id.
    pub matched: Vec<Match>,
    /// Divergences, sorted by (trade id, ticket, kind).
    pub divergences: Vec<Divergence>,
    /// Trades waiting on a pending order, sorted by trade id.
    #[serde(default)]
    pub pending: Vec<super::book::PendingFill>,
    /// Positions and orders outside the bot's scope, sorted by (holding, ticket).
    #[serde(default)]
    pub external: Vec<super::book::External>,
    /// Symbols of a netting account compared as one net position, sorted by symbol.
    #[serde(default)]
    pub netted: Vec<super::book::Netted>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    #[test]
    fn fingerprint_ignores_scale_but_not_value() {
        let a = fingerprint(
            DivergenceKind::SlMismatch,
            "EURUSD",
            Some(1),
            Some("t1"),
            Some(Value::Number(dec!(1.0800))),
            Some(Value::Number(dec!(1.0790))),
        );
        let b = fingerprint(
            DivergenceKind::SlMismatch,
            "EURUSD",
            Some(1),
            Some("t1"),
            Some(Value::Number(dec!(1.08))),
            Some(Value::Number(dec!(1.079))),
        );
        let c = fingerprint(
            DivergenceKind::SlMismatch,
            "EURUSD",
            Some(1),
            Some("t1"),
            Some(Value::Number(dec!(1.08))),
            Some(Value::Number(dec!(1.078))),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn fingerprint_is_stable_across_releases() {
        // Stored rows depend on this value: changing the hash would reopen every divergence.
        let fp = fingerprint(
            DivergenceKind::MissingAtBroker,
            "EURUSD",
            None,
            Some("t1"),
            Some(Value::Number(dec!(0.1))),
            None,
        );
        assert_eq!(fp, fingerprint_literal());
    }

    fn fingerprint_literal() -> String {
        // Computed once and pinned.
        let canonical = "v1\u{1f}missing_at_broker\u{1f}EURUSD\u{1f}\u{1f}t1\u{1f}0.1\u{1f}";
        fnv1a_hex(canonical)
    }

    /// The reference: FNV-1a over the whole canonical text at once.
    fn fnv1a_hex(text: &str) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.as_bytes() {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{hash:016x}")
    }

    #[rstest::rstest]
    #[case::all_fields(
        DivergenceKind::SlMismatch, Some(123), Some("t1"),
        Some(Value::Number(dec!(1.08500))), Some(Value::Number(dec!(-0.0010))),
        "v1\u{1f}sl_mismatch\u{1f}EURUSD\u{1f}123\u{1f}t1\u{1f}1.085\u{1f}-0.001"
    )]
    #[case::sides(
        DivergenceKind::SideMismatch,
        Some(u64::MAX),
        Some("t2"),
        Some(Value::Side(Side::Buy)),
        Some(Value::Side(Side::Sell)),
        "v1\u{1f}side_mismatch\u{1f}EURUSD\u{1f}18446744073709551615\u{1f}t2\u{1f}buy\u{1f}sell"
    )]
    #[case::no_ticket_no_trade(
        DivergenceKind::UnexpectedAtBroker, None, None,
        None, Some(Value::Number(dec!(100))),
        "v1\u{1f}unexpected_at_broker\u{1f}EURUSD\u{1f}\u{1f}\u{1f}\u{1f}100"
    )]
    #[case::integer_with_trailing_zeros(
        DivergenceKind::VolumeMismatch, Some(0), Some(""),
        Some(Value::Number(dec!(1.000))), Some(Value::Number(dec!(0.50))),
        "v1\u{1f}volume_mismatch\u{1f}EURUSD\u{1f}0\u{1f}\u{1f}1\u{1f}0.5"
    )]
    fn fingerprint_hashes_the_documented_canonical_text(
        #[case] kind: DivergenceKind,
        #[case] ticket: Option<u64>,
        #[case] trade_id: Option<&str>,
        #[case] expected: Option<Value>,
        #[case] actual: Option<Value>,
        #[case] canonical: &str,
    ) {
        let fp = fingerprint(kind, "EURUSD", ticket, trade_id, expected, actual);
        assert_eq!(fp, fnv1a_hex(canonical));
    }

    #[test]
    fn kinds_round_trip_through_text() {
        for kind in DivergenceKind::ALL {
            assert_eq!(kind.as_str().parse::<DivergenceKind>(), Ok(kind));
        }
    }
}
