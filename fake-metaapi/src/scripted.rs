//! A fake MetaApi on 127.0.0.1: MetaApi's documented paths and payload shapes, scripted per
//! account, with every request recorded (account, endpoint, time, status, token seen).
//! `POST …/trade` with `POSITION_CLOSE_ID` closes a position in the fake: later positions
//! answers leave it out. `GET …/symbols/{symbol}/current-price` answers a quote stamped
//! now (AUDNZD and XAUUSD; other symbols are unknown), or what [`FakeMetaApi::set_price`]
//! scripted. [`FakeMetaApi::set_positions`] changes what an account holds (a bot opening
//! positions); [`FakeMetaApi::answer_trades`] scripts the answers of the next trade
//! requests (a refused close leaves the position open).
//!
//! `GET …/orders` answers what [`FakeMetaApi::set_orders`] scripted (`[]` otherwise),
//! without the orders cancelled through `trade` (`ORDER_CANCEL`; an unknown order answers
//! `ERR_TRADE_ORDER_NOT_FOUND`). `GET …/history-deals/position/{id}` answers the deals of
//! [`FakeMetaApi::add_deals`] of that position, and the closing deal (reason
//! `DEAL_REASON_EXPERT`) of every position closed through `trade`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use axum::serve::ListenerExt;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::fleet::Fleet;
use crate::stats::{Counters, Latency, STATS_PATH, Stats};

/// MetaApi's documented example positions (a copy of the shared fixture).
pub const POSITIONS: &str = include_str!("../../examples/data/metaapi-positions.json");

/// MetaApi's documented example account information.
pub const ACCOUNT: &str = r#"{"broker": "True ECN Trading Ltd", "currency": "USD",
  "server": "ICMarketsSC-Demo", "balance": 7319.9, "equity": 7306.649913200001,
  "margin": 184.1, "freeMargin": 7120.22, "leverage": 100, "marginLevel": 3967.58283542,
  "tradeAllowed": true, "marginMode": "ACCOUNT_MARGIN_MODE_RETAIL_HEDGING",
  "name": "Will Turner", "login": 367906877, "credit": 0,
  "accountCurrencyExchangeRate": 1, "type": "ACCOUNT_TRADE_MODE_DEMO"}"#;

/// What one account answers.
#[derive(Debug, Clone)]
pub enum Script {
    /// The documented positions and account information.
    Ok,
    /// This positions body (status 200), documented account information.
    Positions(String),
    /// This account-information body (status 200), documented positions.
    Account(String),
    /// Every request: this status and body; `{token}` in the body is replaced by the
    /// token the request carried (a server that echoes secrets).
    Status(u16, String),
    /// The first positions request answers 429 with `metadata.recommendedRetryTime` this
    /// far ahead; until then positions requests keep getting 429 (and count as early);
    /// afterwards [`Script::Ok`].
    RateLimited(Duration),
    /// Like [`Script::RateLimited`], with a `Retry-After: <seconds>` header and no
    /// metadata in the body.
    RetryAfterHeader(u64),
    /// Every request waits this long, then answers as [`Script::Ok`].
    Slow(Duration),
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// MetaApi account id in the path.
    pub account: String,
    /// `positions`, `account-information`, `orders`, `specification/<symbol>`,
    /// `current-price/<symbol>`, `history-deals/position/<id>` or `trade`.
    pub endpoint: String,
    /// Status answered.
    pub status: u16,
    /// Whether the `auth-token` header carried the expected token.
    pub authorised: bool,
}

