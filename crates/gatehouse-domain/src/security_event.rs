//! Security events: what a revocation tells everyone who verifies a pool's tokens, in the
//! vocabulary of the OpenID Shared Signals standards (SSF 1.0, CAEP 1.0, RISC 1.0).
//!
//! Every revocation appends its events to the pool's event log in the transaction that makes
//! it, so an event exists exactly when its cause committed. The log's `seq` is the order of
//! commits (writers of a pool take their number under a lock held to their commit), which
//! makes it a cursor a reader can follow without ever skipping an event, and the outbox every
//! transport (SSF streams, back-channel logout, the fleet feed) delivers from. The event is
//! stored as facts; it becomes a signed Security Event Token (RFC 8417) when delivered.

use crate::ids::{PoolId, SessionId, UserId};
use crate::time::Timestamp;

/// The CAEP event types' URI prefix.
pub const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/";
/// The RISC event types' URI prefix.
pub const RISC: &str = "https://schemas.openid.net/secevent/risc/event-type/";
/// Gatehouse's own event types (no final standard revokes a single token).
pub const GATEHOUSE: &str = "urn:gatehouse:secevent:event-type:";

/// What happened, with the claims its event type defines.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// CAEP `session-revoked`: the sessions the subject matches are over.
    SessionRevoked {
        initiating_entity: InitiatingEntity,
        /// Why, for administrators (the CAEP interoperability profile requires it).
        reason_admin: String,
    },
    /// CAEP `credential-change`.
    CredentialChange {
        credential_type: CredentialType,
        change_type: ChangeType,
    },
    /// CAEP `token-claims-change`: the claims the subject's tokens would now carry. For a
    /// user, its roles and groups; for a group, the group's roles (none once it is deleted),
    /// which every token naming the group carried.
    TokenClaimsChange {
        roles: Vec<String>,
        groups: Vec<String>,
    },
    /// RISC `account-disabled`.
    AccountDisabled,
    /// RISC `account-enabled`.
    AccountEnabled,
    /// RISC `account-purged`.
    AccountPurged,
    /// One token revoked that belongs to no session (a client's).
    TokenRevoked { reason_admin: String },
}

impl EventKind {
    /// The event type's URI, the key of the SET's `events` claim.
    pub fn uri(&self) -> String {
        let (prefix, name) = match self {
            EventKind::SessionRevoked { .. } => (CAEP, "session-revoked"),
            EventKind::CredentialChange { .. } => (CAEP, "credential-change"),
            EventKind::TokenClaimsChange { .. } => (CAEP, "token-claims-change"),
            EventKind::AccountDisabled => (RISC, "account-disabled"),
            EventKind::AccountEnabled => (RISC, "account-enabled"),
            EventKind::AccountPurged => (RISC, "account-purged"),
            EventKind::TokenRevoked { .. } => (GATEHOUSE, "token-revoked"),
        };
        format!("{prefix}{name}")
    }
}

/// Who started a session's revocation (CAEP §3.1 `initiating_entity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitiatingEntity {
    Admin,
    User,
    Policy,
    System,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialType {
    Password,
    App,
    Fido2Platform,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeType {
    Create,
    Revoke,
    Update,
    Delete,
}

/// Whom an event is about (RFC 9493 subject identifiers, as the pool's issuer names them).
/// A complex subject matches every session derived from what it names: a user alone means
/// all of that user's sessions up to the event's time; the pool alone, every session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum EventSubject {
    /// One session of a user.
    Session { session: SessionId, user: UserId },
    /// Every session of a user.
    User { user: UserId },
    /// Every token naming a group of the pool in its `groups`.
    Group { name: String },
    /// Every session in the pool.
    Pool,
    /// One token, by its `jti`.
    Token { jti: String },
}

/// One event, as the transaction that causes it appends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    pub pool: PoolId,
    /// The SET's `jti`: unique in the pool.
    pub id: String,
    /// The SET's `txn`: shared by the events of one cause (a password reset's
    /// `credential-change` and `session-revoked`).
    pub txn: String,
    pub kind: EventKind,
    pub subject: EventSubject,
    /// When it took effect (CAEP `event_timestamp`): tokens of the subject issued up to this
    /// instant are affected.
    pub at: Timestamp,
}

/// An event as read back, with its place in the pool's commit order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecurityEvent {
    pub seq: i64,
    pub event: SecurityEvent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_named_by_their_standards() {
        assert_eq!(
            EventKind::SessionRevoked {
                initiating_entity: InitiatingEntity::Admin,
                reason_admin: "x".into()
            }
            .uri(),
            "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
        );
        assert_eq!(
            EventKind::AccountPurged.uri(),
            "https://schemas.openid.net/secevent/risc/event-type/account-purged"
        );
        assert_eq!(
            EventKind::TokenRevoked {
                reason_admin: "x".into()
            }
            .uri(),
            "urn:gatehouse:secevent:event-type:token-revoked"
        );
    }
}
