//! Judging divergences over time, not on one snapshot: on a live account the bot records a
//! trade before its fill is visible, and a position appears at the broker before the bot
//! has recorded it. A reconciliation's divergences are therefore raised only when
//!
//! - **no race explains them**: neither the bot's trade nor the broker's position they
//!   concern was first seen, or last changed, within the grace window (`grace`), measured
//!   on this service's own clock from when it first saw the trade or the change — never
//!   by comparing the bot's or the broker's clocks with ours; and
//! - **they are confirmed**: observed on `confirm_syncs` consecutive good syncs (per kind).
//!   A failed sync is no observation: it neither counts nor breaks a streak, since the
//!   judge is only ever given the divergences of a good snapshot.
//!
//! What is not raised is *held*: the store neither opens it nor resolves it if it is
//! already open (a divergence raised before a restart stays open while it is confirmed
//! again). What the judge first sees after a (re)start is not taken as new: only changes
//! it sees happen start a grace window.
//!
//! Netting symbols: a divergence of a symbol compared as one net position is in flight
//! while any of the symbol's trades is, or while the set of its trades changed within the
//! grace window (a trade the bot closed whose reduction the broker does not show yet).
//!
//! Pending orders ([`Judge::judge_reconciliation`]): a trade the reconciliation finds
//! waiting on an order is followed from when the judge first saw it waiting. While it
//! waits, it is no divergence; once it has waited longer than `max_pending_order` it is
//! `order_unfilled`. When its order disappears without a position taking its place, the
//! trade's `missing_at_broker` becomes `order_cancelled` (naming the order's ticket), held
//! within the grace window from when the judge first saw the order gone (a fill whose
//! position shows a sync later is never raised) and confirmed like a missing trade. The
//! waiting time runs on this service's clock, never the broker's (`placed_at` is not
//! read), and starts again after a restart: a restart can delay `order_unfilled`, never
//! bring it early.
//!
//! Pure: the caller passes the time of the observation.

use std::borrow::Borrow;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use chrono::{DateTime, TimeDelta, Utc};

use super::book::{Netted, PendingFill};
use super::divergence::{Divergence, DivergenceKind, Reconciliation, Value};
use super::model::{BotTrade, BrokerPosition};

/// The longest grace window accepted, an hour: a wider one would hide real divergences
/// for longer than any fill or record takes.
pub const MAX_GRACE_SECS: u64 = 3_600;
/// The most consecutive observations a divergence may need.
pub const MAX_CONFIRM_SYNCS: u32 = 100;
/// The longest `max_pending_order` accepted: 90 days.
pub const MAX_PENDING_ORDER_SECS: u64 = 90 * 86_400;
/// The default `max_pending_order`: a day.
pub const DEFAULT_PENDING_ORDER_SECS: u64 = 86_400;

/// How divergences are judged over time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRules {
    /// A trade or position first seen, or changed, this recently is in flight.
    pub grace: TimeDelta,
    /// Consecutive observations needed before a divergence of a kind is raised; a kind
    /// not listed needs one.
    pub confirm_syncs: BTreeMap<DivergenceKind, u32>,
    /// Syncs on which a vanished or shrunk position's deals are looked up without an
    /// answer before it is reported as the matching saw it (see `close_reasons`).
    pub close_lookup_syncs: u32,
    /// How long a bot trade may wait on a pending order before it is `order_unfilled`;
    /// `None`: for ever.
    pub max_pending_order: Option<TimeDelta>,
}

impl Default for LiveRules {
    /// 5 s of grace; missing and unexpected positions, closes at the broker and cancelled
    /// orders confirmed on 2 syncs, value drift, partial closes and the service's own
    /// closes on 1; deals looked up on 2 syncs; an order may wait a day.
    fn default() -> Self {
        Self {
            grace: TimeDelta::seconds(5),
            confirm_syncs: BTreeMap::from([
                (DivergenceKind::MissingAtBroker, 2),
                (DivergenceKind::UnexpectedAtBroker, 2),
                (DivergenceKind::OrderCancelled, 2),
                // A stop loss or take profit hit a second before the bot learns of it.
                (DivergenceKind::ClosedAtBroker, 2),
            ]),
            close_lookup_syncs: super::close_reasons::DEFAULT_CLOSE_LOOKUP_SYNCS,
            max_pending_order: Some(TimeDelta::seconds(DEFAULT_PENDING_ORDER_SECS as i64)),
        }
    }
}

