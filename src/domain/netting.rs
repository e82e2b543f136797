//! Netting accounts (MT5 margin mode netting or exchange): one position per symbol, which
//! every deal of the symbol adds to, reduces or reverses. The bot's trades of a symbol
//! (those no pending order holds) are replayed in the order they were opened
//! (`opened_at`; trades without one first; then by id), as the broker books deals:
//!
//! - a trade on the side of the net adds to it, and the entry becomes the
//!   volume-weighted average of the two;
//! - a trade on the other side reduces the net at an unchanged entry, closes it when its
//!   volume is the net's, and reverses it when larger: the rest at the trade's entry.
//!
//! The net — side, volume, entry — is compared with the symbol's one position by the same
//! rules and tolerances as a pair: side, entry slippage in pips (signed for the net's
//! side), volume in percent of the net. The SL and TP the bot intends are those of its
//! latest trade (the last one replayed), and that trade's id names the symbol's
//! divergences, with the position's ticket: the fingerprints stay the same from sync to
//! sync while the trades do, and a trade the bot adds becomes the latest, so the
//! divergences it brings are new ones, held while it is in flight. Every trade netted is
//! matched to the position (method `netting`).
//!
//! A net that comes to nothing expects no position: the trades are settled, and a position
//! of the symbol is unexpected (or external, outside the scope). A net without a position
//! leaves each trade missing, as on a hedging account. The position is compared whatever
//! its magic or comment (on a netting account the bot's deals merge into whatever
//! position the symbol has); only a symbol the bot has no trade in leaves its position to
//! the scope. A symbol with several positions, which a netting account cannot have, is
//! left to the hedging rules.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::book::Netted;
use super::compare::compare;
use super::divergence::{Match, MatchMethod, Reconciliation};
use super::model::BotTrade;
use super::reconcile::{ReconcileError, Run};
use super::rules::ReconcileRules;
use super::values::{Price, Side, Volume};

/// Decimal places the net entry keeps beyond the most its trades' entries have.
const ENTRY_EXTRA_DP: u32 = 4;

/// The replayed net of a symbol's trades.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    side: Side,
    volume: Decimal,
    entry: Decimal,
}

/// Compares each netting symbol's trades with its position; marks what it settles.
pub(super) fn net(
    run: &mut Run<'_>,
    pips: &[Option<Decimal>],
    rules: &ReconcileRules,
    out: &mut Reconciliation,
) -> Result<(), ReconcileError> {
    let (trades, positions) = (run.trades, run.positions);
    // Positions per symbol id: how many, and the last seen.
    let mut held: Vec<(usize, usize)> = vec![(0, 0); run.symbols.len()];
    for (p, &s) in run.pos_sym.iter().enumerate() {
        held[s] = (held[s].0 + 1, p);
    }
    let mut by_symbol: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (t, &s) in run.trade_sym.iter().enumerate() {
        if !run.t_done[t] {
            by_symbol.entry(s).or_default().push(t);
        }
    }
    for (s, mut ts) in by_symbol {
        let (count, p) = held[s];
        if count > 1 {
            continue;
        }
        let position = (count == 1).then_some(p);
        let ticket = position.map(|p| positions[p].ticket);
        ts.sort_by(|&a, &b| {
            let (a, b) = (&trades[a], &trades[b]);
            (a.opened_at, &a.id).cmp(&(b.opened_at, &b.id))
        });
        let latest = &trades[*ts.last().expect("a symbol's group has a trade")];
        let replayed = replay(trades, &ts, ticket.unwrap_or(0))?;
        let name = run.symbols.name(s).to_owned();
        let mut trade_ids: Vec<String> = ts.iter().map(|&t| trades[t].id.clone()).collect();
        trade_ids.sort_unstable();
        out.netted.push(Netted {
            symbol: name.clone(),
            ticket,
            trade_ids,
            latest: latest.id.clone(),
        });
        match (replayed, position) {
            (None, _) => ts.iter().for_each(|&t| run.t_done[t] = true),
            (Some(_), None) => {}
            (Some(net), Some(p)) => {
                for &t in &ts {
                    run.t_done[t] = true;
                    out.matched.push(Match {
                        trade_id: trades[t].id.clone(),
                        ticket: positions[p].ticket,
                        method: MatchMethod::Netting,
                    });
                }
                run.p_done[p] = true;
                let pip = pips[s].expect("a netted symbol is held on both sides");
                let expected = as_trade(net, latest, positions[p].ticket, &ts, trades)?;
                let tol = rules.tolerances(&name);
                compare(
                    &expected,
                    &positions[p],
                    &name,
                    pip,
                    &tol,
                    &mut out.divergences,
                )?;
            }
        }
    }
    Ok(())
}

