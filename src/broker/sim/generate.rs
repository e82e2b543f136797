//! Generating one account: the bot's trades, the broker positions derived from them, and
//! the noise applied on the way, recorded as [`Injected`] so tests can check that the
//! service finds exactly that.
//!
//! Noise magnitudes are chosen clearly beyond the default tolerances (slippage 6–15 pips
//! against 5, volume −20 to −50 % against 10 %, SL 12–40 pips against 10), and a manual
//! position never shares symbol and side with a closed trade, so the heuristic matcher
//! cannot pair them: reconciling a generated account yields exactly its injected list.

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::config::SimConfig;
use super::market::{self, POINTS_PER_PIP, Quote};
use super::rng::SplitMix64;
use crate::domain::{BotTrade, BrokerPosition, DivergenceKind, Side, Volume};

/// One piece of noise the simulator applied, as the divergence it should produce.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Injected {
    /// The divergence `reconcile` should report.
    pub kind: DivergenceKind,
    /// The bot trade involved (`None` for a manual position).
    pub trade_id: Option<String>,
    /// The ticket the divergence carries: the position's, or the trade's own for a
    /// position that is gone (`None` when the bot never knew it).
    pub ticket: Option<u64>,
}

/// A generated account.
#[derive(Debug, Clone, Default)]
pub(super) struct Generated {
    pub(super) trades: Vec<BotTrade>,
    pub(super) positions: Vec<BrokerPosition>,
    pub(super) injected: Vec<Injected>,
}

/// Magic number of the simulated bot's orders.
const BOT_MAGIC: i64 = 20_240_601;
/// Positions open before this instant (2025-01-06T00:00:00Z), so data never depends on the clock.
const EPOCH_SECS: i64 = 1_736_121_600;
/// Ticket space of one account: account `n` uses tickets from `n · TICKET_SPAN + 1 000 000`.
const TICKET_SPAN: u64 = 10_000_000;

/// The id of the `n`-th generated account (1-based): `sim-001`, `sim-002`, …
pub(super) fn account_id(n: usize) -> String {
    format!("sim-{n:03}")
}

/// One position in points, before it becomes domain types.
struct Draft {
    symbol: String,
    quote: Quote,
    side: Side,
    open: i64,
    lots: i64,
    sl: Option<i64>,
    tp: Option<i64>,
    current: i64,
    swap_cents: i64,
    ticket: u64,
    opened: DateTime<Utc>,
}

impl Draft {
    /// +1 for a buy, −1 for a sell: the direction of profit in points.
    fn dir(&self) -> i64 {
        match self.side {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }

    fn position(&self, magic: i64, comment: &str, client_id: Option<String>) -> BrokerPosition {
        let digits = self.quote.digits;
        let px = |points: i64| market::price(points, digits);
        let volume = Decimal::new(self.lots.max(1), 2);
        let (open, current) = (px(self.open), px(self.current));
        BrokerPosition {
            ticket: self.ticket,
            identifier: self.ticket,
            symbol: self.symbol.clone(),
            side: self.side,
            volume: Volume::new(volume),
            open_price: open,
            sl: self.sl.map(px),
            tp: self.tp.map(px),
            current_price: Some(current),
            profit: market::profit(&self.symbol, self.side, volume, open.get(), current.get()),
            swap: Decimal::new(self.swap_cents, 2),
            magic,
            comment: comment.to_owned(),
            client_id,
            open_time: self.opened + TimeDelta::milliseconds(350),
        }
    }
}

/// Generates account number `n` (1-based) of `config`; depends only on the seed and `n`.
pub(super) fn generate(config: &SimConfig, n: usize) -> Generated {
    let mut g = Gen {
        config,
        rng: SplitMix64::stream(config.seed, n as u64),
        account: account_id(n),
        next_ticket: (n as u64)
            .saturating_mul(TICKET_SPAN)
            .saturating_add(1_000_000),
        out: Generated::default(),
    };
    let mut closed: Vec<(String, Side)> = Vec::new();
    for i in 1..=config.positions_per_account {
        let Some(k) = g.rng.index(config.symbols.len()) else {
            break;
        };
        let draft = g.draft(&config.symbols[k], None);
        let trade = g.trade(i, &draft);
        if g.rng.chance(config.closed_by_sl_pct) {
            g.record(
                DivergenceKind::MissingAtBroker,
                Some(&trade.id),
                trade.ticket,
            );
            closed.push((draft.symbol.to_ascii_uppercase(), draft.side));
        } else {
            let position = g.noisy_position(&trade.id, draft);
            g.out.positions.push(position);
        }
        g.out.trades.push(trade);
    }
    if g.rng.chance(config.manual_position_pct) {
        g.manual_position(&closed);
    }
    g.out
}

struct Gen<'a> {
    config: &'a SimConfig,
    rng: SplitMix64,
    account: String,
    next_ticket: u64,
    out: Generated,
}

