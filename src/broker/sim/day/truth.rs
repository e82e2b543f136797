//! The day's truth: the faults planted, as the divergences they must produce; the ordinary
//! events the reconciliation may not tell apart yet; what a raised divergence is; and
//! counts of what happened.

use std::ops::AddAssign;

use chrono::{DateTime, Utc};

use super::book::Book;
use crate::domain::{DealReason, Divergence, DivergenceKind};

/// A fault planted on purpose: something really wrong between the bot and its broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlantedFault {
    /// A fill 6–15 pips worse than the bot's price (tolerance 5).
    EntrySlippage,
    /// A fill of 50–80 % of the bot's volume (tolerance 10 %).
    WrongVolume,
    /// An order the bot recorded that the broker never filled (no position, no deal).
    NeverFilled,
    /// The stop loss moved 12–40 pips at the broker (tolerance 10).
    SlMoved,
    /// The position closed by hand at the broker, the bot not knowing.
    ClosedByHand(DealReason),
    /// A position opened by hand under the bot's magic number.
    ManualOpen(DealReason),
    /// 30–70 % of the position closed by hand, the bot not knowing.
    PartialClose(DealReason),
}

impl PlantedFault {
    /// The divergence this fault must produce.
    pub fn kind(self) -> DivergenceKind {
        match self {
            Self::EntrySlippage => DivergenceKind::EntrySlippage,
            Self::WrongVolume => DivergenceKind::VolumeMismatch,
            Self::NeverFilled => DivergenceKind::MissingAtBroker,
            Self::SlMoved => DivergenceKind::SlMismatch,
            Self::ClosedByHand(_) => DivergenceKind::ClosedAtBroker,
            Self::ManualOpen(_) => DivergenceKind::UnexpectedAtBroker,
            Self::PartialClose(_) => DivergenceKind::PartiallyClosed,
        }
    }
}

/// One planted fault, as the divergence it must produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planted {
    /// What was done.
    pub fault: PlantedFault,
    /// The divergence it must produce.
    pub kind: DivergenceKind,
    /// The bot's trade it concerns (`None` for a position the bot never knew).
    pub trade_id: Option<String>,
    /// The ticket the divergence carries: the position's (its current ticket), or the
    /// trade's own for a position that is gone or never came.
    pub ticket: Option<u64>,
    /// The symbol.
    pub symbol: String,
    /// When it became visible at the broker (for a fill that never came: when the bot
    /// recorded the trade).
    pub at: DateTime<Utc>,
}

impl Planted {
    /// Whether `d` concerns the same trade (or, without one, the same ticket).
    pub fn concerns(&self, d: &Divergence) -> bool {
        match (&self.trade_id, &d.trade_id) {
            (Some(a), Some(b)) => a == b,
            (None, None) => self.ticket == d.ticket,
            _ => false,
        }
    }
}

/// An ordinary event of the day that a reconciliation without the matching feature
/// reports as a divergence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    /// A position of the other advisor (outside the bot's magic number).
    OtherAdvisor,
    /// A bot trade whose limit order waits (from the bot's record until the order fills
    /// or is cancelled).
    PendingOrder,
    /// Anything on a netting account (one position per symbol).
    Netting,
}

impl Context {
    /// The snake_case name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OtherAdvisor => "other_advisor",
            Self::PendingOrder => "pending_order",
            Self::Netting => "netting",
        }
    }
}

/// What a raised divergence is, by the day's truth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The planted fault it reports: same kind, same subject, raised after the planting.
    Real(Planted),
    /// A planted fault on the same subject that must be reported as another kind (a hand
    /// close raised as `missing_at_broker` by a reconciliation without deal lookups).
    OtherKind(Planted),
    /// No fault: an ordinary event of this context.
    Context(Context),
    /// No fault and no context: a false alarm.
    False,
}

