//! Account actions on an existing user: delete, enable, disable, reset the password,
//! disable MFA, link to a provider. Each reads the user in its write transaction, needs the
//! caller to dominate it, and ends what the action takes away (its sessions, and the
//! impersonations it started) in the same transaction.

use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::Username;
use gatehouse_domain::permission::Permission;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::security_event::{ChangeType, CredentialType, EventKind, InitiatingEntity};
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::txn::{PoolWrite, SessionsToEnd};
use gatehouse_domain::user::{
    Enabled, FederatedIdentity, MfaState, User, UserStatus, VerifiableAttribute, permissions_of,
};

use super::{
    PROVIDER_NAME_MAX_CHARS, PROVIDER_USER_ID_MAX_CHARS, ProviderIdentity, RESET_CODE_TTL_SECS,
    check_link_part, is_self, user_write_error,
};
use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::password_reset::ResetBy;
use crate::security_events::{Cause, new_txn};
use crate::{Gatehouse, Principal, RequestMeta};

impl Gatehouse {
    /// Deletes a user; its tokens stop working with it, and so does every impersonation it
    /// started, in any pool. A user cannot delete itself, so that the last administrator
    /// cannot lock everyone out by accident.
    pub async fn delete_user(
        &self,
        pool: &Pool,
        principal: &Principal,
        username: &Username,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        principal.require(Permission::DeleteUser)?;
        let mut w = self.store.write(pool.id).await?;
        let user = w
            .user_by_username(username)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        if is_self(principal, pool, &user) {
            return Err(ServiceError::Conflict(
                "a user cannot delete itself".to_owned(),
            ));
        }
        let groups = w.groups_of_user(user.id).await?;
        principal.ensure_dominates(&permissions_of(&user, &groups), "the user")?;
        let cause = Cause::new(InitiatingEntity::Admin, "delete");
        self.end_authority_of(w.as_mut(), pool, principal, &user, meta, &cause)
            .await?;
        w.delete_user(user.id).await.map_err(user_write_error)?;
        self.tell_about_user(w.as_mut(), user.id, EventKind::AccountPurged, &cause.txn)
            .await?;
        let event = self
            .event(pool, AuditAction::UserDeleted, Some(principal), meta)
            .subject(&user.username)
            .detail("user_id", user.id);
        w.audit(&event).await?;
        w.commit().await?;
        Ok(())
    }

    /// The shape of the account actions: check the permission, open a write transaction,
    /// read the user in it, check that the caller dominates the user, apply `change` (which
    /// may refuse), and write the user with its audit event. The transaction is returned
    /// uncommitted, for the caller to add what must happen with the change, and commit.
    #[allow(clippy::too_many_arguments)]
    async fn change_user(
        &self,
        pool: &Pool,
        principal: &Principal,
        username: &Username,
        permission: Permission,
        action: AuditAction,
        meta: &RequestMeta,
        change: impl FnOnce(&mut User, Timestamp) -> ServiceResult<()>,
    ) -> ServiceResult<(Box<dyn PoolWrite>, User)> {
        principal.require(permission)?;
        let mut w = self.store.write(pool.id).await?;
        let mut user = self.target_in(w.as_mut(), principal, username).await?;
        let now = self.now();
        change(&mut user, now)?;
        user.updated_at = now;
        w.update_user(&user).await.map_err(user_write_error)?;
        let event = self
            .event(pool, action, Some(principal), meta)
            .subject(&user.username);
        w.audit(&event).await?;
        Ok((w, user))
    }

    pub async fn enable_user(
        &self,
        pool: &Pool,
        principal: &Principal,
        username: &Username,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        let enable = |user: &mut User, _| {
            user.enabled = Enabled::Yes;
            Ok(())
        };
        let (mut w, user) = self
            .change_user(
                pool,
                principal,
                username,
                Permission::EnableUser,
                AuditAction::UserEnabled,
                meta,
                enable,
            )
            .await?;
        // Enabling also clears a lock after failed sign-ins (`lockout.rs`).
        w.clear_sign_in_failures(username).await?;
        self.tell_about_user(w.as_mut(), user.id, EventKind::AccountEnabled, &new_txn())
            .await?;
        w.commit().await?;
        Ok(())
    }