impl LiveRules {
    /// Judged on the snapshot alone: no grace, every kind raised on its first observation,
    /// deals looked up once (orders may wait as long as by default).
    pub fn immediate() -> Self {
        Self {
            grace: TimeDelta::zero(),
            confirm_syncs: BTreeMap::new(),
            close_lookup_syncs: 1,
            ..Self::default()
        }
    }

    /// The consecutive observations `kind` needs (at least 1).
    pub fn confirm(&self, kind: DivergenceKind) -> u32 {
        self.confirm_syncs.get(&kind).copied().unwrap_or(1).max(1)
    }
}

/// What one judgement decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    /// Divergences to raise (or keep open).
    pub raised: Vec<Divergence>,
    /// Observed, but in flight or not yet confirmed: neither opened nor resolved.
    pub held: Vec<Divergence>,
}

/// A hash of what a divergence concerns, whatever its values.
fn subject_key(d: &Divergence) -> u64 {
    let mut h = DefaultHasher::new();
    (d.kind, &d.trade_id, d.ticket).hash(&mut h);
    h.finish()
}

/// Whether two divergences concern the same thing (a [`subject_key`] hit is checked).
fn same_subject(a: &Divergence, b: &Divergence) -> bool {
    (a.kind, &a.trade_id, a.ticket) == (b.kind, &b.trade_id, b.ticket)
}

/// When a trade or position was first seen in its current form.
#[derive(Debug, Clone, Copy)]
struct Seen {
    digest: u64,
    since: DateTime<Utc>,
    /// The judgement that last saw it.
    round: u64,
}

/// A bot trade seen waiting on a pending order.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    /// The order's ticket.
    order: u64,
    /// When the judge first saw the trade waiting on it.
    since: DateTime<Utc>,
    /// When the judge first saw the order gone (and no position for the trade).
    gone_since: Option<DateTime<Utc>>,
}

/// One account's memory across syncs.
#[derive(Debug, Default)]
pub struct Judge {
    trades: HashMap<String, Seen>,
    positions: HashMap<u64, Seen>,
    /// Netting symbols, by canonical symbol, with a digest of their trades' ids.
    groups: HashMap<String, Seen>,
    /// Trades waiting on an order, or whose order went without a fill, by trade id.
    waiting: HashMap<String, Waiting>,
    /// Fingerprint → consecutive observations so far.
    streaks: HashMap<String, u32>,
    /// What the last judgement raised, by a hash of what it concerns (checked against the
    /// stored divergence on a hit), with the judgement that last kept it: a raised
    /// divergence whose values move (the broker moving a stop loss again) is held in its
    /// new form, and its old form stays open meanwhile instead of being resolved and
    /// raised again.
    raised: HashMap<u64, (Divergence, u64)>,
    /// Judgements so far: marks what the current one saw, so that what it did not see is
    /// dropped without a set of its own.
    round: u64,
    /// Whether a snapshot was judged since the start: before it, nothing is "new".
    warm: bool,
}

impl Judge {
    /// Judges `divergences`, the reconciliation of `trades` against `positions` observed
    /// at `now` (with no pending orders and no netting symbols).
    pub fn judge(
        &mut self,
        trades: &[BotTrade],
        positions: &[BrokerPosition],
        divergences: Vec<Divergence>,
        now: DateTime<Utc>,
        rules: &LiveRules,
    ) -> Verdict {
        self.judge_with(trades, positions, &[], divergences, now, rules)
    }

    /// Judges `result`, the reconciliation of `trades` against `positions` observed at
    /// `now`: its divergences, the trades it found waiting on orders, and its netting
    /// symbols.
    pub fn judge_reconciliation(
        &mut self,
        trades: &[BotTrade],
        positions: &[BrokerPosition],
        result: Reconciliation,
        now: DateTime<Utc>,
        rules: &LiveRules,
    ) -> Verdict {
        let Reconciliation {
            mut divergences,
            pending,
            netted,
            ..
        } = result;
        self.follow_orders(&pending, &mut divergences, now, rules);
        self.judge_with(trades, positions, &netted, divergences, now, rules)
    }

