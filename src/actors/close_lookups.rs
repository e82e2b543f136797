//! The deal lookups of a sync: the positions whose close the domain asks about
//! (`domain::close_tracker`) are answered from the snapshot's deals when those settle
//! them, else by the broker's per-position history, under the global cap on broker calls
//! and the broker timeout, concurrently. A failed lookup is logged and counts as a miss.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::broker::{Broker, BrokerError};
use crate::domain::close_tracker::{Answer, Question};
use crate::domain::{Deal, DealLookup};

/// Broker lookups one sync makes at most; the other questions wait for the next sync
/// (without counting as a miss), so a mass stop-out cannot flood the broker.
pub(super) const MAX_LOOKUPS_PER_SYNC: usize = 16;

/// Answers `questions` for `account`: from `snapshot_deals` when they settle one, else
/// from the broker. Answers come in the order of the questions.
pub(super) async fn answer(
    broker: &Arc<dyn Broker>,
    account: &str,
    questions: Vec<Question>,
    snapshot_deals: &[Deal],
    limiter: &Arc<Semaphore>,
    timeout: Duration,
) -> Vec<(Question, Answer)> {
    let mut answers: Vec<Option<Answer>> = vec![None; questions.len()];
    let mut asked = JoinSet::new();
    for (i, q) in questions.iter().enumerate() {
        if q.settled_by(snapshot_deals) {
            answers[i] = Some(Answer::Snapshot);
        } else if asked.len() < MAX_LOOKUPS_PER_SYNC {
            let (broker, limiter) = (broker.clone(), limiter.clone());
            let (account, position_id) = (account.to_owned(), q.position_id);
            asked.spawn(async move {
                let lookup =
                    deals_within(broker.as_ref(), &account, position_id, &limiter, timeout);
                (i, lookup.await)
            });
        } else {
            answers[i] = Some(Answer::Deferred);
        }
    }
    while let Some(joined) = asked.join_next().await {
        let (i, result) = match joined {
            Ok(v) => v,
            Err(e) => {
                // A panicking broker: its question stays unanswered (a miss, below).
                tracing::warn!(error = %e, "deal lookup crashed");
                continue;
            }
        };
        answers[i] = Some(match result {
            Ok(lookup) => Answer::Broker(lookup),
            Err(e) => {
                let position = questions[i].position_id;
                tracing::warn!(position, class = %e.class(), error = %e, "deal lookup failed");
                Answer::Failed
            }
        });
    }
    questions
        .into_iter()
        .zip(answers)
        .map(|(q, a)| (q, a.unwrap_or(Answer::Failed)))
        .collect()
}

/// The deals of `position_id` on `account`, asked under the global cap on broker calls
/// in flight (`limiter`) and within `timeout`, like a snapshot.
pub(super) async fn deals_within(
    broker: &dyn Broker,
    account: &str,
    position_id: u64,
    limiter: &Semaphore,
    timeout: Duration,
) -> Result<DealLookup, BrokerError> {
    let _permit = limiter
        .acquire()
        .await
        .map_err(|_| BrokerError::Retryable {
            reason: "shutting down".into(),
            retry_after: None,
        })?;
    tokio::time::timeout(timeout, broker.position_deals(account, position_id))
        .await
        .map_err(|_| {
            BrokerError::Timeout(format!(
                "no deals of position {position_id} within {timeout:?}"
            ))
        })?
}
