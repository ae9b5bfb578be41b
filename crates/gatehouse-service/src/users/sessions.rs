//! A user's sessions, and global sign-out.

use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::Username;
use gatehouse_domain::permission::Permission;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::session::{Session, SessionKind};
use gatehouse_domain::store::{SessionFilter, StoreError};
use gatehouse_domain::user::User;

use super::user_write_error;
use crate::audit::EventExt;
use crate::error::ServiceResult;
use crate::{Gatehouse, Principal, RequestMeta};

impl Gatehouse {
    /// The user's active sessions (sign-ins and impersonations), oldest first.
    pub async fn user_sessions(
        &self,
        pool: &Pool,
        principal: &Principal,
        username: &Username,
    ) -> ServiceResult<Vec<Session>> {
        principal.require(Permission::RetrieveUserSessions)?;
        let user = self.user_named(pool, username).await?;
        Ok(self
            .store
            .list_sessions(pool.id, SessionFilter::ActiveOfUser(user.id, self.now()))
            .await?)
    }

    /// Global sign-out: every token issued to the user until now stops working at once (the
    /// user's "not before" time, which bearer authentication, introspection and the
    /// revocation feed check), and each active session is then marked revoked, with its own
    /// audit event. Returns how many sessions were revoked.
    pub async fn sign_out_user(
        &self,
        pool: &Pool,
        principal: &Principal,
        username: &Username,
        meta: &RequestMeta,
    ) -> ServiceResult<usize> {
        principal.require(Permission::SignOutUser)?;
        let mut user = self.user_named(pool, username).await?;
        let now = self.now();
        let sessions = self
            .store
            .list_sessions(pool.id, SessionFilter::ActiveOfUser(user.id, now))
            .await?;
        user.tokens_not_before = Some(now);
        user.updated_at = now;
        let event = self
            .event(pool, AuditAction::UserSignedOut, Some(principal), meta)
            .subject(&user.username)
            .detail("sessions", sessions.len());
        self.store
            .update_user(&user, &event)
            .await
            .map_err(user_write_error)?;

        self.revoke_user_sessions(pool, principal, &user, sessions, meta, "sign-out")
            .await
    }

    /// Marks each of the user's active sessions revoked, each with its own audit event, and
    /// returns how many were. Every user token carries its session, so this ends them all,
    /// also those issued within the same second as the user's "not before" time.
    pub(crate) async fn revoke_user_sessions(
        &self,
        pool: &Pool,
        principal: &Principal,
        user: &User,
        sessions: Vec<Session>,
        meta: &RequestMeta,
        via: &str,
    ) -> ServiceResult<usize> {
        let now = self.now();
        let mut revoked = 0;
        for session in &sessions {
            let event = match &session.kind {
                SessionKind::SignIn => self
                    .event(pool, AuditAction::SessionRevoked, Some(principal), meta)
                    .detail("session_id", session.id),
                SessionKind::Impersonation { actor, .. } => self
                    .event(pool, AuditAction::ImpersonationEnded, Some(principal), meta)
                    .detail("impersonation_id", session.id)
                    .detail("impersonator", actor.display_name()),
            }
            .subject(&user.username)
            .detail("via", via);
            match self
                .store
                .revoke_session(pool.id, session.id, now, &event)
                .await
            {
                Ok(()) => revoked += 1,
                // Revoked or ended meanwhile.
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(revoked)
    }
}
