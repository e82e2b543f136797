//! Pairing bot trades with broker positions (and pending orders), and the divergence rules.
//!
//! Invariants (checked by the property tests):
//! - every trade and every position appears in at most one match (one-to-one), except on
//!   a netting account, where a symbol's trades all net into its one position;
//! - every trade is matched, pending on an order, netted flat, or missing, never two of
//!   these;
//! - the result depends on the *sets* given, never on their order;
//! - a set of positions that mirrors the trades exactly yields no divergence;
//! - a failed fetch never reaches here: an empty position list means a flat account.
//!
//! Matching, in order: ticket (the trade's ticket equals the position's ticket or
//! identifier, which survives a re-open under a new ticket), client id (the position's
//! client id or comment equals the trade's client key), heuristic (same canonical symbol
//! and side, entry within `match_price_pips`, volume within `match_volume_pct`, closest
//! pair first; see [`super::heuristic`]). Ticket and client-id matches require the same
//! canonical symbol. A ticket is an identity: a trade that carries one is matched by it or
//! not at all (its position gone, it is missing), never by client id or the heuristic
//! with some other position.
//!
//! Scope ([`Scope`]): a position outside the bot's scope is matched only by a trade's
//! ticket (then it is the bot's after all); otherwise it is external — listed, and an
//! `unexpected_at_broker` divergence only when the scope's policy says so.
//!
//! Pending orders (when the broker reports them): a trade no position takes is pending
//! on an order with its ticket, or (without a ticket) with its client key as client id or
//! comment, or with the same symbol, side and volume, closest price first (see
//! [`super::orders`]). Orders outside the scope are taken by ticket only.
//!
//! Netting accounts (margin mode netting or exchange): see [`super::netting`]; a symbol
//! with several positions (which such an account cannot have) is matched as on hedging.
//!
//! Arithmetic never panics. The value types bound what arithmetic sees (prices at most
//! 10¹², volumes within 10⁻⁸..=10⁹, pip sizes and points at least 10⁻¹⁰ once read), and
//! every operation is checked all the same: a comparison whose result a decimal cannot
//! hold is [`ReconcileError::OutOfRange`], naming the trade, the ticket, the field and
//! the values, and a match window too wide to compute is as wide as a decimal goes.

use std::collections::{BTreeMap, HashMap, HashSet};

use rust_decimal::Decimal;

use super::book::{Book, External, Holding, PendingFill};
use super::compare::compare;
use super::divergence::{Divergence, DivergenceKind, Match, MatchMethod, Reconciliation, Value};
use super::facts::PendingOrder;
use super::model::{BotTrade, BrokerPosition};
use super::rules::ReconcileRules;
use super::scope::{ExternalPolicy, Scope};
use super::values::Side;

/// Why a reconciliation could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    /// Pip sizes are missing for symbols that both sides hold.
    #[error("unknown pip size for {}: configure pip_size or digits for each", .0.join(", "))]
    UnknownPipSize(Vec<String>),
    /// Two trades share an id.
    #[error("duplicate trade id {0:?}")]
    DuplicateTradeId(String),
    /// Two positions share a ticket.
    #[error("duplicate position ticket {0}")]
    DuplicateTicket(u64),
    /// Two pending orders share a ticket.
    #[error("duplicate order ticket {0}")]
    DuplicateOrderTicket(u64),
    /// A matched pair's difference in `field` cannot be computed: the values are beyond
    /// the bounds the readers enforce (bad input, never a bug to retry).
    #[error(
        "trade {trade_id:?} against position {ticket}: field {field:?}, value {value}: \
         the difference is out of range"
    )]
    OutOfRange {
        /// The trade's id.
        trade_id: String,
        /// The position's ticket.
        ticket: u64,
        /// The field compared: `open_price`, `volume`, `sl` or `tp` (for a netting
        /// symbol, the net of its trades: the latest trade's id names it).
        field: &'static str,
        /// The trade's value against the position's (and the pip size, for prices).
        value: String,
    },
}

/// Reconciles the bot's trades against the broker's positions, all of them the bot's, on
/// a hedging account whose orders are unknown. Pure: no I/O, no clock.
pub fn reconcile(
    trades: &[BotTrade],
    positions: &[BrokerPosition],
    rules: &ReconcileRules,
) -> Result<Reconciliation, ReconcileError> {
    reconcile_book(trades, Book::positions(positions), &Scope::default(), rules)
}