/// The net of `order`'s trades, replayed in that order; `None` when flat.
fn replay(
    trades: &[BotTrade],
    order: &[usize],
    ticket: u64,
) -> Result<Option<Net>, ReconcileError> {
    let mut net: Option<Net> = None;
    for &t in order {
        let trade = &trades[t];
        let (volume, entry) = (trade.volume.get(), trade.entry_price.get());
        net = match net {
            None => Some(Net {
                side: trade.side,
                volume,
                entry,
            }),
            Some(n) if n.side == trade.side => {
                let total = n.volume.checked_add(volume);
                let weighted = n
                    .volume
                    .checked_mul(n.entry)
                    .zip(volume.checked_mul(entry))
                    .and_then(|(a, b)| a.checked_add(b))
                    .zip(total)
                    .and_then(|(sum, total)| sum.checked_div(total));
                let (Some(total), Some(weighted)) = (total, weighted) else {
                    return Err(ReconcileError::OutOfRange {
                        trade_id: trade.id.clone(),
                        ticket,
                        field: "volume",
                        value: format!("net {} at {} plus {volume} at {entry}", n.volume, n.entry),
                    });
                };
                Some(Net {
                    volume: total,
                    entry: weighted,
                    ..n
                })
            }
            Some(n) => match volume.cmp(&n.volume) {
                std::cmp::Ordering::Less => Some(Net {
                    volume: n.volume - volume,
                    ..n
                }),
                std::cmp::Ordering::Equal => None,
                std::cmp::Ordering::Greater => Some(Net {
                    side: trade.side,
                    volume: volume - n.volume,
                    entry,
                }),
            },
        };
    }
    Ok(net)
}

/// The net as one trade named by `latest`, with its stops: what the position should be.
fn as_trade(
    net: Net,
    latest: &BotTrade,
    ticket: u64,
    order: &[usize],
    trades: &[BotTrade],
) -> Result<BotTrade, ReconcileError> {
    let dp = order
        .iter()
        .map(|&t| trades[t].entry_price.get().scale())
        .max()
        .unwrap_or(0);
    let entry = net
        .entry
        .round_dp((dp + ENTRY_EXTRA_DP).min(28))
        .normalize();
    let out_of_range = |field, value: Decimal| ReconcileError::OutOfRange {
        trade_id: latest.id.clone(),
        ticket,
        field,
        value: format!("net {value}"),
    };
    Ok(BotTrade {
        id: latest.id.clone(),
        account: latest.account.clone(),
        symbol: latest.symbol.clone(),
        side: net.side,
        volume: Volume::new_checked(net.volume).map_err(|_| out_of_range("volume", net.volume))?,
        entry_price: Price::new_checked(entry).map_err(|_| out_of_range("open_price", entry))?,
        sl: latest.sl,
        tp: latest.tp,
        ticket: None,
        client_id: None,
        opened_at: latest.opened_at,
    })
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use rust_decimal::dec;

    use super::*;
    use crate::domain::values::{Price, Volume};

    fn t(id: &str, side: Side, volume: Decimal, entry: Decimal) -> BotTrade {
        BotTrade {
            id: id.into(),
            account: "acc".into(),
            symbol: "EURUSD".into(),
            side,
            volume: Volume::new(volume),
            entry_price: Price::new(entry),
            sl: None,
            tp: None,
            ticket: None,
            client_id: None,
            opened_at: None,
        }
    }

    use Side::{Buy, Sell};

    #[rstest]
    #[case::one_trade(vec![t("a", Buy, dec!(1), dec!(1.1))], Some((Buy, dec!(1), dec!(1.1))))]
    #[case::adds_average_by_volume(
        vec![t("a", Buy, dec!(1), dec!(1.10)), t("b", Buy, dec!(3), dec!(1.14))],
        Some((Buy, dec!(4), dec!(1.13)))
    )]
    #[case::a_reduction_keeps_the_entry(
        vec![t("a", Buy, dec!(1), dec!(1.10)), t("b", Sell, dec!(0.4), dec!(1.20))],
        Some((Buy, dec!(0.6), dec!(1.10)))
    )]
    #[case::reduce_then_add(
        vec![t("a", Buy, dec!(1), dec!(1.10)), t("b", Sell, dec!(0.5), dec!(1.20)), t("c", Buy, dec!(0.5), dec!(1.14))],
        Some((Buy, dec!(1), dec!(1.12)))
    )]
    #[case::closed_flat(vec![t("a", Sell, dec!(1), dec!(1.1)), t("b", Buy, dec!(1.0), dec!(1.2))], None)]
    #[case::reversed_at_the_reversing_entry(
        vec![t("a", Buy, dec!(1), dec!(1.10)), t("b", Sell, dec!(1.5), dec!(1.12))],
        Some((Sell, dec!(0.5), dec!(1.12)))
    )]
    fn the_net_is_replayed_as_the_broker_books_deals(
        #[case] trades: Vec<BotTrade>,
        #[case] expected: Option<(Side, Decimal, Decimal)>,
    ) {
        let order: Vec<usize> = (0..trades.len()).collect();
        let net = replay(&trades, &order, 1).unwrap();
        assert_eq!(net.map(|n| (n.side, n.volume, n.entry)), expected);
    }
}