    /// Follows the trades waiting on orders: `order_unfilled` for those that waited too
    /// long, and `order_cancelled` for the missing ones whose order went.
    fn follow_orders(
        &mut self,
        pending: &[PendingFill],
        divergences: &mut Vec<Divergence>,
        now: DateTime<Utc>,
        rules: &LiveRules,
    ) {
        if pending.is_empty() && self.waiting.is_empty() {
            return;
        }
        let mut next = HashMap::with_capacity(pending.len());
        let mut unfilled = Vec::new();
        for p in pending {
            let w = match self.waiting.remove(&p.trade_id) {
                // Back after a read that did not show it: the same wait goes on.
                Some(w) if w.order == p.order => Waiting {
                    gone_since: None,
                    ..w
                },
                _ => Waiting {
                    order: p.order,
                    since: now,
                    gone_since: None,
                },
            };
            let too_long = rules
                .max_pending_order
                .and_then(|max| w.since.checked_add_signed(max))
                .is_some_and(|deadline| now > deadline);
            if too_long {
                unfilled.push(Divergence::new(
                    DivergenceKind::OrderUnfilled,
                    p.symbol.clone(),
                    Some(p.order),
                    Some(p.trade_id.clone()),
                    Some(Value::Number(p.volume)),
                    Some(Value::Number(p.order_volume)),
                    None,
                ));
            }
            next.insert(p.trade_id.clone(), w);
        }
        for d in divergences.iter_mut() {
            if d.kind != DivergenceKind::MissingAtBroker {
                continue;
            }
            let Some((id, mut w)) = d
                .trade_id
                .as_ref()
                .and_then(|id| self.waiting.remove_entry(id))
            else {
                continue;
            };
            w.gone_since.get_or_insert(now);
            *d = Divergence::new(
                DivergenceKind::OrderCancelled,
                std::mem::take(&mut d.symbol),
                Some(w.order),
                d.trade_id.take(),
                d.expected,
                None,
                None,
            );
            next.insert(id, w);
        }
        self.waiting = next;
        divergences.extend(unfilled);
    }

    fn judge_with(
        &mut self,
        trades: &[BotTrade],
        positions: &[BrokerPosition],
        netted: &[Netted],
        divergences: Vec<Divergence>,
        now: DateTime<Utc>,
        rules: &LiveRules,
    ) -> Verdict {
        // What was there when the service started is as old as can be.
        let first_seen = if self.warm {
            now
        } else {
            DateTime::<Utc>::MIN_UTC
        };
        self.warm = true;
        self.round += 1;
        let round = self.round;
        remember(
            &mut self.trades,
            trades.iter().map(|t| (t.id.as_str(), trade_digest(t))),
            first_seen,
            round,
        );
        remember(
            &mut self.positions,
            positions.iter().map(|p| (&p.ticket, position_digest(p))),
            first_seen,
            round,
        );
        remember(
            &mut self.groups,
            netted.iter().map(|g| (g.symbol.as_str(), group_digest(g))),
            first_seen,
            round,
        );
        let groups: HashMap<&str, &Netted> =
            netted.iter().map(|g| (g.symbol.as_str(), g)).collect();

        let in_flight_since = now.checked_sub_signed(rules.grace);
        let recent = |since: DateTime<Utc>| in_flight_since.is_some_and(|from| since > from);
        let trade_recent = |id: &str| self.trades.get(id).is_some_and(|s| recent(s.since));
        // A netting symbol's divergence moves with any of its trades and with their set.
        let group_moving = |d: &Divergence| {
            let Some(g) = groups.get(d.symbol.as_str()) else {
                return false;
            };
            let concerns = match &d.trade_id {
                Some(id) => g.trade_ids.binary_search(id).is_ok(),
                None => d.ticket.is_some() && d.ticket == g.ticket,
            };
            concerns
                && (self.groups.get(&g.symbol).is_some_and(|s| recent(s.since))
                    || g.trade_ids.iter().any(|id| trade_recent(id)))
        };
        // A cancelled order is in flight while its disappearance is recent.
        let order_going = |d: &Divergence| {
            d.kind == DivergenceKind::OrderCancelled
                && d.trade_id
                    .as_ref()
                    .and_then(|id| self.waiting.get(id))
                    .and_then(|w| w.gone_since)
                    .is_some_and(recent)
        };
        let mut streaks = HashMap::with_capacity(divergences.len());
        let mut verdict = Verdict::default();
        for d in divergences {
            let streak = match streaks.get(&d.fingerprint) {
                // The same divergence twice in one reconciliation: one observation.
                Some(&n) => n,
                None => self.streaks.get(&d.fingerprint).map_or(1, |n| n + 1),
            };
            streaks.insert(d.fingerprint.clone(), streak);
            let trade_moving = d.trade_id.as_deref().is_some_and(trade_recent);
            let position_moving = d
                .ticket
                .and_then(|t| self.positions.get(&t))
                .is_some_and(|s| recent(s.since));
            let moving = trade_moving || position_moving || group_moving(&d) || order_going(&d);
            if moving || streak < rules.confirm(d.kind) {
                verdict.held.push(d);
            } else {
                verdict.raised.push(d);
            }
        }
        // Consecutive: what was not observed this time starts again from zero.
        self.streaks = streaks;
        // The old form of a raised divergence now held in a new form stays open.
        let mut moved = Vec::new();
        for d in &verdict.held {
            if let Some((old, kept)) = self
                .raised
                .get_mut(&subject_key(d))
                .filter(|(old, _)| same_subject(old, d))
                && !verdict
                    .held
                    .iter()
                    .any(|h| h.fingerprint == old.fingerprint)
            {
                *kept = round;
                moved.push(old.clone());
            }
        }
        verdict.held.extend(moved);
        for d in &verdict.raised {
            match self.raised.get_mut(&subject_key(d)) {
                Some((old, kept)) if old.fingerprint == d.fingerprint => *kept = round,
                _ => {
                    self.raised.insert(subject_key(d), (d.clone(), round));
                }
            }
        }
        self.raised.retain(|_, (_, kept)| *kept == round);
        verdict
    }
}