#[derive(Default)]
pub(crate) struct Inner {
    token: String,
    scripts: HashMap<String, Script>,
    seen: Vec<Seen>,
    not_before: HashMap<String, SystemTime>,
    early: HashMap<String, usize>,
    /// MetaApi account id → ids of the positions closed through `trade`.
    pub(crate) closed: HashMap<String, HashSet<String>>,
    /// (MetaApi account id, symbol) → the scripted current-price answer.
    prices: HashMap<(String, String), (u16, String)>,
    /// MetaApi account id → the scripted answers (status, body) of its next trade requests.
    trade_answers: HashMap<String, VecDeque<(u16, String)>>,
    /// MetaApi account id → its pending orders (a MetaApi orders list).
    orders: HashMap<String, String>,
    /// MetaApi account id → ids of the orders cancelled through `trade`.
    cancelled: HashMap<String, HashSet<String>>,
    /// MetaApi account id → its deals (MetaApi deal objects).
    pub(crate) deals: HashMap<String, Vec<serde_json::Value>>,
}

/// What the handler shares: the scripted state behind a lock, the generated fleet (read
/// only) and the counters.
struct Shared {
    inner: Mutex<Inner>,
    fleet: Option<Fleet>,
    latency: Latency,
    counters: Counters,
}

/// How to start a fake: [`FakeMetaApi::start`] for the scripted accounts of a test,
/// [`FakeMetaApi::start_with`] for anything else.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen (`127.0.0.1:0`: a free port).
    pub listen: SocketAddr,
    /// The token every request must carry in `auth-token`.
    pub token: String,
    /// Scripted accounts (MetaApi account id → script).
    pub scripts: Vec<(String, Script)>,
    /// Generated accounts besides the scripted ones.
    pub fleet: Option<Fleet>,
    /// Every answer waits this long first (none by default).
    pub latency: Latency,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: String::new(),
            scripts: Vec::new(),
            fleet: None,
            latency: Latency::default(),
        }
    }
}

/// A running fake; stops when dropped.
pub struct FakeMetaApi {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeMetaApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeMetaApi {
    /// Starts a fake that accepts `token`, answering per `scripts` (MetaApi account id →
    /// script; unknown accounts get 404).
    pub async fn start(token: &str, scripts: &[(&str, Script)]) -> Self {
        Self::start_with(Options {
            token: token.to_owned(),
            scripts: scripts
                .iter()
                .map(|(a, s)| ((*a).to_owned(), s.clone()))
                .collect(),
            ..Options::default()
        })
        .await
        .expect("bind 127.0.0.1")
    }

