//! How long rows that no longer decide anything are kept before the store deletes them
//! ([`crate::store::Store::purge_expired`]).
//!
//! - A session is kept for [`PurgePolicy::session_grace_secs`] after it expired or was
//!   revoked, so that "why was I signed out" stays answerable for a week.
//! - A revoked (or used) token id is kept until [`PurgePolicy::revocation_margin_secs`] after
//!   its own expiry: past that every instance refuses the token as expired, even one whose
//!   clock is a little behind. The newest revocation of each pool is always kept: its `seq`
//!   is where the next one is numbered from and where readers' cursors stand.
//! - A verification code is deleted once it has expired.
//! - A run of failed sign-ins is deleted once it would be forgotten anyway
//!   ([`crate::lockout::LockoutPolicy::reset_after_secs`] without failures) and its lock, if
//!   any, has ended.
//! - A count of codes sent is deleted once its window has closed.
//! - A security event is kept for its pool's
//!   [`crate::pool::PoolSettings::security_event_retention_secs`] after its time, except the
//!   newest of each pool (the next one is numbered after it). The highest number deleted is
//!   kept as the pool's horizon: a reader whose cursor is below it missed events, and is told
//!   so (the fleet feed answers 410) instead of being handed what is left.
//! - Audit events are kept as long as their pool's
//!   [`crate::pool::PoolSettings::audit_retention_days`] says: forever by default.

use crate::lockout::LockoutPolicy;

/// The window of the limits on codes sent (per user and per destination).
pub const CODE_WINDOW_SECS: i64 = 60 * 60;

/// How far the clocks of the services that verify a pool's tokens may be behind.
pub const CLOCK_SKEW_SECS: i64 = 5 * 60;

/// Seconds in a day, for retention given in days.
pub const DAY_SECS: i64 = 24 * 60 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgePolicy {
    /// How long a session is kept after it expired or was revoked.
    pub session_grace_secs: i64,
    /// How long a revoked token id is kept after the token's own expiry.
    pub revocation_margin_secs: i64,
    /// Quiet time after which a run of failed sign-ins is deleted (its lock having ended).
    pub failure_quiet_secs: i64,
    /// The window of the limits on codes sent: a count whose window opened longer ago than
    /// this has closed and is deleted.
    pub code_window_secs: i64,
    /// Most rows one statement deletes; each batch is its own short transaction.
    pub batch: u32,
}

impl Default for PurgePolicy {
    fn default() -> Self {
        Self {
            session_grace_secs: 7 * DAY_SECS,
            revocation_margin_secs: 10 * 60,
            failure_quiet_secs: LockoutPolicy::default().reset_after_secs,
            code_window_secs: CODE_WINDOW_SECS,
            batch: 1_000,
        }
    }
}

/// Rows deleted by one purge, per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    pub sessions: u64,
    pub revoked_tokens: u64,
    pub verification_codes: u64,
    pub sign_in_failures: u64,
    pub code_issuance: u64,
    pub authorization_codes: u64,
    pub refresh_tokens: u64,
    /// Federated sign-ins never finished.
    pub pending_federations: u64,
    /// Passkey ceremonies never answered.
    pub webauthn_ceremonies: u64,
    pub audit_events: u64,
    pub security_events: u64,
}

impl PurgeCounts {
    pub fn total(&self) -> u64 {
        self.sessions
            + self.revoked_tokens
            + self.verification_codes
            + self.sign_in_failures
            + self.code_issuance
            + self.authorization_codes
            + self.refresh_tokens
            + self.pending_federations
            + self.webauthn_ceremonies
            + self.audit_events
            + self.security_events
    }
}
