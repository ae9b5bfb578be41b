//! The append-only audit log.

use std::collections::BTreeMap;

use crate::ids::{ClientId, EventId, PoolId};
use crate::session::Actor;
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: EventId,
    pub pool: PoolId,
    pub at: Timestamp,
    pub action: AuditAction,
    pub outcome: Outcome,
    pub actor: Option<Actor>,
    /// Whom or what the action was about: a username, a group name, a client id, a session id.
    pub subject: Option<String>,
    pub client_id: Option<ClientId>,
    pub ip: Option<String>,
    /// The real actor when the action was made with an impersonated token.
    pub impersonator: Option<Actor>,
    pub details: BTreeMap<String, String>,
}

/// An event as read back, with the position that orders the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAuditEvent {
    pub seq: i64,
    pub event: AuditEvent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Self::Success),
            "denied" => Some(Self::Denied),
            _ => None,
        }
    }
}

macro_rules! actions {
    ($($variant:ident => $name:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction { $($variant,)* }

        impl AuditAction {
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant,)*];
            pub fn as_str(self) -> &'static str {
                match self { $(AuditAction::$variant => $name,)* }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($name => Some(AuditAction::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

actions! {
    PoolCreated => "pool.created",
    PoolSettingsUpdated => "pool.settings_updated",
    PoolHostsChanged => "pool.hosts_changed",
    PoolDeleted => "pool.deleted",
    SigningKeyRotated => "pool.signing_key_rotated",
    SigningKeyCreated => "pool.signing_key_created",
    UserSignedIn => "user.signed_in",
    UserSignInFailed => "user.sign_in_failed",
    UserLockedOut => "user.locked_out",
    UserCreated => "user.created",
    UserUpdated => "user.updated",
    UserDeleted => "user.deleted",
    UserEnabled => "user.enabled",
    UserDisabled => "user.disabled",
    UserPasswordReset => "user.password_reset",
    UserMfaDisabled => "user.mfa_disabled",
    UserMfaEnrolled => "user.mfa_enrolled",
    MfaRecoveryCodeUsed => "mfa.recovery_code_used",
    HookSet => "hook.set",
    HookDeleted => "hook.deleted",
    HookFailed => "hook.failed",
    HookClaimRefused => "hook.claim_refused",
    UserPasskeyRegistered => "user.passkey_registered",
    UserPasskeyUsed => "user.passkey_used",
    UserPasskeyRefused => "user.passkey_refused",
    UserPasskeySignCountRegressed => "user.passkey_sign_count_regressed",
    UserPasskeyDeleted => "user.passkey_deleted",
    UserLinkedToProvider => "user.linked_to_provider",
    UserGroupsUpdated => "user.groups_updated",
    UserAttributeVerified => "user.attribute_verified",
    UserSignedOut => "user.signed_out",
    GroupCreated => "group.created",
    GroupUpdated => "group.updated",
    GroupDeleted => "group.deleted",
    AppClientCreated => "app_client.created",
    AppClientUpdated => "app_client.updated",
    AppClientDeleted => "app_client.deleted",
    ConsentGranted => "consent.granted",
    ConsentRevoked => "consent.revoked",
    TokenIssued => "token.issued",
    TokenRevoked => "token.revoked",
    SessionRevoked => "session.revoked",
    ImpersonationStarted => "impersonation.started",
    ImpersonationEnded => "impersonation.ended",
    ImpersonationDenied => "impersonation.denied",
    IdentityProviderCreated => "identity_provider.created",
    IdentityProviderUpdated => "identity_provider.updated",
    IdentityProviderDeleted => "identity_provider.deleted",
    FederatedSignInRefused => "user.federated_sign_in_refused",
    FederatedLogoutRefused => "user.federated_logout_refused",
}

/// Filters for reading the log; events come oldest first after `after_seq`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub action: Option<AuditAction>,
    pub actor_id: Option<String>,
    pub subject: Option<String>,
    pub impersonator_id: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub after_seq: Option<i64>,
    pub limit: u32,
}
