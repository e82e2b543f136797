//! Pairing bot trades with broker positions, and the divergence rules.
//!
//! Invariants (checked by the property tests):
//! - every trade and every position appears in at most one match (one-to-one);
//! - the result depends on the *sets* given, never on their order;
//! - a set of positions that mirrors the trades exactly yields no divergence;
//! - a failed fetch never reaches here: an empty position list means a flat account.
//!
//! Matching, in order: ticket (the trade's ticket equals the position's ticket or
//! identifier, which survives a re-open under a new ticket), client id (the position's
//! client id or comment equals the trade's client key), heuristic (same canonical symbol
//! and side, entry within `match_price_pips`, volume within `match_volume_pct`, closest
//! pair first). Ticket and client-id matches require the same canonical symbol. A ticket
//! is an identity: a trade that carries one is matched by it or not at all (its position
//! gone, it is missing), never by client id or the heuristic with some other position. The heuristic works per (symbol, side) group on
//! positions sorted by price, so its cost grows as O((n + m) · log) for realistic data.
//!
//! Arithmetic never panics. The value types bound what arithmetic sees (prices at most
//! 10¹², volumes within 10⁻⁸..=10⁹, pip sizes and points at least 10⁻¹⁰ once read), and
//! every operation is checked all the same: a comparison whose result a decimal cannot
//! hold is [`ReconcileError::OutOfRange`], naming the trade, the ticket, the field and
//! the values, and a match window too wide to compute is as wide as a decimal goes.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use rust_decimal::Decimal;

use super::divergence::{
    Divergence, DivergenceKind, Match, MatchMethod, Reconciliation, Unit, Value,
};
use super::model::{BotTrade, BrokerPosition};
use super::rules::{ReconcileRules, Tolerances};
use super::values::{Price, Side};

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
        /// The field compared: `open_price`, `volume`, `sl` or `tp`.
        field: &'static str,
        /// The trade's value against the position's (and the pip size, for prices).
        value: String,
    },
}

/// Decimal places kept in a reported delta.
const DELTA_DP: u32 = 4;

