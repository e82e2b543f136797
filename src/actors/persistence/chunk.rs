//! Items taken out of the buffer for one transaction, each with the fence it was produced
//! under; the fenced ones are left out in the transaction that found them so.

use std::collections::BTreeMap;

use super::Converge;
use super::buffer::{AuditKey, FoldedAudits, FoldedReports, ReportKey};
use crate::store::{AuditEvent, Fence, FenceCheck, FencedOut, SyncRunRecord};

/// Items taken out of the buffer for one transaction.
#[derive(Default)]
pub(super) struct Chunk {
    /// Divergence states (each carries its fence).
    pub converges: Vec<Converge>,
    /// Sync reports, then the rows of folded ones.
    pub reports: Vec<SyncRunRecord>,
    /// The fence of each of `reports`.
    pub report_fences: Vec<Option<Fence>>,
    /// Audit events, then the events of folded ones.
    pub audits: Vec<AuditEvent>,
    /// The fence of each of `audits`.
    pub audit_fences: Vec<Option<Fence>>,
    /// What the folded reports at the end of `reports` stand for.
    pub folded_reports: Vec<(ReportKey, FoldedReports)>,
    /// What the folded events at the end of `audits` stand for.
    pub folded_audits: Vec<(AuditKey, FoldedAudits)>,
    /// Items left out because their fence no longer holds, per account and epoch, with
    /// how many: dropped for good, never put back.
    pub fenced: BTreeMap<(String, i64), (FencedOut, u64)>,
}

impl Chunk {
    /// How many syncs each of `reports` stands for, in order: one for a report kept as it
    /// was, the count folded into it for the others.
    pub fn report_weights(&self) -> Vec<u64> {
        let plain = self.reports.len() - self.folded_reports.len();
        std::iter::repeat_n(1, plain)
            .chain(self.folded_reports.iter().map(|(_, f)| f.syncs))
            .collect()
    }

    /// Every (account, fence) of the chunk's fenced items, to check.
    pub fn fences(&self) -> Vec<(&str, &Fence)> {
        let converges = self
            .converges
            .iter()
            .filter_map(|c| Some((c.account_id.as_str(), c.fence.as_ref()?)));
        let reports = self
            .reports
            .iter()
            .zip(&self.report_fences)
            .filter_map(|(r, f)| Some((r.account_id.as_str(), f.as_ref()?)));
        let audits = self
            .audits
            .iter()
            .zip(&self.audit_fences)
            .filter_map(|(a, f)| Some((a.account_id.as_deref()?, f.as_ref()?)));
        converges.chain(reports).chain(audits).collect()
    }

    /// Leaves out every item `check` refuses, noting it in `fenced`.
    pub fn drop_fenced(&mut self, check: &FenceCheck) {
        let refused = check.refused();
        if refused.is_empty() {
            return;
        }
        let mut dropped = Vec::new();
        let mut allows = |account: Option<&str>, fence: Option<&Fence>| {
            let (Some(account), Some(f)) = (account, fence) else {
                return true;
            };
            let ok = check.allows(account, Some(f));
            if !ok {
                dropped.push((account.to_owned(), f.epoch));
            }
            ok
        };
        self.converges
            .retain(|c| allows(Some(&c.account_id), c.fence.as_ref()));
        let keep: Vec<bool> = (self.reports.iter().zip(&self.report_fences))
            .map(|(r, f)| allows(Some(&r.account_id), f.as_ref()))
            .collect();
        let plain = self.reports.len() - self.folded_reports.len();
        retain(&mut self.reports, &keep);
        retain(&mut self.report_fences, &keep);
        retain(&mut self.folded_reports, &keep[plain..]);
        let keep: Vec<bool> = (self.audits.iter().zip(&self.audit_fences))
            .map(|(a, f)| allows(a.account_id.as_deref(), f.as_ref()))
            .collect();
        let plain = self.audits.len() - self.folded_audits.len();
        retain(&mut self.audits, &keep);
        retain(&mut self.audit_fences, &keep);
        retain(&mut self.folded_audits, &keep[plain..]);
        for key in dropped {
            let Some(out) = refused
                .iter()
                .find(|o| o.account_id == key.0 && o.epoch == key.1)
            else {
                continue;
            };
            self.fenced.entry(key).or_insert_with(|| (out.clone(), 0)).1 += 1;
        }
    }
}

