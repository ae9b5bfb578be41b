//! Impersonation: one path for the seed's endpoint, `POST /api/auth/impersonate` and RFC 8693
//! token exchange. Every rule is checked here, every refusal is audited, and the session and
//! its audit event commit together before any token exists.

use gatehouse_domain::ParseError;
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::{ClientId, SessionId, Username};
use gatehouse_domain::permission::Permission;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::session::{Session, SessionKind};
use gatehouse_domain::store::SessionFilter;
use gatehouse_domain::txn::{
    ImpersonationFacts, ImpersonationOutcome, ImpersonationRules, Refusal, SessionsToEnd, Standing,
};

use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::principal::Subject;
use crate::tokens::{ActClaim, TokenSubject, is_privileged};
use crate::{Gatehouse, Principal, RequestMeta};

/// Default lifetime of an impersonated token, within the pool's maximum.
pub const DEFAULT_IMPERSONATION_TTL_SECS: u32 = 600;
pub const MAX_REASON_CHARS: usize = 1024;

#[derive(Debug, Clone, Default)]
pub struct ImpersonationRequest {
    pub reason: Option<String>,
    pub expires_in: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct ImpersonationGrant {
    pub token: gatehouse_crypto::secret::Secret,
    pub expires_in: u32,
    pub impersonation_id: SessionId,
    /// Display name of the caller (username or client id).
    pub impersonator: String,
    pub username: Username,
}

impl Gatehouse {
    pub async fn impersonate(
        &self,
        pool: &Pool,
        caller: &Principal,
        target: &Username,
        request: ImpersonationRequest,
        meta: &RequestMeta,
    ) -> ServiceResult<ImpersonationGrant> {
        self.impersonate_for(pool, caller, None, target, request, meta)
            .await
    }

    /// [`Self::impersonate`] on behalf of `client`, the client that authenticated at the token
    /// endpoint (token exchange): it becomes the `client_id` of the session, of the token and of
    /// the audit events, while the caller's own client stays in `act`. `None` keeps the
    /// caller's token's client.
    pub(crate) async fn impersonate_for(
        &self,
        pool: &Pool,
        caller: &Principal,
        client: Option<&ClientId>,
        target: &Username,
        request: ImpersonationRequest,
        meta: &RequestMeta,
    ) -> ServiceResult<ImpersonationGrant> {
        let client_id = client.or(caller.token.client_id.as_ref()).cloned();
        match self
            .check_and_start(pool, caller, client_id.clone(), target, request, meta)
            .await
        {
            Ok(grant) => Ok(grant),
            Err(err @ (ServiceError::Forbidden(_) | ServiceError::NotFound(_))) => {
                let reason = match &err {
                    ServiceError::Forbidden(m) => m.clone(),
                    _ => "no such user in this pool".to_owned(),
                };
                let mut denied = self
                    .event(pool, AuditAction::ImpersonationDenied, Some(caller), meta)
                    .subject(target)
                    .detail("reason", reason)
                    .denied();
                // A chained attempt names the token's impersonator too.
                denied.impersonator = caller.impersonator();
                denied.client_id = client_id;
                self.store.append_audit(&denied).await?;
                Err(err)
            }
            Err(e) => Err(e),
        }
    }