/// Reconciles the bot's trades against what the broker holds on the account (`book`),
/// within the bot's `scope`. Pure: no I/O, no clock.
pub fn reconcile_book(
    trades: &[BotTrade],
    book: Book<'_>,
    scope: &Scope,
    rules: &ReconcileRules,
) -> Result<Reconciliation, ReconcileError> {
    let mut run = Run::new(trades, book, scope, rules)?;
    let pips = run.pip_sizes(rules)?;
    let mut out = Reconciliation::default();
    if book.is_netting() {
        // Every trade of a netting symbol is part of its net, unless an order holds it.
        super::orders::claim(&mut run);
        super::netting::net(&mut run, &pips, rules, &mut out)?;
    }
    run.by_ticket();
    run.by_client_id();
    run.by_heuristic(&pips, rules);
    if !book.is_netting() {
        super::orders::claim(&mut run);
    }
    run.finish(&pips, rules, scope.external, out)
}

/// One reconciliation under way: the data with canonical symbol ids, deterministic
/// orders, and what has been paired so far.
pub(super) struct Run<'a> {
    pub(super) trades: &'a [BotTrade],
    pub(super) positions: &'a [BrokerPosition],
    pub(super) orders: &'a [PendingOrder],
    pub(super) symbols: Symbols<'a>,
    pub(super) trade_sym: Vec<usize>,
    pub(super) pos_sym: Vec<usize>,
    pub(super) order_sym: Vec<usize>,
    /// Trades by id.
    pub(super) t_order: Vec<usize>,
    /// Positions by ticket.
    pub(super) p_order: Vec<usize>,
    /// Orders by ticket.
    pub(super) o_order: Vec<usize>,
    /// Whether each position is inside the bot's scope.
    pub(super) owned: Vec<bool>,
    /// Whether each order is inside the bot's scope.
    pub(super) owned_order: Vec<bool>,
    pub(super) t_done: Vec<bool>,
    pub(super) p_done: Vec<bool>,
    pub(super) o_done: Vec<bool>,
    /// (trade, position, method).
    pub(super) pairs: Vec<(usize, usize, MatchMethod)>,
    /// (trade, order, method).
    pub(super) fills: Vec<(usize, usize, MatchMethod)>,
    netting: bool,
}

impl<'a> Run<'a> {
    fn new(
        trades: &'a [BotTrade],
        book: Book<'a>,
        scope: &Scope,
        rules: &ReconcileRules,
    ) -> Result<Self, ReconcileError> {
        let (positions, orders) = (book.positions, book.orders.unwrap_or_default());
        // Canonical symbols, computed once per distinct spelling; ids compare like the
        // strings.
        let mut symbols = Symbols::default();
        let trade_sym: Vec<usize> = trades
            .iter()
            .map(|t| symbols.id(&t.symbol, rules))
            .collect();
        let pos_sym: Vec<usize> = positions
            .iter()
            .map(|p| symbols.id(&p.symbol, rules))
            .collect();
        let order_sym: Vec<usize> = orders
            .iter()
            .map(|o| symbols.id(&o.symbol, rules))
            .collect();
        check_unique(trades, positions, orders)?;
        // Deterministic orders: trades by id, positions and orders by ticket.
        let mut t_order: Vec<usize> = (0..trades.len()).collect();
        t_order.sort_by(|&a, &b| trades[a].id.cmp(&trades[b].id));
        let mut p_order: Vec<usize> = (0..positions.len()).collect();
        p_order.sort_by_key(|&i| positions[i].ticket);
        let mut o_order: Vec<usize> = (0..orders.len()).collect();
        o_order.sort_by_key(|&i| orders[i].ticket);
        let everything = scope.is_everything();
        Ok(Self {
            trades,
            positions,
            orders,
            symbols,
            trade_sym,
            pos_sym,
            order_sym,
            t_order,
            p_order,
            o_order,
            owned: positions
                .iter()
                .map(|p| everything || scope.owns_position(p))
                .collect(),
            owned_order: orders
                .iter()
                .map(|o| everything || scope.owns_order(o))
                .collect(),
            t_done: vec![false; trades.len()],
            p_done: vec![false; positions.len()],
            o_done: vec![false; orders.len()],
            pairs: Vec::with_capacity(trades.len()),
            fills: Vec::new(),
            netting: book.is_netting(),
        })
    }