/// Keeps the items of `items` whose `keep` is true (same length).
fn retain<T>(items: &mut Vec<T>, keep: &[bool]) {
    let mut k = keep.iter();
    items.retain(|_| k.next().copied().unwrap_or(true));
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::super::buffer::Buffer;
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000 + secs, 0).unwrap_or_default()
    }

    fn fence(epoch: i64) -> Fence {
        Fence {
            instance_id: "a".into(),
            epoch,
        }
    }

    fn failed(account: &str, secs: i64) -> SyncRunRecord {
        SyncRunRecord {
            error_class: Some("timeout".into()),
            ..SyncRunRecord::begun(account, at(secs))
        }
    }

    fn audit(account: &str, secs: i64) -> AuditEvent {
        AuditEvent {
            at: at(secs),
            account_id: Some(account.to_owned()),
            kind: "circuit_opened".into(),
            detail: serde_json::json!({}),
        }
    }

    #[test]
    fn fenced_items_leave_plain_and_folded_parts_alike_and_the_rest_stays_aligned() {
        let (x, y, old_y) = (fence(7), fence(3), fence(2));
        // One item kept as it is per kind; the rest folds per account, class and fence.
        let mut b = Buffer::new(1, 1);
        for i in 0..5 {
            b.push_report(failed("x", i), Some(x.clone()));
            b.push_report(failed("y", i), Some(y.clone()));
            b.push_report(failed("y", i), Some(old_y.clone()));
            b.push_report(failed("z", i), None);
            b.push_audit(audit("x", i), Some(x.clone()));
            b.push_audit(audit("y", i), Some(y.clone()));
        }
        let mut chunk = b.take(100);
        assert_eq!(
            chunk.reports.len(),
            5,
            "x plain, then x, y, old y, z folded"
        );
        assert_eq!(chunk.audits.len(), 3, "x plain, then x, y folded");

        let check = FenceCheck::of(&[("y", &y)], &[("x", &x), ("y", &old_y)]);
        chunk.drop_fenced(&check);

        let accounts: Vec<&str> = chunk
            .reports
            .iter()
            .map(|r| r.account_id.as_str())
            .collect();
        assert_eq!(accounts.len(), 2);
        assert!(
            accounts.contains(&"y") && accounts.contains(&"z"),
            "{accounts:?}"
        );
        assert_eq!(chunk.report_fences.len(), 2);
        assert_eq!(chunk.folded_reports.len(), 2);
        assert_eq!(
            chunk.report_weights(),
            vec![5, 5],
            "each folded row stands for 5 syncs"
        );
        // Only folded rows are left: each beside what it stands for.
        for (r, (key, _)) in chunk.reports.iter().zip(&chunk.folded_reports) {
            assert_eq!(r.account_id, key.0);
        }
        assert_eq!(chunk.audits.len(), 1);
        assert_eq!(chunk.audits[0].account_id.as_deref(), Some("y"));
        assert_eq!(chunk.folded_audits.len(), 1);
        assert!(
            chunk
                .fences()
                .iter()
                .all(|(a, f)| (*a, f.epoch) == ("y", 3))
        );

        let fenced: Vec<(String, i64, u64)> = chunk
            .fenced
            .values()
            .map(|(o, n)| (o.account_id.clone(), o.epoch, *n))
            .collect();
        // x: one plain and one folded report, one plain and one folded audit.
        assert_eq!(fenced, vec![("x".into(), 7, 4), ("y".into(), 2, 1)]);
    }
}
