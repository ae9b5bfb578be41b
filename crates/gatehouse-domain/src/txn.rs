//! Write transactions: one pool, read through, changed through, committed with their audit
//! events (the model is Kanidm's `proxy_write`).
//!
//! Every operation that reads something to decide a write opens a [`PoolWrite`], reads inside
//! it, writes inside it, and commits. The reads see the latest committed state and hold it
//! until the commit: SQLite runs one write transaction at a time (`BEGIN IMMEDIATE`), and on
//! PostgreSQL the reads here lock the rows they return (`FOR UPDATE`). Two operations on one
//! user therefore run one after the other, and neither can put back what the other changed.
//! Dropping a transaction without committing rolls it back.

use async_trait::async_trait;

use crate::audit::AuditEvent;
use crate::authorization::{AuthorizationCode, CodeTaken, RefreshTaken, RefreshToken};
use crate::client::AppClient;
use crate::consent::Consent;
use crate::error::StoreResult;
use crate::group::Group;
use crate::ids::{ClientId, GroupName, PoolId, PoolSlug, SessionId, UserId, Username};
use crate::pool::PoolSettings;
use crate::session::{RevokedToken, Session};
use crate::store::SigningKeyRecord;
use crate::time::Timestamp;
use crate::user::{FederatedIdentity, User, VerifiableAttribute, VerificationCode};

/// Which active sessions to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionsToEnd {
    /// One session of this pool.
    One(SessionId),
    /// Every session of a user of this pool: its sign-ins and the impersonations of it.
    OfUser(UserId),
    /// A session of this pool and those started in it (a browser session's authorizations).
    WithChildren(SessionId),
    /// Sessions of this pool started by an actor of the staff pool.
    ActedByStaff,
    /// The authorizations (code-flow sessions, with their refresh tokens) a user of this pool
    /// gave one app client: what taking back a consent ends.
    AuthorizedFor { user: UserId, client: ClientId },
    /// Every impersonation, in every pool, in which this actor acts: a user or client of
    /// `pool`. The one reach beyond the transaction's pool: an actor's authority spans pools,
    /// and so does its end.
    ActedBy { pool: PoolSlug, actor_id: String },
}

/// A write transaction on one pool. Every method is scoped to that pool unless it says
/// otherwise.
#[async_trait]
pub trait PoolWrite: Send {
    fn pool(&self) -> PoolId;

    // Reads that decide the write. They lock what they return until the commit.

    /// The pool's settings (locks the pool row, so settings changes run one at a time).
    async fn pool_settings(&mut self) -> StoreResult<PoolSettings>;
    async fn user_by_username(&mut self, username: &Username) -> StoreResult<Option<User>>;
    async fn user_by_id(&mut self, id: UserId) -> StoreResult<Option<User>>;
    /// A user of another pool who acts in this one (a staff member signing in here), read
    /// and locked like this pool's rows: a change to that user (disabling it, which ends the
    /// sessions it acts in) and this transaction run one after the other. The one read beyond
    /// the transaction's pool.
    async fn acting_user(&mut self, pool: PoolId, id: UserId) -> StoreResult<Option<User>>;
    /// The user an upstream identity is linked to.
    async fn user_by_identity(
        &mut self,
        provider_name: &str,
        provider_user_id: &str,
    ) -> StoreResult<Option<User>>;
    /// The user's groups, ordered by name. The membership rows are not locked: changing a
    /// user's memberships reads (and so locks) the user first.
    async fn groups_of_user(&mut self, user: UserId) -> StoreResult<Vec<Group>>;
    async fn group(&mut self, name: &GroupName) -> StoreResult<Option<Group>>;
    async fn session(&mut self, id: SessionId) -> StoreResult<Option<Session>>;
    async fn client(&mut self, id: &ClientId) -> StoreResult<Option<AppClient>>;
    /// The user's remembered consent to this client, if any.
    async fn consent(&mut self, user: UserId, client: &ClientId) -> StoreResult<Option<Consent>>;
    /// The pool's signing keys, oldest first. Locks the pool row, so that two rotations run
    /// one after the other.
    async fn signing_keys(&mut self) -> StoreResult<Vec<SigningKeyRecord>>;

    // Writes.

