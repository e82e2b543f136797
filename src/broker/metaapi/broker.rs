//! `MetaApiBroker`: an account's snapshot from MetaApi (positions, and what the sync needs
//! besides: account information, pending orders, the current prices of the held symbols,
//! fetched together), its
//! positions' deals when asked, and its symbols' specifications, fetched in the background
//! once per symbol and cached per account.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::Utc;

use super::classify::Subject;
use super::config::{MetaApiConfig, Token};
use super::http::{Http, SetupError};
use super::payload::{self, Balances};
use crate::broker::unavailable::Unavailable;
use crate::broker::{BoxFuture, Broker, BrokerError, ErrorClass, Needs};
use crate::config::AccountConfig;
use crate::domain::{AccountSnapshot, DealLookup, PendingOrder, Quote, SymbolSpec, SymbolTable};

/// A symbol's specification as far as it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cached {
    Known(SymbolSpec),
    /// MetaApi answered, but not with a usable specification (unknown symbol,
    /// malformed): not asked again.
    Unusable(String),
}

type Specs = HashMap<String, BTreeMap<String, Cached>>;

/// Reads accounts from MetaApi's REST API. One instance serves every account of the
/// `metaapi` connector, over one connection pool.
#[derive(Debug, Clone)]
pub struct MetaApiBroker {
    pub(super) http: Http,
    /// Our account id → MetaApi's account id, where they differ.
    ids: Arc<HashMap<String, String>>,
    specs: Arc<Mutex<Specs>>,
    /// (account, symbol) pairs whose specification is being fetched.
    fetching: Arc<Mutex<HashSet<(String, String)>>>,
    /// The symbols each account held at its last snapshot: their prices are fetched
    /// together with the next positions.
    held: Arc<Mutex<HashMap<String, BTreeSet<String>>>>,
    /// Each account's last account information and when it was read: a snapshot that
    /// does not need fresh balances answers these while they are younger than
    /// [`BALANCES_MAX_AGE`].
    balances: Arc<Mutex<HashMap<String, (Balances, Instant)>>>,
}

/// How old the balances of a snapshot that does not need fresh ones may be (an account
/// without guards shows its equity, and its margin mode is known, this late at most).
pub const BALANCES_MAX_AGE: Duration = Duration::from_secs(60);