/// Reconciles the bot's trades against the broker's positions. Pure: no I/O, no clock.
pub fn reconcile(
    trades: &[BotTrade],
    positions: &[BrokerPosition],
    rules: &ReconcileRules,
) -> Result<Reconciliation, ReconcileError> {
    // Canonical symbols, computed once per distinct spelling; ids compare like the strings.
    let mut symbols = Symbols::default();
    let trade_sym: Vec<usize> = trades
        .iter()
        .map(|t| symbols.id(&t.symbol, rules))
        .collect();
    let pos_sym: Vec<usize> = positions
        .iter()
        .map(|p| symbols.id(&p.symbol, rules))
        .collect();
    check_unique(trades, positions)?;
    let pips = pip_sizes(&symbols, &trade_sym, &pos_sym, rules)?;

    // Deterministic orders: trades by id, positions by ticket.
    let mut t_order: Vec<usize> = (0..trades.len()).collect();
    t_order.sort_by(|&a, &b| trades[a].id.cmp(&trades[b].id));
    let mut p_order: Vec<usize> = (0..positions.len()).collect();
    p_order.sort_by_key(|&i| positions[i].ticket);

    let mut pairs: Vec<(usize, usize, MatchMethod)> = Vec::with_capacity(trades.len());
    let mut t_done = vec![false; trades.len()];
    let mut p_done = vec![false; positions.len()];
    let mut pair = |t: usize, p: usize, m, t_done: &mut [bool], p_done: &mut [bool]| {
        t_done[t] = true;
        p_done[p] = true;
        pairs.push((t, p, m));
    };

    // 1. Ticket (or identifier, which survives ticket changes). Tickets are unique, so
    // `p_order` is searchable by ticket; identifiers keep the lowest ticket first.
    let mut by_ident: Vec<(u64, usize)> = p_order
        .iter()
        .map(|&p| (positions[p].identifier, p))
        .collect();
    by_ident.sort_by_key(|&(ident, _)| ident);
    for &t in &t_order {
        let Some(ticket) = trades[t].ticket else {
            continue;
        };
        let found = match p_order.binary_search_by_key(&ticket, |&p| positions[p].ticket) {
            Ok(i) => Some(p_order[i]),
            Err(_) => {
                let i = by_ident.partition_point(|&(ident, _)| ident < ticket);
                by_ident
                    .get(i)
                    .filter(|&&(ident, _)| ident == ticket)
                    .map(|&(_, p)| p)
            }
        };
        if let Some(p) = found
            && !p_done[p]
            && pos_sym[p] == trade_sym[t]
        {
            pair(t, p, MatchMethod::Ticket, &mut t_done, &mut p_done);
        }
    }

    // 2. Client id: the position's client id or comment equals the trade's client key.
    // (key, rank in `p_order`), sorted: a key's candidates come out in ticket order.
    let mut by_client: Vec<(&str, usize)> = Vec::with_capacity(positions.len());
    for (rank, &p) in p_order.iter().enumerate() {
        let pos = &positions[p];
        let id = pos.client_id.as_deref().filter(|s| !s.is_empty());
        if let Some(id) = id {
            by_client.push((id, rank));
        }
        if !pos.comment.is_empty() && id != Some(pos.comment.as_str()) {
            by_client.push((&pos.comment, rank));
        }
    }
    by_client.sort_unstable();
    // A trade that carries a ticket is matched by it and nothing else: when its position
    // is gone, the trade is missing, never paired with some other position.
    let ticketless = |t: usize| trades[t].ticket.is_none();
    for &t in &t_order {
        if t_done[t] || !ticketless(t) {
            continue;
        }
        let key = trades[t].client_key();
        let from = by_client.partition_point(|&(k, _)| k < key);
        if let Some(p) = by_client[from..]
            .iter()
            .take_while(|&&(k, _)| k == key)
            .map(|&(_, rank)| p_order[rank])
            .find(|&p| !p_done[p] && pos_sym[p] == trade_sym[t])
        {
            pair(t, p, MatchMethod::ClientId, &mut t_done, &mut p_done);
        }
    }

    // 3. Heuristic, per (symbol, side) group; only when both sides have leftovers.
    // (symbol, side) → (trade indices, position indices)
    type Group = (Vec<usize>, Vec<usize>);
    let mut groups: BTreeMap<(usize, Side), Group> = BTreeMap::new();
    if p_done.contains(&false) {
        for &t in t_order.iter().filter(|&&t| !t_done[t] && ticketless(t)) {
            groups
                .entry((trade_sym[t], trades[t].side))
                .or_default()
                .0
                .push(t);
        }
    }
    if !groups.is_empty() {
        for &p in p_order.iter().filter(|&&p| !p_done[p]) {
            if let Some(g) = groups.get_mut(&(pos_sym[p], positions[p].side)) {
                g.1.push(p);
            }
        }
    }
    for ((symbol, _), (ts, ps)) in groups {
        let Some(pip) = pips[symbol].filter(|_| !ps.is_empty()) else {
            continue;
        };
        let tol = rules.tolerances(symbols.name(symbol));
        // Saturating is exact here: a window wider than a decimal admits every distance.
        let window = tol.match_price_pips.saturating_mul(pip);
        for (t, p) in closest_pairs(trades, positions, &ts, &ps, window, tol.match_volume_pct) {
            pair(t, p, MatchMethod::Heuristic, &mut t_done, &mut p_done);
        }
    }

    // Divergences.
    let mut out = Reconciliation {
        matched: Vec::with_capacity(pairs.len()),
        divergences: Vec::new(),
    };
    for &(t, p, method) in &pairs {
        let (trade, pos) = (&trades[t], &positions[p]);
        let symbol = trade_sym[t];
        let pip = pips[symbol].expect("a matched pair's symbol is held on both sides");
        let name = symbols.name(symbol);
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
    for &t in t_order.iter().filter(|&&t| !t_done[t]) {
        let trade = &trades[t];
        out.divergences.push(Divergence::new(
            DivergenceKind::MissingAtBroker,
            symbols.name(trade_sym[t]).to_owned(),
            trade.ticket,
            Some(trade.id.clone()),
            Some(Value::Number(trade.volume.get())),
            None,
            None,
        ));
    }
    for &p in p_order.iter().filter(|&&p| !p_done[p]) {
        let pos = &positions[p];
        out.divergences.push(Divergence::new(
            DivergenceKind::UnexpectedAtBroker,
            symbols.name(pos_sym[p]).to_owned(),
            Some(pos.ticket),
            None,
            None,
            Some(Value::Number(pos.volume.get())),
            None,
        ));
    }
    out.matched.sort_by(|a, b| a.trade_id.cmp(&b.trade_id));
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

/// Canonical symbols by id: each distinct spelling is canonicalised once, and two
/// spellings with the same canonical form share an id.
#[derive(Default)]
struct Symbols<'a> {
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

    /// The canonical symbol of `id`.
    fn name(&self, id: usize) -> &str {
        &self.names[id]
    }
}

fn check_unique(trades: &[BotTrade], positions: &[BrokerPosition]) -> Result<(), ReconcileError> {
    let mut ids = HashSet::with_capacity(trades.len());
    if let Some(t) = trades.iter().find(|t| !ids.insert(t.id.as_str())) {
        return Err(ReconcileError::DuplicateTradeId(t.id.clone()));
    }
    let mut tickets = HashSet::with_capacity(positions.len());
    if let Some(p) = positions.iter().find(|p| !tickets.insert(p.ticket)) {
        return Err(ReconcileError::DuplicateTicket(p.ticket));
    }
    Ok(())
}

/// Pip sizes by symbol id, `Some` for every symbol that both sides hold (only those can
/// be compared). Unknown ones are reported together, in alphabetical order.
fn pip_sizes(
    symbols: &Symbols<'_>,
    trade_sym: &[usize],
    pos_sym: &[usize],
    rules: &ReconcileRules,
) -> Result<Vec<Option<Decimal>>, ReconcileError> {
    let mut held = vec![(false, false); symbols.names.len()];
    for &s in trade_sym {
        held[s].0 = true;
    }
    for &s in pos_sym {
        held[s].1 = true;
    }
    let mut pips = vec![None; held.len()];
    let mut unknown = Vec::new();
    for (id, _) in held.iter().enumerate().filter(|(_, h)| **h == (true, true)) {
        match rules.pip_size(symbols.name(id)) {
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

/// `(b − a) / a · 100`, the change from `a` to `b` in percent of `a`; `None` when a
/// decimal cannot hold it (or `a` is zero).
fn pct_change(a: Decimal, b: Decimal) -> Option<Decimal> {
    b.checked_sub(a)?
        .checked_div(a)?
        .checked_mul(Decimal::ONE_HUNDRED)
}

/// `(b − a) / pip`, a price difference in pips; `None` when a decimal cannot hold it.
fn pips_between(a: Decimal, b: Decimal, pip: Decimal) -> Option<Decimal> {
    b.checked_sub(a)?.checked_div(pip)
}

/// Greedy closest-pair-first matching of one (symbol, side) group.
///
/// Each trade walks the price-sorted positions outwards from its entry price, one distance
/// level at a time (ties broken by volume difference, then ticket); a heap keeps every
/// trade's next candidate, so the globally closest remaining pair is always taken first.
fn closest_pairs(
    trades: &[BotTrade],
    positions: &[BrokerPosition],
    ts: &[usize],
    ps: &[usize],
    window: Decimal,
    volume_pct: Decimal,
) -> Vec<(usize, usize)> {
    let mut sorted: Vec<usize> = ps.to_vec();
    sorted.sort_by_key(|&p| (positions[p].open_price, positions[p].ticket));
    let prices: Vec<Decimal> = sorted
        .iter()
        .map(|&p| positions[p].open_price.get())
        .collect();
    let mut taken = vec![false; sorted.len()];

    let mut cursors: Vec<Cursor> = ts
        .iter()
        .map(|&t| {
            let entry = trades[t].entry_price.get();
            let split = prices.partition_point(|&x| x < entry);
            Cursor {
                left: split,
                right: split,
                buffer: Vec::new(),
            }
        })
        .collect();
    let ctx = |ti: usize| Ctx {
        trade: &trades[ts[ti]],
        positions,
        sorted: &sorted,
        prices: &prices,
        window,
        volume_pct,
    };

    // Heap entries: (distance, volume difference, trade rank, slot in `sorted`, trade slot).
    let mut heap = BinaryHeap::with_capacity(ts.len());
    for (ti, cursor) in cursors.iter_mut().enumerate() {
        if let Some((d, v, slot)) = cursor.next(&ctx(ti), &taken) {
            heap.push(Reverse((d, v, ti, slot)));
        }
    }
    let mut out = Vec::new();
    while let Some(Reverse((_, _, ti, slot))) = heap.pop() {
        if taken[slot] {
            if let Some((d, v, s)) = cursors[ti].next(&ctx(ti), &taken) {
                heap.push(Reverse((d, v, ti, s)));
            }
            continue;
        }
        taken[slot] = true;
        out.push((ts[ti], sorted[slot]));
    }
    out
}

struct Ctx<'a> {
    trade: &'a BotTrade,
    positions: &'a [BrokerPosition],
    sorted: &'a [usize],
    prices: &'a [Decimal],
    window: Decimal,
    volume_pct: Decimal,
}

/// One trade's walk outwards through the sorted positions.
struct Cursor {
    /// Next slot to look at on the left is `left - 1`.
    left: usize,
    /// Next slot to look at on the right.
    right: usize,
    /// Candidates of the current distance level, best last.
    buffer: Vec<(Decimal, Decimal, usize)>,
}

impl Cursor {
    /// The next acceptable candidate `(distance, volume difference, slot)`, if any.
    fn next(&mut self, c: &Ctx<'_>, taken: &[bool]) -> Option<(Decimal, Decimal, usize)> {
        loop {
            while let Some(cand) = self.buffer.pop() {
                if !taken[cand.2] {
                    return Some(cand);
                }
            }
            self.fill_level(c)?;
        }
    }

    /// Loads every slot at the next smallest distance into the buffer.
    fn fill_level(&mut self, c: &Ctx<'_>) -> Option<()> {
        let entry = c.trade.entry_price.get();
        // Prices are positive and bounded: their differences cannot saturate.
        let dl = (self.left > 0).then(|| entry.saturating_sub(c.prices[self.left - 1]));
        let dr = (self.right < c.prices.len()).then(|| c.prices[self.right].saturating_sub(entry));
        let d = match (dl, dr) {
            (Some(l), Some(r)) => l.min(r),
            (Some(l), None) => l,
            (None, Some(r)) => r,
            (None, None) => return None,
        };
        if d > c.window {
            return None;
        }
        while self.left > 0 && entry.saturating_sub(c.prices[self.left - 1]) == d {
            self.left -= 1;
            self.consider(c, self.left, d);
        }
        while self.right < c.prices.len() && c.prices[self.right].saturating_sub(entry) == d {
            self.consider(c, self.right, d);
            self.right += 1;
        }
        // Best (smallest volume difference, then lowest ticket) last, for `pop`.
        self.buffer.sort_by(|a, b| {
            (b.1, c.positions[c.sorted[b.2]].ticket).cmp(&(a.1, c.positions[c.sorted[a.2]].ticket))
        });
        Some(())
    }

    fn consider(&mut self, c: &Ctx<'_>, slot: usize, d: Decimal) {
        let volume = c.positions[c.sorted[slot]].volume.get();
        // A difference no decimal can hold is outside every window.
        if let Some(v) = pct_change(c.trade.volume.get(), volume).map(|v| v.abs())
            && v <= c.volume_pct
        {
            self.buffer.push((d, v, slot));
        }
    }
}

/// The divergence rules on a matched pair (all "strictly greater than" the tolerance).
fn compare(
    trade: &BotTrade,
    pos: &BrokerPosition,
    symbol: &str,
    pip: Decimal,
    tol: &Tolerances,
    out: &mut Vec<Divergence>,
) -> Result<(), ReconcileError> {
    let out_of_range = |field, expected: Decimal, actual: Decimal, pip: Option<Decimal>| {
        let mut value = format!("{expected} against {actual}");
        if let Some(pip) = pip {
            value.push_str(&format!(" at pip size {pip}"));
        }
        ReconcileError::OutOfRange {
            trade_id: trade.id.clone(),
            ticket: pos.ticket,
            field,
            value,
        }
    };
    let mut push = |kind, expected, actual, delta: Option<(Decimal, Unit)>| {
        let delta = delta.map(|(d, u)| (d.round_dp(DELTA_DP).normalize(), u));
        out.push(Divergence::new(
            kind,
            symbol.to_owned(),
            Some(pos.ticket),
            Some(trade.id.clone()),
            expected,
            actual,
            delta,
        ));
    };
    let num = |p: Price| Some(Value::Number(p.get()));

    if trade.side != pos.side {
        push(
            DivergenceKind::SideMismatch,
            Some(Value::Side(trade.side)),
            Some(Value::Side(pos.side)),
            None,
        );
    }

    // Positive slippage is worse for the trader: a buy filled higher, a sell filled lower.
    let (entry, open) = (trade.entry_price.get(), pos.open_price.get());
    let raw = pips_between(entry, open, pip)
        .ok_or_else(|| out_of_range("open_price", entry, open, Some(pip)))?;
    let slippage = if trade.side == Side::Buy { raw } else { -raw };
    if slippage.abs() > tol.entry_slippage_pips {
        push(
            DivergenceKind::EntrySlippage,
            num(trade.entry_price),
            num(pos.open_price),
            Some((slippage, Unit::Pips)),
        );
    }

    let (tv, pv) = (trade.volume.get(), pos.volume.get());
    let volume_delta = pct_change(tv, pv).ok_or_else(|| out_of_range("volume", tv, pv, None))?;
    if volume_delta.abs() > tol.volume_pct {
        push(
            DivergenceKind::VolumeMismatch,
            Some(Value::Number(tv)),
            Some(Value::Number(pv)),
            Some((volume_delta, Unit::Percent)),
        );
    }

    for (kind, field, expected, actual, limit) in [
        (
            DivergenceKind::SlMismatch,
            "sl",
            trade.sl,
            pos.sl,
            tol.sl_pips,
        ),
        (
            DivergenceKind::TpMismatch,
            "tp",
            trade.tp,
            pos.tp,
            tol.tp_pips,
        ),
    ] {
        match (expected, actual) {
            (Some(e), Some(a)) => {
                let (want, got) = (e.get(), a.get());
                let d = pips_between(want, got, pip)
                    .ok_or_else(|| out_of_range(field, want, got, Some(pip)))?;
                if d.abs() > limit {
                    push(kind, num(e), num(a), Some((d, Unit::Pips)));
                }
            }
            (None, None) => {}
            (e, a) => push(kind, e.and_then(num), a.and_then(num), None),
        }
    }
    Ok(())
}