    /// Starts a fake as `options` describe.
    pub async fn start_with(options: Options) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                token: options.token,
                scripts: options.scripts.into_iter().collect(),
                ..Inner::default()
            }),
            fleet: options.fleet,
            latency: options.latency,
            counters: Counters::default(),
        });
        let listener = tokio::net::TcpListener::bind(options.listen).await?;
        let addr = listener.local_addr()?;
        let tapped = shared.clone();
        let listener = listener.tap_io(move |tcp| {
            tapped.counters.connection();
            let _ = tcp.set_nodelay(true);
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, task })
    }

    /// Connections accepted and requests answered so far.
    pub fn stats(&self) -> Stats {
        self.shared.counters.read()
    }

    /// Runs until the task serving requests ends (it does not, unless the listener
    /// fails).
    pub async fn serve_forever(mut self) {
        let _ = (&mut self.task).await;
    }

    /// The base URL to configure.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.lock()
    }

    /// Every request received so far for `account`.
    pub fn seen(&self, account: &str) -> Vec<Seen> {
        self.lock()
            .seen
            .iter()
            .filter(|s| s.account == account)
            .cloned()
            .collect()
    }

    /// Requests received so far for `account` on `endpoint`.
    pub fn count(&self, account: &str, endpoint: &str) -> usize {
        self.seen(account)
            .iter()
            .filter(|s| s.endpoint == endpoint)
            .count()
    }

    /// Positions requests of a rate-limited `account` that came before the time it was
    /// told to wait for.
    pub fn early(&self, account: &str) -> usize {
        self.lock().early.get(account).copied().unwrap_or(0)
    }

    /// From now on, `GET …/symbols/{symbol}/current-price` of `account` answers `status`
    /// with `body`.
    pub fn set_price(&self, account: &str, symbol: &str, status: u16, body: impl Into<String>) {
        self.lock().prices.insert(
            (account.to_owned(), symbol.to_owned()),
            (status, body.into()),
        );
    }

    /// From now on, `account` holds this positions list (status 200, documented account
    /// information); positions closed through `trade` stay closed.
    pub fn set_positions(&self, account: &str, body: impl Into<String>) {
        self.lock()
            .scripts
            .insert(account.to_owned(), Script::Positions(body.into()));
    }

    /// The next trade requests of `account` get these answers (status, body), in order,
    /// and close nothing; later ones are answered as usual.
    pub fn answer_trades(&self, account: &str, answers: impl IntoIterator<Item = (u16, String)>) {
        self.lock()
            .trade_answers
            .entry(account.to_owned())
            .or_default()
            .extend(answers);
    }

    /// From now on, `account`'s pending orders are this MetaApi orders list (orders
    /// cancelled through `trade` stay cancelled).
    pub fn set_orders(&self, account: &str, body: impl Into<String>) {
        self.lock().orders.insert(account.to_owned(), body.into());
    }

    /// Adds these deals (a MetaApi deals list) to `account`'s history.
    pub fn add_deals(&self, account: &str, body: &str) {
        let deals: Vec<serde_json::Value> = serde_json::from_str(body).expect("a deals list");
        self.lock()
            .deals
            .entry(account.to_owned())
            .or_default()
            .extend(deals);
    }

    /// The ids of the orders cancelled through `trade` on `account`.
    pub fn cancelled(&self, account: &str) -> HashSet<String> {
        self.lock()
            .cancelled
            .get(account)
            .cloned()
            .unwrap_or_default()
    }

    /// The ids of the positions `account` holds now.
    pub fn open(&self, account: &str) -> Vec<String> {
        let g = self.lock();
        let body = match g.scripts.get(account) {
            Some(Script::Positions(body)) => open_positions(&g, account, body),
            Some(_) => open_positions(&g, account, POSITIONS),
            None => return Vec::new(),
        };
        serde_json::from_str::<Vec<serde_json::Value>>(&body)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p["id"].as_str().map(str::to_owned))
            .collect()
    }

    /// Whether any request so far lacked the expected token.
    pub fn unauthorised_requests(&self) -> usize {
        self.lock().seen.iter().filter(|s| !s.authorised).count()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn iso(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn json(status: u16, body: impl Into<Body>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap_or_default()
}

fn specification(symbol: &str) -> Response<Body> {
    // AUDNZD as documented (digits 5: the pip agrees with the FX rule); gold, which no
    // configuration in the tests describes, by its digits.
    let body = match symbol {
        "XAUUSD" => r#"{"symbol": "XAUUSD", "tickSize": 0.01, "contractSize": 100,
            "digits": 2, "point": 0.01}"#
            .to_owned(),
        "AUDNZD" => r#"{"symbol": "AUDNZD", "tickSize": 0.00001, "minVolume": 0.01,
            "maxVolume": 100, "volumeStep": 0.01, "contractSize": 100000, "digits": 5,
            "point": 0.00001}"#
            .to_owned(),
        _ => {
            return json(
                404,
                format!(
                    r#"{{"id": 4, "error": "NotFoundError", "message": "Symbol {symbol} not found"}}"#
                ),
            );
        }
    };
    json(200, body)
}

/// MetaApi's current-price answer for `symbol`: `bid`, `ask`, and `time` in UTC (with the
/// broker's clock, three hours ahead, in `brokerTime` as MetaApi sends it).
pub fn price_body(symbol: &str, bid: &str, ask: &str, time: DateTime<Utc>) -> String {
    let broker_time = (time + chrono::Duration::hours(3)).format("%Y-%m-%d %H:%M:%S%.3f");
    format!(
        r#"{{"symbol": "{symbol}", "bid": {bid}, "ask": {ask}, "profitTickValue": 0.59731,
        "lossTickValue": 0.59736, "accountCurrencyExchangeRate": 1,
        "time": "{}", "brokerTime": "{broker_time}"}}"#,
        time.to_rfc3339_opts(SecondsFormat::Millis, true)
    )
}

