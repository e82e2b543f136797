//! The close lookups of one account across syncs (see `close_reasons` for the rules):
//! the position each trade was last matched with, which vanished or shrunk positions are
//! still looked up, and what was found. [`CloseLookups::questions`] says which positions'
//! deals are wanted, the caller answers, [`CloseLookups::settle`] rewrites the
//! reconciliation's divergences and says what to hold, [`hold_awaiting`] holds it.
//!
//! Pure: no I/O, no clock.

use std::collections::{HashMap, HashSet};

use super::close_reasons::{Asked, Finding, classify};
use super::divergence::{CloseDetail, Divergence, DivergenceKind, Reconciliation, Unit};
use super::facts::{Deal, DealLookup};
use super::judge::Verdict;
use super::model::{BotTrade, BrokerPosition};
use super::values::Volume;

/// A position whose deals are wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The bot's trade.
    pub trade_id: String,
    /// The position's identifier.
    pub position_id: u64,
    /// What is asked.
    pub asked: Asked,
}

impl Question {
    /// Whether `deals` (the snapshot's) settle it, so that the broker need not be asked.
    pub fn settled_by(&self, deals: &[Deal]) -> bool {
        classify(self.asked, self.position_id, deals) != Finding::Unknown
    }
}

/// How a question was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The snapshot's deals settle it; the broker was not asked.
    Snapshot,
    /// The broker's history of the position.
    Broker(DealLookup),
    /// The lookup failed (timeout, 5xx …): a miss, like an empty history.
    Failed,
    /// Not asked this sync (too many at once): neither an answer nor a miss.
    Deferred,
}

/// The position a trade was last matched with.
#[derive(Debug, Clone, Copy)]
struct Known {
    position_id: u64,
    ticket: u64,
    volume: Volume,
}

/// Where the lookups of one position stand.
#[derive(Debug, Clone)]
enum Search {
    /// Asked `misses` times without an answer.
    Looking { misses: u32 },
    /// Explained.
    Found(CloseDetail),
    /// Given up, or the history says it was no close: reported as the matching saw it.
    Done,
}

/// A search for one trade's position; `broker` is the volume it answers for (shrunk).
#[derive(Debug, Clone)]
struct Entry {
    position_id: u64,
    broker: Option<Volume>,
    search: Search,
}

/// One account's close lookups across syncs: the position each trade was last matched
/// with, and where the lookups of vanished and shrunk positions stand.
#[derive(Debug, Default)]
pub struct CloseLookups {
    known: HashMap<String, Known>,
    vanished: HashMap<String, Entry>,
    shrunk: HashMap<String, Entry>,
}