    /// Pairs trade `t` with position `p`.
    pub(super) fn pair(&mut self, t: usize, p: usize, method: MatchMethod) {
        self.t_done[t] = true;
        self.p_done[p] = true;
        self.pairs.push((t, p, method));
    }

    /// Whether position `p` can be compared with a trade: inside the scope, reachable by a
    /// trade's ticket, or (netting) of a symbol the bot trades.
    fn comparable(&self, p: usize, tickets: &HashSet<u64>, traded: &[bool]) -> bool {
        let pos = &self.positions[p];
        self.owned[p]
            || tickets.contains(&pos.ticket)
            || tickets.contains(&pos.identifier)
            || (self.netting && traded[self.pos_sym[p]])
    }

    /// Pip sizes by symbol id, `Some` for every symbol that both sides hold (only those
    /// can be compared). Unknown ones are reported together, in alphabetical order.
    fn pip_sizes(&self, rules: &ReconcileRules) -> Result<Vec<Option<Decimal>>, ReconcileError> {
        let n = self.symbols.len();
        let mut traded = vec![false; n];
        for &s in &self.trade_sym {
            traded[s] = true;
        }
        let tickets: HashSet<u64> = self.trades.iter().filter_map(|t| t.ticket).collect();
        let mut held = vec![false; n];
        for (p, &s) in self.pos_sym.iter().enumerate() {
            if !held[s] && self.comparable(p, &tickets, &traded) {
                held[s] = true;
            }
        }
        let mut pips = vec![None; n];
        let mut unknown = Vec::new();
        for id in (0..n).filter(|&id| traded[id] && held[id]) {
            match rules.pip_size(self.symbols.name(id)) {
                Ok(pip) => pips[id] = Some(pip),
                Err(e) => unknown.push(e.symbol),
            }
        }
        if unknown.is_empty() {
            Ok(pips)
        } else {
            unknown.sort();
            Err(ReconcileError::UnknownPipSize(unknown))
        }
    }

    /// Step 1, ticket (or identifier, which survives ticket changes), inside the scope or
    /// not: a trade's ticket is its identity. Tickets are unique, so `p_order` is
    /// searchable by ticket; identifiers keep the lowest ticket first.
    fn by_ticket(&mut self) {
        let positions = self.positions;
        let mut by_ident: Vec<(u64, usize)> = self
            .p_order
            .iter()
            .map(|&p| (positions[p].identifier, p))
            .collect();
        by_ident.sort_by_key(|&(ident, _)| ident);
        for i in 0..self.t_order.len() {
            let t = self.t_order[i];
            let Some(ticket) = self.trades[t].ticket.filter(|_| !self.t_done[t]) else {
                continue;
            };
            let found = match self
                .p_order
                .binary_search_by_key(&ticket, |&p| positions[p].ticket)
            {
                Ok(i) => Some(self.p_order[i]),
                Err(_) => {
                    let i = by_ident.partition_point(|&(ident, _)| ident < ticket);
                    by_ident
                        .get(i)
                        .filter(|&&(ident, _)| ident == ticket)
                        .map(|&(_, p)| p)
                }
            };
            if let Some(p) = found
                && !self.p_done[p]
                && self.pos_sym[p] == self.trade_sym[t]
            {
                self.pair(t, p, MatchMethod::Ticket);
            }
        }
    }