/// The current price of `symbol` on `account`: scripted, or a quote stamped now.
fn price(g: &Inner, account: &str, symbol: &str, now: SystemTime) -> Response<Body> {
    if let Some((status, body)) = g.prices.get(&(account.to_owned(), symbol.to_owned())) {
        return json(*status, body.clone());
    }
    let (bid, ask) = match symbol {
        "AUDNZD" => ("1.05297", "1.05309"),
        "XAUUSD" => ("2000.90", "2001.10"),
        _ => {
            return json(
                404,
                format!(
                    r#"{{"id": 4, "error": "NotFoundError", "message": "Symbol {symbol} not found"}}"#
                ),
            );
        }
    };
    json(
        200,
        price_body(symbol, bid, ask, DateTime::<Utc>::from(now)),
    )
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response<Body> {
    if uri.path() == STATS_PATH {
        return json(200, shared.counters.read().to_json());
    }
    let path: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let (account, endpoint) = match path.as_slice() {
        ["users", "current", "accounts", a, "trade"] if method == Method::POST => {
            (*a, "trade".to_owned())
        }
        ["users", "current", "accounts", a, "positions"] => (*a, "positions".to_owned()),
        ["users", "current", "accounts", a, "orders"] => (*a, "orders".to_owned()),
        [
            "users",
            "current",
            "accounts",
            a,
            "history-deals",
            "position",
            p,
        ] => (*a, format!("history-deals/position/{p}")),
        ["users", "current", "accounts", a, "account-information"] => {
            (*a, "account-information".to_owned())
        }
        [
            "users",
            "current",
            "accounts",
            a,
            "symbols",
            s,
            "specification",
        ] => (*a, format!("specification/{s}")),
        [
            "users",
            "current",
            "accounts",
            a,
            "symbols",
            s,
            "current-price",
        ] => (*a, format!("current-price/{s}")),
        _ => {
            return json(
                404,
                r#"{"id": 4, "error": "NotFoundError", "message": "no route"}"#,
            );
        }
    };
    shared.counters.request(&endpoint);
    let token = headers
        .get("auth-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if let Some(wait) = shared.latency.draw() {
        tokio::time::sleep(wait).await;
    }
    let now = SystemTime::now();
    if let Some(fleet) = shared.fleet.as_ref().filter(|f| f.contains(account)) {
        let mut g = shared.lock();
        if !g.scripts.contains_key(account) {
            if token != g.token {
                return json(
                    401,
                    r#"{"id": 1, "error": "UnauthorizedError", "message": "bad token"}"#,
                );
            }
            return fleet.answer(&mut g, &shared.counters, account, (&endpoint, &body), now);
        }
    }
    let (authorised, script, response) = {
        let mut g = shared.lock();
        let authorised = token == g.token;
        let script = g.scripts.get(account).cloned();
        let response = decide(
            &mut g,
            account,
            (&endpoint, &body),
            script.as_ref(),
            &token,
            now,
            authorised,
        );
        (authorised, script, response)
    };
    if let Some(Script::Slow(d)) = script {
        tokio::time::sleep(d).await;
    }
    let mut g = shared.lock();
    g.seen.push(Seen {
        account: account.to_owned(),
        endpoint,
        status: response.status().as_u16(),
        authorised,
    });
    response
}

/// The answer to one request (the state lock is held: decisions and records agree).
fn decide(
    g: &mut Inner,
    account: &str,
    (endpoint, body): (&str, &str),
    script: Option<&Script>,
    token: &str,
    now: SystemTime,
    authorised: bool,
) -> Response<Body> {
    if !authorised {
        return json(
            401,
            r#"{"id": 1, "error": "UnauthorizedError", "message": "bad token"}"#,
        );
    }
    let Some(script) = script else {
        return json(
            404,
            format!(
                r#"{{"id": 4, "error": "NotFoundError", "message": "Trading account with id {account} not found"}}"#
            ),
        );
    };
    if let Some(symbol) = endpoint.strip_prefix("specification/") {
        return specification(symbol);
    }
    if let Some(symbol) = endpoint.strip_prefix("current-price/") {
        return price(g, account, symbol, now);
    }
    let positions = endpoint == "positions";
    match script {
        Script::Status(code, body) => json(*code, body.replace("{token}", token)),
        _ if endpoint == "trade" => {
            let scripted = g
                .trade_answers
                .get_mut(account)
                .and_then(VecDeque::pop_front);
            match scripted {
                Some((status, answer)) => json(status, answer),
                None => close(g, account, script, body),
            }
        }
        _ if endpoint == "orders" => json(200, open_orders(g, account)),
        _ if endpoint.starts_with("history-deals/position/") => deals_of(
            g,
            account,
            endpoint.trim_start_matches("history-deals/position/"),
        ),
        Script::Positions(body) if positions => json(200, open_positions(g, account, body)),
        Script::Account(body) if !positions => json(200, body.clone()),
        Script::RateLimited(wait) if positions => {
            let until = *g
                .not_before
                .entry(account.to_owned())
                .or_insert(now + *wait);
            if now >= until {
                return json(200, POSITIONS);
            }
            if g.seen
                .iter()
                .any(|s| s.account == account && s.endpoint == "positions")
            {
                *g.early.entry(account.to_owned()).or_default() += 1;
            }
            let body = format!(
                r#"{{"id": 1, "error": "TooManyRequestsError", "message": "The getPositions API allows 25 requests per 1 minutes", "metadata": {{"periodInMinutes": 1, "requestsPerPeriodAllowed": 25, "recommendedRetryTime": "{}"}}}}"#,
                iso(until)
            );
            json(429, body)
        }
        Script::RetryAfterHeader(secs) if positions => {
            let until = *g
                .not_before
                .entry(account.to_owned())
                .or_insert(now + Duration::from_secs(*secs));
            if now >= until {
                return json(200, POSITIONS);
            }
            if g.seen
                .iter()
                .any(|s| s.account == account && s.endpoint == "positions")
            {
                *g.early.entry(account.to_owned()).or_default() += 1;
            }
            let mut r = json(
                429,
                r#"{"id": 1, "error": "TooManyRequestsError", "message": "slow down"}"#,
            );
            let left = until
                .duration_since(now)
                .unwrap_or_default()
                .as_secs()
                .max(1);
            if let Ok(v) = left.to_string().parse() {
                r.headers_mut().insert("retry-after", v);
            }
            r
        }
        _ if positions => json(200, open_positions(g, account, POSITIONS)),
        _ => json(200, ACCOUNT),
    }
}

/// The deals of `account`'s position `id` (MetaApi's deals list).
pub(crate) fn deals_of(g: &Inner, account: &str, id: &str) -> Response<Body> {
    let deals: Vec<&serde_json::Value> = g
        .deals
        .get(account)
        .into_iter()
        .flatten()
        .filter(|d| d["positionId"].as_str() == Some(id))
        .collect();
    json(200, serde_json::to_string(&deals).unwrap_or_default())
}

/// `body` (a positions list) without the positions closed on `account`.
fn open_positions(g: &Inner, account: &str, body: &str) -> String {
    let Some(closed) = g.closed.get(account) else {
        return body.to_owned();
    };
    let Ok(serde_json::Value::Array(mut list)) = serde_json::from_str(body) else {
        return body.to_owned();
    };
    list.retain(|p| p["id"].as_str().is_none_or(|id| !closed.contains(id)));
    serde_json::Value::Array(list).to_string()
}

/// `account`'s scripted orders without those cancelled.
fn open_orders(g: &Inner, account: &str) -> String {
    let body = g.orders.get(account).map_or("[]", String::as_str);
    let Ok(serde_json::Value::Array(mut list)) = serde_json::from_str(body) else {
        return body.to_owned();
    };
    if let Some(cancelled) = g.cancelled.get(account) {
        list.retain(|o| o["id"].as_str().is_none_or(|id| !cancelled.contains(id)));
    }
    serde_json::Value::Array(list).to_string()
}

/// `ORDER_CANCEL`: a pending order is cancelled in the fake, any other answers
/// `ERR_TRADE_ORDER_NOT_FOUND`.
fn cancel(g: &mut Inner, account: &str, id: &str) -> Response<Body> {
    let open = serde_json::from_str::<Vec<serde_json::Value>>(&open_orders(g, account))
        .unwrap_or_default()
        .iter()
        .any(|o| o["id"].as_str() == Some(id));
    if !open {
        return json(
            200,
            r#"{"numericCode": 4754, "stringCode": "ERR_TRADE_ORDER_NOT_FOUND", "message": "Order not found"}"#,
        );
    }
    g.cancelled
        .entry(account.to_owned())
        .or_default()
        .insert(id.to_owned());
    json(
        200,
        format!(
            r#"{{"numericCode": 10009, "stringCode": "TRADE_RETCODE_DONE", "message": "Request completed", "orderId": "{id}"}}"#
        ),
    )
}

/// The closing deal of `position` (a MetaApi position), closed by the expert now.
fn closing_deal(position: &serde_json::Value, now: SystemTime) -> serde_json::Value {
    let id = position["id"].as_str().unwrap_or_default();
    let side = if position["type"] == "POSITION_TYPE_BUY" {
        "DEAL_TYPE_SELL"
    } else {
        "DEAL_TYPE_BUY"
    };
    let price = match &position["currentPrice"] {
        serde_json::Value::Null => position["openPrice"].clone(),
        p => p.clone(),
    };
    serde_json::json!({
        "id": format!("8{id}"), "type": side, "entryType": "DEAL_ENTRY_OUT",
        "reason": "DEAL_REASON_EXPERT", "positionId": id, "symbol": position["symbol"],
        "volume": position["volume"], "price": price, "profit": position["profit"],
        "time": iso(now), "platform": "mt5",
    })
}

/// `POSITION_CLOSE_ID`: MetaApi's trade answer; an open position is closed in the fake
/// (leaving its closing deal), any other answers `TRADE_RETCODE_POSITION_CLOSED`.
/// `ORDER_CANCEL` cancels an order ([`cancel`]).
fn close(g: &mut Inner, account: &str, script: &Script, request: &str) -> Response<Body> {
    let request: serde_json::Value = serde_json::from_str(request).unwrap_or_default();
    if let (Some("ORDER_CANCEL"), Some(id)) =
        (request["actionType"].as_str(), request["orderId"].as_str())
    {
        return cancel(g, account, id);
    }
    let (Some("POSITION_CLOSE_ID"), Some(id)) = (
        request["actionType"].as_str(),
        request["positionId"].as_str(),
    ) else {
        return json(
            400,
            r#"{"id": 3, "error": "ValidationError", "message": "Validation failed"}"#,
        );
    };
    let listed = match script {
        Script::Positions(body) => open_positions(g, account, body),
        _ => open_positions(g, account, POSITIONS),
    };
    let open = serde_json::from_str::<Vec<serde_json::Value>>(&listed)
        .unwrap_or_default()
        .into_iter()
        .find(|p| p["id"].as_str() == Some(id));
    let Some(open) = open else {
        return json(
            200,
            r#"{"numericCode": 10036, "stringCode": "TRADE_RETCODE_POSITION_CLOSED", "message": "Position doesn't exist"}"#,
        );
    };
    let deal = closing_deal(&open, SystemTime::now());
    g.deals.entry(account.to_owned()).or_default().push(deal);
    g.closed
        .entry(account.to_owned())
        .or_default()
        .insert(id.to_owned());
    json(
        200,
        format!(
            r#"{{"numericCode": 10009, "stringCode": "TRADE_RETCODE_DONE", "message": "Request completed", "orderId": "9{id}", "positionId": "{id}"}}"#
        ),
    )
}
