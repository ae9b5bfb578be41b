//! The storage trait. Every call is scoped to one pool; every mutation commits together with
//! the audit event that records it, so an action is never done without its audit record and
//! no audit record describes an action that did not happen.

use async_trait::async_trait;

use crate::audit::{AuditEvent, AuditQuery, StoredAuditEvent};
use crate::client::AppClient;
use crate::consent::Consent;
use crate::group::Group;
use crate::ids::{ClientId, GroupName, PoolId, PoolSlug, SessionId, UserId, Username};
use crate::lockout::{LockoutPolicy, SignInFailures};
use crate::pool::{HostName, Pool, PoolSettings, SigningAlg};
use crate::retention::{PurgeCounts, PurgePolicy};
use crate::session::{Revocation, RevokedToken, Session};
use crate::time::Timestamp;
use crate::user::{FederatedIdentity, User, VerifiableAttribute, VerificationCode};

pub use crate::error::{StoreError, StoreResult};

/// A pool's signing key as stored: the private key sealed with the master key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub pool: PoolId,
    pub kid: String,
    pub alg: SigningAlg,
    /// Which family the key belongs to: what it signs.
    pub purpose: KeyPurpose,
    pub state: KeyState,
    /// AES-256-GCM sealed PKCS#8 document (nonce first).
    pub sealed_private_key: Vec<u8>,
    /// The public JWK, as JSON text.
    pub public_jwk: String,
    pub created_at: Timestamp,
    /// When the key took its state: for a previous key, when it stopped signing.
    pub state_since: Timestamp,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("pool", &self.pool)
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("purpose", &self.purpose)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// A pool's key families. Each rotates on its own (next → current → previous) and all are
/// published in the pool's one JWKS, but a key of one family never verifies what the other
/// signs: an ID token is not an access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyPurpose {
    /// Access tokens (and the pool's other own JWTs, such as challenge sessions), in the
    /// pool's configured algorithm.
    Access,
    /// OpenID Connect ID tokens, always [`ID_TOKEN_SIGNING_ALG`].
    IdToken,
}

/// The algorithm of every pool's ID tokens: RS256, which OpenID Connect requires relying
/// parties to support, whatever algorithm the pool's access tokens use.
pub const ID_TOKEN_SIGNING_ALG: SigningAlg = SigningAlg::RS256;

impl KeyPurpose {
    pub const ALL: [KeyPurpose; 2] = [KeyPurpose::Access, KeyPurpose::IdToken];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyPurpose::Access => "access",
            KeyPurpose::IdToken => "id_token",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "access" => Some(Self::Access),
            "id_token" => Some(Self::IdToken),
            _ => None,
        }
    }

    /// The algorithm new keys of this family use in a pool with `settings`.
    pub fn alg(self, settings: &PoolSettings) -> SigningAlg {
        match self {
            KeyPurpose::Access => settings.signing_alg,
            KeyPurpose::IdToken => ID_TOKEN_SIGNING_ALG,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Signing.
    Current,
    /// Published so that tokens it signed still verify.
    Previous,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Current => "current",
            KeyState::Previous => "previous",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "next" => Some(Self::Next),
            "current" => Some(Self::Current),
            "previous" => Some(Self::Previous),
            _ => None,
        }
    }
}

/// Which sessions to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionFilter {
    /// Sessions of one user that are neither revoked nor expired at the given time.
    ActiveOfUser(UserId, Timestamp),
    /// Impersonation sessions that are neither revoked nor expired at the given time.
    ActiveImpersonations(Timestamp),
}