/// Updates `seen` to exactly `current` (distinct keys, borrowed: a key is copied only when
/// it is new): a new key or a changed digest starts at `since`; `round` marks what is
/// present, and what is not is dropped.
fn remember<'a, K, Q>(
    seen: &mut HashMap<K, Seen>,
    current: impl Iterator<Item = (&'a Q, u64)>,
    since: DateTime<Utc>,
    round: u64,
) where
    K: Borrow<Q> + Hash + Eq,
    Q: ToOwned<Owned = K> + Hash + Eq + ?Sized + 'a,
{
    let mut present = 0;
    for (key, digest) in current {
        match seen.get_mut(key) {
            Some(s) => {
                if s.digest != digest {
                    (s.digest, s.since) = (digest, since);
                }
                present += usize::from(s.round != round);
                s.round = round;
            }
            None => {
                let fresh = Seen {
                    digest,
                    since,
                    round,
                };
                seen.insert(key.to_owned(), fresh);
                present += 1;
            }
        }
    }
    if present != seen.len() {
        seen.retain(|_, s| s.round == round);
    }
}

/// A digest of what the reconciliation compares of a trade.
fn trade_digest(t: &BotTrade) -> u64 {
    let mut h = DefaultHasher::new();
    (
        &t.symbol,
        t.side,
        t.volume,
        t.entry_price,
        t.sl,
        t.tp,
        t.ticket,
        &t.client_id,
    )
        .hash(&mut h);
    h.finish()
}

/// A digest of a netting symbol's position and set of trades.
fn group_digest(g: &Netted) -> u64 {
    let mut h = DefaultHasher::new();
    (g.ticket, &g.trade_ids).hash(&mut h);
    h.finish()
}