    /// Step 2, client id: a position of the scope whose client id or comment equals the
    /// trade's client key. A trade that carries a ticket is matched by it and nothing
    /// else: when its position is gone, the trade is missing, never paired with some other
    /// position.
    fn by_client_id(&mut self) {
        let positions = self.positions;
        // (key, rank in `p_order`), sorted: a key's candidates come out in ticket order.
        let mut by_client: Vec<(&str, usize)> = Vec::with_capacity(positions.len());
        for (rank, &p) in self.p_order.iter().enumerate() {
            if self.p_done[p] || !self.owned[p] {
                continue;
            }
            let pos = &positions[p];
            let id = pos.client_id.as_deref().filter(|s| !s.is_empty());
            if let Some(id) = id {
                by_client.push((id, rank));
            }
            if !pos.comment.is_empty() && id != Some(pos.comment.as_str()) {
                by_client.push((&pos.comment, rank));
            }
        }
        if by_client.is_empty() {
            return;
        }
        by_client.sort_unstable();
        for i in 0..self.t_order.len() {
            let t = self.t_order[i];
            if self.t_done[t] || self.trades[t].ticket.is_some() {
                continue;
            }
            let key = self.trades[t].client_key();
            let from = by_client.partition_point(|&(k, _)| k < key);
            if let Some(p) = by_client[from..]
                .iter()
                .take_while(|&&(k, _)| k == key)
                .map(|&(_, rank)| self.p_order[rank])
                .find(|&p| !self.p_done[p] && self.pos_sym[p] == self.trade_sym[t])
            {
                self.pair(t, p, MatchMethod::ClientId);
            }
        }
    }

    /// Step 3, heuristic, per (symbol, side) group of ticketless trades and positions of
    /// the scope; only when both sides have leftovers.
    fn by_heuristic(&mut self, pips: &[Option<Decimal>], rules: &ReconcileRules) {
        // (symbol, side) → (trade indices, position indices)
        type Group = (Vec<usize>, Vec<usize>);
        let mut groups: BTreeMap<(usize, Side), Group> = BTreeMap::new();
        let open = |p: usize| !self.p_done[p] && self.owned[p];
        if self.p_order.iter().any(|&p| open(p)) {
            for &t in &self.t_order {
                if !self.t_done[t] && self.trades[t].ticket.is_none() {
                    let key = (self.trade_sym[t], self.trades[t].side);
                    groups.entry(key).or_default().0.push(t);
                }
            }
        }
        if groups.is_empty() {
            return;
        }
        for &p in self.p_order.iter().filter(|&&p| open(p)) {
            if let Some(g) = groups.get_mut(&(self.pos_sym[p], self.positions[p].side)) {
                g.1.push(p);
            }
        }
        for ((symbol, _), (ts, ps)) in groups {
            let Some(pip) = pips[symbol].filter(|_| !ps.is_empty()) else {
                continue;
            };
            let tol = rules.tolerances(self.symbols.name(symbol));
            // Saturating is exact here: a window wider than a decimal admits every
            // distance.
            let window = tol.match_price_pips.saturating_mul(pip);
            let found = super::heuristic::closest_pairs(
                self.trades,
                self.positions,
                &ts,
                &ps,
                window,
                tol.match_volume_pct,
            );
            for (t, p) in found {
                self.pair(t, p, MatchMethod::Heuristic);
            }
        }
    }