impl CloseLookups {
    /// Remembers the positions of this reconciliation's matches, forgets trades the bot no
    /// longer holds, and returns the positions whose deals are wanted, in the order of
    /// `result`'s divergences.
    pub fn questions(
        &mut self,
        trades: &[BotTrade],
        positions: &[BrokerPosition],
        result: &Reconciliation,
    ) -> Vec<Question> {
        let trades: HashMap<&str, &BotTrade> = trades.iter().map(|t| (t.id.as_str(), t)).collect();
        let by_ticket: HashMap<u64, &BrokerPosition> =
            positions.iter().map(|p| (p.ticket, p)).collect();
        self.known.retain(|id, _| trades.contains_key(id.as_str()));
        for m in &result.matched {
            if let Some(p) = by_ticket.get(&m.ticket) {
                let known = Known {
                    position_id: p.identifier,
                    ticket: p.ticket,
                    volume: p.volume,
                };
                // Most syncs change nothing: a trade id is copied only when it is new.
                match self.known.get_mut(&m.trade_id) {
                    Some(k) => *k = known,
                    None => {
                        self.known.insert(m.trade_id.clone(), known);
                    }
                }
            }
        }
        let mut out = Vec::new();
        let (mut vanished, mut shrunk) = (HashSet::new(), HashSet::new());
        for d in &result.divergences {
            let Some(trade) = d.trade_id.as_deref().and_then(|id| trades.get(id)) else {
                continue;
            };
            let known = self.known.get(&trade.id);
            let (entries, position_id, broker, asked) = match d.kind {
                DivergenceKind::MissingAtBroker => {
                    let Some(position_id) = known.map(|k| k.position_id).or(trade.ticket) else {
                        continue;
                    };
                    let last_volume = known.map(|k| k.volume);
                    vanished.insert(trade.id.as_str());
                    let asked = Asked::Vanished { last_volume };
                    (&mut self.vanished, position_id, None, asked)
                }
                DivergenceKind::VolumeMismatch => {
                    let Some(p) = d.ticket.and_then(|t| by_ticket.get(&t)) else {
                        continue;
                    };
                    if p.volume >= trade.volume {
                        continue;
                    }
                    shrunk.insert(trade.id.as_str());
                    let asked = Asked::Shrunk {
                        bot: trade.volume,
                        broker: p.volume,
                    };
                    (&mut self.shrunk, p.identifier, Some(p.volume), asked)
                }
                _ => continue,
            };
            let entry = entries.entry(trade.id.clone()).or_insert_with(|| Entry {
                position_id,
                broker,
                search: Search::Looking { misses: 0 },
            });
            if (entry.position_id, entry.broker) != (position_id, broker) {
                *entry = Entry {
                    position_id,
                    broker,
                    search: Search::Looking { misses: 0 },
                };
            }
            if let Search::Looking { .. } = entry.search {
                out.push(Question {
                    trade_id: trade.id.clone(),
                    position_id,
                    asked,
                });
            }
        }
        self.vanished.retain(|id, _| vanished.contains(id.as_str()));
        self.shrunk.retain(|id, _| shrunk.contains(id.as_str()));
        out
    }

    /// Records the `answers` (the snapshot carried `snapshot_deals`), then rewrites
    /// `divergences`: an explained `missing_at_broker` becomes `closed_at_broker`, an
    /// explained `volume_mismatch` becomes `partially_closed`. Returns what must be held
    /// this sync: each divergence still looked up, and the form it would take once
    /// explained. `max_misses` lookups without an answer end the search.
    pub fn settle(
        &mut self,
        divergences: &mut [Divergence],
        answers: Vec<(Question, Answer)>,
        snapshot_deals: &[Deal],
        max_misses: u32,
    ) -> Vec<Divergence> {
        for (q, answer) in answers {
            let finding = match answer {
                Answer::Deferred => continue,
                Answer::Broker(DealLookup::Unsupported) if snapshot_deals.is_empty() => None,
                Answer::Broker(DealLookup::Found(mut deals)) if !deals.is_empty() => {
                    let mine = snapshot_deals
                        .iter()
                        .filter(|d| d.position_id == q.position_id);
                    deals.extend(mine.cloned());
                    Some(classify(q.asked, q.position_id, &deals))
                }
                _ => Some(classify(q.asked, q.position_id, snapshot_deals)),
            };
            let entries = match q.asked {
                Asked::Vanished { .. } => &mut self.vanished,
                Asked::Shrunk { .. } => &mut self.shrunk,
            };
            let Some(entry) = entries.get_mut(&q.trade_id) else {
                continue;
            };
            entry.search = match (finding, &entry.search) {
                (Some(Finding::Closed(close)), _) => Search::Found(close),
                (Some(Finding::Unknown), Search::Looking { misses }) if misses + 1 < max_misses => {
                    Search::Looking { misses: misses + 1 }
                }
                _ => Search::Done,
            };
        }

        let mut held = Vec::new();
        for d in divergences.iter_mut() {
            let Some(id) = d.trade_id.as_deref() else {
                continue;
            };
            let (entry, kind) = match d.kind {
                DivergenceKind::MissingAtBroker => {
                    (self.vanished.get(id), DivergenceKind::ClosedAtBroker)
                }
                DivergenceKind::VolumeMismatch => {
                    (self.shrunk.get(id), DivergenceKind::PartiallyClosed)
                }
                _ => continue,
            };
            let ticket = d.ticket.or_else(|| self.known.get(id).map(|k| k.ticket));
            let explained = |close: Option<&CloseDetail>| {
                let delta = close
                    .filter(|_| kind == DivergenceKind::PartiallyClosed)
                    .map(|c| (c.volume.get(), Unit::Lots));
                let actual = d.actual.filter(|_| kind == DivergenceKind::PartiallyClosed);
                let form = Divergence::new(
                    kind,
                    d.symbol.clone(),
                    ticket,
                    d.trade_id.clone(),
                    d.expected,
                    actual,
                    delta,
                );
                match close {
                    Some(c) => form.with_close(c.clone()),
                    None => form,
                }
            };
            match entry.map(|e| &e.search) {
                Some(Search::Found(close)) => {
                    let closed = explained(Some(close));
                    *d = closed;
                }
                Some(Search::Looking { .. }) => {
                    held.push(explained(None));
                    held.push(d.clone());
                }
                Some(Search::Done) | None => {}
            }
        }
        held
    }
}

