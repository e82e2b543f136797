//! Generated accounts for load: `<prefix>000001` … `<prefix>NNNNNN`, each holding the same
//! positions (so one rendered answer serves every account), at the prices the fake quotes,
//! with documented account information, no pending orders, and the deals of the positions
//! closed through `trade`. A position closed twice is counted as such.

use std::collections::HashSet;
use std::time::SystemTime;

use axum::body::Body;
use axum::http::Response;
use chrono::{DateTime, Utc};

use crate::scripted::{ACCOUNT, Inner, deals_of, iso, json, price_body};
use crate::stats::Counters;

/// A symbol the fleet trades: name, digits, bid, ask, and two prices 100 pips below and
/// above the bid (a buy's stop loss and take profit; a sell's the other way round).
struct Symbol {
    name: &'static str,
    digits: u32,
    bid: &'static str,
    ask: &'static str,
    below: &'static str,
    above: &'static str,
    contract: u32,
}

const SYMBOLS: [Symbol; 8] = [
    sym(
        "EURUSD", 5, "1.08512", "1.08519", "1.07512", "1.09512", 100_000,
    ),
    sym(
        "GBPUSD", 5, "1.26431", "1.26440", "1.25431", "1.27431", 100_000,
    ),
    sym(
        "USDJPY", 3, "151.412", "151.420", "150.412", "152.412", 100_000,
    ),
    sym(
        "AUDUSD", 5, "0.65820", "0.65828", "0.64820", "0.66820", 100_000,
    ),
    sym(
        "USDCHF", 5, "0.88210", "0.88218", "0.87210", "0.89210", 100_000,
    ),
    sym(
        "EURJPY", 3, "163.250", "163.262", "162.250", "164.250", 100_000,
    ),
    sym("XAUUSD", 2, "2000.90", "2001.10", "1990.90", "2010.90", 100),
    sym(
        "AUDNZD", 5, "1.05297", "1.05309", "1.04297", "1.06297", 100_000,
    ),
];

const fn sym(
    name: &'static str,
    digits: u32,
    bid: &'static str,
    ask: &'static str,
    below: &'static str,
    above: &'static str,
    contract: u32,
) -> Symbol {
    Symbol {
        name,
        digits,
        bid,
        ask,
        below,
        above,
        contract,
    }
}

/// The magic number of every generated position.
pub const MAGIC: u64 = 1000;

/// When every generated position was opened.
pub const OPENED_AT: &str = "2026-12-01T08:00:00.000Z";

/// One generated position, as the bot that opened it would record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetPosition {
    /// MetaApi's position id (the MT5 ticket).
    pub ticket: u64,
    /// Symbol.
    pub symbol: &'static str,
    /// Buy (else sell).
    pub buy: bool,
    /// Lots, as MetaApi writes them.
    pub volume: &'static str,
    /// Open price (the bid at which the fake quotes the symbol).
    pub open_price: &'static str,
    /// Stop loss.
    pub stop_loss: &'static str,
    /// Take profit.
    pub take_profit: &'static str,
}

/// The generated accounts.
#[derive(Debug, Clone)]
pub struct Fleet {
    prefix: String,
    accounts: usize,
    positions: Vec<FleetPosition>,
    /// The positions answer of an account that closed none.
    body: String,
}

impl Fleet {
    /// `accounts` accounts named `prefix` + six digits (from 1), `positions` positions
    /// each.
    pub fn new(prefix: &str, accounts: usize, positions: usize) -> Self {
        let positions: Vec<FleetPosition> = (0..positions).map(position).collect();
        let body = render(positions.iter());
        Self {
            prefix: prefix.to_owned(),
            accounts,
            positions,
            body,
        }
    }

    /// The id of account `i` (1-based).
    pub fn account_id(&self, i: usize) -> String {
        format!("{}{i:06}", self.prefix)
    }

