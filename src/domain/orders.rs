//! Trades waiting on a pending order: a trade no position takes is *pending*, not missing,
//! while the broker shows its order. Paired in order of certainty, each order with at most
//! one trade, always within the same canonical symbol:
//!
//! 1. ticket: the trade's ticket is the order's (inside the scope or not: a ticket is an
//!    identity);
//! 2. client id: a ticketless trade's client key is the order's client id or comment;
//! 3. heuristic: a ticketless trade and an order of the same side and volume, the closest
//!    in price first (an order without a price comes last), then by trade id and ticket.
//!
//! Only orders inside the bot's scope are paired by client id or the heuristic. A broker
//! that does not report orders gives none, and nothing is pending.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;

use super::divergence::MatchMethod;
use super::reconcile::Run;
use super::values::Side;

/// Pairs the trades `run` has left with the broker's pending orders.
pub(super) fn claim(run: &mut Run<'_>) {
    if run.orders.is_empty() {
        return;
    }
    by_ticket(run);
    by_client_id(run);
    by_heuristic(run);
}

fn fill(run: &mut Run<'_>, t: usize, o: usize, method: MatchMethod) {
    run.t_done[t] = true;
    run.o_done[o] = true;
    run.fills.push((t, o, method));
}

fn by_ticket(run: &mut Run<'_>) {
    let by_ticket: HashMap<u64, usize> = run
        .o_order
        .iter()
        .map(|&o| (run.orders[o].ticket, o))
        .collect();
    for i in 0..run.t_order.len() {
        let t = run.t_order[i];
        if run.t_done[t] {
            continue;
        }
        if let Some(&o) = run.trades[t].ticket.and_then(|k| by_ticket.get(&k))
            && !run.o_done[o]
            && run.order_sym[o] == run.trade_sym[t]
        {
            fill(run, t, o, MatchMethod::Ticket);
        }
    }
}

fn by_client_id(run: &mut Run<'_>) {
    // Key → orders of the scope, in ticket order.
    let mut by_key: HashMap<&str, Vec<usize>> = HashMap::new();
    for &o in &run.o_order {
        if run.o_done[o] || !run.owned_order[o] {
            continue;
        }
        let order = &run.orders[o];
        let id = order.client_id.as_deref().filter(|s| !s.is_empty());
        if let Some(id) = id {
            by_key.entry(id).or_default().push(o);
        }
        if !order.comment.is_empty() && id != Some(order.comment.as_str()) {
            by_key.entry(&order.comment).or_default().push(o);
        }
    }
    if by_key.is_empty() {
        return;
    }
    for i in 0..run.t_order.len() {
        let t = run.t_order[i];
        if run.t_done[t] || run.trades[t].ticket.is_some() {
            continue;
        }
        let found = by_key.get(run.trades[t].client_key()).and_then(|os| {
            os.iter()
                .copied()
                .find(|&o| !run.o_done[o] && run.order_sym[o] == run.trade_sym[t])
        });
        if let Some(o) = found {
            fill(run, t, o, MatchMethod::ClientId);
        }
    }
}

fn by_heuristic(run: &mut Run<'_>) {
    // (symbol, side, volume) → (trade ranks, orders); volumes normalised so that 0.10
    // and 0.1 are one group.
    type Group = (Vec<usize>, Vec<usize>);
    let mut groups: BTreeMap<(usize, Side, Decimal), Group> = BTreeMap::new();
    for (rank, &t) in run.t_order.iter().enumerate() {
        let trade = &run.trades[t];
        if !run.t_done[t] && trade.ticket.is_none() {
            let key = (run.trade_sym[t], trade.side, trade.volume.get().normalize());
            groups.entry(key).or_default().0.push(rank);
        }
    }
    if groups.is_empty() {
        return;
    }
    for &o in &run.o_order {
        let order = &run.orders[o];
        if run.o_done[o] || !run.owned_order[o] {
            continue;
        }
        let key = (run.order_sym[o], order.side, order.volume.get().normalize());
        if let Some(g) = groups.get_mut(&key) {
            g.1.push(o);
        }
    }
    for (ranks, os) in groups.into_values() {
        if os.is_empty() {
            continue;
        }
        // (no price, distance, trade rank, ticket, order): closest first, deterministic.
        let mut candidates = Vec::with_capacity(ranks.len() * os.len());
        for &rank in &ranks {
            let entry = run.trades[run.t_order[rank]].entry_price.get();
            for &o in &os {
                let order = &run.orders[o];
                let distance = order.price.map(|p| p.get().saturating_sub(entry).abs());
                candidates.push((distance.is_none(), distance, rank, order.ticket, o));
            }
        }
        candidates.sort_unstable();
        for (_, _, rank, _, o) in candidates {
            let t = run.t_order[rank];
            if !run.t_done[t] && !run.o_done[o] {
                fill(run, t, o, MatchMethod::Heuristic);
            }
        }
    }
}
