//! Failed sign-ins per username, and the policy that slows and then stops guessing.
//!
//! Failures are counted per username of a pool whether or not such a user exists, so that the
//! answers do not tell which usernames exist. The count lives in the database, so every
//! instance sees the same one. The first [`LockoutPolicy::free`] failures cost nothing; each
//! further failure doubles the wait before the next attempt (1 s, 2 s, 4 s, …); at
//! [`LockoutPolicy::lock_at`] failures the username is locked for [`LockoutPolicy::lock_secs`]
//! (an administrator clears it by enabling the user), and while the failures go on each one
//! locks it again. A success, or [`LockoutPolicy::reset_after_secs`] without failures, starts
//! over.

use crate::time::Timestamp;

/// The failures of one username in one pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInFailures {
    /// Failures in the current run.
    pub count: u32,
    pub last_at: Timestamp,
    pub locked_until: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures allowed without any wait.
    pub free: u32,
    /// Failures that lock the username.
    pub lock_at: u32,
    /// How long a lock lasts.
    pub lock_secs: i64,
    /// Quiet time after which a run of failures is forgotten.
    pub reset_after_secs: i64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            free: 5,
            lock_at: 10,
            lock_secs: 15 * 60,
            reset_after_secs: 60 * 60,
        }
    }
}

/// What a failure changed, for the audit log (which records runs, not every failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMark {
    /// The first failure of a run.
    First,
    /// The last free failure: attempts wait from now on.
    BackOff,
    /// The username is locked.
    Locked,
    /// Nothing new.
    Repeat,
}

impl LockoutPolicy {
    /// When the next attempt may be made, if not now.
    pub fn next_attempt_at(&self, f: &SignInFailures, now: Timestamp) -> Option<Timestamp> {
        if self.forgotten(f, now) {
            return None;
        }
        if let Some(until) = f.locked_until.filter(|u| *u > now) {
            return Some(until);
        }
        if f.count < self.free {
            return None;
        }
        let doublings = (f.count - self.free).min(20);
        let at = f.last_at.plus_secs(1_i64 << doublings);
        (at > now).then_some(at)
    }

    /// Whether the run is old enough to be forgotten.
    pub fn forgotten(&self, f: &SignInFailures, now: Timestamp) -> bool {
        f.last_at.as_secs() < now.as_secs() - self.reset_after_secs
    }

    /// What the failure that made `f` marks.
    pub fn mark(&self, f: &SignInFailures) -> FailureMark {
        match f.count {
            1 => FailureMark::First,
            n if n == self.lock_at => FailureMark::Locked,
            n if n == self.free => FailureMark::BackOff,
            _ => FailureMark::Repeat,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timestamp = Timestamp(1_000_000);

    fn failures(count: u32, last_at: Timestamp, locked_until: Option<Timestamp>) -> SignInFailures {
        SignInFailures {
            count,
            last_at,
            locked_until,
        }
    }

    #[test]
    fn free_failures_then_doubling_waits_then_a_lock() {
        let p = LockoutPolicy::default();
        for n in 1..5 {
            assert_eq!(p.next_attempt_at(&failures(n, T, None), T), None, "{n}");
        }
        assert_eq!(
            p.next_attempt_at(&failures(5, T, None), T),
            Some(T.plus_secs(1))
        );
        assert_eq!(
            p.next_attempt_at(&failures(8, T, None), T),
            Some(T.plus_secs(8))
        );
        // The wait is counted from the last failure.
        assert_eq!(
            p.next_attempt_at(&failures(8, T, None), T.plus_secs(8)),
            None
        );
        let locked = failures(10, T, Some(T.plus_secs(900)));
        assert_eq!(
            p.next_attempt_at(&locked, T.plus_secs(899)),
            Some(T.plus_secs(900))
        );
        // After the lock, the doubling wait of ten failures (32 s) is long over.
        assert_eq!(p.next_attempt_at(&locked, T.plus_secs(900)), None);
        // An hour of quiet forgets the run, lock or not.
        let old = failures(40, T, Some(T.plus_secs(900)));
        assert_eq!(p.next_attempt_at(&old, T.plus_secs(3601)), None);
        // Huge counts do not overflow the wait.
        assert!(p.next_attempt_at(&failures(u32::MAX, T, None), T).is_some());
    }

    #[test]
    fn runs_are_audited_at_their_turns() {
        let p = LockoutPolicy::default();
        let marks: Vec<_> = (1..=11).map(|n| p.mark(&failures(n, T, None))).collect();
        assert_eq!(marks[0], FailureMark::First);
        assert_eq!(marks[4], FailureMark::BackOff);
        assert_eq!(marks[9], FailureMark::Locked);
        let quiet = marks.iter().filter(|m| **m == FailureMark::Repeat).count();
        assert_eq!(quiet, 8);
    }
}
