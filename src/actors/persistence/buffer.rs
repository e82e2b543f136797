//! The persistence buffer, bounded while the database is away.
//!
//! - Divergence states: one per account, the latest (a newer state supersedes an older
//!   one, whose sync report is kept). At most one entry per account.
//! - Sync reports: kept one by one up to `max_buffered_reports`; past that, each new report
//!   folds into a counter per (account, error class), written as one `sync_runs` row
//!   that says how many syncs it stands for, from when to when. At most that bound plus
//!   one entry per account and class.
//! - Audit events are never dropped. Up to `max_buffered_audits` they are kept one by one.
//!   Past that, the circuit breaker's transitions (`backoff_started`, `circuit_opened`,
//!   `circuit_half_open`, `circuit_closed`) fold per (account, kind) into one event that
//!   keeps the count, the first and last time and the first and last detail; every other
//!   kind is still kept as it is. The breaker's transitions are the only kind produced at
//!   the rate of failures, which is what an outage multiplies (when the bot's trades are
//!   read from the same database, every account fails every tick); the other kinds follow
//!   a guard's or an operator's action and stay few. Spilling to disk instead would add a
//!   second durable store with failure modes of its own (a full disk, a crash between the
//!   commit and the truncation that replays events twice), and back-pressure would stall
//!   the supervisor, and with it every account's breaker and ticks, on the database.
//!
//! After an outage the buffer is written in chunks of at most `batch_size` items, one
//! transaction each (see [`Buffer::take`]); a failed chunk is put back as it was.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::Converge;
use super::chunk::Chunk;
use crate::store::{AuditEvent, Fence, SyncRunRecord};

/// Audit kinds that fold past the bound: the circuit breaker's transitions.
const FOLDABLE_AUDITS: [&str; 4] = [
    "backoff_started",
    "circuit_opened",
    "circuit_half_open",
    "circuit_closed",
];

/// Sizes of the buffer's parts, for the persistence stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BufferSizes {
    /// Divergence states (at most one per account).
    pub converges: usize,
    /// Sync reports kept one by one.
    pub reports: usize,
    /// Counters of folded sync reports (per account and error class).
    pub folded_reports: usize,
    /// Audit events kept one by one.
    pub audits: usize,
    /// Folded audit events (per account and kind).
    pub folded_audits: usize,
}

impl BufferSizes {
    /// Every item, as a chunk counts them.
    pub fn total(&self) -> usize {
        self.converges + self.reports + self.folded_reports + self.audits + self.folded_audits
    }
}

/// Sync reports of one account and error class, folded into one.
#[derive(Debug, Clone)]
pub(super) struct FoldedReports {
    pub(super) syncs: u64,
    first: SyncRunRecord,
    last: SyncRunRecord,
    duration: Duration,
    opened: usize,
    resolved: usize,
}

impl FoldedReports {
    fn new(r: SyncRunRecord) -> Self {
        Self {
            syncs: 1,
            duration: r.duration,
            opened: r.divergences_opened,
            resolved: r.divergences_resolved,
            first: r.clone(),
            last: r,
        }
    }

    fn merge(&mut self, other: FoldedReports) {
        self.syncs += other.syncs;
        self.duration = self.duration.saturating_add(other.duration);
        self.opened = self.opened.saturating_add(other.opened);
        self.resolved = self.resolved.saturating_add(other.resolved);
        if other.first.started_at < self.first.started_at {
            self.first = other.first;
        }
        if other.last.finished_at >= self.last.finished_at {
            self.last = other.last;
        }
    }

    /// The `sync_runs` row that stands for them all.
    pub(super) fn record(&self) -> SyncRunRecord {
        let mut message = format!(
            "folded {} syncs while the database was away, started {} to {}",
            self.syncs, self.first.started_at, self.last.started_at
        );
        if let Some(last) = &self.last.error_message {
            message.push_str("; last error: ");
            message.push_str(last);
        }
        SyncRunRecord {
            account_id: self.last.account_id.clone(),
            started_at: self.first.started_at,
            finished_at: self.last.finished_at,
            duration: self.duration,
            positions: self.last.positions,
            trades: self.last.trades,
            divergences_opened: self.opened,
            divergences_resolved: self.resolved,
            error_class: self.last.error_class.clone(),
            error_message: Some(message),
        }
    }
}

/// Audit events of one account and kind, folded into one.
#[derive(Debug, Clone)]
pub(super) struct FoldedAudits {
    count: u64,
    first: AuditEvent,
    last: AuditEvent,
}

impl FoldedAudits {
    fn merge(&mut self, other: FoldedAudits) {
        self.count += other.count;
        if other.first.at < self.first.at {
            self.first = other.first;
        }
        if other.last.at >= self.last.at {
            self.last = other.last;
        }
    }