    /// Every account id, in order.
    pub fn account_ids(&self) -> impl Iterator<Item = String> + '_ {
        (1..=self.accounts).map(|i| self.account_id(i))
    }

    /// Whether `id` is one of the generated accounts.
    pub fn contains(&self, id: &str) -> bool {
        id.strip_prefix(self.prefix.as_str())
            .filter(|n| n.len() >= 6 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| (1..=self.accounts).contains(&n))
    }

    /// The positions each account holds until closed.
    pub fn positions(&self) -> &[FleetPosition] {
        &self.positions
    }

    /// The bot's trades of an account, one per position it holds (ids `t0`, `t1` …): the
    /// JSON objects of a `trades import` line's `trades` array, joined by commas.
    pub fn trades_json(&self) -> String {
        let trades: Vec<String> = self
            .positions
            .iter()
            .enumerate()
            .map(|(k, p)| {
                format!(
                    r#"{{"id":"t{k}","symbol":"{}","side":"{}","volume":"{}","entry_price":"{}","sl":"{}","tp":"{}","ticket":{}}}"#,
                    p.symbol,
                    if p.buy { "buy" } else { "sell" },
                    p.volume,
                    p.open_price,
                    p.stop_loss,
                    p.take_profit,
                    p.ticket
                )
            })
            .collect();
        trades.join(",")
    }

    /// The answer to one request of a generated account (the state lock is held, so
    /// closes and answers agree).
    pub(crate) fn answer(
        &self,
        g: &mut Inner,
        counters: &Counters,
        account: &str,
        (endpoint, body): (&str, &str),
        now: SystemTime,
    ) -> Response<Body> {
        if let Some(symbol) = endpoint.strip_prefix("current-price/") {
            return match SYMBOLS.iter().find(|s| s.name == symbol) {
                Some(s) => json(
                    200,
                    price_body(s.name, s.bid, s.ask, DateTime::<Utc>::from(now)),
                ),
                None => not_found(symbol),
            };
        }
        if let Some(symbol) = endpoint.strip_prefix("specification/") {
            return match SYMBOLS.iter().find(|s| s.name == symbol) {
                Some(s) => json(200, specification(s)),
                None => not_found(symbol),
            };
        }
        if let Some(id) = endpoint.strip_prefix("history-deals/position/") {
            return deals_of(g, account, id);
        }
        let closed = g.closed.get(account);
        match endpoint {
            "positions" => match closed {
                None => json(200, self.body.clone()),
                Some(closed) => json(200, render(self.open(closed))),
            },
            "orders" => json(200, "[]"),
            "account-information" => json(200, ACCOUNT),
            "trade" => self.close(g, counters, account, body, now),
            _ => json(
                404,
                r#"{"id": 4, "error": "NotFoundError", "message": "no route"}"#,
            ),
        }
    }

    fn open<'a>(&'a self, closed: &'a HashSet<String>) -> impl Iterator<Item = &'a FleetPosition> {
        self.positions
            .iter()
            .filter(|p| !closed.contains(&p.ticket.to_string()))
    }

    /// `POSITION_CLOSE_ID` of a generated position: closed once (with its closing deal),
    /// answered `TRADE_RETCODE_POSITION_CLOSED` and counted as repeated afterwards.
    fn close(
        &self,
        g: &mut Inner,
        counters: &Counters,
        account: &str,
        request: &str,
        now: SystemTime,
    ) -> Response<Body> {
        let request: serde_json::Value = serde_json::from_str(request).unwrap_or_default();
        let (Some("POSITION_CLOSE_ID"), Some(id)) = (
            request["actionType"].as_str(),
            request["positionId"].as_str(),
        ) else {
            return json(
                400,
                r#"{"id": 3, "error": "ValidationError", "message": "Validation failed"}"#,
            );
        };
        let Some(p) = self.positions.iter().find(|p| p.ticket.to_string() == id) else {
            return position_closed();
        };
        let closed = g.closed.entry(account.to_owned()).or_default();
        if !closed.insert(id.to_owned()) {
            counters.close(true);
            return position_closed();
        }
        counters.close(false);
        let deal = serde_json::json!({
            "id": format!("8{id}"), "type": if p.buy { "DEAL_TYPE_SELL" } else { "DEAL_TYPE_BUY" },
            "entryType": "DEAL_ENTRY_OUT", "reason": "DEAL_REASON_EXPERT", "positionId": id,
            "symbol": p.symbol, "volume": p.volume.parse::<f64>().unwrap_or_default(),
            "price": p.open_price.parse::<f64>().unwrap_or_default(), "profit": 0,
            "time": iso(now), "platform": "mt5",
        });
        g.deals.entry(account.to_owned()).or_default().push(deal);
        json(
            200,
            format!(
                r#"{{"numericCode": 10009, "stringCode": "TRADE_RETCODE_DONE", "message": "Request completed", "orderId": "9{id}", "positionId": "{id}"}}"#
            ),
        )
    }
}