/// A digest of what the reconciliation compares of a position.
fn position_digest(p: &BrokerPosition) -> u64 {
    let mut h = DefaultHasher::new();
    (
        &p.symbol,
        p.side,
        p.volume,
        p.open_price,
        p.sl,
        p.tp,
        p.identifier,
        &p.client_id,
        &p.comment,
    )
        .hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use rust_decimal::dec;

    use super::*;
    use crate::domain::values::{Price, Side, Volume};
    use crate::domain::{ReconcileRules, reconcile};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_770_000_000 + secs, 0).expect("a time")
    }

    fn trade(id: &str, ticket: u64) -> BotTrade {
        BotTrade {
            id: id.into(),
            account: "acc".into(),
            symbol: "EURUSD".into(),
            side: Side::Buy,
            volume: Volume::new(dec!(1)),
            entry_price: Price::new(dec!(1.1)),
            sl: None,
            tp: None,
            ticket: Some(ticket),
            client_id: None,
            opened_at: None,
        }
    }

    fn pos(ticket: u64) -> BrokerPosition {
        BrokerPosition::for_test(ticket, "EURUSD", Side::Buy, dec!(1), dec!(1.1))
    }

    /// One sync at `secs`: reconcile, then judge; the kinds raised and held.
    fn sync(
        judge: &mut Judge,
        secs: i64,
        trades: &[BotTrade],
        positions: &[BrokerPosition],
        rules: &LiveRules,
    ) -> (Vec<DivergenceKind>, Vec<DivergenceKind>) {
        let r = reconcile(trades, positions, &ReconcileRules::default()).expect("reconciles");
        let v = judge.judge(trades, positions, r.divergences, at(secs), rules);
        let kinds = |ds: &[Divergence]| ds.iter().map(|d| d.kind).collect::<Vec<_>>();
        (kinds(&v.raised), kinds(&v.held))
    }

    use DivergenceKind::*;

    #[test]
    fn a_trade_recorded_before_its_fill_is_held_until_grace_and_confirmation_pass() {
        let rules = LiveRules::default();
        let mut j = Judge::default();
        let a = trade("a", 1);
        assert_eq!(
            sync(&mut j, 0, std::slice::from_ref(&a), &[pos(1)], &rules),
            (vec![], vec![])
        );
        // The bot records b; the broker does not show its fill yet.
        let both = [a.clone(), trade("b", 2)];
        assert_eq!(
            sync(&mut j, 1, &both, &[pos(1)], &rules),
            (vec![], vec![MissingAtBroker]),
            "first seen 0 s ago"
        );
        // 5 s later: out of its grace window, and seen missing twice: raised.
        assert_eq!(
            sync(&mut j, 6, &both, &[pos(1)], &rules),
            (vec![MissingAtBroker], vec![])
        );
        // Had it filled in time, nothing would ever have been raised.
        let mut j = Judge::default();
        sync(&mut j, 0, std::slice::from_ref(&a), &[pos(1)], &rules);
        sync(&mut j, 1, &both, &[pos(1)], &rules);
        assert_eq!(
            sync(&mut j, 2, &both, &[pos(1), pos(2)], &rules),
            (vec![], vec![])
        );
    }

    #[test]
    fn a_position_opened_before_the_bot_records_it_is_held_within_grace() {
        let rules = LiveRules::default();
        let mut j = Judge::default();
        sync(&mut j, 0, &[], &[], &rules);
        assert_eq!(
            sync(&mut j, 10, &[], &[pos(7)], &rules),
            (vec![], vec![UnexpectedAtBroker])
        );
        // Two observations, but the second still within 5 s of the first sighting.
        assert_eq!(
            sync(&mut j, 14, &[], &[pos(7)], &rules),
            (vec![], vec![UnexpectedAtBroker])
        );
        assert_eq!(
            sync(&mut j, 16, &[], &[pos(7)], &rules),
            (vec![UnexpectedAtBroker], vec![])
        );
    }

    #[test]
    fn a_change_starts_a_new_grace_window() {
        let rules = LiveRules::default();
        let mut j = Judge::default();
        let mut a = trade("a", 1);
        sync(&mut j, 0, &[a.clone()], &[pos(1)], &rules);
        // The bot moves its stop loss; the broker has not applied it yet.
        a.sl = Some(Price::new(dec!(1.05)));
        assert_eq!(
            sync(&mut j, 10, &[a.clone()], &[pos(1)], &rules),
            (vec![], vec![SlMismatch])
        );
        assert_eq!(
            sync(&mut j, 20, &[a.clone()], &[pos(1)], &rules),
            (vec![SlMismatch], vec![]),
            "drift needs one observation once the change is older than the grace"
        );
    }

    #[test]
    fn a_raised_divergence_whose_values_move_stays_open_in_its_old_form_meanwhile() {
        let rules = LiveRules::default();
        let mut j = Judge::default();
        let mut a = trade("a", 1);
        a.sl = Some(Price::new(dec!(1.05)));
        let mut p = pos(1);
        p.sl = Some(Price::new(dec!(1.03)));
        let r = reconcile(
            std::slice::from_ref(&a),
            std::slice::from_ref(&p),
            &ReconcileRules::default(),
        )
        .unwrap();
        let old = r.divergences[0].fingerprint.clone();
        let v = j.judge(
            std::slice::from_ref(&a),
            std::slice::from_ref(&p),
            r.divergences,
            at(0),
            &rules,
        );
        assert_eq!(v.raised.len(), 1);
        // The broker moves the stop loss again: the new form is in flight, the old stays.
        p.sl = Some(Price::new(dec!(1.02)));
        let r = reconcile(
            std::slice::from_ref(&a),
            std::slice::from_ref(&p),
            &ReconcileRules::default(),
        )
        .unwrap();
        let new = r.divergences[0].fingerprint.clone();
        assert_ne!(old, new);
        let v = j.judge(
            std::slice::from_ref(&a),
            std::slice::from_ref(&p),
            r.divergences.clone(),
            at(10),
            &rules,
        );
        let held: Vec<&str> = v.held.iter().map(|d| d.fingerprint.as_str()).collect();
        assert!(v.raised.is_empty());
        assert_eq!(held, vec![new.as_str(), old.as_str()]);
        let v = j.judge(
            std::slice::from_ref(&a),
            std::slice::from_ref(&p),
            r.divergences.clone(),
            at(12),
            &rules,
        );
        assert_eq!(v.held.len(), 2, "still in flight: {v:?}");
        // Past the grace: the new form is raised, the old one is no longer kept.
        let v = j.judge(
            std::slice::from_ref(&a),
            std::slice::from_ref(&p),
            r.divergences,
            at(20),
            &rules,
        );
        let raised: Vec<&str> = v.raised.iter().map(|d| d.fingerprint.as_str()).collect();
        assert_eq!(raised, vec![new.as_str()]);
        assert!(v.held.is_empty());
    }

    #[test]
    fn what_is_there_at_start_is_not_new_and_needs_only_its_confirmation() {
        let rules = LiveRules::default();
        let mut j = Judge::default();
        let mut a = trade("a", 1);
        a.sl = Some(Price::new(dec!(1.05)));
        let missing = trade("m", 9);
        assert_eq!(
            sync(&mut j, 0, &[a.clone(), missing.clone()], &[pos(1)], &rules),
            (vec![SlMismatch], vec![MissingAtBroker])
        );
        assert_eq!(
            sync(&mut j, 10, &[a, missing], &[pos(1)], &rules),
            (vec![SlMismatch, MissingAtBroker], vec![])
        );
    }

    #[test]
    fn observations_must_be_consecutive() {
        let rules = LiveRules {
            grace: TimeDelta::zero(),
            ..LiveRules::default()
        };
        let mut j = Judge::default();
        let gone = [trade("a", 1)];
        assert_eq!(
            sync(&mut j, 0, &gone, &[], &rules),
            (vec![], vec![MissingAtBroker])
        );
        // The position shows again (a reconnecting terminal's partial list, say).
        assert_eq!(sync(&mut j, 10, &gone, &[pos(1)], &rules), (vec![], vec![]));
        assert_eq!(
            sync(&mut j, 20, &gone, &[], &rules),
            (vec![], vec![MissingAtBroker]),
            "the streak starts again"
        );
        assert_eq!(
            sync(&mut j, 30, &gone, &[], &rules),
            (vec![MissingAtBroker], vec![])
        );
    }

    #[test]
    fn per_kind_confirmation_and_the_immediate_rules() {
        let mut rules = LiveRules::immediate();
        assert_eq!(rules.confirm(MissingAtBroker), 1);
        let mut j = Judge::default();
        sync(&mut j, 0, &[], &[], &rules);
        assert_eq!(
            sync(&mut j, 1, &[trade("a", 1)], &[pos(2)], &rules),
            (vec![MissingAtBroker, UnexpectedAtBroker], vec![])
        );
        rules.confirm_syncs.insert(UnexpectedAtBroker, 3);
        rules.confirm_syncs.insert(MissingAtBroker, 0);
        assert_eq!(rules.confirm(MissingAtBroker), 1, "0 is taken as 1");
        let mut j = Judge::default();
        let (t, p) = ([trade("a", 1)], [pos(2)]);
        assert_eq!(
            sync(&mut j, 0, &t, &p, &rules),
            (vec![MissingAtBroker], vec![UnexpectedAtBroker])
        );
        assert_eq!(
            sync(&mut j, 1, &t, &p, &rules),
            (vec![MissingAtBroker], vec![UnexpectedAtBroker])
        );
        assert_eq!(
            sync(&mut j, 2, &t, &p, &rules),
            (vec![MissingAtBroker, UnexpectedAtBroker], vec![])
        );
    }
}