/// Holds what the lookups still wait for: a divergence of `awaiting` that the judge
/// raised is held instead, and the forms it would take once explained are held too.
/// Returns how many such forms were added: held so that a stored row stays open, they were
/// not observed and are not counted as held divergences.
pub fn hold_awaiting(verdict: &mut Verdict, awaiting: Vec<Divergence>) -> usize {
    if awaiting.is_empty() {
        return 0;
    }
    let waiting: HashSet<&str> = awaiting.iter().map(|d| d.fingerprint.as_str()).collect();
    let (wait, raise): (Vec<_>, Vec<_>) = std::mem::take(&mut verdict.raised)
        .into_iter()
        .partition(|d| waiting.contains(d.fingerprint.as_str()));
    verdict.raised = raise;
    verdict.held.extend(wait);
    let held: HashSet<&str> = verdict
        .held
        .iter()
        .map(|d| d.fingerprint.as_str())
        .collect();
    let forms: Vec<Divergence> = awaiting
        .into_iter()
        .filter(|d| !held.contains(d.fingerprint.as_str()))
        .collect();
    let added = forms.len();
    verdict.held.extend(forms);
    added
}

#[cfg(test)]
mod tests {
    use rust_decimal::{Decimal, dec};

    use super::*;
    use crate::domain::close_reasons::tests::{close, open};
    use crate::domain::values::{Price, Side};
    use crate::domain::{DealReason, ReconcileRules, reconcile};

    const LOOKUPS: u32 = 3;

    fn trade(ticket: Option<u64>, volume: Decimal) -> BotTrade {
        BotTrade {
            id: "t1".into(),
            account: "acc".into(),
            symbol: "EURUSD".into(),
            side: Side::Buy,
            volume: Volume::new(volume),
            entry_price: Price::new(dec!(1.1)),
            sl: None,
            tp: None,
            ticket,
            client_id: None,
            opened_at: None,
        }
    }

    /// Position 7 (or `ticket`, with identifier 7: reopened under a new ticket).
    fn position(ticket: u64, volume: Decimal) -> BrokerPosition {
        let mut p = BrokerPosition::for_test(ticket, "EURUSD", Side::Buy, volume, dec!(1.1));
        p.identifier = 7;
        p.comment = "t1".into();
        p
    }

    /// One sync: reconcile, ask, answer each question with `answer`, settle. Returns the
    /// questions asked, the divergences and what is held.
    fn sync(
        lookups: &mut CloseLookups,
        trade: &BotTrade,
        positions: &[BrokerPosition],
        snapshot_deals: &[Deal],
        answer: impl Fn(&Question) -> Answer,
    ) -> (Vec<Question>, Vec<Divergence>, Vec<Divergence>) {
        let trades = std::slice::from_ref(trade);
        let mut r = reconcile(trades, positions, &ReconcileRules::default()).expect("reconciles");
        let questions = lookups.questions(trades, positions, &r);
        let answers = questions.iter().map(|q| (q.clone(), answer(q))).collect();
        let held = lookups.settle(&mut r.divergences, answers, snapshot_deals, LOOKUPS);
        (questions, r.divergences, held)
    }

    fn kinds(ds: &[Divergence]) -> Vec<DivergenceKind> {
        ds.iter().map(|d| d.kind).collect()
    }