/// Counts of what happened on a day so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayStats {
    /// Market trades the bot recorded (faulty ones included).
    pub bot_opens: u64,
    /// Market fills at the broker.
    pub fills: u64,
    /// Stop-loss or take-profit changes the bot sent.
    pub modifies: u64,
    /// Trades the bot closed itself.
    pub bot_closes: u64,
    /// Positions closed by their stop loss.
    pub sl_hits: u64,
    /// Positions closed by their take profit.
    pub tp_hits: u64,
    /// Positions closed by a stop-out.
    pub stop_outs: u64,
    /// Stops and stop-outs the bot has caught up with (marked its trade closed).
    pub caught_up: u64,
    /// Limit orders placed.
    pub orders_placed: u64,
    /// Limit orders filled.
    pub orders_filled: u64,
    /// Limit orders cancelled (by the bot or the service).
    pub orders_cancelled: u64,
    /// Positions the other advisor opened.
    pub other_opens: u64,
    /// Positions reopened under a new ticket.
    pub ticket_changes: u64,
    /// Faults planted.
    pub faults: u64,
    /// Deals executed.
    pub deals: u64,
    /// Positions closed by the service (`close_position`).
    pub service_closes: u64,
}

impl AddAssign for DayStats {
    fn add_assign(&mut self, o: Self) {
        self.bot_opens += o.bot_opens;
        self.fills += o.fills;
        self.modifies += o.modifies;
        self.bot_closes += o.bot_closes;
        self.sl_hits += o.sl_hits;
        self.tp_hits += o.tp_hits;
        self.stop_outs += o.stop_outs;
        self.caught_up += o.caught_up;
        self.orders_placed += o.orders_placed;
        self.orders_filled += o.orders_filled;
        self.orders_cancelled += o.orders_cancelled;
        self.other_opens += o.other_opens;
        self.ticket_changes += o.ticket_changes;
        self.faults += o.faults;
        self.deals += o.deals;
        self.service_closes += o.service_closes;
    }
}

impl Book {
    /// Records a planted fault, now.
    pub(super) fn plant(
        &mut self,
        fault: PlantedFault,
        trade_id: Option<String>,
        ticket: Option<u64>,
        sym: usize,
    ) {
        self.stats.faults += 1;
        self.planted.push(Planted {
            fault,
            kind: fault.kind(),
            trade_id,
            ticket,
            symbol: self.symbols[sym].name.to_owned(),
            at: self.instant(self.now),
        });
    }

    /// The faults planted so far.
    pub(super) fn planted(&self) -> &[Planted] {
        &self.planted
    }

    /// What `d`, raised at `raised_at`, is by the truth.
    pub(super) fn classify(&self, d: &Divergence, raised_at: DateTime<Utc>) -> Finding {
        let before = |p: &&Planted| p.at <= raised_at && p.concerns(d);
        if let Some(p) = self
            .planted
            .iter()
            .filter(before)
            .find(|p| p.kind == d.kind)
        {
            return Finding::Real(p.clone());
        }
        if let Some(p) = self.planted.iter().find(before) {
            return Finding::OtherKind(p.clone());
        }
        if self.mode.is_netting() {
            Finding::Context(Context::Netting)
        } else if d.ticket.is_some_and(|t| self.other_tickets.contains(&t)) {
            Finding::Context(Context::OtherAdvisor)
        } else if self.waiting_order(d.trade_id.as_deref(), raised_at) {
            Finding::Context(Context::PendingOrder)
        } else {
            Finding::False
        }
    }

    /// Whether the bot's trade `id` was an order waiting at `at` (or on its way there).
    fn waiting_order(&self, id: Option<&str>, at: DateTime<Utc>) -> bool {
        let ms = (at - self.config.start).num_milliseconds();
        id.and_then(|id| self.order_trades.get(id))
            .is_some_and(|&(from, until)| from <= ms && ms <= until)
    }

    /// Notes that the order of trade `id` left the broker now.
    pub(super) fn order_ended(&mut self, id: &str) {
        if let Some(span) = self.order_trades.get_mut(id) {
            span.1 = span.1.min(self.now);
        }
    }
}
