//! Why a position the bot still holds vanished or shrank at the broker: its closing deals.
//!
//! The matching says a trade is `missing_at_broker` when its position is gone, and
//! `volume_mismatch` when the position holds less than the bot believes. Here the
//! position's deals are asked for (the caller looks in the snapshot's deals first, then
//! asks the broker) and:
//!
//! - a vanished position whose closing deals account for it is `closed_at_broker`, with
//!   the reason of the last closing deal, the close price weighted by volume over the
//!   closing deals, their summed profit, their volume and the last one's time;
//! - a position whose drop in volume closing deals account for exactly is
//!   `partially_closed`, the closed volume as its delta (in lots).
//!
//! Invariants:
//! - which position: the identifier the trade was last matched with (remembered across
//!   syncs, through the disappearance), else the trade's ticket; neither (a restart
//!   forgot it, and the trade has no ticket) → nothing to look up: `missing_at_broker`;
//! - an empty history is unknown, not "no deals": such a lookup, or a failed one, is a
//!   miss. While fewer than `close_lookup_syncs` lookups missed, the divergence is held,
//!   together with the form it would take once explained (so a row opened before a
//!   restart is neither resolved nor opened again meanwhile); then it stays what the
//!   matching said;
//! - a broker without per-position history whose snapshots carry no deals either gives
//!   up at once: `missing_at_broker` as before;
//! - an explained close is remembered, never asked again while the trade stays open and
//!   unmatched, and fingerprints never depend on the deals: the same close is the same
//!   divergence on every sync.
//!
//! This file reads deals; `close_tracker` keeps the lookups across syncs. Pure: the caller
//! does the lookups and passes their answers.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::divergence::CloseDetail;
use super::facts::{Deal, DealEntry, DealReason};
use super::values::{Price, Volume};

/// Lookups of a vanished or shrunk position that may miss before it is reported as the
/// matching saw it, by default: two, as many as the syncs that confirm a missing trade
/// (`[reconcile.confirm_syncs]`), so that waiting for a lagging history never makes a
/// missing trade later than its confirmation does (trade copiers wait for two or three
/// misses).
pub const DEFAULT_CLOSE_LOOKUP_SYNCS: u32 = 2;
/// The most lookups that may miss.
pub const MAX_CLOSE_LOOKUP_SYNCS: u32 = 100;

/// Every deal reason, for reading one back from its name.
const REASONS: [DealReason; 8] = [
    DealReason::Client,
    DealReason::Mobile,
    DealReason::Web,
    DealReason::Expert,
    DealReason::StopLoss,
    DealReason::TakeProfit,
    DealReason::StopOut,
    DealReason::Other,
];

/// The deal reason named `text` (as [`DealReason::as_str`] writes it).
pub fn deal_reason(text: &str) -> Option<DealReason> {
    REASONS.into_iter().find(|r| r.as_str() == text)
}

/// What a question asks of a position's deals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// The position is gone; `last_volume` is what it held when last matched, if known.
    Vanished {
        /// Its volume when last seen.
        last_volume: Option<Volume>,
    },
    /// The position holds `broker` lots where the bot believes it holds more, `bot`.
    Shrunk {
        /// The bot's volume.
        bot: Volume,
        /// The broker's volume.
        broker: Volume,
    },
}

/// What the deals of one position say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Closing deals account for the close.
    Closed(CloseDetail),
    /// The history is complete and says the volume did not drop by closes (a fill
    /// smaller than the bot's, say): final, never asked again.
    NotClosed,
    /// No closing deal, or not enough of them: the history may lag.
    Unknown,
}

/// What the deals of `position_id` among `deals` say about `asked`. Deals are counted
/// once per ticket, so a snapshot's deals and the broker's may be given together.
pub fn classify(asked: Asked, position_id: u64, deals: &[Deal]) -> Finding {
    let mine: BTreeMap<u64, &Deal> = deals
        .iter()
        .filter(|d| d.position_id == position_id)
        .map(|d| (d.ticket, d))
        .collect();
    let closing: Vec<&Deal> = mine
        .values()
        .copied()
        .filter(|d| d.entry.closes())
        .collect();
    let opened = sum(mine.values().copied().filter(|d| d.entry == DealEntry::In));
    let Some((opened, closed)) = opened.zip(sum(closing.iter().copied())) else {
        return Finding::Unknown;
    };
    let summary = || summarise(&closing).map_or(Finding::Unknown, Finding::Closed);
    match asked {
        Asked::Vanished { last_volume } => {
            let required = last_volume.map_or(opened, |v| v.get().max(opened));
            if closing.is_empty() || closed < required {
                Finding::Unknown
            } else {
                summary()
            }
        }
        Asked::Shrunk { bot, broker } => {
            let (bot, broker) = (bot.get(), broker.get());
            if broker >= bot {
                Finding::NotClosed
            } else if !closing.is_empty() && Some(closed) == bot.checked_sub(broker) {
                summary()
            } else if opened > Decimal::ZERO && opened.checked_sub(closed) == Some(broker) {
                // A complete history: what opened, less what closed, is what is held.
                Finding::NotClosed
            } else {
                Finding::Unknown
            }
        }
    }
}