    /// The divergences of the pairs, the trades left missing, the positions left
    /// unexpected or external, the orders outside the scope; everything sorted.
    fn finish(
        self,
        pips: &[Option<Decimal>],
        rules: &ReconcileRules,
        external: ExternalPolicy,
        mut out: Reconciliation,
    ) -> Result<Reconciliation, ReconcileError> {
        let (trades, positions, orders) = (self.trades, self.positions, self.orders);
        out.matched.reserve(self.pairs.len());
        for &(t, p, method) in &self.pairs {
            let (trade, pos) = (&trades[t], &positions[p]);
            let symbol = self.trade_sym[t];
            let pip = pips[symbol].expect("a matched pair's symbol is held on both sides");
            let name = self.symbols.name(symbol);
            compare(
                trade,
                pos,
                name,
                pip,
                &rules.tolerances(name),
                &mut out.divergences,
            )?;
            out.matched.push(Match {
                trade_id: trade.id.clone(),
                ticket: pos.ticket,
                method,
            });
        }
        for &(t, o, method) in &self.fills {
            out.pending.push(PendingFill {
                trade_id: trades[t].id.clone(),
                order: orders[o].ticket,
                symbol: self.symbols.name(self.trade_sym[t]).to_owned(),
                volume: trades[t].volume.get(),
                order_volume: orders[o].volume.get(),
                method,
            });
        }
        for &t in self.t_order.iter().filter(|&&t| !self.t_done[t]) {
            let trade = &trades[t];
            out.divergences.push(Divergence::new(
                DivergenceKind::MissingAtBroker,
                self.symbols.name(self.trade_sym[t]).to_owned(),
                trade.ticket,
                Some(trade.id.clone()),
                Some(Value::Number(trade.volume.get())),
                None,
                None,
            ));
        }
        for &p in self.p_order.iter().filter(|&&p| !self.p_done[p]) {
            let pos = &positions[p];
            let symbol = self.symbols.name(self.pos_sym[p]);
            if !self.owned[p] {
                out.external.push(External {
                    holding: Holding::Position,
                    ticket: pos.ticket,
                    symbol: symbol.to_owned(),
                    side: pos.side,
                    volume: pos.volume.get(),
                    magic: pos.magic,
                    comment: pos.comment.clone(),
                });
            }
            if self.owned[p] || external == ExternalPolicy::Divergence {
                out.divergences.push(Divergence::new(
                    DivergenceKind::UnexpectedAtBroker,
                    symbol.to_owned(),
                    Some(pos.ticket),
                    None,
                    None,
                    Some(Value::Number(pos.volume.get())),
                    None,
                ));
            }
        }
        for &o in self.o_order.iter() {
            let order = &orders[o];
            if !self.o_done[o] && !self.owned_order[o] {
                out.external.push(External {
                    holding: Holding::Order,
                    ticket: order.ticket,
                    symbol: self.symbols.name(self.order_sym[o]).to_owned(),
                    side: order.side,
                    volume: order.volume.get(),
                    magic: order.magic,
                    comment: order.comment.clone(),
                });
            }
        }
        out.matched.sort_by(|a, b| a.trade_id.cmp(&b.trade_id));
        out.pending.sort_by(|a, b| a.trade_id.cmp(&b.trade_id));
        out.netted.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        out.external.sort_by_key(|e| (e.holding, e.ticket));
        out.divergences.sort_by(|a, b| {
            (a.trade_id.is_none(), &a.trade_id, a.ticket, a.kind).cmp(&(
                b.trade_id.is_none(),
                &b.trade_id,
                b.ticket,
                b.kind,
            ))
        });
        Ok(out)
    }
}

/// Canonical symbols by id: each distinct spelling is canonicalised once, and two
/// spellings with the same canonical form share an id.
#[derive(Default)]
pub(super) struct Symbols<'a> {
    by_spelling: HashMap<&'a str, usize>,
    by_name: HashMap<String, usize>,
    names: Vec<String>,
}

impl<'a> Symbols<'a> {
    /// The id of `spelling`'s canonical symbol.
    fn id(&mut self, spelling: &'a str, rules: &ReconcileRules) -> usize {
        if let Some(&id) = self.by_spelling.get(spelling) {
            return id;
        }
        let name = rules.canonical(spelling);
        let id = match self.by_name.get(&name) {
            Some(&id) => id,
            None => {
                let id = self.names.len();
                self.by_name.insert(name.clone(), id);
                self.names.push(name);
                id
            }
        };
        self.by_spelling.insert(spelling, id);
        id
    }

    /// How many canonical symbols there are (ids are below this).
    pub(super) fn len(&self) -> usize {
        self.names.len()
    }

    /// The canonical symbol of `id`.
    pub(super) fn name(&self, id: usize) -> &str {
        &self.names[id]
    }
}

fn check_unique(
    trades: &[BotTrade],
    positions: &[BrokerPosition],
    orders: &[PendingOrder],
) -> Result<(), ReconcileError> {
    let mut ids = HashSet::with_capacity(trades.len());
    if let Some(t) = trades.iter().find(|t| !ids.insert(t.id.as_str())) {
        return Err(ReconcileError::DuplicateTradeId(t.id.clone()));
    }
    let mut tickets = HashSet::with_capacity(positions.len());
    if let Some(p) = positions.iter().find(|p| !tickets.insert(p.ticket)) {
        return Err(ReconcileError::DuplicateTicket(p.ticket));
    }
    let mut tickets = HashSet::with_capacity(orders.len());
    if let Some(o) = orders.iter().find(|o| !tickets.insert(o.ticket)) {
        return Err(ReconcileError::DuplicateOrderTicket(o.ticket));
    }
    Ok(())
}
