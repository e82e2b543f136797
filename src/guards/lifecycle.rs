//! The status of a guard alert and the moves it may make.
//!
//! ```text
//!  alerted                          (closes nothing: a warning, or a detect-only account)
//!
//!  pending_close ──claim──▶ closing ──▶ closed ──(a position appears while the breach holds)──┐
//!       │                     │  ▲        │                                                    │
//!       │                     │  └────────┴─────────────── claim ◀────────────────────────────┘
//!       │                     └──▶ failed ──(backoff, then a check of what is still open)──▶ claim
//!       │
//!       └─ any of pending_close, closing, closed, failed ──operator──▶ cancelled
//!          any of pending_close, closing, closed, failed ──breach over──▶ ended
//! ```
//!
//! One claimant at a time: a claim is a compare-and-set from one of [`AlertStatus::CLAIMABLE`]
//! to `closing`. A closer that loses the claim does nothing; it never falls through.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Sent; closes nothing (a warning, or a breach on a detect-only account).
    Alerted,
    /// A breach whose close waits for its lead, or for the market of positions a market
    /// guard holds back; an operator may cancel it.
    PendingClose,
    /// A closer holds the claim and is closing positions.
    Closing,
    /// Every position was closed and checked; while the breach holds, positions that
    /// appear are closed too.
    Closed,
    /// The last round left positions open; another round follows after a backoff, and
    /// starts with a check of what is still open.
    Failed,
    /// An operator stopped the enforcement.
    Cancelled,
    /// The breach is over (a new trading day): nothing more is closed.
    Ended,
}

impl AlertStatus {
    /// Every status.
    pub const ALL: [AlertStatus; 7] = [
        Self::Alerted,
        Self::PendingClose,
        Self::Closing,
        Self::Closed,
        Self::Failed,
        Self::Cancelled,
        Self::Ended,
    ];
    /// Statuses a closer may claim.
    pub const CLAIMABLE: [AlertStatus; 3] = [Self::PendingClose, Self::Closed, Self::Failed];
    /// Statuses an operator may cancel.
    pub const CANCELLABLE: [AlertStatus; 4] = [
        Self::PendingClose,
        Self::Closing,
        Self::Closed,
        Self::Failed,
    ];

    /// The name stored in the database and shown in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Alerted => "alerted",
            Self::PendingClose => "pending_close",
            Self::Closing => "closing",
            Self::Closed => "closed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Ended => "ended",
        }
    }

    /// Whether the alert may still close positions.
    pub fn enforcing(self) -> bool {
        Self::CANCELLABLE.contains(&self)
    }

    /// Why an operator's cancel has nothing to do, for people.
    pub fn not_cancellable_reason(self) -> &'static str {
        match self {
            Self::Alerted => "it closes nothing (detect-only account, or a warning)",
            Self::Cancelled => "its enforcement is already cancelled",
            Self::Ended => "its breach is over",
            Self::PendingClose | Self::Closing | Self::Closed | Self::Failed => {
                "it is still cancellable"
            }
        }
    }
}

impl fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AlertStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not an alert status"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_from_its_name() {
        for s in [
            AlertStatus::Alerted,
            AlertStatus::PendingClose,
            AlertStatus::Closing,
            AlertStatus::Closed,
            AlertStatus::Failed,
            AlertStatus::Cancelled,
            AlertStatus::Ended,
        ] {
            assert_eq!(s.as_str().parse::<AlertStatus>(), Ok(s));
        }
        assert!("closed ".parse::<AlertStatus>().is_err());
    }

    #[test]
    fn a_claim_never_takes_an_alert_someone_holds_or_that_is_over() {
        for s in [
            AlertStatus::Closing,
            AlertStatus::Cancelled,
            AlertStatus::Ended,
            AlertStatus::Alerted,
        ] {
            assert!(!AlertStatus::CLAIMABLE.contains(&s), "{s}");
        }
    }
}