impl Gen<'_> {
    fn ticket(&mut self) -> u64 {
        self.next_ticket += self.rng.between(1, 37);
        self.next_ticket
    }

    fn record(&mut self, kind: DivergenceKind, trade_id: Option<&str>, ticket: Option<u64>) {
        self.out.injected.push(Injected {
            kind,
            trade_id: trade_id.map(str::to_owned),
            ticket,
        });
    }

    /// A random position on `symbol` near its reference price, SL and TP on most; the
    /// side is random unless `side` forces it.
    fn draft(&mut self, symbol: &str, side: Option<Side>) -> Draft {
        let r = &mut self.rng;
        let quote = market::quote(symbol);
        let coin = if r.chance(50) { Side::Buy } else { Side::Sell };
        let side = side.unwrap_or(coin);
        let dir = if side == Side::Buy { 1 } else { -1 };
        let spread = quote.mid * 15 / 1000;
        let open = quote.mid + r.between_i64(-spread, spread);
        let lots = if r.chance(70) {
            r.between_i64(1, 50)
        } else {
            r.between_i64(51, 200)
        };
        let sl = r.chance(85).then(|| open - dir * r.between_i64(150, 800));
        let tp = r.chance(75).then(|| open + dir * r.between_i64(200, 1500));
        let current = open + r.between_i64(-800, 800);
        let swap_cents = r.between_i64(-150, 20);
        let age = r.between_i64(60, 7 * 24 * 3600);
        let opened = DateTime::from_timestamp(EPOCH_SECS - age, 0).unwrap_or_default();
        let ticket = self.ticket();
        Draft {
            symbol: symbol.to_owned(),
            quote,
            side,
            open,
            lots,
            sl,
            tp,
            current,
            swap_cents,
            ticket,
            opened,
        }
    }

    /// The bot's view of `draft`; about one trade in seven does not know its ticket.
    fn trade(&mut self, i: usize, d: &Draft) -> BotTrade {
        let id = format!("{}-t{i:02}", self.account);
        let px = |points: i64| market::price(points, d.quote.digits);
        BotTrade {
            account: self.account.clone(),
            symbol: d.symbol.clone(),
            side: d.side,
            volume: Volume::new(Decimal::new(d.lots.max(1), 2)),
            entry_price: px(d.open),
            sl: d.sl.map(px),
            tp: d.tp.map(px),
            ticket: (!self.rng.chance(15)).then_some(d.ticket),
            client_id: Some(id.clone()),
            opened_at: Some(d.opened),
            id,
        }
    }

    /// The broker's view of a bot trade, with slippage, partial volume and SL noise.
    fn noisy_position(&mut self, trade_id: &str, mut d: Draft) -> BrokerPosition {
        let cfg = self.config;
        let ticket = Some(d.ticket);
        if self.rng.chance(cfg.slippage_pct) {
            d.open += self.rng.sign()
                * self
                    .rng
                    .between_i64(6 * POINTS_PER_PIP, 15 * POINTS_PER_PIP);
            self.record(DivergenceKind::EntrySlippage, Some(trade_id), ticket);
        }
        if self.rng.chance(cfg.partial_volume_pct) {
            let filled = d.lots * self.rng.between_i64(50, 80) / 100;
            if filled >= 1 {
                d.lots = filled;
                self.record(DivergenceKind::VolumeMismatch, Some(trade_id), ticket);
            }
        }
        if self.rng.chance(cfg.moved_sl_pct) {
            let r = &mut self.rng;
            d.sl = match d.sl {
                Some(_) if r.chance(25) => None,
                Some(sl) => {
                    Some(sl + r.sign() * r.between_i64(12 * POINTS_PER_PIP, 40 * POINTS_PER_PIP))
                }
                None => {
                    Some(d.open - d.dir() * r.between_i64(20 * POINTS_PER_PIP, 60 * POINTS_PER_PIP))
                }
            };
            self.record(DivergenceKind::SlMismatch, Some(trade_id), ticket);
        }
        d.position(BOT_MAGIC, "sim-bot", Some(trade_id.to_owned()))
    }

    /// One position the bot does not know, on a (symbol, side) no closed trade uses.
    fn manual_position(&mut self, closed: &[(String, Side)]) {
        let candidates: Vec<(&String, Side)> = self
            .config
            .symbols
            .iter()
            .flat_map(|s| [(s, Side::Buy), (s, Side::Sell)])
            .filter(|(s, side)| !closed.contains(&(s.to_ascii_uppercase(), *side)))
            .collect();
        let Some(k) = self.rng.index(candidates.len()) else {
            return;
        };
        let (symbol, side) = candidates[k];
        let draft = self.draft(symbol, Some(side));
        let position = draft.position(0, "manual", None);
        self.record(
            DivergenceKind::UnexpectedAtBroker,
            None,
            Some(position.ticket),
        );
        self.out.positions.push(position);
    }
}