/// The summed volume of `deals`; `None` when a decimal cannot hold it.
fn sum<'a>(mut deals: impl Iterator<Item = &'a Deal>) -> Option<Decimal> {
    deals.try_fold(Decimal::ZERO, |acc, d| acc.checked_add(d.volume.get()))
}

/// The close the `closing` deals describe; `None` without any, or when the sums are out
/// of a decimal's (or a price's, a volume's) range.
fn summarise(closing: &[&Deal]) -> Option<CloseDetail> {
    let last = closing.iter().max_by_key(|d| (d.time, d.ticket))?;
    let (mut volume, mut notional, mut profit) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    let mut scale = 0;
    for d in closing {
        volume = volume.checked_add(d.volume.get())?;
        notional = notional.checked_add(d.price.get().checked_mul(d.volume.get())?)?;
        profit = profit.checked_add(d.profit)?;
        scale = scale.max(d.price.get().scale());
    }
    // Two digits finer than the deals' prices, never coarser than them.
    let mut price = notional
        .checked_div(volume)?
        .round_dp(scale + 2)
        .normalize();
    if price.scale() < scale {
        price.rescale(scale);
    }
    Some(CloseDetail {
        reason: last.reason,
        price: Price::new_checked(price).ok()?,
        profit,
        volume: Volume::new_checked(volume).ok()?,
        time: last.time,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::{DateTime, Utc};
    use rust_decimal::dec;

    use super::*;
    use crate::domain::values::Side;

    pub(crate) fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_770_000_000 + secs, 0).expect("a time")
    }

    /// A deal of position 7, executed `ticket` seconds after the start.
    pub(crate) fn deal(
        ticket: u64,
        entry: DealEntry,
        reason: DealReason,
        volume: Decimal,
        price: Decimal,
        profit: Decimal,
    ) -> Deal {
        Deal {
            ticket,
            position_id: 7,
            symbol: "EURUSD".into(),
            side: if entry == DealEntry::In {
                Side::Buy
            } else {
                Side::Sell
            },
            entry,
            reason,
            volume: Volume::new(volume),
            price: Price::new(price),
            profit,
            time: at(ticket as i64),
        }
    }

    pub(crate) fn open(ticket: u64, volume: Decimal) -> Deal {
        deal(
            ticket,
            DealEntry::In,
            DealReason::Expert,
            volume,
            dec!(1.1000),
            Decimal::ZERO,
        )
    }

    pub(crate) fn close(
        ticket: u64,
        reason: DealReason,
        volume: Decimal,
        price: Decimal,
        profit: Decimal,
    ) -> Deal {
        deal(ticket, DealEntry::Out, reason, volume, price, profit)
    }

    /// What a classification should say: a close (reason, price, profit, volume, time of
    /// the last deal), not a close, or not known yet.
    #[derive(Debug)]
    enum Want {
        Closed(DealReason, &'static str, &'static str, &'static str, i64),
        NotClosed,
        Unknown,
    }

    fn vanished(last: Option<Decimal>) -> Asked {
        Asked::Vanished {
            last_volume: last.map(Volume::new),
        }
    }

    fn shrunk(bot: Decimal, broker: Decimal) -> Asked {
        Asked::Shrunk {
            bot: Volume::new(bot),
            broker: Volume::new(broker),
        }
    }

    use DealReason::*;

    #[rstest::rstest]
    #[case::stop_loss(vanished(Some(dec!(1))),
        vec![open(1, dec!(1)), close(2, StopLoss, dec!(1), dec!(1.0950), dec!(-50))],
        Want::Closed(StopLoss, "1.0950", "-50", "1", 2))]
    #[case::take_profit(vanished(Some(dec!(1))),
        vec![open(1, dec!(1)), close(2, TakeProfit, dec!(1), dec!(1.1100), dec!(100))],
        Want::Closed(TakeProfit, "1.1100", "100", "1", 2))]
    #[case::stop_out(vanished(None),
        vec![open(1, dec!(1)), close(2, StopOut, dec!(1), dec!(1.0500), dec!(-500))],
        Want::Closed(StopOut, "1.0500", "-500", "1", 2))]
    #[case::by_hand_on_the_desktop(vanished(None),
        vec![open(1, dec!(1)), close(2, Client, dec!(1), dec!(1.1010), dec!(10))],
        Want::Closed(Client, "1.1010", "10", "1", 2))]
    #[case::by_hand_on_a_phone(vanished(None),
        vec![open(1, dec!(1)), close(2, Mobile, dec!(1), dec!(1.1010), dec!(10))],
        Want::Closed(Mobile, "1.1010", "10", "1", 2))]
    #[case::by_hand_on_the_web(vanished(None),
        vec![open(1, dec!(1)), close(2, Web, dec!(1), dec!(1.1010), dec!(10))],
        Want::Closed(Web, "1.1010", "10", "1", 2))]
    #[case::by_another_expert(vanished(None),
        vec![open(1, dec!(1)), close(2, Expert, dec!(1), dec!(1.1010), dec!(10))],
        Want::Closed(Expert, "1.1010", "10", "1", 2))]
    #[case::closed_by_an_opposite_position(vanished(None),
        vec![open(1, dec!(1)), deal(2, DealEntry::OutBy, Client, dec!(1), dec!(1.1010), dec!(10))],
        Want::Closed(Client, "1.1010", "10", "1", 2))]
    #[case::partial_closes_then_the_stop_loss(vanished(Some(dec!(0.7))),
        vec![open(1, dec!(1)), close(2, Client, dec!(0.3), dec!(1.1010), dec!(3)),
             close(3, StopLoss, dec!(0.7), dec!(1.0950), dec!(-35))],
        Want::Closed(StopLoss, "1.0968", "-32", "1.0", 3))]
    #[case::weighted_price_two_digits_finer(vanished(None),
        vec![close(2, TakeProfit, dec!(1), dec!(1.10001), dec!(1)),
             close(3, TakeProfit, dec!(2), dec!(1.10002), dec!(2))],
        Want::Closed(TakeProfit, "1.1000167", "3", "3", 3))]
    #[case::a_recent_window_without_the_opening_deal(vanished(None),
        vec![close(2, StopLoss, dec!(0.5), dec!(1.0950), dec!(-25))],
        Want::Closed(StopLoss, "1.0950", "-25", "0.5", 2))]
    #[case::deals_given_twice_count_once(vanished(Some(dec!(1))),
        vec![open(1, dec!(1)), close(2, StopLoss, dec!(1), dec!(1.0950), dec!(-50)),
             close(2, StopLoss, dec!(1), dec!(1.0950), dec!(-50))],
        Want::Closed(StopLoss, "1.0950", "-50", "1", 2))]
    #[case::no_deal_yet(vanished(Some(dec!(1))), vec![], Want::Unknown)]
    #[case::only_the_opening_deal(vanished(None), vec![open(1, dec!(1))], Want::Unknown)]
    #[case::closes_short_of_what_opened(vanished(None),
        vec![open(1, dec!(1)), close(2, Client, dec!(0.4), dec!(1.1), dec!(0))],
        Want::Unknown)]
    #[case::closes_short_of_what_was_last_held(vanished(Some(dec!(1))),
        vec![close(2, Client, dec!(0.4), dec!(1.1), dec!(0))],
        Want::Unknown)]
    #[case::half_closed(shrunk(dec!(1), dec!(0.5)),
        vec![open(1, dec!(1)), close(2, Client, dec!(0.5), dec!(1.1020), dec!(10))],
        Want::Closed(Client, "1.1020", "10", "0.5", 2))]
    #[case::several_partial_closes(shrunk(dec!(1), dec!(0.5)),
        vec![open(1, dec!(1)), close(2, Web, dec!(0.2), dec!(1.1020), dec!(4)),
             close(3, Mobile, dec!(0.3), dec!(1.1030), dec!(9))],
        Want::Closed(Mobile, "1.1026", "13", "0.5", 3))]
    #[case::partial_closes_that_do_not_add_up(shrunk(dec!(1), dec!(0.5)),
        vec![close(2, Client, dec!(0.3), dec!(1.1020), dec!(6))],
        Want::Unknown)]
    #[case::no_partial_close_deal_yet(shrunk(dec!(1), dec!(0.5)),
        vec![open(1, dec!(1))],
        Want::Unknown)]
    #[case::a_smaller_fill(shrunk(dec!(1), dec!(0.5)),
        vec![open(1, dec!(0.5))],
        Want::NotClosed)]
    #[case::a_smaller_fill_and_a_partial_close(shrunk(dec!(1), dec!(0.5)),
        vec![open(1, dec!(0.9)), close(2, Client, dec!(0.4), dec!(1.1020), dec!(8))],
        Want::NotClosed)]
    fn closing_deals_say_how_a_position_closed(
        #[case] asked: Asked,
        #[case] mut deals: Vec<Deal>,
        #[case] want: Want,
    ) {
        // Deals of another position never count.
        let mut other = close(9, StopOut, dec!(5), dec!(1.2), dec!(-1));
        other.position_id = 8;
        deals.push(other);
        let got = classify(asked, 7, &deals);
        match (&got, want) {
            (Finding::Closed(c), Want::Closed(reason, price, profit, volume, time)) => {
                assert_eq!(c.reason, reason);
                assert_eq!(c.price.to_string(), price);
                assert_eq!(c.profit.normalize(), profit.parse::<Decimal>().unwrap());
                assert_eq!(c.volume.get(), volume.parse::<Decimal>().unwrap());
                assert_eq!(c.time, at(time));
            }
            (Finding::NotClosed, Want::NotClosed) | (Finding::Unknown, Want::Unknown) => {}
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn reasons_read_back_from_their_names_and_three_are_by_hand() {
        for reason in REASONS {
            assert_eq!(deal_reason(reason.as_str()), Some(reason));
        }
        assert_eq!(deal_reason("sl"), None);
        let manual: Vec<&str> = REASONS
            .into_iter()
            .filter(|r| r.is_manual())
            .map(DealReason::as_str)
            .collect();
        assert_eq!(manual, ["client", "mobile", "web"]);
    }
}
