//! Heuristic pairing: same canonical symbol and side, entry within `match_price_pips`,
//! volume within `match_volume_pct`, the globally closest pair first. Works per (symbol,
//! side) group on positions sorted by price, so its cost grows as O((n + m) · log) for
//! realistic data.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rust_decimal::Decimal;

use super::compare::pct_change;
use super::model::{BotTrade, BrokerPosition};

/// Greedy closest-pair-first matching of one (symbol, side) group.
///
/// Each trade walks the price-sorted positions outwards from its entry price, one distance
/// level at a time (ties broken by volume difference, then ticket); a heap keeps every
/// trade's next candidate, so the globally closest remaining pair is always taken first.
pub(super) fn closest_pairs(
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
