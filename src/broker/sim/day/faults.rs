//! Planting faults: real divergences between the bot and its broker, each recorded in the
//! truth as the divergence it must produce. Magnitudes are clearly beyond the default
//! tolerances, and what a fault touches is frozen (left alone by the bot, its stops and
//! ticket changes), so it lasts until the end of the day.

use super::BOT_MAGIC;
use super::book::{Book, PIP};
use super::model::Pos;
use super::truth::PlantedFault;
use crate::domain::{DealEntry, DealReason, Side};

impl Book {
    /// Plants one fault of a kind drawn uniformly. A fault that needs one of the bot's
    /// positions and finds none it may touch is not planted.
    pub(super) fn plant_fault(&mut self) {
        match self.rng.below(7) {
            0 => self.open_market(Some(PlantedFault::EntrySlippage)),
            1 => self.open_market(Some(PlantedFault::WrongVolume)),
            2 => self.open_market(Some(PlantedFault::NeverFilled)),
            3 => self.move_sl(),
            4 => self.close_by_hand(),
            5 => self.open_by_hand(),
            _ => self.close_part_by_hand(),
        }
    }

    /// Desktop, mobile or web.
    fn by_hand(&mut self) -> DealReason {
        match self.rng.below(3) {
            0 => DealReason::Client,
            1 => DealReason::Mobile,
            _ => DealReason::Web,
        }
    }

    /// A live trade of the bot whose position passes `fits`, frozen from now on: the
    /// indices of the trade and of its position.
    fn pick_frozen(&mut self, fits: impl Fn(&Pos) -> bool) -> Option<(usize, usize)> {
        let candidates: Vec<(usize, usize)> = self
            .live_trades()
            .into_iter()
            .filter_map(|t| Some((t, self.position_of(self.trades[t].ticket)?)))
            .filter(|&(_, p)| fits(&self.positions[p]))
            .collect();
        let (t, p) = candidates[self.rng.index(candidates.len())?];
        self.trades[t].frozen = true;
        self.positions[p].frozen = true;
        Some((t, p))
    }

    /// The broker's stop loss of a position moves 12–40 pips further from the price.
    fn move_sl(&mut self) {
        let Some((t, p)) = self.pick_frozen(|p| p.sl.is_some()) else {
            return;
        };
        let away = self.rng.between(12, 40) as i64 * PIP;
        let pos = &mut self.positions[p];
        pos.sl = pos.sl.map(|sl| match pos.side {
            Side::Buy => sl - away,
            Side::Sell => sl + away,
        });
        let (ticket, sym) = (pos.ticket, pos.sym);
        let id = self.trades[t].id.clone();
        self.plant(PlantedFault::SlMoved, Some(id), Some(ticket), sym);
    }

    /// A position closed by hand at the broker; the bot's trade stays open.
    fn close_by_hand(&mut self) {
        let Some((t, p)) = self.pick_frozen(|_| true) else {
            return;
        };
        let reason = self.by_hand();
        let price = self.mid(self.positions[p].sym);
        let pos = self.positions.remove(p);
        self.deal(&pos, DealEntry::Out, reason, pos.lots, price);
        let trade = &self.trades[t];
        let (id, ticket) = (trade.id.clone(), trade.ticket);
        self.plant(
            PlantedFault::ClosedByHand(reason),
            Some(id),
            Some(ticket),
            pos.sym,
        );
    }

    /// A position opened by hand under the bot's magic number.
    fn open_by_hand(&mut self) {
        let reason = self.by_hand();
        let position = self.random_position(BOT_MAGIC, "", true);
        let (ticket, sym) = (position.ticket, position.sym);
        self.open_position(position, reason);
        self.plant(PlantedFault::ManualOpen(reason), None, Some(ticket), sym);
    }

    /// 30–70 % of a position (of at least 0.10 lots) closed by hand; the bot's trade keeps
    /// its volume.
    fn close_part_by_hand(&mut self) {
        let Some((t, p)) = self.pick_frozen(|p| p.lots >= 10) else {
            return;
        };
        let reason = self.by_hand();
        let pos = self.positions[p].clone();
        let out = (pos.lots * self.rng.between(30, 70) as i64 / 100).max(1);
        let price = self.mid(pos.sym);
        self.deal(&pos, DealEntry::Out, reason, out, price);
        self.positions[p].lots -= out;
        let id = self.trades[t].id.clone();
        self.plant(
            PlantedFault::PartialClose(reason),
            Some(id),
            Some(pos.ticket),
            pos.sym,
        );
    }
}
