//! Domain ⇄ row conversion: the only place that knows how domain values are stored.
//!
//! Decimals are stored as their exact text (`Decimal`'s `Display`, which keeps the scale)
//! and parsed back with `Decimal::from_str`, so `1.08500` comes back as `1.08500`. Tickets
//! are `u64` in the domain and 20 zero-padded decimal digits in `ticket_u64` (exact for
//! every `u64`, and text order is numeric order); the `BIGINT` `ticket` beside it is
//! written too when the value fits, and read only for rows that predate `ticket_u64`.
//! Times are truncated to whole microseconds on the way in, so SQLite and PostgreSQL
//! store the same instant.

use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use rust_decimal::Decimal;
use sea_orm::ActiveValue::{NotSet, Set};

use super::entities::{bot_trade, divergence};
use super::error::StoreError;
use crate::domain::close_reasons::deal_reason;
use crate::domain::{
    BotTrade, CloseDetail, Divergence, DivergenceKind, Price, Side, Unit, Value, Volume,
};

/// Status text of an open trade or divergence.
pub(super) const OPEN: &str = "open";
/// Status text of a closed trade.
pub(super) const CLOSED: &str = "closed";
/// Status text of a resolved divergence.
pub(super) const RESOLVED: &str = "resolved";

/// A time as the database keeps it: whole microseconds (PostgreSQL's precision).
pub(super) fn db_time(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// Digits of a stored ticket: enough for `u64::MAX`.
const TICKET_DIGITS: usize = 20;

/// A broker ticket as stored: `ticket_u64` (20 zero-padded digits, any `u64`) and the
/// `BIGINT` `ticket` when the value fits (`NULL` above `i64::MAX`).
pub(super) fn ticket_to_db(ticket: u64) -> (String, Option<i64>) {
    (
        format!("{ticket:0TICKET_DIGITS$}"),
        i64::try_from(ticket).ok(),
    )
}

/// A trade's version as stored: `version_u64` (20 zero-padded digits, any `u64`) and the
/// `BIGINT` `version`, saturated at `i64::MAX` (the column is `NOT NULL`).
pub(super) fn version_to_db(version: u64) -> (String, i64) {
    (
        format!("{version:0TICKET_DIGITS$}"),
        i64::try_from(version).unwrap_or(i64::MAX),
    )
}

/// The version stored in a `bot_trades` row (its `version_u64`).
pub(super) fn version_from_row(row: &bot_trade::Model) -> Result<u64, StoreError> {
    let key = row.pk.to_string();
    let cell = Cell {
        table: "bot_trades",
        row: &key,
    };
    cell.digits("version_u64", &row.version_u64)
}

/// A count as `INTEGER`; refuses counts beyond `i32::MAX`.
pub(super) fn count_to_db(field: &'static str, count: usize) -> Result<i32, StoreError> {
    i32::try_from(count).map_err(|_| StoreError::Unstorable {
        field,
        value: count.to_string(),
        reason: format!("counts above {} do not fit in INTEGER", i32::MAX),
    })
}

/// Where a stored value came from, for error messages.
#[derive(Clone, Copy)]
struct Cell<'a> {
    table: &'static str,
    row: &'a str,
}

