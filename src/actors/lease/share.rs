//! How many leases an instance aims to hold, and when it gives some up. Pure code.
//!
//! Each instance aims at its fair share, `ceil(accounts / live instances)`: the shares of
//! all live instances together cover every account. An instance below its share claims the
//! difference; one above it gives up the surplus only after it has seen it on two claim
//! rounds in a row (an instance that missed one heartbeat does not make the others shed
//! and take back leases), and then half of it (rounded up) per round, so ownership moves
//! gradually and never back and forth.

/// An instance's fair share of `accounts` among `live` instances (at least one: itself).
pub fn fair_share(accounts: usize, live: u64) -> usize {
    let live = usize::try_from(live.max(1)).unwrap_or(usize::MAX);
    accounts.div_ceil(live)
}

/// What a claim round does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Claim up to this many free or expired leases.
    Claim(usize),
    /// Give up this many leases.
    GiveUp(usize),
    /// Neither.
    Hold,
}

/// The memory of the surplus across claim rounds.
#[derive(Debug, Clone, Default)]
pub struct Balance {
    surplus_rounds: u32,
}

/// Claim rounds a surplus must be seen on before leases are given up.
pub const SURPLUS_ROUNDS: u32 = 2;

impl Balance {
    /// The step of one claim round: `owned` leases held, `accounts` known, `live`
    /// instances.
    pub fn step(&mut self, accounts: usize, live: u64, owned: usize) -> Step {
        let share = fair_share(accounts, live);
        if owned < share {
            self.surplus_rounds = 0;
            return Step::Claim(share - owned);
        }
        if owned == share {
            self.surplus_rounds = 0;
            return Step::Hold;
        }
        self.surplus_rounds += 1;
        if self.surplus_rounds < SURPLUS_ROUNDS {
            return Step::Hold;
        }
        Step::GiveUp((owned - share).div_ceil(2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_account() {
        for (accounts, live, share) in [
            (30, 1, 30),
            (30, 3, 10),
            (30, 4, 8),
            (1, 3, 1),
            (0, 2, 0),
            (7, 0, 7),
        ] {
            assert_eq!(fair_share(accounts, live), share, "{accounts}/{live}");
            assert!(share * usize::try_from(live.max(1)).unwrap() >= accounts);
        }
    }

    #[test]
    fn below_the_share_claims_the_difference() {
        let mut b = Balance::default();
        assert_eq!(b.step(30, 3, 4), Step::Claim(6));
        assert_eq!(b.step(30, 3, 10), Step::Hold);
    }

    #[test]
    fn a_surplus_is_given_up_gradually_after_two_rounds() {
        let mut b = Balance::default();
        assert_eq!(b.step(30, 3, 30), Step::Hold);
        assert_eq!(b.step(30, 3, 30), Step::GiveUp(10));
        assert_eq!(b.step(30, 3, 20), Step::GiveUp(5));
        assert_eq!(b.step(30, 3, 11), Step::GiveUp(1));
        assert_eq!(b.step(30, 3, 10), Step::Hold);
    }

    #[test]
    fn a_surplus_seen_once_is_forgotten() {
        let mut b = Balance::default();
        assert_eq!(b.step(30, 3, 15), Step::Hold);
        assert_eq!(b.step(30, 2, 15), Step::Hold);
        assert_eq!(b.step(30, 3, 15), Step::Hold);
    }
}