    /// Disables a user and, in the same transaction, ends every session of it and every
    /// impersonation it started, in any pool. A user cannot disable itself.
    pub async fn disable_user(
        &self,
        pool: &Pool,
        principal: &Principal,
        username: &Username,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        let disable = |user: &mut User, now| {
            if is_self(principal, pool, user) {
                return Err(ServiceError::Conflict(
                    "a user cannot disable itself".to_owned(),
                ));
            }
            user.enabled = Enabled::No;
            user.tokens_not_before = Some(now);
            Ok(())
        };
        let (mut w, user) = self
            .change_user(
                pool,
                principal,
                username,
                Permission::DisableUser,
                AuditAction::UserDisabled,
                meta,
                disable,
            )
            .await?;
        let cause = Cause::new(InitiatingEntity::Admin, "disable");
        self.end_authority_of(w.as_mut(), pool, principal, &user, meta, &cause)
            .await?;
        self.tell_about_user(w.as_mut(), user.id, EventKind::AccountDisabled, &cause.txn)
            .await?;
        w.commit().await?;
        Ok(())
    }

    /// Ends, inside `w`, every session of `user` and every session in which it acts (an
    /// impersonation it started, in this pool or another), each with its audit event: what
    /// disabling, deleting, resetting or signing out a user takes away. Returns how many
    /// ended.
    pub(crate) async fn end_authority_of(
        &self,
        w: &mut dyn PoolWrite,
        pool: &Pool,
        principal: &Principal,
        user: &User,
        meta: &RequestMeta,
        cause: &Cause<'_>,
    ) -> ServiceResult<usize> {
        let own = self
            .end_sessions_in(
                w,
                pool,
                principal,
                &SessionsToEnd::OfUser(user.id),
                meta,
                cause,
            )
            .await?;
        let acted_by = SessionsToEnd::ActedBy {
            pool: pool.slug.clone(),
            actor_id: user.id.to_string(),
        };
        let acted = self
            .end_sessions_in(
                w,
                pool,
                principal,
                &acted_by,
                meta,
                &cause.with_reason(&format!("impersonator {}", cause.reason)),
            )
            .await?;
        Ok(own + acted)
    }

    /// Resets a user's password. In one transaction: the password is removed, the status
    /// becomes `RESET_REQUIRED`, every token and session of the user ends, and a reset code is
    /// stored as the user's e-mail verification code (only its SHA-256), valid for
    /// [`RESET_CODE_TTL_SECS`]; proving it also proves the address. After the commit the code
    /// is sent to the user's e-mail address. When that address replaced another within the
    /// last 24 hours, the previous address is told of the reset first (without the code); if
    /// that notice cannot be delivered, the code is not sent either.
    pub async fn reset_user_password(
        &self,
        pool: &Pool,
        principal: &Principal,
        username: &Username,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        let reset = |user: &mut User, now| {
            if !user.status.allows_password_reset() {
                return Err(ServiceError::Conflict(format!(
                    "the password of a user in status {} cannot be reset",
                    user.status.as_str()
                )));
            }
            user.status = UserStatus::ResetRequired;
            user.password = None;
            user.tokens_not_before = Some(now);
            Ok(())
        };
        let (mut w, user) = self
            .change_user(
                pool,
                principal,
                username,
                Permission::ResetUserPassword,
                AuditAction::UserPasswordReset,
                meta,
                reset,
            )
            .await?;
        let now = self.now();
        // A reset answers a compromise: the impersonations the account started end too.
        let cause = Cause::new(InitiatingEntity::Admin, "password reset");
        self.end_authority_of(w.as_mut(), pool, principal, &user, meta, &cause)
            .await?;
        let changed = EventKind::CredentialChange {
            credential_type: CredentialType::Password,
            change_type: ChangeType::Update,
        };
        self.tell_about_user(w.as_mut(), user.id, changed, &cause.txn)
            .await?;
        let code = self
            .code_to_send(
                w.as_mut(),
                pool,
                &user,
                VerifiableAttribute::Email,
                now,
                RESET_CODE_TTL_SECS,
            )
            .await?;
        w.commit().await?;
        self.deliver_reset_code(pool, &user, now, &code, ResetBy::Administrator)
            .await
    }