    fn found(deals: Vec<Deal>) -> impl Fn(&Question) -> Answer {
        move |_| Answer::Broker(DealLookup::Found(deals.clone()))
    }

    use DivergenceKind::*;

    #[test]
    fn a_position_closed_by_its_stop_loss_is_closed_at_broker_and_stays_the_same_divergence() {
        let mut l = CloseLookups::default();
        // Matched by client id: the trade has no ticket, only the memory knows position 7.
        let t = trade(None, dec!(1));
        let (q, d, _) = sync(&mut l, &t, &[position(70, dec!(1))], &[], found(vec![]));
        assert!(q.is_empty() && d.is_empty());
        let deals = vec![
            open(1, dec!(1)),
            close(2, DealReason::StopLoss, dec!(1), dec!(1.0950), dec!(-50)),
        ];
        let (q, d, held) = sync(&mut l, &t, &[], &[], found(deals));
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].position_id, 7, "the identifier it was matched with");
        assert!(held.is_empty());
        assert_eq!(kinds(&d), [ClosedAtBroker]);
        assert_eq!(d[0].ticket, Some(70), "the ticket it was matched with");
        let c = d[0].close.as_ref().expect("a close detail");
        assert_eq!(
            (c.reason, c.price.to_string()),
            (DealReason::StopLoss, "1.0950".into())
        );
        // Later syncs ask nothing and say the same.
        let (q, again, _) = sync(&mut l, &t, &[], &[], |_| panic!("asked again"));
        assert!(q.is_empty());
        assert_eq!(again, d);
    }

    #[test]
    fn no_deal_yet_is_held_then_missing_after_the_bounded_lookups() {
        let mut l = CloseLookups::default();
        let t = trade(Some(7), dec!(1));
        sync(&mut l, &t, &[position(7, dec!(1))], &[], found(vec![]));
        let mut closed_form = None;
        for n in 1..LOOKUPS {
            let (q, d, held) = sync(&mut l, &t, &[], &[], found(vec![]));
            assert_eq!(q.len(), 1, "lookup {n}");
            assert_eq!(kinds(&d), [MissingAtBroker]);
            assert_eq!(
                kinds(&held),
                [ClosedAtBroker, MissingAtBroker],
                "lookup {n}"
            );
            closed_form = Some(held[0].fingerprint.clone());
        }
        let (q, d, held) = sync(&mut l, &t, &[], &[], |_| Answer::Failed);
        assert_eq!(q.len(), 1, "a failed lookup counts like an empty one");
        assert!(held.is_empty(), "given up after {LOOKUPS}");
        assert_eq!(kinds(&d), [MissingAtBroker]);
        let (q, _, held) = sync(&mut l, &t, &[], &[], |_| panic!("asked again"));
        assert!(q.is_empty() && held.is_empty());

        // The form held meanwhile is the one the close takes once its deals show.
        let mut l = CloseLookups::default();
        let deal = close(2, DealReason::TakeProfit, dec!(1), dec!(1.11), dec!(100));
        let (_, d, _) = sync(&mut l, &t, &[], &[], found(vec![deal]));
        assert_eq!(Some(d[0].fingerprint.clone()), closed_form);
    }

    #[test]
    fn deferred_lookups_are_no_miss_and_the_position_coming_back_ends_the_search() {
        let mut l = CloseLookups::default();
        let t = trade(Some(7), dec!(1));
        for _ in 0..LOOKUPS + 2 {
            let (_, _, held) = sync(&mut l, &t, &[], &[], |_| Answer::Deferred);
            assert_eq!(held.len(), 2);
        }
        sync(&mut l, &t, &[], &[], found(vec![]));
        sync(&mut l, &t, &[position(7, dec!(1))], &[], found(vec![]));
        // It vanishes again: the count starts over.
        for _ in 1..LOOKUPS {
            let (_, _, held) = sync(&mut l, &t, &[], &[], found(vec![]));
            assert_eq!(held.len(), 2);
        }
    }

    #[test]
    fn a_broker_without_history_gives_up_at_once_unless_its_snapshots_carry_deals() {
        let unsupported = |_: &Question| Answer::Broker(DealLookup::Unsupported);
        let t = trade(Some(7), dec!(1));
        let mut l = CloseLookups::default();
        let (q, d, held) = sync(&mut l, &t, &[], &[], unsupported);
        assert_eq!((q.len(), kinds(&d)), (1, vec![MissingAtBroker]));
        assert!(held.is_empty());

        // The snapshots carry recent deals (not yet this position's): a miss.
        let mut l = CloseLookups::default();
        let mut elsewhere = close(5, DealReason::Client, dec!(1), dec!(1.1), dec!(0));
        elsewhere.position_id = 99;
        let (_, _, held) = sync(
            &mut l,
            &t,
            &[],
            std::slice::from_ref(&elsewhere),
            unsupported,
        );
        assert_eq!(held.len(), 2);
        // Then the close shows in the snapshot's deals.
        let sl = close(6, DealReason::StopLoss, dec!(1), dec!(1.09), dec!(-100));
        let (_, d, held) = sync(&mut l, &t, &[], &[elsewhere, sl], |_| Answer::Snapshot);
        assert_eq!((kinds(&d), held.len()), (vec![ClosedAtBroker], 0));
    }

    #[test]
    fn nothing_to_look_up_without_a_ticket_or_a_memory() {
        let mut l = CloseLookups::default();
        let (q, d, held) = sync(&mut l, &trade(None, dec!(1)), &[], &[], found(vec![]));
        assert!(q.is_empty() && held.is_empty());
        assert_eq!(kinds(&d), [MissingAtBroker]);
    }

    #[test]
    fn a_half_close_is_partially_closed_with_the_closed_volume() {
        let mut l = CloseLookups::default();
        let t = trade(Some(7), dec!(1));
        let half = [position(7, dec!(0.5))];
        let (_, d, held) = sync(&mut l, &t, &half, &[], found(vec![open(1, dec!(1))]));
        assert_eq!(
            (kinds(&d), kinds(&held)),
            (vec![VolumeMismatch], vec![PartiallyClosed, VolumeMismatch])
        );
        let deals = vec![
            open(1, dec!(1)),
            close(2, DealReason::Client, dec!(0.5), dec!(1.1020), dec!(10)),
        ];
        let (_, d, held) = sync(&mut l, &t, &half, &[], found(deals));
        assert!(held.is_empty());
        assert_eq!(kinds(&d), [PartiallyClosed]);
        assert_eq!((d[0].delta, d[0].unit), (Some(dec!(0.5)), Some(Unit::Lots)));
        let c = d[0].close.as_ref().expect("a close detail");
        assert_eq!((c.reason, c.volume.get()), (DealReason::Client, dec!(0.5)));
        let (q, again, _) = sync(&mut l, &t, &half, &[], |_| panic!("asked again"));
        assert!(q.is_empty());
        assert_eq!(again, d);
        // A second partial close is a new question.
        let (q, _, _) = sync(&mut l, &t, &[position(7, dec!(0.2))], &[], found(vec![]));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn a_smaller_fill_is_a_volume_mismatch_at_once() {
        let mut l = CloseLookups::default();
        let t = trade(Some(7), dec!(1));
        let fill = [position(7, dec!(0.5))];
        let (_, d, held) = sync(&mut l, &t, &fill, &[], found(vec![open(1, dec!(0.5))]));
        assert_eq!((kinds(&d), held.len()), (vec![VolumeMismatch], 0));
    }

    #[test]
    fn what_the_lookups_wait_for_is_held_even_when_the_judge_would_raise_it() {
        let mut l = CloseLookups::default();
        let t = trade(Some(7), dec!(1));
        let (_, d, awaiting) = sync(&mut l, &t, &[], &[], found(vec![]));
        let mut verdict = Verdict {
            raised: d,
            held: Vec::new(),
        };
        assert_eq!(hold_awaiting(&mut verdict, awaiting), 1, "the closed form");
        assert!(verdict.raised.is_empty());
        assert_eq!(kinds(&verdict.held), [MissingAtBroker, ClosedAtBroker]);
    }
}