impl Cell<'_> {
    fn bad(self, column: &'static str, value: &str, reason: impl Into<String>) -> StoreError {
        StoreError::BadData {
            table: self.table,
            column,
            row: self.row.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }

    fn decimal(self, column: &'static str, text: &str) -> Result<Decimal, StoreError> {
        Decimal::from_str(text).map_err(|e| self.bad(column, text, e.to_string()))
    }

    fn price(self, column: &'static str, text: &str) -> Result<Price, StoreError> {
        Price::new_checked(self.decimal(column, text)?)
            .map_err(|e| self.bad(column, text, e.to_string()))
    }

    fn opt_price(
        self,
        column: &'static str,
        text: Option<&str>,
    ) -> Result<Option<Price>, StoreError> {
        text.map(|t| self.price(column, t)).transpose()
    }

    /// The ticket of a row: `ticket_u64` when set, else the `BIGINT` `ticket`.
    fn ticket(self, text: Option<&str>, legacy: Option<i64>) -> Result<Option<u64>, StoreError> {
        if let Some(text) = text {
            return self.digits("ticket_u64", text).map(Some);
        }
        legacy
            .map(|v| {
                u64::try_from(v).map_err(|_| self.bad("ticket", &v.to_string(), "negative ticket"))
            })
            .transpose()
    }

    /// A `u64` stored as exactly 20 decimal digits.
    fn digits(self, column: &'static str, text: &str) -> Result<u64, StoreError> {
        let digits = text.len() == TICKET_DIGITS && text.bytes().all(|b| b.is_ascii_digit());
        match text.parse::<u64>() {
            Ok(value) if digits => Ok(value),
            _ => Err(self.bad(
                column,
                text,
                format!(
                    "not a number of {TICKET_DIGITS} decimal digits up to {}",
                    u64::MAX
                ),
            )),
        }
    }

    fn parse<T: FromStr>(self, column: &'static str, text: &str) -> Result<T, StoreError>
    where
        T::Err: ToString,
    {
        text.parse()
            .map_err(|e: T::Err| self.bad(column, text, e.to_string()))
    }
}

/// The row for `trade` in `account_id` at `version`, status open. `pk` is left to the
/// database.
pub(super) fn trade_row(
    account_id: &str,
    trade: &BotTrade,
    version: u64,
) -> Result<bot_trade::ActiveModel, StoreError> {
    if trade.account != account_id {
        return Err(StoreError::Unstorable {
            field: "bot_trades.account_id",
            value: trade.account.clone(),
            reason: format!(
                "trade {} belongs to another account than {account_id}",
                trade.id
            ),
        });
    }
    let (ticket_u64, ticket) = trade.ticket.map(ticket_to_db).unzip();
    let (version_u64, version) = version_to_db(version);
    Ok(bot_trade::ActiveModel {
        pk: NotSet,
        account_id: Set(account_id.to_owned()),
        trade_id: Set(trade.id.clone()),
        symbol: Set(trade.symbol.clone()),
        side: Set(trade.side.as_str().to_owned()),
        volume: Set(trade.volume.to_string()),
        entry_price: Set(trade.entry_price.to_string()),
        sl: Set(trade.sl.map(|p| p.to_string())),
        tp: Set(trade.tp.map(|p| p.to_string())),
        ticket: Set(ticket.flatten()),
        ticket_u64: Set(ticket_u64),
        client_id: Set(trade.client_id.clone()),
        opened_at: Set(trade.opened_at.map(db_time)),
        status: Set(OPEN.to_owned()),
        closed_at: Set(None),
        version: Set(version),
        version_u64: Set(version_u64),
    })
}

/// The domain trade stored in `row`.
pub(super) fn trade_from_row(row: bot_trade::Model) -> Result<BotTrade, StoreError> {
    let key = row.pk.to_string();
    let cell = Cell {
        table: "bot_trades",
        row: &key,
    };
    let volume = cell.decimal("volume", &row.volume)?;
    Ok(BotTrade {
        side: cell.parse::<Side>("side", &row.side)?,
        volume: Volume::new_checked(volume)
            .map_err(|e| cell.bad("volume", &row.volume, e.to_string()))?,
        entry_price: cell.price("entry_price", &row.entry_price)?,
        sl: cell.opt_price("sl", row.sl.as_deref())?,
        tp: cell.opt_price("tp", row.tp.as_deref())?,
        ticket: cell.ticket(row.ticket_u64.as_deref(), row.ticket)?,
        id: row.trade_id,
        account: row.account_id,
        symbol: row.symbol,
        client_id: row.client_id,
        opened_at: row.opened_at,
    })
}

/// The row for a newly opened `divergence` in `account_id`, first and last seen `at`.
pub(super) fn divergence_row(
    account_id: &str,
    divergence: &Divergence,
    at: DateTime<Utc>,
) -> divergence::ActiveModel {
    let (ticket_u64, ticket) = divergence.ticket.map(ticket_to_db).unzip();
    let at = db_time(at);
    let close = divergence.close.as_deref();
    divergence::ActiveModel {
        id: NotSet,
        account_id: Set(account_id.to_owned()),
        fingerprint: Set(divergence.fingerprint.clone()),
        kind: Set(divergence.kind.as_str().to_owned()),
        symbol: Set(divergence.symbol.clone()),
        ticket: Set(ticket.flatten()),
        ticket_u64: Set(ticket_u64),
        trade_id: Set(divergence.trade_id.clone()),
        expected: Set(divergence.expected.map(|v| v.to_string())),
        actual: Set(divergence.actual.map(|v| v.to_string())),
        delta: Set(divergence.delta.map(|d| d.to_string())),
        unit: Set(divergence.unit.map(|u| u.as_str().to_owned())),
        status: Set(OPEN.to_owned()),
        first_seen: Set(at),
        last_seen: Set(at),
        resolved_at: Set(None),
        close_reason: Set(close.map(|c| c.reason.as_str().to_owned())),
        close_price: Set(close.map(|c| c.price.to_string())),
        close_profit: Set(close.map(|c| c.profit.to_string())),
        closed_volume: Set(close.map(|c| c.volume.to_string())),
        close_time: Set(close.map(|c| db_time(c.time))),
        acknowledged_at: Set(None),
        acknowledged_by: Set(None),
        acknowledged_note: Set(None),
    }
}

/// The domain divergence stored in `row` (its stored fingerprint is kept as is).
pub(super) fn divergence_from_row(row: &divergence::Model) -> Result<Divergence, StoreError> {
    let key = row.id.to_string();
    let cell = Cell {
        table: "divergences",
        row: &key,
    };
    let value = |column, text: Option<&str>| -> Result<Option<Value>, StoreError> {
        text.map(|t| cell.parse::<Value>(column, t)).transpose()
    };
    Ok(Divergence {
        kind: cell.parse::<DivergenceKind>("kind", &row.kind)?,
        symbol: row.symbol.clone(),
        ticket: cell.ticket(row.ticket_u64.as_deref(), row.ticket)?,
        trade_id: row.trade_id.clone(),
        expected: value("expected", row.expected.as_deref())?,
        actual: value("actual", row.actual.as_deref())?,
        delta: row
            .delta
            .as_deref()
            .map(|t| cell.decimal("delta", t))
            .transpose()?,
        unit: row
            .unit
            .as_deref()
            .map(|t| cell.parse::<Unit>("unit", t))
            .transpose()?,
        fingerprint: row.fingerprint.clone(),
        close: close_from_row(cell, row)?.map(Box::new),
    })
}

/// The close detail of a row: from all of its columns, or none when every one is `NULL`
/// (a row of another kind, or one written before they existed). Some but not all of them
/// is bad data, named by the first missing column.
fn close_from_row(
    cell: Cell<'_>,
    row: &divergence::Model,
) -> Result<Option<CloseDetail>, StoreError> {
    let texts = [
        ("close_reason", row.close_reason.as_deref()),
        ("close_price", row.close_price.as_deref()),
        ("close_profit", row.close_profit.as_deref()),
        ("closed_volume", row.closed_volume.as_deref()),
    ];
    let (Some(reason), Some(price), Some(profit), Some(volume), Some(time)) = (
        texts[0].1,
        texts[1].1,
        texts[2].1,
        texts[3].1,
        row.close_time,
    ) else {
        let set = texts
            .iter()
            .find_map(|(column, text)| text.map(|t| (*column, t.to_owned())))
            .or(row.close_time.map(|t| ("close_time", t.to_rfc3339())));
        let Some((column, value)) = set else {
            return Ok(None);
        };
        let absent = texts
            .iter()
            .find(|(_, text)| text.is_none())
            .map_or("close_time", |(column, _)| *column);
        return Err(cell.bad(column, &value, format!("set without {absent}")));
    };
    Ok(Some(CloseDetail {
        reason: deal_reason(reason)
            .ok_or_else(|| cell.bad("close_reason", reason, "not a deal reason"))?,
        price: cell.price("close_price", price)?,
        profit: cell.decimal("close_profit", profit)?,
        volume: Volume::new_checked(cell.decimal("closed_volume", volume)?)
            .map_err(|e| cell.bad("closed_volume", volume, e.to_string()))?,
        time,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    #[rstest::rstest]
    #[case(0, "00000000000000000000", Some(0))]
    #[case(42, "00000000000000000042", Some(42))]
    #[case(i64::MAX as u64, "09223372036854775807", Some(i64::MAX))]
    #[case(1 << 63, "09223372036854775808", None)]
    #[case(u64::MAX, "18446744073709551615", None)]
    fn tickets_are_stored_as_20_digits_and_as_bigint_when_they_fit(
        #[case] ticket: u64,
        #[case] text: &str,
        #[case] bigint: Option<i64>,
    ) {
        assert_eq!(ticket_to_db(ticket), (text.to_owned(), bigint));
        let cell = Cell {
            table: "divergences",
            row: "1",
        };
        assert_eq!(cell.ticket(Some(text), None).ok(), Some(Some(ticket)));
        // The text wins over the BIGINT.
        assert_eq!(cell.ticket(Some(text), Some(7)).ok(), Some(Some(ticket)));
    }

    #[test]
    fn rows_without_ticket_u64_read_the_bigint_and_bad_tickets_are_named() {
        let cell = Cell {
            table: "bot_trades",
            row: "1",
        };
        assert_eq!(cell.ticket(None, Some(42)).ok(), Some(Some(42)));
        assert_eq!(cell.ticket(None, None).ok(), Some(None));
        assert!(cell.ticket(None, Some(-1)).is_err());
        for bad in [
            "42",
            "+0000000000000000042",
            "18446744073709551616",
            "0000000000000000004x",
        ] {
            let text = cell.ticket(Some(bad), None).unwrap_err().to_string();
            assert!(
                text.contains("bot_trades.ticket_u64") && text.contains(bad),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_stored_decimal_names_table_column_row_and_value() {
        let cell = Cell {
            table: "bot_trades",
            row: "7",
        };
        let err = cell.price("entry_price", "1,0851").map(|_| ()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("bot_trades.entry_price"), "{text}");
        assert!(text.contains("row 7") && text.contains("1,0851"), "{text}");
        assert!(cell.price("sl", "0").is_err());
        assert_eq!(cell.decimal("x", "1.08500").ok(), Some(dec!(1.08500)));
    }
}
