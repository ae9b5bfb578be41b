//! A user's sessions, and global sign-out.

use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::Username;
use gatehouse_domain::permission::Permission;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::security_event::{EventKind, EventSubject, InitiatingEntity};
use gatehouse_domain::session::{Session, SessionKind};
use gatehouse_domain::store::SessionFilter;
use gatehouse_domain::txn::{PoolWrite, SessionsToEnd};

use super::user_write_error;
use crate::audit::EventExt;
use crate::error::ServiceResult;
use crate::security_events::Cause;
use crate::{Gatehouse, Principal, RequestMeta};

impl Gatehouse {
    /// The active sessions (sign-ins, browsers, authorizations, impersonations) of a user the
    /// caller dominates, oldest first.
    pub async fn user_sessions(
        &self,
        pool: &Pool,
        principal: &Principal,
        username: &Username,
    ) -> ServiceResult<Vec<Session>> {
        principal.require(Permission::RetrieveUserSessions)?;
        let user = self.user_named(pool, username).await?;
        // Where and how a user is signed in is the business of those who could act on the
        // user: the caller must dominate it, as for signing it out.
        let groups = self.store.groups_of_user(pool.id, user.id).await?;
        principal.ensure_dominates(
            &gatehouse_domain::user::permissions_of(&user, &groups),
            "the user",
        )?;
        Ok(self
            .store
            .list_sessions(pool.id, SessionFilter::ActiveOfUser(user.id, self.now()))
            .await?)
    }

    /// Global sign-out of a user the caller dominates: every token issued to the user until
    /// now, and every impersonation it started, stops working at once (the user's "not before" time, which bearer authentication,
    /// introspection and the revocation feed check), and each active session is marked
    /// ended, with its own audit event, in the same transaction. Returns how many sessions
    /// ended.
    pub async fn sign_out_user(
        &self,
        pool: &Pool,
        principal: &Principal,
        username: &Username,
        meta: &RequestMeta,
    ) -> ServiceResult<usize> {
        principal.require(Permission::SignOutUser)?;
        let mut w = self.store.write(pool.id).await?;
        let mut user = self.target_in(w.as_mut(), principal, username).await?;
        let now = self.now();
        user.tokens_not_before = Some(now);
        user.updated_at = now;
        w.update_user(&user).await.map_err(user_write_error)?;
        let ended = self
            .end_authority_of(
                w.as_mut(),
                pool,
                principal,
                &user,
                meta,
                &Cause::new(InitiatingEntity::Admin, "sign-out"),
            )
            .await?;
        let event = self
            .event(pool, AuditAction::UserSignedOut, Some(principal), meta)
            .subject(&user.username)
            .detail("sessions", ended);
        w.audit(&event).await?;
        w.commit().await?;
        Ok(ended)
    }

    /// Ends, inside `w`, the active sessions `which` names, each with its audit event
    /// (`session.revoked` for a sign-in, `impersonation.ended` for an impersonation) written
    /// to the session's own pool, and returns how many ended. Every user token carries its
    /// session, so this ends them all, also those issued within the same second as the user's
    /// "not before" time.
    pub(crate) async fn end_sessions_in(
        &self,
        w: &mut dyn PoolWrite,
        pool: &Pool,
        principal: &Principal,
        which: &SessionsToEnd,
        meta: &RequestMeta,
        cause: &Cause<'_>,
    ) -> ServiceResult<usize> {
        let via = cause.reason;
        if let SessionsToEnd::OfUser(user) = which {
            // Every session of the user up to now, also for verifiers that never saw one of
            // them: a not-before for the user. It comes first, so that a verifier refuses the
            // user's tokens at once, not after one event per session (a user may have
            // thousands).
            let all = self.security_event(
                pool.id,
                &cause.txn,
                EventKind::SessionRevoked {
                    initiating_entity: cause.initiating_entity,
                    reason_admin: via.to_owned(),
                },
                EventSubject::User { user: *user },
            );
            w.append_security_events(std::slice::from_ref(&all)).await?;
        }
        let ended = self.end_sessions_and_tell(w, which, cause).await?;
        for session in &ended {
            let mut event = match &session.kind {
                SessionKind::SignIn
                | SessionKind::Browser { .. }
                | SessionKind::Authorized { .. } => self
                    .event(pool, AuditAction::SessionRevoked, Some(principal), meta)
                    .detail("session_id", session.id)
                    .detail("kind", session.kind_name()),
                SessionKind::Impersonation { actor, .. } => self
                    .event(pool, AuditAction::ImpersonationEnded, Some(principal), meta)
                    .detail("impersonation_id", session.id)
                    .detail("impersonator", actor.display_name()),
            }
            .subject(&session.username)
            .detail("via", via);
            // An actor's impersonations may lie in other pools: each event goes to its
            // session's pool.
            event.pool = session.pool;
            w.audit(&event).await?;
        }
        Ok(ended.len())
    }
}