    pub async fn disable_user_mfa(
        &self,
        pool: &Pool,
        principal: &Principal,
        username: &Username,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        let clear = |user: &mut User, now| {
            user.mfa = MfaState::NONE;
            user.tokens_not_before = Some(now);
            Ok(())
        };
        let (mut w, user) = self
            .change_user(
                pool,
                principal,
                username,
                Permission::DisableUserMfa,
                AuditAction::UserMfaDisabled,
                meta,
                clear,
            )
            .await?;
        // Removing the factors is a credential change: the user's sessions (and the
        // impersonations it started) end, and the relying parties hear of it.
        w.remove_mfa_factors(user.id).await?;
        let cause = Cause::new(InitiatingEntity::Admin, "MFA disabled");
        self.end_authority_of(w.as_mut(), pool, principal, &user, meta, &cause)
            .await?;
        let changed = EventKind::CredentialChange {
            credential_type: CredentialType::App,
            change_type: ChangeType::Delete,
        };
        self.tell_about_user(w.as_mut(), user.id, changed, &cause.txn)
            .await?;
        w.commit().await?;
        self.notify_mfa_disabled(pool, &user).await;
        Ok(())
    }

    /// Links an upstream identity to an existing user the caller dominates. An identity
    /// linked already (to this or another user) is a conflict.
    pub async fn link_user_to_provider(
        &self,
        pool: &Pool,
        principal: &Principal,
        username: &Username,
        identity: ProviderIdentity,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        principal.require(Permission::LinkUserToIdentityProvider)?;
        check_link_part(
            "provider_name",
            &identity.provider_name,
            PROVIDER_NAME_MAX_CHARS,
        )?;
        check_link_part(
            "provider_user_id",
            &identity.provider_user_id,
            PROVIDER_USER_ID_MAX_CHARS,
        )?;
        if identity
            .provider_name
            .eq_ignore_ascii_case(crate::tokens::STAFF_PROVIDER)
        {
            // Links to the staff pool are made by staff members signing in with the staff
            // account, never by a pool's administrator.
            return Err(gatehouse_domain::ParseError::new(
                "provider_name",
                "'staff' is reserved for the staff pool",
            )
            .into());
        }
        let provider = gatehouse_domain::federation::ProviderName::parse(&identity.provider_name)
            .map_err(|_| {
            gatehouse_domain::ParseError::new(
                "provider_name",
                "the pool has no identity provider of this name",
            )
        })?;
        let mut w = self.store.write(pool.id).await?;
        // The provider is read in the transaction that links: deleting it either waits for
        // this link (and deletes it) or is seen.
        if w.identity_provider(&provider).await?.is_none() {
            return Err(gatehouse_domain::ParseError::new(
                "provider_name",
                "the pool has no identity provider of this name",
            )
            .into());
        }
        let user = self.target_in(w.as_mut(), principal, username).await?;
        let event = self
            .event(
                pool,
                AuditAction::UserLinkedToProvider,
                Some(principal),
                meta,
            )
            .subject(&user.username)
            .detail("provider_name", &identity.provider_name)
            .detail("provider_user_id", &identity.provider_user_id);
        let link = FederatedIdentity {
            pool: pool.id,
            provider_name: identity.provider_name,
            provider_user_id: identity.provider_user_id,
            user_id: user.id,
            created_at: self.now(),
        };
        w.link_identity(&link).await.map_err(user_write_error)?;
        w.audit(&event).await?;
        w.commit().await?;
        Ok(())
    }
}