    async fn update_pool_settings(&mut self, settings: &PoolSettings) -> StoreResult<()>;
    /// Writes every mutable field of the user. Only for a user read in this transaction:
    /// what it writes back is then the latest state plus this operation's change.
    async fn update_user(&mut self, user: &User) -> StoreResult<()>;
    /// Deletes the user with its memberships, links, sessions and codes.
    async fn delete_user(&mut self, id: UserId) -> StoreResult<()>;
    async fn update_group(&mut self, group: &Group) -> StoreResult<()>;
    async fn delete_group(&mut self, name: &GroupName) -> StoreResult<()>;
    /// Sets the user's memberships to exactly these groups; an unknown group is `NotFound`.
    async fn set_user_groups(&mut self, user: UserId, groups: &[GroupName]) -> StoreResult<()>;
    /// Writes what of a client may change after its creation (today, its sign-in flows).
    /// Only for a client read in this transaction; an unknown client is `NotFound`.
    async fn update_client(&mut self, client: &AppClient) -> StoreResult<()>;
    async fn delete_client(&mut self, id: &ClientId) -> StoreResult<()>;
    /// Stores a consent, replacing the user's consent to that client if there is one.
    async fn put_consent(&mut self, consent: &Consent) -> StoreResult<()>;
    /// Forgets the user's consent to this client; whether there was one.
    async fn delete_consent(&mut self, user: UserId, client: &ClientId) -> StoreResult<bool>;
    /// Stores a new authorization code.
    async fn put_authorization_code(&mut self, code: &AuthorizationCode) -> StoreResult<()>;
    /// Marks the code with this SHA-256 used at `at`, by one atomic compare-and-set, and
    /// returns it; a code used before answers what its first exchange started.
    async fn take_authorization_code(
        &mut self,
        code_sha256: &[u8; 32],
        at: Timestamp,
    ) -> StoreResult<CodeTaken>;
    /// Records the session a code's exchange started, for a replay to end.
    async fn set_code_issued_session(
        &mut self,
        code_sha256: &[u8; 32],
        session: SessionId,
    ) -> StoreResult<()>;
    async fn put_refresh_token(&mut self, token: &RefreshToken) -> StoreResult<()>;
    /// Marks the refresh token with this SHA-256 used at `at`, by one atomic compare-and-set.
    async fn take_refresh_token(
        &mut self,
        token_sha256: &[u8; 32],
        at: Timestamp,
    ) -> StoreResult<RefreshTaken>;
    /// Replaces the pool's signing keys with exactly `keys`.
    async fn replace_signing_keys(&mut self, keys: &[SigningKeyRecord]) -> StoreResult<()>;
    /// Counts one code sent under `key` (a user's attribute, or a destination address) in a
    /// window of `window_secs` that opens with its first code. `Err(reopens)` when that makes
    /// more than `max` in the window: nothing may be sent until the window reopens.
    async fn count_code_sent(
        &mut self,
        key: &str,
        now: Timestamp,
        window_secs: i64,
        max: u32,
    ) -> StoreResult<Result<(), Timestamp>>;
    /// Forgets the failed sign-ins of `username` (an administrator enabling the user).
    async fn clear_sign_in_failures(&mut self, username: &Username) -> StoreResult<bool>;
    /// Creates a user; a username taken is `Conflict`.
    async fn create_user(&mut self, user: &User) -> StoreResult<()>;
    async fn link_identity(&mut self, link: &FederatedIdentity) -> StoreResult<()>;
    /// The upstream identities linked to a user.
    async fn identities_of_user(&mut self, user: UserId) -> StoreResult<Vec<FederatedIdentity>>;

    // Hooks (`crate::hooks`).

    /// Sets the pool's hook for its trigger, replacing the one there was.
    async fn put_hook(&mut self, hook: &crate::hooks::Hook) -> StoreResult<()>;
    /// Removes the pool's hook for `trigger`; `false` when there was none.
    async fn delete_hook(&mut self, trigger: crate::hooks::Trigger) -> StoreResult<bool>;

    // Identity providers (`crate::federation`).