    /// The audit event that stands for them all, at the time of the first.
    pub(super) fn event(&self) -> AuditEvent {
        AuditEvent {
            at: self.first.at,
            account_id: self.first.account_id.clone(),
            kind: self.first.kind.clone(),
            detail: serde_json::json!({
                "folded": self.count,
                "first_at": self.first.at,
                "last_at": self.last.at,
                "first": self.first.detail,
                "last": self.last.detail,
            }),
        }
    }
}

/// Reports fold per account, error class and fence.
pub(super) type ReportKey = (String, Option<String>, Option<Fence>);
/// Audit events fold per account, kind and fence.
pub(super) type AuditKey = (Option<String>, String, Option<Fence>);

/// What the actor has not written yet.
#[derive(Default)]
pub(super) struct Buffer {
    max_reports: usize,
    max_audits: usize,
    converges: HashMap<String, Converge>,
    reports: VecDeque<(SyncRunRecord, Option<Fence>)>,
    folded_reports: HashMap<ReportKey, FoldedReports>,
    audits: VecDeque<(AuditEvent, Option<Fence>)>,
    folded_audits: HashMap<AuditKey, FoldedAudits>,
}

impl Buffer {
    /// An empty buffer with these bounds.
    pub fn new(max_reports: usize, max_audits: usize) -> Self {
        Self {
            max_reports,
            max_audits,
            ..Self::default()
        }
    }

    /// Keeps the account's latest state; returns the report of the state it supersedes
    /// and its fence (never written: the caller keeps it as a report).
    #[must_use]
    pub fn push_converge(&mut self, c: Converge) -> Option<(SyncRunRecord, Option<Fence>)> {
        self.converges
            .insert(c.account_id.clone(), c)
            .map(|old| (old.report, old.fence))
    }

    /// Keeps a report produced under `fence`, or folds it past the bound.
    pub fn push_report(&mut self, r: SyncRunRecord, fence: Option<Fence>) {
        if self.reports.len() < self.max_reports {
            self.reports.push_back((r, fence));
            return;
        }
        let key = (r.account_id.clone(), r.error_class.clone(), fence);
        self.fold_report(key, FoldedReports::new(r));
    }

    fn fold_report(&mut self, key: ReportKey, folded: FoldedReports) {
        match self.folded_reports.get_mut(&key) {
            Some(f) => f.merge(folded),
            None => {
                self.folded_reports.insert(key, folded);
            }
        }
    }

    /// Keeps an event produced under `fence`, or folds a breaker transition past the bound.
    pub fn push_audit(&mut self, a: AuditEvent, fence: Option<Fence>) {
        if self.audits.len() < self.max_audits || !FOLDABLE_AUDITS.contains(&a.kind.as_str()) {
            self.audits.push_back((a, fence));
            return;
        }
        let key = (a.account_id.clone(), a.kind.clone(), fence);
        let folded = FoldedAudits {
            count: 1,
            first: a.clone(),
            last: a,
        };
        self.fold_audit(key, folded);
    }

    fn fold_audit(&mut self, key: AuditKey, folded: FoldedAudits) {
        match self.folded_audits.get_mut(&key) {
            Some(f) => f.merge(folded),
            None => {
                self.folded_audits.insert(key, folded);
            }
        }
    }

    /// The sizes of the parts.
    pub fn sizes(&self) -> BufferSizes {
        BufferSizes {
            converges: self.converges.len(),
            reports: self.reports.len(),
            folded_reports: self.folded_reports.len(),
            audits: self.audits.len(),
            folded_audits: self.folded_audits.len(),
        }
    }

    /// Every item.
    pub fn depth(&self) -> usize {
        self.sizes().total()
    }

    /// Takes at most `n` items (at least one when any is left) for one transaction: states
    /// first, then reports, then audit events, oldest first.
    pub fn take(&mut self, n: usize) -> Chunk {
        let mut left = n.max(1);
        let mut chunk = Chunk::default();
        let accounts: Vec<String> = self.converges.keys().take(left).cloned().collect();
        for a in accounts {
            if let Some(c) = self.converges.remove(&a) {
                chunk.converges.push(c);
            }
        }
        left -= chunk.converges.len();
        let k = left.min(self.reports.len());
        for (r, fence) in self.reports.drain(..k) {
            chunk.reports.push(r);
            chunk.report_fences.push(fence);
        }
        left -= k;
        let keys: Vec<ReportKey> = self.folded_reports.keys().take(left).cloned().collect();
        for key in keys {
            if let Some(f) = self.folded_reports.remove(&key) {
                chunk.reports.push(f.record());
                chunk.report_fences.push(key.2.clone());
                chunk.folded_reports.push((key, f));
            }
        }
        left -= chunk.folded_reports.len();
        let k = left.min(self.audits.len());
        for (a, fence) in self.audits.drain(..k) {
            chunk.audits.push(a);
            chunk.audit_fences.push(fence);
        }
        left -= k;
        let keys: Vec<AuditKey> = self.folded_audits.keys().take(left).cloned().collect();
        for key in keys {
            if let Some(f) = self.folded_audits.remove(&key) {
                chunk.audits.push(f.event());
                chunk.audit_fences.push(key.2.clone());
                chunk.folded_audits.push((key, f));
            }
        }
        chunk
    }