impl MetaApiBroker {
    /// A broker for `config`, authenticating with `token`; `ids` maps our account ids to
    /// MetaApi account ids where they differ (others are used as they are).
    pub fn new(
        config: &MetaApiConfig,
        token: Token,
        ids: HashMap<String, String>,
    ) -> Result<Self, SetupError> {
        Ok(Self {
            http: Http::new(config, token)?,
            ids: Arc::new(ids),
            specs: Arc::new(Mutex::new(HashMap::new())),
            fetching: Arc::new(Mutex::new(HashSet::new())),
            held: Arc::new(Mutex::new(HashMap::new())),
            balances: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// MetaApi's id of our `account`.
    pub fn metaapi_id<'a>(&'a self, account: &'a str) -> &'a str {
        self.ids.get(account).map_or(account, String::as_str)
    }

    /// The specifications fetched so far for `account`, keyed by the broker's spelling of
    /// each symbol: what the pip rules can use besides the configured symbols.
    pub fn symbol_table(&self, account: &str) -> SymbolTable {
        self.cache()
            .get(account)
            .into_iter()
            .flatten()
            .filter_map(|(symbol, c)| match c {
                Cached::Known(spec) => Some((symbol.clone(), spec.clone())),
                Cached::Unusable(_) => None,
            })
            .collect()
    }

    /// The specification of `symbol` on `account`: from the cache, or fetched (and then
    /// cached). An unknown or malformed specification is cached as such and its error
    /// returned again without asking; a passing failure is not cached.
    pub async fn symbol_spec(
        &self,
        account: &str,
        symbol: &str,
    ) -> Result<SymbolSpec, BrokerError> {
        if let Some(c) = self.cache().get(account).and_then(|m| m.get(symbol)) {
            return match c {
                Cached::Known(spec) => Ok(spec.clone()),
                Cached::Unusable(reason) => Err(BrokerError::Permanent(reason.clone())),
            };
        }
        let url = self.http.url(
            self.metaapi_id(account),
            &["symbols", symbol, "specification"],
        );
        let fetched = async {
            let text = self.http.get(url, "specification", Subject::Symbol).await?;
            payload::symbol_specification(symbol, &text)
        }
        .await;
        let entry = match &fetched {
            Ok(spec) => Cached::Known(spec.clone()),
            Err(e) if matches!(e.class(), ErrorClass::Permanent | ErrorClass::Malformed) => {
                Cached::Unusable(e.to_string())
            }
            Err(_) => return fetched,
        };
        self.cache()
            .entry(account.to_owned())
            .or_default()
            .insert(symbol.to_owned(), entry);
        fetched
    }

    /// Starts fetching, in the background, the specifications of `symbols` that are
    /// neither cached nor being fetched. The snapshot does not wait for them: a slow
    /// specification endpoint must not make syncs time out. Failures are logged; pip sizes
    /// also come from the configuration and the FX-name rule.
    fn prefetch_specs(&self, account: &str, symbols: impl IntoIterator<Item = String>) {
        let missing: Vec<String> = {
            let cache = self.cache();
            let known = cache.get(account);
            let mut fetching = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
            let mut v: Vec<String> = symbols
                .into_iter()
                .filter(|s| known.is_none_or(|m| !m.contains_key(s)))
                .filter(|s| fetching.insert((account.to_owned(), s.clone())))
                .collect();
            v.sort();
            v.dedup();
            v
        };
        if missing.is_empty() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let (me, account) = (self.clone(), account.to_owned());
        tokio::spawn(async move {
            for symbol in missing {
                if let Err(e) = me.symbol_spec(&account, &symbol).await {
                    tracing::warn!(account = %account, symbol = %symbol, class = %e.class(), error = %e, "symbol specification unavailable");
                }
                let mut fetching = me.fetching.lock().unwrap_or_else(|p| p.into_inner());
                fetching.remove(&(account.clone(), symbol));
            }
        });
    }

    /// The current price of `symbol` on `account` (`GET …/symbols/{symbol}/current-price`),
    /// under the client's cap, timeout and body limit; a 404 means the broker does not
    /// know the symbol. No long-term subscription is asked for: MetaApi keeps the symbol's
    /// market data for 12 minutes after each call, which every sync renews while the
    /// symbol is held.
    pub async fn current_price(&self, account: &str, symbol: &str) -> Result<Quote, BrokerError> {
        let url = self.http.url(
            self.metaapi_id(account),
            &["symbols", symbol, "current-price"],
        );
        let what = format!("current_price[{symbol}]");
        let text = self.http.get(url, &what, Subject::Symbol).await?;
        payload::current_price(symbol, &text).map_err(|e| self.http.redacted(e))
    }

    /// The current prices of `symbols` on `account`, fetched concurrently (the client's
    /// cap on requests in flight still applies). A symbol whose price cannot be read is
    /// left out and logged: without its quote the market guards hold, which is the safe
    /// side, and the account's other data stays usable.
    async fn quotes(&self, account: &str, symbols: &[String]) -> Vec<Quote> {
        let mut set = tokio::task::JoinSet::new();
        for symbol in symbols {
            let (me, account, symbol) = (self.clone(), account.to_owned(), symbol.clone());
            set.spawn(async move {
                let price = me.current_price(&account, &symbol).await;
                (symbol, price)
            });
        }
        let mut out = Vec::with_capacity(symbols.len());
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((_, Ok(quote))) => out.push(quote),
                Ok((symbol, Err(e))) => {
                    tracing::warn!(account = %account, symbol = %symbol, class = %e.class(), error = %e, "current price unavailable; the symbol has no quote in this snapshot");
                }
                Err(e) => {
                    tracing::warn!(account = %account, error = %e, "a current-price request did not finish");
                }
            }
        }
        out.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        out
    }

    /// The symbols `account` held at its last snapshot.
    fn last_held(&self, account: &str) -> Vec<String> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(account)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// `GET …/orders`.
    async fn orders(&self, account: &str) -> Result<Vec<PendingOrder>, BrokerError> {
        let url = self.http.url(self.metaapi_id(account), &["orders"]);
        let text = self.http.get(url, "orders", Subject::Account).await?;
        payload::orders(&text)
    }

    /// `GET …/account-information`, unless `fresh` is false and the last reading is
    /// young enough.
    async fn account_information(
        &self,
        account: &str,
        fresh: bool,
    ) -> Result<Balances, BrokerError> {
        if !fresh {
            let kept = self.balances.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((b, at)) = kept.get(account)
                && at.elapsed() < BALANCES_MAX_AGE
            {
                return Ok(*b);
            }
        }
        let url = self
            .http
            .url(self.metaapi_id(account), &["account-information"]);
        let text = self
            .http
            .get(url, "account_information", Subject::Account)
            .await?;
        let read = payload::account_information(&text)?;
        self.balances
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(account.to_owned(), (read, Instant::now()));
        Ok(read)
    }

    /// One snapshot: the positions, and what `needs` asks for, fetched together.
    async fn read(&self, account: &str, needs: Needs) -> Result<AccountSnapshot, BrokerError> {
        let id = self.metaapi_id(account);
        let positions = async {
            let text = self
                .http
                .get(
                    self.http.url(id, &["positions"]),
                    "positions",
                    Subject::Account,
                )
                .await?;
            payload::positions(&text)
        };
        let info = self.account_information(account, needs.balances);
        let orders = async {
            if needs.orders {
                self.orders(account).await.map(Some)
            } else {
                Ok(None)
            }
        };
        // The prices of the symbols held last time come with the positions; a symbol
        // held for the first time costs one more round trip, after them.
        let known = if needs.quotes {
            self.last_held(account)
        } else {
            Vec::new()
        };
        let prices = async { Ok::<_, BrokerError>(self.quotes(account, &known).await) };
        let (positions, balances, orders, mut quotes) =
            tokio::try_join!(positions, info, orders, prices)?;
        let held: BTreeSet<String> = positions.iter().map(|p| p.symbol.clone()).collect();
        if needs.quotes {
            let new: Vec<String> = held
                .iter()
                .filter(|s| !known.contains(s))
                .cloned()
                .collect();
            if !new.is_empty() {
                quotes.extend(self.quotes(account, &new).await);
                quotes.sort_by(|a, b| a.symbol.cmp(&b.symbol));
            }
            quotes.retain(|q| held.contains(&q.symbol));
        }
        self.prefetch_specs(account, held.iter().cloned());
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(account.to_owned(), held);
        Ok(AccountSnapshot {
            balance: balances.balance,
            equity: balances.equity,
            margin: balances.margin,
            free_margin: balances.free_margin,
            positions,
            quotes,
            taken_at: Utc::now(),
            margin_mode: balances.margin_mode,
            orders,
            deals: Vec::new(),
        })
    }

    fn cache(&self) -> MutexGuard<'_, Specs> {
        // A poisoned cache is still a valid cache: entries are inserted whole.
        self.specs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Broker for MetaApiBroker {
    fn snapshot<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<AccountSnapshot, BrokerError>> {
        Box::pin(self.read(account, Needs::ALL))
    }

    /// Positions always (one request); account information when `needs` asks for fresh
    /// balances or the last are older than [`BALANCES_MAX_AGE`]; orders and the held
    /// symbols' prices only when asked for.
    fn snapshot_for<'a>(
        &'a self,
        account: &'a str,
        needs: Needs,
    ) -> BoxFuture<'a, Result<AccountSnapshot, BrokerError>> {
        Box::pin(self.read(account, needs))
    }