    async fn check_and_start(
        &self,
        pool: &Pool,
        caller: &Principal,
        client_id: Option<ClientId>,
        target: &Username,
        request: ImpersonationRequest,
        meta: &RequestMeta,
    ) -> ServiceResult<ImpersonationGrant> {
        if caller.is_impersonated() {
            return Err(ServiceError::Forbidden(
                "an impersonated token cannot impersonate".to_owned(),
            ));
        }
        caller.require(Permission::Impersonate)?;
        let reason = match request.reason.map(|r| r.trim().to_owned()) {
            Some(r) if r.chars().count() > MAX_REASON_CHARS || r.chars().any(char::is_control) => {
                return Err(ParseError::new(
                    "reason",
                    "must be at most 1024 characters without control characters",
                )
                .into());
            }
            Some(r) if r.is_empty() => None,
            other => other,
        };
        let max = pool.settings.max_impersonation_ttl_secs;
        let ttl = match request.expires_in {
            None => DEFAULT_IMPERSONATION_TTL_SECS.min(max),
            Some(n) if n < 1 => {
                return Err(
                    ParseError::new("expires_in", "must be a positive number of seconds").into(),
                );
            }
            Some(n) => u32::try_from(n).unwrap_or(u32::MAX).min(max),
        };
        // The target, its groups, and the caller's standing are read in the transaction that
        // creates the session: a target promoted, or a caller disabled or deleted, meanwhile
        // is seen here, and no session outlives a check that no longer holds. The store runs
        // the whole of it as one call (on SQLite, in one trip to the database thread).
        let actor = caller.actor();
        let now = self.now();
        let session_id = SessionId::new_ordered();
        let mut started = self
            .event(pool, AuditAction::ImpersonationStarted, Some(caller), meta)
            .subject(target)
            .detail("impersonation_id", session_id)
            .detail("expires_in", ttl);
        started.client_id = client_id.clone();
        if let Some(r) = &reason {
            started = started.detail("reason", r);
        }
        let in_pool = caller.home_pool == pool.slug;
        let standing = match &caller.subject {
            _ if !in_pool => Standing::NotAsked,
            Subject::User { id, .. } => Standing::User(*id),
            Subject::Client { client_id } => Standing::Client(client_id.clone()),
            Subject::Operator { .. } => Standing::NotAsked,
        };
        let self_id = match &caller.subject {
            Subject::User { id, .. } if in_pool => Some(*id),
            _ => None,
        };
        let may_impersonate_privileged = caller.holds(Permission::ImpersonatePrivileged);
        let (pool_id, session_actor, session_client) = (pool.id, actor.clone(), client_id.clone());
        let rules: ImpersonationRules = Box::new(move |facts: &ImpersonationFacts| {
            let user = &facts.target;
            if !user.enabled.is_enabled() {
                return Err(Refusal::Forbidden("the user is disabled".to_owned()));
            }
            if self_id == Some(user.id) {
                return Err(Refusal::Forbidden(
                    "a user cannot impersonate itself".to_owned(),
                ));
            }
            if is_privileged(user, &facts.groups) && !may_impersonate_privileged {
                return Err(Refusal::Forbidden(format!(
                    "impersonating a user who holds administrative permissions requires the {} \
                     permission",
                    Permission::ImpersonatePrivileged
                )));
            }
            if !facts.caller_stands {
                return Err(Refusal::CallerGone(
                    "the caller no longer exists or is disabled".to_owned(),
                ));
            }
            let session = Session {
                id: session_id,
                pool: pool_id,
                user_id: user.id,
                username: user.username.clone(),
                client_id: session_client.clone(),
                kind: SessionKind::Impersonation {
                    actor: session_actor.clone(),
                    reason: reason.clone(),
                },
                created_at: now,
                expires_at: now.plus_secs(i64::from(ttl)),
                revoked_at: None,
            };
            Ok((session, started.clone()))
        });
        let (facts, session) = match self
            .store
            .start_impersonation(pool.id, target, standing, rules)
            .await?
        {
            ImpersonationOutcome::Started(started) => *started,
            ImpersonationOutcome::NoSuchUser => return Err(ServiceError::NotFound("user")),
            ImpersonationOutcome::Refused(Refusal::Forbidden(m)) => {
                return Err(ServiceError::Forbidden(m));
            }
            ImpersonationOutcome::Refused(Refusal::CallerGone(m)) => {
                return Err(ServiceError::Unauthenticated(m));
            }
        };
        let ImpersonationFacts {
            target: user,
            groups,
            ..
        } = facts;

        let act = ActClaim {
            sub: actor.id.clone(),
            username: actor.username.clone(),
            pool: actor.pool.to_string(),
            client_id: actor.client_id.as_ref().map(ToString::to_string),
        };
        let groups: Vec<String> = groups.into_iter().map(|g| g.name.to_string()).collect();
        // The pool's pre-token hook shapes an impersonated token as it shapes the user's own
        // (downstream services read the same claims), never its `act` or impersonation
        // claims. If it fails, the impersonation it would have served ends at once.
        let overrides = match self
            .pre_token(
                pool,
                "TokenGeneration_Impersonation",
                crate::hooks::PreTokenSubject::User {
                    user: &user,
                    groups: &groups,
                },
                client_id.as_ref().map_or("", |c| c.as_str()),
                &[],
                meta,
            )
            .await
        {
            Ok(overrides) => overrides,
            Err(e) => {
                let ended = self
                    .event(pool, AuditAction::ImpersonationEnded, Some(caller), meta)
                    .subject(&user.username)
                    .detail("impersonation_id", session.id)
                    .detail("reason", "the pre-token hook failed");
                self.store
                    .revoke_session(pool.id, session.id, self.now(), &ended)
                    .await?;
                return Err(e);
            }
        };
        let issued = self
            .mint_access_token_with(
                pool,
                TokenSubject::User {
                    user: &user,
                    groups,
                    sid: session.id,
                    client_id,
                    act: Some(act),
                    scope: None,
                    staff: None,
                    linked: Vec::new(),
                },
                ttl,
                overrides,
            )
            .await?;
        Ok(ImpersonationGrant {
            token: issued.token,
            expires_in: ttl,
            impersonation_id: session.id,
            impersonator: actor.display_name().to_owned(),
            username: user.username,
        })
    }

    /// Active impersonations of the pool.
    pub async fn list_impersonations(
        &self,
        pool: &Pool,
        caller: &Principal,
    ) -> ServiceResult<Vec<Session>> {
        caller.require(Permission::RetrieveImpersonations)?;
        Ok(self
            .store
            .list_sessions(pool.id, SessionFilter::ActiveImpersonations(self.now()))
            .await?)
    }

    /// Ends an impersonation at once. Allowed to holders of `user:EndImpersonation` and to
    /// whoever started it.
    pub async fn end_impersonation(
        &self,
        pool: &Pool,
        caller: &Principal,
        id: SessionId,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        if caller.is_impersonated() {
            return Err(ServiceError::Forbidden(
                "impersonated tokens cannot use the admin API".to_owned(),
            ));
        }
        let mut w = self.store.write(pool.id).await?;
        let session = w
            .session(id)
            .await?
            .filter(|s| s.is_active_at(self.now()))
            .ok_or(ServiceError::NotFound("impersonation"))?;
        let SessionKind::Impersonation { actor, .. } = &session.kind else {
            return Err(ServiceError::NotFound("impersonation"));
        };
        let own = caller.actor();
        let started_it = actor.id == own.id && actor.pool == own.pool;
        if !started_it {
            caller.require(Permission::EndImpersonation)?;
        }
        let ended = self
            .event(pool, AuditAction::ImpersonationEnded, Some(caller), meta)
            .subject(&session.username)
            .detail("impersonation_id", id)
            .detail("impersonator", actor.display_name());
        self.end_sessions_and_tell(
            w.as_mut(),
            &SessionsToEnd::One(id),
            &crate::security_events::Cause::new(
                gatehouse_domain::security_event::InitiatingEntity::Admin,
                "impersonation ended",
            ),
        )
        .await?;
        w.audit(&ended).await?;
        w.commit().await?;
        Ok(())
    }
}