    /// Puts back a chunk that could not be written, as it was (a newer state of the same
    /// account wins; folded items fold again).
    pub fn put_back(&mut self, chunk: Chunk) {
        for c in chunk.converges {
            if let Some(newer) = self.converges.remove(&c.account_id) {
                self.converges.insert(c.account_id.clone(), newer);
                self.push_report(c.report, c.fence);
            } else {
                self.converges.insert(c.account_id.clone(), c);
            }
        }
        let plain_reports = chunk.reports.len() - chunk.folded_reports.len();
        let reports = chunk.reports.into_iter().zip(chunk.report_fences);
        for r in reports
            .take(plain_reports)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            self.reports.push_front(r);
        }
        for (key, f) in chunk.folded_reports {
            self.fold_report(key, f);
        }
        let plain_audits = chunk.audits.len() - chunk.folded_audits.len();
        let audits = chunk.audits.into_iter().zip(chunk.audit_fences);
        for a in audits
            .take(plain_audits)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            self.audits.push_front(a);
        }
        for (key, f) in chunk.folded_audits {
            self.fold_audit(key, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000 + secs, 0).unwrap_or_default()
    }

    fn report(account: &str, secs: i64, class: Option<&str>) -> SyncRunRecord {
        SyncRunRecord {
            duration: Duration::from_millis(2),
            positions: 1,
            trades: 1,
            error_class: class.map(str::to_owned),
            error_message: class.map(|c| format!("{c} at {secs}")),
            ..SyncRunRecord::begun(account, at(secs))
        }
    }

    fn audit(account: &str, kind: &str, secs: i64) -> AuditEvent {
        AuditEvent {
            at: at(secs),
            account_id: Some(account.to_owned()),
            kind: kind.to_owned(),
            detail: serde_json::json!({ "n": secs }),
        }
    }

    #[test]
    fn reports_past_the_bound_fold_per_account_and_class_and_count_every_sync() {
        let mut b = Buffer::new(3, 10);
        for i in 0..100 {
            b.push_report(report("a", i, None), None);
            b.push_report(report("b", i, (i % 2 == 0).then_some("timeout")), None);
        }
        let s = b.sizes();
        assert_eq!((s.reports, s.folded_reports), (3, 3));
        let chunk = b.take(100);
        assert_eq!(chunk.reports.len(), 6);
        let syncs: u64 = chunk.reports[..3].len() as u64
            + chunk
                .folded_reports
                .iter()
                .map(|(_, f)| f.syncs)
                .sum::<u64>();
        assert_eq!(syncs, 200);
        let folded = &chunk.reports[3..];
        assert!(folded.iter().all(|r| {
            r.error_message
                .as_deref()
                .is_some_and(|m| m.starts_with("folded "))
        }));
    }

    #[test]
    fn only_breaker_transitions_fold_and_nothing_is_lost() {
        let mut b = Buffer::new(10, 2);
        for i in 0..50 {
            b.push_audit(audit("a", "backoff_started", i), None);
        }
        b.push_audit(audit("a", "close_attempt", 99), None);
        let s = b.sizes();
        assert_eq!((s.audits, s.folded_audits), (3, 1));
        let chunk = b.take(10);
        let folded = chunk.audits.last().expect("the folded event");
        assert_eq!(folded.detail["folded"], 48);
        assert_eq!(folded.detail["first"]["n"], 2);
        assert_eq!(folded.detail["last"]["n"], 49);
        assert!(chunk.audits.iter().any(|a| a.kind == "close_attempt"));
    }

    #[test]
    fn chunks_are_bounded_and_a_failed_chunk_goes_back_as_it_was() {
        let mut b = Buffer::new(5, 5);
        for i in 0..20 {
            b.push_report(report("a", i, None), None);
            b.push_audit(audit("a", "circuit_opened", i), None);
        }
        let before = b.sizes();
        let chunk = b.take(7);
        assert_eq!(chunk.reports.len() + chunk.audits.len(), 7);
        b.put_back(chunk);
        assert_eq!(b.sizes(), before);
        let first = b.take(1);
        assert_eq!(first.reports[0].started_at, at(0), "order kept");
        let mut total = 1;
        while b.depth() > 0 {
            let c = b.take(3);
            total += c.reports.len() + c.audits.len();
            assert!(c.reports.len() + c.audits.len() <= 3);
        }
        assert_eq!(total, before.total());
    }
}