    fn pending_orders<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<PendingOrder>>, BrokerError>> {
        Box::pin(async move { self.orders(account).await.map(Some) })
    }

    /// See [`MetaApiBroker::close`].
    fn close_position<'a>(
        &'a self,
        account: &'a str,
        ticket: u64,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(self.close(account, ticket))
    }

    /// See [`MetaApiBroker::cancel`].
    fn cancel_order<'a>(
        &'a self,
        account: &'a str,
        ticket: u64,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(self.cancel(account, ticket))
    }

    /// See [`MetaApiBroker::deals_of`].
    fn position_deals<'a>(
        &'a self,
        account: &'a str,
        position_id: u64,
    ) -> BoxFuture<'a, Result<DealLookup, BrokerError>> {
        Box::pin(async move {
            self.deals_of(account, position_id)
                .await
                .map(DealLookup::Found)
        })
    }

    fn symbols(&self, account: &str) -> Option<SymbolTable> {
        Some(self.symbol_table(account))
    }

    /// Snapshots carry the current prices of the held symbols.
    fn quotes_available(&self) -> bool {
        true
    }

    /// Pending unless MetaApi settled the symbol as unusable (unknown or malformed), or
    /// its cached specification determines no pip size.
    fn symbol_pending(&self, account: &str, symbol: &str) -> bool {
        match self.cache().get(account).and_then(|m| m.get(symbol)) {
            None => true,
            Some(Cached::Known(spec)) => spec.pip_size().is_some(),
            Some(Cached::Unusable(_)) => false,
        }
    }
}

/// The MetaApi broker a configuration describes, for the accounts of `accounts` whose
/// broker is `metaapi` (their `metaapi_account_id`s). The token is read from the
/// configured variable; when that or the client setup fails, the result is an
/// [`Unavailable`] broker, so these accounts are disabled with the reason while the
/// others run.
pub fn from_config(config: &MetaApiConfig, accounts: &[AccountConfig]) -> Arc<dyn Broker> {
    let ids: HashMap<String, String> = accounts
        .iter()
        .filter(|a| a.broker == "metaapi")
        .filter_map(|a| Some((a.id.clone(), a.metaapi_account_id.clone()?)))
        .collect();
    let built = Token::from_env(&config.token_env)
        .map_err(|e| e.to_string())
        .and_then(|token| MetaApiBroker::new(config, token, ids).map_err(|e| e.to_string()));
    match built {
        Ok(broker) => {
            tracing::info!(base_url = %config.base_url, token_env = %config.token_env, "metaapi connector ready");
            Arc::new(broker)
        }
        Err(reason) => {
            tracing::error!(error = %reason, "metaapi connector unavailable; its accounts will be disabled");
            Arc::new(Unavailable::new(format!("metaapi: {reason}")))
        }
    }
}
