//! Sessions (a sign-in, a browser's single sign-on, an application's authorization, an
//! impersonation) and the revocation of tokens.

use crate::ids::{ClientId, PoolId, PoolSlug, SessionId, UserId, Username};
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub pool: PoolId,
    pub user_id: UserId,
    pub username: Username,
    pub client_id: Option<ClientId>,
    pub kind: SessionKind,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionKind {
    /// A sign-in through the API: its tokens name it.
    SignIn,
    /// A browser's single sign-on in the pool, held by a cookie whose secret is stored only as
    /// its SHA-256. It issues no token itself; the authorizations started in it do.
    Browser {
        secret_sha256: [u8; 32],
        /// The staff member who signed in with the staff account (section 7 of the spec):
        /// who really acts behind the pool's user linked to them. The session ends when
        /// the pool turns staff access off, or the staff member is disabled or deleted.
        staff: Option<Actor>,
    },
    /// An application's authorization (a code exchanged), started in a browser session: its
    /// access tokens name it, and its refresh tokens are its family. Ending the browser
    /// session ends it too.
    Authorized {
        browser: SessionId,
        /// The browser session's staff member, if any.
        staff: Option<Actor>,
    },
    /// An impersonation: who really acts, and why.
    Impersonation {
        actor: Actor,
        reason: Option<String>,
    },
}

impl Session {
    pub fn is_active_at(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }

    /// The staff member acting in this session through a staff sign-in, if any.
    pub fn staff(&self) -> Option<&Actor> {
        match &self.kind {
            SessionKind::Browser { staff, .. } | SessionKind::Authorized { staff, .. } => {
                staff.as_ref()
            }
            SessionKind::SignIn | SessionKind::Impersonation { .. } => None,
        }
    }

    /// The kind's name as the API and the store spell it.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            SessionKind::SignIn => "sign_in",
            SessionKind::Browser { .. } => "browser",
            SessionKind::Authorized { .. } => "authorized",
            SessionKind::Impersonation { .. } => "impersonation",
        }
    }
}

/// Who performed an action: a user (possibly of the staff pool), an app client, or Gatehouse.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    /// The user id or client id.
    pub id: String,
    /// The username, for users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The pool the actor belongs to (the staff pool for staff).
    pub pool: PoolSlug,
    /// The client through which a user acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<ClientId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    User,
    Client,
    System,
    /// Whoever ran the command line on the database.
    Operator,
}

impl Actor {
    /// A readable name: the username of a user, the id of a client.
    pub fn display_name(&self) -> &str {
        self.username.as_deref().unwrap_or(&self.id)
    }
}

/// One revoked access token (RFC 7009), kept until it would have expired anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedToken {
    pub pool: PoolId,
    pub jti: String,
    pub expires_at: Timestamp,
    pub revoked_at: Timestamp,
}

/// A revoked (or used) id as validators read it: `seq` is the pool's commit order of
/// revocations, so a reader that has seen up to N asks only for what is newer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub seq: i64,
    pub jti: String,
    pub expires_at: Timestamp,
}
