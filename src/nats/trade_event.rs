//! The bot's trade events, as they arrive on NATS:
//! `{"event_id", "type": "opened"|"modified"|"closed", "account", "trade": {…}, "version"}`.
//! `trade` has the fields of a trades file entry and is read by the same parser, so an
//! invalid field is refused with the same precise message; a `closed` event needs only
//! the trade's `id`. Unknown top-level fields are refused.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::domain::BotTrade;
use crate::input::InputError;

/// What happened to the trade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeChange {
    /// Opened or modified: the trade as it is now.
    Open(BotTrade),
    /// Closed: the trade's id.
    Closed(String),
}

/// One trade event, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeEvent {
    /// The bot's id of the event (for logs).
    pub event_id: String,
    /// Account.
    pub account: String,
    /// The change.
    pub change: TradeChange,
    /// The bot's version of the trade after this event.
    pub version: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    event_id: String,
    #[serde(rename = "type")]
    kind: String,
    account: String,
    #[serde(borrow)]
    trade: &'a RawValue,
    version: u64,
}

#[derive(Deserialize)]
struct IdOnly {
    id: Option<serde_json::Value>,
}

/// Reads one event; `source` names the message in errors (`nats <subject> #<seq>`).
pub fn parse_event(source: &str, payload: &[u8]) -> Result<TradeEvent, InputError> {
    let text = std::str::from_utf8(payload)
        .map_err(|_| InputError::whole(source, "the message is not UTF-8"))?;
    let wire: Wire<'_> = serde_json::from_str(text)
        .map_err(|e| InputError::whole(source, format!("not a trade event: {e}")))?;
    let field = |name: &str, value: &str, reason: &str| InputError {
        file: source.to_owned(),
        index: None,
        field: Some(name.to_owned()),
        value: Some(format!("{value:?}")),
        reason: reason.to_owned(),
    };
    if wire.event_id.trim().is_empty() {
        return Err(field("event_id", &wire.event_id, "must not be empty"));
    }
    let change = match wire.kind.as_str() {
        "opened" | "modified" => {
            let text = format!("[{}]", wire.trade.get());
            let mut trades =
                crate::input::parse_trades(source, &text, &wire.account).map_err(|mut e| {
                    // One trade, not an array: say `trade.<field>` instead of an element.
                    e.index = None;
                    e.field = Some(format!("trade.{}", e.field.as_deref().unwrap_or("")));
                    e
                })?;
            match trades.pop() {
                Some(t) => TradeChange::Open(t),
                None => return Err(field("trade", wire.trade.get(), "missing")),
            }
        }
        "closed" => {
            let id = serde_json::from_str::<IdOnly>(wire.trade.get())
                .ok()
                .and_then(|t| t.id);
            match id {
                Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {
                    TradeChange::Closed(s)
                }
                Some(serde_json::Value::Number(n)) => TradeChange::Closed(n.to_string()),
                other => {
                    let shown = other.map(|v| v.to_string()).unwrap_or_default();
                    return Err(field(
                        "trade.id",
                        &shown,
                        "a closed event needs the trade's id",
                    ));
                }
            }
        }
        other => {
            return Err(field(
                "type",
                other,
                "expected \"opened\", \"modified\" or \"closed\"",
            ));
        }
    };
    if wire.account.trim().is_empty() {
        return Err(field("account", &wire.account, "must not be empty"));
    }
    Ok(TradeEvent {
        event_id: wire.event_id,
        account: wire.account,
        change,
        version: wire.version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENED: &str = r#"{"event_id": "e-1", "type": "opened", "account": "live-1",
        "trade": {"id": "t-1", "symbol": "EURUSD", "side": "buy", "volume": "0.10",
        "entry_price": "1.08512", "sl": "1.08000", "ticket": 46648037}, "version": 3}"#;

    #[test]
    fn an_opened_event_carries_the_trade_exactly() {
        let e = parse_event("nats x #1", OPENED.as_bytes()).expect("valid");
        assert_eq!(
            (e.event_id.as_str(), e.account.as_str(), e.version),
            ("e-1", "live-1", 3)
        );
        let TradeChange::Open(t) = e.change else {
            panic!("not open: {e:?}");
        };
        assert_eq!(t.entry_price.to_string(), "1.08512");
        assert_eq!(t.account, "live-1");
    }

    #[test]
    fn a_closed_event_needs_only_the_id() {
        let text = r#"{"event_id": "e-2", "type": "closed", "account": "a", "trade": {"id": "t-1"}, "version": 4}"#;
        let e = parse_event("s", text.as_bytes()).expect("valid");
        assert_eq!(e.change, TradeChange::Closed("t-1".into()));
    }

    #[rstest::rstest]
    #[case("{not json", "not a trade event")]
    #[case(
        r#"{"event_id": "e", "type": "opened", "account": "a", "trade": {}, "version": 1, "x": 1}"#,
        "unknown field `x`"
    )]
    #[case(
        r#"{"event_id": "e", "type": "reopened", "account": "a", "trade": {}, "version": 1}"#,
        "field \"type\", value \"reopened\""
    )]
    #[case(
        r#"{"event_id": "e", "type": "opened", "account": "a", "trade": {}, "version": -1}"#,
        "not a trade event"
    )]
    #[case(
        r#"{"event_id": "", "type": "opened", "account": "a", "trade": {}, "version": 1}"#,
        "field \"event_id\""
    )]
    #[case(
        r#"{"event_id": "e", "type": "closed", "account": "a", "trade": {}, "version": 1}"#,
        "field \"trade.id\""
    )]
    fn a_bad_event_is_refused_with_what_is_wrong(#[case] text: &str, #[case] says: &str) {
        let e = parse_event("nats bot.trades.a #7", text.as_bytes()).expect_err(text);
        let shown = e.to_string();
        assert!(shown.starts_with("nats bot.trades.a #7"), "{shown}");
        assert!(shown.contains(says), "{says:?} not in {shown}");
    }

    #[test]
    fn an_invalid_trade_field_names_the_field_and_value_like_a_trades_file() {
        let text = OPENED.replace(r#""volume": "0.10""#, r#""volume": "-1""#);
        let e = parse_event("nats bot.trades.a #8", text.as_bytes()).expect_err("negative");
        let shown = e.to_string();
        assert!(shown.contains("field \"trade.volume\""), "{shown}");
        assert!(shown.contains("-1"), "{shown}");
        let file = crate::input::parse_trades("f", r#"[{"id": "t", "symbol": "EURUSD", "side": "buy", "volume": "-1", "entry_price": "1"}]"#, "a")
            .expect_err("negative");
        assert_eq!(e.reason, file.reason, "the same message as the trades file");
    }
}