    /// A provider of the pool, locked until the commit.
    async fn identity_provider(
        &mut self,
        name: &crate::federation::ProviderName,
    ) -> StoreResult<Option<crate::federation::IdentityProvider>>;
    /// What the users linked to a provider may do together: the roles of those users and
    /// of their groups. Whoever changes whom a provider trusts acts for all of them.
    async fn standing_of_linked_users(
        &mut self,
        name: &crate::federation::ProviderName,
    ) -> StoreResult<crate::permission::PermissionSet>;
    /// Creates a provider; a name taken is `Conflict`.
    async fn create_identity_provider(
        &mut self,
        idp: &crate::federation::IdentityProvider,
    ) -> StoreResult<()>;
    /// Replaces a provider's settings (name and pool unchanged); `NotFound` if it went.
    async fn update_identity_provider(
        &mut self,
        idp: &crate::federation::IdentityProvider,
    ) -> StoreResult<()>;
    /// Deletes a provider and the links to it; `false` when there was none.
    async fn delete_identity_provider(
        &mut self,
        name: &crate::federation::ProviderName,
    ) -> StoreResult<bool>;
    /// Records that a provider's sign-in started a browser session (created before, in this
    /// transaction).
    async fn put_federated_session(
        &mut self,
        session: &crate::federation::FederatedSession,
    ) -> StoreResult<()>;
    /// The browser sessions a provider's sign-ins of `subject` started, oldest first (ended
    /// ones too: the caller ends what is still active).
    async fn federated_sessions_of(
        &mut self,
        provider: &crate::federation::ProviderName,
        subject: &str,
    ) -> StoreResult<Vec<crate::federation::FederatedSession>>;
    /// Stores a verification code, replacing the user's previous one for that attribute.
    async fn put_verification_code(&mut self, code: &VerificationCode) -> StoreResult<()>;
    /// Removes and returns the user's code for that attribute: a code is taken once.
    async fn take_verification_code(
        &mut self,
        user: UserId,
        attribute: VerifiableAttribute,
    ) -> StoreResult<Option<VerificationCode>>;
    /// The user's software token, confirmed or pending.
    async fn totp_credential(
        &mut self,
        user: UserId,
    ) -> StoreResult<Option<crate::mfa::TotpCredential>>;
    /// Stores a pending software token, replacing the user's previous one.
    async fn put_totp_credential(
        &mut self,
        credential: &crate::mfa::TotpCredential,
    ) -> StoreResult<()>;
    /// Records that a code of step `step` was accepted, and confirms the token at `confirm`
    /// when given: one atomic compare-and-set that passes only if no code of this step or a
    /// later one was accepted before. False if it did not pass (a replay, or no token).
    async fn accept_totp_step(
        &mut self,
        user: UserId,
        step: i64,
        confirm: Option<Timestamp>,
    ) -> StoreResult<bool>;
    /// Replaces the user's recovery codes with these SHA-256 digests (hex).
    async fn replace_recovery_codes(&mut self, user: UserId, digests: &[String])
    -> StoreResult<()>;
    /// Takes one recovery code by its digest: true the first time, false ever after.
    async fn take_recovery_code(&mut self, user: UserId, digest: &str) -> StoreResult<bool>;
    /// Removes the user's software token, recovery codes and passkeys; true if there was any.
    async fn remove_mfa_factors(&mut self, user: UserId) -> StoreResult<bool>;
    /// The user's passkeys, oldest first.
    async fn passkeys_of_user(
        &mut self,
        user: UserId,
    ) -> StoreResult<Vec<crate::passkey::PasskeyCredential>>;
    /// The passkey with this credential id, whoever's it is.
    async fn passkey(
        &mut self,
        credential_id: &str,
    ) -> StoreResult<Option<crate::passkey::PasskeyCredential>>;
    /// Stores a new passkey; a credential id already registered in the pool is a conflict.
    async fn add_passkey(&mut self, passkey: &crate::passkey::PasskeyCredential)
    -> StoreResult<()>;
    /// Records a good assertion: one compare-and-set that passes only while the stored
    /// counter is still the one the assertion was checked against. False if it was not.
    async fn record_passkey_use(&mut self, used: &crate::passkey::PasskeyUse) -> StoreResult<bool>;
    /// Deletes one of the user's passkeys; true if it was there.
    async fn delete_passkey(&mut self, user: UserId, credential_id: &str) -> StoreResult<bool>;
    /// Stores a ceremony waiting for its answer.
    async fn put_ceremony(&mut self, ceremony: &crate::passkey::Ceremony) -> StoreResult<()>;
    /// Takes (deletes and returns) the ceremony under `handle_sha256` if it has not expired
    /// at `now`: at most one caller ever gets it.
    async fn take_ceremony(
        &mut self,
        handle_sha256: &[u8; 32],
        now: Timestamp,
    ) -> StoreResult<Option<crate::passkey::Ceremony>>;
    async fn create_session(&mut self, session: &Session) -> StoreResult<()>;
    /// Ends the active sessions `which` names at `at`, and returns those it ended.
    async fn end_sessions(
        &mut self,
        which: &SessionsToEnd,
        at: Timestamp,
    ) -> StoreResult<Vec<Session>>;
    /// Marks a single-use value (a challenge, a code) used at `at`, remembered until
    /// `expires_at`. True the first time it is presented, false ever after: one atomic
    /// compare-and-set.
    async fn use_once(
        &mut self,
        id: &str,
        at: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<bool>;
    /// Revokes one access token by `jti`; revoking it twice is not an error.
    async fn revoke_token(&mut self, token: &RevokedToken) -> StoreResult<()>;

    /// Appends security events to the pool's log, numbered in commit order; returns their
    /// numbers.
    async fn append_security_events(
        &mut self,
        events: &[crate::security_event::SecurityEvent],
    ) -> StoreResult<Vec<i64>>;
    // Back-channel logout (`crate::backchannel`).

    /// How far the pool's event log has been read for logout tokens (0 at first), locking
    /// that place until the commit, so one transaction at a time plans each event.
    async fn backchannel_cursor(&mut self) -> StoreResult<i64>;
    /// Moves that place on to `seq`.
    async fn set_backchannel_cursor(&mut self, seq: i64) -> StoreResult<()>;
    /// Up to `limit` security events of the pool committed after `after`, in commit order.
    async fn security_events_after(
        &mut self,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<crate::security_event::StoredSecurityEvent>>;
    /// Records planned deliveries.
    async fn put_backchannel_deliveries(
        &mut self,
        deliveries: &[crate::backchannel::Delivery],
    ) -> StoreResult<()>;
    /// Claims up to `limit` open deliveries due at `now` that no other claim holds (PostgreSQL
    /// skips rows another transaction has locked), leasing them to `lease_id` until
    /// `lease_until`. Returns them.
    async fn claim_backchannel_deliveries(
        &mut self,
        now: Timestamp,
        lease_id: &str,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<crate::backchannel::Delivery>>;
    /// Records an attempt's outcome on a delivery still leased to `lease_id`, and releases
    /// the lease. False when the lease was lost (it expired and another instance took it).
    async fn finish_backchannel_delivery(
        &mut self,
        delivery: &crate::backchannel::Delivery,
        lease_id: &str,
    ) -> StoreResult<bool>;

    /// Appends an audit event. An event of another pool is allowed only for what
    /// [`SessionsToEnd::ActedBy`] ended there.
    async fn audit(&mut self, event: &AuditEvent) -> StoreResult<()>;
    /// Commits everything written; nothing of it is visible before.
    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

/// What an impersonation's rules judge, read in the transaction that starts its session.
#[derive(Debug, Clone)]
pub struct ImpersonationFacts {
    pub target: User,
    pub groups: Vec<Group>,
    /// Whether the caller whose standing was asked for ([`Standing`]) still stands: a user
    /// that exists and is enabled, or a client that exists. `true` when none was asked for.
    pub caller_stands: bool,
}

/// Whose standing an impersonation reads alongside its target: its caller's, when the caller
/// belongs to the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    NotAsked,
    User(UserId),
    Client(ClientId),
}

/// Why the rules refused; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Forbidden(String),
    /// The caller no longer exists or is disabled.
    CallerGone(String),
}

/// The rules of an impersonation: given the facts, the session to start with its audit event,
/// or a refusal. They run inside the transaction, on whatever thread the store runs it, and
/// may run again on facts read afresh if the store has to retry the transaction.
pub type ImpersonationRules =
    Box<dyn Fn(&ImpersonationFacts) -> Result<(Session, AuditEvent), Refusal> + Send>;

/// How an impersonation's one store call ended.
#[derive(Debug, Clone)]
pub enum ImpersonationOutcome {
    /// The session and its audit event are committed.
    Started(Box<(ImpersonationFacts, Session)>),
    NoSuchUser,
    Refused(Refusal),
}
