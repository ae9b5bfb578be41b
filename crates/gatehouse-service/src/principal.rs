//! Who is asking: a user (of this pool, or of the staff pool) or an app client, as proven by a
//! bearer token, with the permissions it holds in the pool it calls.

use gatehouse_domain::ids::{ClientId, PoolSlug, SessionId, UserId, Username};
use gatehouse_domain::permission::{Permission, PermissionSet};
use gatehouse_domain::session::{Actor, ActorKind};

use crate::error::ServiceError;
use crate::tokens::ActClaim;

#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: Subject,
    /// The pool the principal belongs to: the called pool, or `staff`.
    pub home_pool: PoolSlug,
    pub permissions: PermissionSet,
    pub token: TokenFacts,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User {
        id: UserId,
        username: Username,
    },
    Client {
        client_id: ClientId,
    },
    /// Whoever runs the command line on the database: it holds every permission and
    /// dominates every user. No token ever yields this subject; only
    /// [`Operator::in_pool`] makes it.
    Operator {
        name: String,
    },
}

/// Whoever runs the command line on the database (the account that ran the command). The
/// operator holds every permission in every pool and dominates every user; only the command
/// line makes one, never a token.
#[derive(Debug, Clone)]
pub struct Operator {
    name: String,
}

impl Operator {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
        }
    }

    /// The operator acting in `pool`, as a principal for the service's checks.
    pub fn in_pool(&self, pool: &PoolSlug) -> Principal {
        Principal {
            subject: Subject::Operator {
                name: self.name.clone(),
            },
            home_pool: pool.clone(),
            permissions: PermissionSet::from_permissions(Permission::ALL.iter().copied()),
            token: TokenFacts {
                jti: String::new(),
                sid: None,
                client_id: None,
                act: None,
                expires_at: i64::MAX,
                scope: None,
            },
        }
    }
}

/// Facts read from the verified token.
#[derive(Debug, Clone)]
pub struct TokenFacts {
    pub jti: String,
    pub sid: Option<SessionId>,
    pub client_id: Option<ClientId>,
    /// Present when the token is an impersonation: who really acts.
    pub act: Option<ActClaim>,
    pub expires_at: i64,
    /// The token's `scope` claim: the scopes granted, space-separated.
    pub scope: Option<String>,
}

/// Facts about the request, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
}

impl Principal {
    pub fn is_impersonated(&self) -> bool {
        self.token.act.is_some()
    }

    pub fn user_id(&self) -> Option<UserId> {
        match &self.subject {
            Subject::User { id, .. } => Some(*id),
            Subject::Client { .. } | Subject::Operator { .. } => None,
        }
    }

    pub fn holds(&self, p: Permission) -> bool {
        self.permissions.contains(p)
    }

    /// The check every admin operation opens with. Impersonated tokens are refused by the
    /// whole admin API, whatever the impersonated user may do.
    pub fn require(&self, p: Permission) -> Result<(), ServiceError> {
        if self.is_impersonated() {
            return Err(ServiceError::Forbidden(
                "impersonated tokens cannot use the admin API".to_owned(),
            ));
        }
        if self.holds(p) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "requires the {p} permission"
            )))
        }
    }

    /// The dominance rule (SPEC §9): acting on an existing user or group needs every
    /// permission it holds, self-service aside, for removals as for additions. `what` names
    /// the target in the refusal.
    pub fn ensure_dominates(&self, target: &PermissionSet, what: &str) -> Result<(), ServiceError> {
        let lacking = self.permissions.lacks_of(target);
        if lacking.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = lacking.iter().map(|p| p.as_str()).collect();
        Err(ServiceError::Forbidden(format!(
            "{what} holds permissions the caller does not: {}",
            names.join(", ")
        )))
    }

    /// The principal as the audit log names it.
    pub fn actor(&self) -> Actor {
        match &self.subject {
            Subject::User { id, username } => Actor {
                kind: ActorKind::User,
                id: id.to_string(),
                username: Some(username.to_string()),
                pool: self.home_pool.clone(),
                client_id: self.token.client_id.clone(),
            },
            Subject::Client { client_id } => Actor {
                kind: ActorKind::Client,
                id: client_id.to_string(),
                username: None,
                pool: self.home_pool.clone(),
                client_id: Some(client_id.clone()),
            },
            Subject::Operator { name } => Actor {
                kind: ActorKind::Operator,
                id: name.clone(),
                username: None,
                pool: self.home_pool.clone(),
                client_id: None,
            },
        }
    }

    /// The real actor behind an impersonated token.
    pub fn impersonator(&self) -> Option<Actor> {
        self.token.act.as_ref().map(ActClaim::to_actor)
    }
}
