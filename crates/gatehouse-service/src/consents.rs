//! Consents users gave third-party app clients: listed and revoked through the admin API.
//! Giving one is a step of the hosted sign-in (`grants::authorization_code::issue_code`).

use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::consent::Consent;
use gatehouse_domain::ids::{ClientId, Username};
use gatehouse_domain::permission::Permission;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::txn::SessionsToEnd;
use gatehouse_domain::user::permissions_of;

use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::{Gatehouse, Principal, RequestMeta};

impl Gatehouse {
    /// The consents of a user the caller dominates, by client id.
    pub async fn user_consents(
        &self,
        pool: &Pool,
        principal: &Principal,
        username: &Username,
    ) -> ServiceResult<Vec<Consent>> {
        principal.require(Permission::RetrieveUserSessions)?;
        let user = self.user_named(pool, username).await?;
        let groups = self.store.groups_of_user(pool.id, user.id).await?;
        principal.ensure_dominates(&permissions_of(&user, &groups), "the user")?;
        Ok(self.store.consents_of_user(pool.id, user.id).await?)
    }

    /// Forgets a user's consent to a client, and ends what the client holds by it (its
    /// authorizations of the user, with their access and refresh tokens): the next
    /// authorization of that client asks the user again. Needs the permission of sign-out,
    /// over a user the caller dominates.
    pub async fn revoke_consent(
        &self,
        pool: &Pool,
        principal: &Principal,
        username: &Username,
        client_id: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        principal.require(Permission::SignOutUser)?;
        let mut w = self.store.write(pool.id).await?;
        let user = self.target_in(w.as_mut(), principal, username).await?;
        let client_id =
            ClientId::parse(client_id).map_err(|_| ServiceError::NotFound("consent"))?;
        if !w.delete_consent(user.id, &client_id).await? {
            return Err(ServiceError::NotFound("consent"));
        }
        // What the client holds by the consent ends with it: its sessions for the user, their
        // access tokens and refresh tokens.
        let ended = self
            .end_sessions_in(
                w.as_mut(),
                pool,
                principal,
                &SessionsToEnd::AuthorizedFor {
                    user: user.id,
                    client: client_id.clone(),
                },
                meta,
                &crate::security_events::Cause::new(
                    gatehouse_domain::security_event::InitiatingEntity::Admin,
                    "consent revoked",
                ),
            )
            .await?;
        let mut event = self
            .event(pool, AuditAction::ConsentRevoked, Some(principal), meta)
            .subject(&user.username)
            .detail("sessions", ended);
        event.client_id = Some(client_id);
        w.audit(&event).await?;
        w.commit().await?;
        Ok(())
    }
}