#[async_trait]
pub trait Store:
    crate::ssf::SsfStore
    + crate::federation::FederationStore
    + crate::hooks::HookStore
    + Send
    + Sync
    + 'static
{
    /// Opens a write transaction on one pool (see [`crate::txn`]): the way every operation
    /// that reads before it writes does both. Rows are changed only through it; the
    /// single-call writes below insert, delete or mark, and each is its own transaction.
    async fn write(&self, pool: PoolId) -> StoreResult<Box<dyn crate::txn::PoolWrite>>;

    /// An impersonation's check-and-write in one call: reads the target, its groups and the
    /// caller's standing, lets `rules` judge them, and writes the session and its audit event
    /// they return, all in one transaction. On SQLite the whole of it runs on the database
    /// connection's thread in one trip.
    async fn start_impersonation(
        &self,
        pool: PoolId,
        target: &Username,
        standing: crate::txn::Standing,
        rules: crate::txn::ImpersonationRules,
    ) -> StoreResult<crate::txn::ImpersonationOutcome>;

    // Pools and keys.

    /// Creates a pool with its first signing keys (one current key of each family).
    async fn create_pool(
        &self,
        pool: &Pool,
        keys: &[SigningKeyRecord],
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    async fn pool_by_slug(&self, slug: &PoolSlug) -> StoreResult<Option<Pool>>;
    async fn pool_by_host(&self, host: &HostName) -> StoreResult<Option<Pool>>;
    async fn list_pools(&self) -> StoreResult<Vec<Pool>>;
    /// At most `limit` pools whose slug sorts after `after`, in slug order.
    async fn list_pools_page(&self, after: Option<&PoolSlug>, limit: u32)
    -> StoreResult<Vec<Pool>>;
    /// Replaces the host names bound to a pool. A host bound to another pool is a conflict.
    async fn set_pool_hosts(
        &self,
        pool: PoolId,
        hosts: &[HostName],
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    async fn signing_keys(&self, pool: PoolId) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Deletes a pool with everything in it (users, groups, clients, keys, sessions, codes),
    /// and appends `audit` (an event of another pool, since this one's log goes with it;
    /// audit rows have no foreign key and outlive what they describe).
    async fn delete_pool(&self, pool: PoolId, audit: &AuditEvent) -> StoreResult<()>;

    // Users.

    async fn create_user(&self, user: &User, audit: &AuditEvent) -> StoreResult<()>;
    async fn user_by_username(
        &self,
        pool: PoolId,
        username: &Username,
    ) -> StoreResult<Option<User>>;
    async fn user_by_id(&self, pool: PoolId, id: UserId) -> StoreResult<Option<User>>;
    /// Users ordered by username, starting after `after`.
    async fn list_users(
        &self,
        pool: PoolId,
        after: Option<&Username>,
        limit: u32,
    ) -> StoreResult<Vec<User>>;
    /// Deletes the user with its memberships, links, sessions and codes.
    async fn delete_user(&self, pool: PoolId, id: UserId, audit: &AuditEvent) -> StoreResult<()>;
    async fn link_identity(&self, link: &FederatedIdentity, audit: &AuditEvent) -> StoreResult<()>;
    async fn identities_of_user(
        &self,
        pool: PoolId,
        id: UserId,
    ) -> StoreResult<Vec<FederatedIdentity>>;
    /// Stores a verification code, replacing the user's previous one for that attribute.
    async fn put_verification_code(&self, code: &VerificationCode) -> StoreResult<()>;
    /// Removes and returns the user's code for that attribute.
    async fn take_verification_code(
        &self,
        pool: PoolId,
        user: UserId,
        attribute: VerifiableAttribute,
    ) -> StoreResult<Option<VerificationCode>>;

    // Failed sign-ins (`lockout.rs`), per username whether or not the user exists.

    async fn sign_in_failures(
        &self,
        pool: PoolId,
        username: &Username,
    ) -> StoreResult<Option<SignInFailures>>;
    /// Counts one more failure at `now` in one atomic statement (a run older than the policy's
    /// quiet time starts again at one; reaching its lock count locks until `now` + the lock
    /// time) and returns the count after it.
    async fn record_sign_in_failure(
        &self,
        pool: PoolId,
        username: &Username,
        now: Timestamp,
        policy: &LockoutPolicy,
    ) -> StoreResult<SignInFailures>;
    async fn clear_sign_in_failures(&self, pool: PoolId, username: &Username) -> StoreResult<()>;

    // Groups.

    async fn create_group(&self, group: &Group, audit: &AuditEvent) -> StoreResult<()>;
    async fn group(&self, pool: PoolId, name: &GroupName) -> StoreResult<Option<Group>>;
    /// Groups ordered by name, starting after `after`.
    async fn list_groups(
        &self,
        pool: PoolId,
        after: Option<&GroupName>,
        limit: u32,
    ) -> StoreResult<Vec<Group>>;
    async fn delete_group(
        &self,
        pool: PoolId,
        name: &GroupName,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// The user's groups, ordered by name.
    async fn groups_of_user(&self, pool: PoolId, user: UserId) -> StoreResult<Vec<Group>>;
    /// Sets the user's memberships to exactly these groups; an unknown group is `NotFound`.
    async fn set_user_groups(
        &self,
        pool: PoolId,
        user: UserId,
        groups: &[GroupName],
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Members ordered by username, starting after `after`.
    async fn users_in_group(
        &self,
        pool: PoolId,
        group: &GroupName,
        after: Option<&Username>,
        limit: u32,
    ) -> StoreResult<Vec<User>>;

    // App clients.

    async fn create_client(&self, client: &AppClient, audit: &AuditEvent) -> StoreResult<()>;
    async fn client(&self, pool: PoolId, id: &ClientId) -> StoreResult<Option<AppClient>>;
    async fn list_clients(&self, pool: PoolId) -> StoreResult<Vec<AppClient>>;
    async fn delete_client(
        &self,
        pool: PoolId,
        id: &ClientId,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    // Consents.

    /// The user's remembered consents, by client id.
    async fn consents_of_user(&self, pool: PoolId, user: UserId) -> StoreResult<Vec<Consent>>;

    // Sessions and revocation.

    async fn create_session(&self, session: &Session, audit: &AuditEvent) -> StoreResult<()>;
    async fn session(&self, pool: PoolId, id: SessionId) -> StoreResult<Option<Session>>;
    async fn list_sessions(&self, pool: PoolId, filter: SessionFilter)
    -> StoreResult<Vec<Session>>;
    /// Marks a session revoked; `NotFound` if it does not exist or was already revoked.
    async fn revoke_session(
        &self,
        pool: PoolId,
        id: SessionId,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Revokes one access token by `jti`; revoking it twice is not an error.
    async fn revoke_token(&self, token: &RevokedToken, audit: &AuditEvent) -> StoreResult<()>;
    async fn is_token_revoked(&self, pool: PoolId, jti: &str) -> StoreResult<bool>;
    /// The pool's revocations newer than `after` (a [`Revocation::seq`]) that are unexpired at
    /// `now`, oldest first, plus the newest one even if expired. Gap-free: once a reader has
    /// seen N, no revocation numbered N or below commits later.
    async fn revocations_after(
        &self,
        pool: PoolId,
        after: i64,
        now: Timestamp,
    ) -> StoreResult<Vec<Revocation>>;

    // Audit.

    /// Appends an event that records no state change of its own (a token issued, a denial).
    /// Up to `limit` security events of `pool` committed after `after`, in commit order.
    async fn security_events_after(
        &self,
        pool: PoolId,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<crate::security_event::StoredSecurityEvent>>;
    /// The newest security event's number in `pool` (0 when it has none).
    async fn latest_security_event(&self, pool: PoolId) -> StoreResult<i64>;
    /// The highest number the purge deleted from `pool`'s log (0 when none was): a reader
    /// whose cursor is below it has missed events.
    async fn security_event_horizon(&self, pool: PoolId) -> StoreResult<i64>;
    /// The events of `pool` numbered up to `up_to` whose time is `since` or later, oldest
    /// first: what a snapshot read at `up_to` holds.
    async fn security_events_in_effect(
        &self,
        pool: PoolId,
        since: Timestamp,
        up_to: i64,
    ) -> StoreResult<Vec<crate::security_event::StoredSecurityEvent>>;
    /// Where the back-channel logout worker stands in `pool`'s event log (0 at first).
    async fn backchannel_cursor(&self, pool: PoolId) -> StoreResult<i64>;
    /// Whether `pool` has an open back-channel logout delivery due at `now` and not leased.
    async fn backchannel_due(&self, pool: PoolId, now: Timestamp) -> StoreResult<bool>;
    /// The newest `limit` back-channel logout deliveries to `client` of `pool`, newest first.
    async fn backchannel_deliveries(
        &self,
        pool: PoolId,
        client: &ClientId,
        limit: u32,
    ) -> StoreResult<Vec<crate::backchannel::Delivery>>;
    /// The security event bell's count now: it moves after every commit that appended
    /// security events, in this process or (PostgreSQL) in any process on the database. A
    /// waiter takes the mark *before* it reads the log, then waits with
    /// [`Store::security_events_committed`], so no commit between its read and its wait is
    /// missed. The bell says only that some pool may have new events; the log is the truth.
    fn security_event_mark(&self) -> u64;
    /// Returns the bell's count once it differs from `mark` (at once if it already does).
    /// A wake-up may be spurious, and a notification from another process may be lost (a
    /// dropped connection): waiters re-read the log on a timer as well.
    async fn security_events_committed(&self, mark: u64) -> u64;
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Appends several such events in one transaction: all of them or none.
    async fn append_audit_batch(&self, events: &[AuditEvent]) -> StoreResult<()>;
    async fn list_audit(
        &self,
        pool: PoolId,
        query: &AuditQuery,
    ) -> StoreResult<Vec<StoredAuditEvent>>;

    // Retention.

    /// Deletes, in every pool, what [`PurgePolicy`] and each pool's audit retention say is no
    /// longer needed at `now` (see [`crate::retention`]), at most `policy.batch` rows per
    /// transaction, until none is left. The newest revoked token of each pool is never
    /// deleted. Idempotent: instances purging at once delete each row once between them.
    async fn purge_expired(&self, now: Timestamp, policy: &PurgePolicy)
    -> StoreResult<PurgeCounts>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_purposes_round_trip_and_choose_their_algorithm() {
        for p in KeyPurpose::ALL {
            assert_eq!(KeyPurpose::parse(p.as_str()), Some(p));
        }
        assert_eq!(KeyPurpose::parse("id-token"), None);
        let settings = PoolSettings {
            signing_alg: SigningAlg::EdDSA,
            ..PoolSettings::default()
        };
        assert_eq!(KeyPurpose::Access.alg(&settings), SigningAlg::EdDSA);
        // ID tokens stay RS256 whatever the pool's access tokens use.
        assert_eq!(KeyPurpose::IdToken.alg(&settings), SigningAlg::RS256);
    }
}