fn position_closed() -> Response<Body> {
    json(
        200,
        r#"{"numericCode": 10036, "stringCode": "TRADE_RETCODE_POSITION_CLOSED", "message": "Position doesn't exist"}"#,
    )
}

fn not_found(symbol: &str) -> Response<Body> {
    json(
        404,
        format!(r#"{{"id": 4, "error": "NotFoundError", "message": "Symbol {symbol} not found"}}"#),
    )
}

fn position(k: usize) -> FleetPosition {
    let s = &SYMBOLS[k % SYMBOLS.len()];
    let buy = k.is_multiple_of(2);
    FleetPosition {
        ticket: 100_000_001 + k as u64,
        symbol: s.name,
        buy,
        volume: "0.1",
        open_price: s.bid,
        stop_loss: if buy { s.below } else { s.above },
        take_profit: if buy { s.above } else { s.below },
    }
}

fn specification(s: &Symbol) -> String {
    let point = format!("0.{:0>width$}", 1, width = s.digits as usize);
    format!(
        r#"{{"symbol": "{}", "tickSize": {point}, "minVolume": 0.01, "maxVolume": 100, "volumeStep": 0.01, "contractSize": {}, "digits": {}, "point": {point}}}"#,
        s.name, s.contract, s.digits
    )
}

/// A MetaApi positions list of `positions`, in MetaApi's shape.
fn render<'a>(positions: impl Iterator<Item = &'a FleetPosition>) -> String {
    let list: Vec<serde_json::Value> = positions
        .map(|p| {
            let price: f64 = p.open_price.parse().unwrap_or_default();
            serde_json::json!({
                "id": p.ticket.to_string(),
                "type": if p.buy { "POSITION_TYPE_BUY" } else { "POSITION_TYPE_SELL" },
                "symbol": p.symbol,
                "magic": MAGIC,
                "time": OPENED_AT,
                "brokerTime": "2026-12-01 11:00:00.000",
                "openPrice": price,
                "currentPrice": price,
                "currentTickValue": 1,
                "stopLoss": p.stop_loss.parse::<f64>().unwrap_or_default(),
                "takeProfit": p.take_profit.parse::<f64>().unwrap_or_default(),
                "volume": p.volume.parse::<f64>().unwrap_or_default(),
                "swap": 0,
                "profit": 0,
                "commission": -0.5,
                "updateTime": OPENED_AT,
                "unrealizedProfit": 0,
                "realizedProfit": -0.5,
            })
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_recognised_and_nothing_else() {
        let f = Fleet::new("ma-", 12, 3);
        assert_eq!(f.account_id(7), "ma-000007");
        assert!(f.contains("ma-000001") && f.contains("ma-000012"));
        assert!(!f.contains("ma-000000") && !f.contains("ma-000013"));
        assert!(!f.contains("ma-1") && !f.contains("xx-000001") && !f.contains("ma-00000a"));
        assert_eq!(f.account_ids().count(), 12);
    }

    #[test]
    fn positions_render_in_metaapi_shape_with_sell_stops_above() {
        let f = Fleet::new("ma-", 1, 3);
        let list: Vec<serde_json::Value> = serde_json::from_str(&f.body).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0]["id"], "100000001");
        assert_eq!(list[0]["type"], "POSITION_TYPE_BUY");
        assert_eq!(list[1]["type"], "POSITION_TYPE_SELL");
        assert!(list[1]["stopLoss"].as_f64() > list[1]["openPrice"].as_f64());
        assert!(specification(&SYMBOLS[2]).contains(r#""point": 0.001"#));
    }
}
