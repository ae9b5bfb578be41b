//! Self-service: a signed-in user reads and updates its own profile (`/users/me`) and proves
//! its e-mail address or phone number with a code.
//!
//! A user can never change its own roles this way, nor mark an attribute verified except by
//! presenting the code that was sent to it. A change reads the user inside its write
//! transaction, and only while the token's session still stands: a request racing an
//! administrator's disable or password reset either runs before it or is refused, and it only
//! ever changes profile attributes, never the account's security state.

use gatehouse_crypto::secret::Secret;
use gatehouse_domain::ParseError;
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::UserId;
use gatehouse_domain::permission::Permission;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::txn::PoolWrite;
use gatehouse_domain::user::{User, UserAttributes, UserStatus, VerifiableAttribute};
use serde_json::{Map, Value};

use super::{VerifiedFlags, reconcile_verified, role_set, user_write_error};
use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::id_tokens::scope_claims;
use crate::messages::{MessageKind, OutboundMessage};
use crate::principal::Subject;
use crate::{Gatehouse, Principal, RequestMeta};

/// How long a code sent to verify an attribute is valid.
pub const VERIFICATION_CODE_TTL_SECS: i64 = 24 * 3600;

fn invalid_code() -> ServiceError {
    ServiceError::Invalid(ParseError::new(
        "verification_code",
        "the code is invalid or has expired",
    ))
}

/// The token no longer stands: its user was disabled, deleted or reset, or its session ended,
/// after the request was authenticated.
fn revoked() -> ServiceError {
    ServiceError::Unauthenticated("the token has been revoked".to_owned())
}

/// The caller's own user: only a user of this pool has one here.
fn own_id(pool: &Pool, principal: &Principal) -> ServiceResult<UserId> {
    let Subject::User { id, .. } = &principal.subject else {
        return Err(ServiceError::Forbidden(
            "an app client has no user profile".to_owned(),
        ));
    };
    if principal.home_pool != pool.slug {
        return Err(ServiceError::Forbidden(
            "the caller has no user profile in this pool".to_owned(),
        ));
    }
    Ok(*id)
}

/// The message that sends `code` to verify `attribute` of `user`, and where it goes.
fn verification_message(
    pool: &Pool,
    user: &User,
    attribute: VerifiableAttribute,
    code: &Secret,
) -> OutboundMessage {
    let (to_email, to_phone, what) = match attribute {
        VerifiableAttribute::Email => (Some(user.attributes.email.clone()), None, "e-mail address"),
        VerifiableAttribute::Phone => (None, user.attributes.phone.clone(), "phone number"),
    };
    OutboundMessage {
        kind: MessageKind::AttributeVerification,
        pool: pool.slug.to_string(),
        username: user.username.to_string(),
        to_email,
        to_phone,
        subject: format!("Verify your {what}"),
        body: format!("Your verification code is {}.", code.expose()),
    }
}

impl Gatehouse {
    /// What OIDC userinfo answers (Core §5.3): `sub`, and the claims the token's scopes
    /// release, exactly as the ID token releases them ([`scope_claims`]); a token without
    /// the `email` scope learns no address. An ordinary API, so an impersonated token works
    /// here as the user's own.
    pub async fn userinfo(&self, principal: &Principal) -> ServiceResult<Map<String, Value>> {
        let user = self.userinfo_user(principal).await?;
        let scopes: Vec<String> = principal
            .token
            .scope
            .as_deref()
            .unwrap_or_default()
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect();
        let mut claims = Map::new();
        claims.insert("sub".to_owned(), Value::String(user.id.to_string()));
        claims.extend(scope_claims(&user, &scopes));
        Ok(claims)
    }

    /// The token's user, in its home pool.
    async fn userinfo_user(&self, principal: &Principal) -> ServiceResult<User> {
        let Some(id) = principal.user_id() else {
            return Err(ServiceError::Forbidden(
                "userinfo needs a user's token".to_owned(),
            ));
        };
        let home = self.pool(&principal.home_pool).await?;
        self.store.user_by_id(home.id, id).await?.ok_or_else(|| {
            ServiceError::Unauthenticated("the token's user no longer exists".to_owned())
        })
    }

    /// The caller's own user record, read outside any transaction (for reading only).
    async fn own_profile(&self, pool: &Pool, principal: &Principal) -> ServiceResult<User> {
        let id = own_id(pool, principal)?;
        self.store
            .user_by_id(pool.id, id)
            .await?
            .ok_or(ServiceError::NotFound("user"))
    }

    /// The caller's own user, read inside `w`, provided the token that authenticated the
    /// request still stands as of this transaction: the user exists, is enabled, is in a
    /// status that signs in (not waiting for a password reset or a first password), and the
    /// token's session is still active and began after the user's "not before" time.
    /// Otherwise 401.
    ///
    /// The access token's `iat` is not among the principal's [`crate::principal::TokenFacts`],
    /// so the session stands in for it: every user token carries the session it was minted
    /// for, at the session's start, and every operation that moves "not before" (disable,
    /// password reset, global sign-out) ends the user's sessions in the same transaction. An
    /// active session read here, under the transaction's lock, therefore proves that none of
    /// them has committed since the token was issued.
    pub(crate) async fn own_user_in(
        &self,
        w: &mut dyn PoolWrite,
        principal: &Principal,
        id: UserId,
    ) -> ServiceResult<User> {
        let user = w.user_by_id(id).await?.ok_or_else(revoked)?;
        if !user.enabled.is_enabled()
            || matches!(
                user.status,
                UserStatus::ResetRequired | UserStatus::ForceChangePassword
            )
        {
            return Err(revoked());
        }
        let sid = principal.token.sid.ok_or_else(revoked)?;
        let session = w.session(sid).await?.ok_or_else(revoked)?;
        let stands = session.user_id == user.id
            && session.is_active_at(self.now())
            && user
                .tokens_not_before
                .is_none_or(|nb| session.created_at >= nb);
        if !stands {
            return Err(revoked());
        }
        Ok(user)
    }

    /// The caller's own profile. Reading it is part of self-service, so it takes the
    /// permission every user holds over its own profile.
    pub async fn get_own_user(&self, pool: &Pool, principal: &Principal) -> ServiceResult<User> {
        principal.require(Permission::UpdateOwnUser)?;
        self.own_profile(pool, principal).await
    }

    /// Replaces the caller's own profile attributes, and nothing else: the account's state
    /// (enabled, status, password, "not before", MFA) is the one read in the transaction,
    /// never one read earlier. The roles given must be the roles the user has (in any order);
    /// anything else is refused. A changed e-mail address or phone number becomes unverified
    /// and a code is sent to it after the commit; verified flags in the request are ignored.
    pub async fn update_own_user(
        &self,
        pool: &Pool,
        principal: &Principal,
        attributes: UserAttributes,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        principal.require(Permission::UpdateOwnUser)?;
        attributes.validate()?;
        let id = own_id(pool, principal)?;
        let mut w = self.store.write(pool.id).await?;
        let mut user = self.own_user_in(w.as_mut(), principal, id).await?;
        if role_set(&attributes.roles) != role_set(&user.attributes.roles) {
            return Err(ServiceError::Forbidden(
                "a user cannot change its own roles".to_owned(),
            ));
        }
        let now = self.now();
        let mut updated = reconcile_verified(&user.attributes, attributes, VerifiedFlags::Ignored);
        updated.roles = user.attributes.roles.clone();
        updated.updated_at = Some(now.as_secs());
        let email_changed = updated.email != user.attributes.email;
        let phone_changed = updated.phone.is_some() && updated.phone != user.attributes.phone;
        user.note_email_change(&updated.email, now);
        user.attributes = updated;
        user.updated_at = now;
        w.update_user(&user).await.map_err(user_write_error)?;
        let mut messages = Vec::new();
        for (changed, attribute) in [
            (email_changed, VerifiableAttribute::Email),
            (phone_changed, VerifiableAttribute::Phone),
        ] {
            if changed {
                let code = self
                    .code_to_send(
                        w.as_mut(),
                        pool,
                        &user,
                        attribute,
                        now,
                        VERIFICATION_CODE_TTL_SECS,
                    )
                    .await?;
                messages.push(verification_message(pool, &user, attribute, &code));
            }
        }
        let event = self
            .event(pool, AuditAction::UserUpdated, Some(principal), meta)
            .subject(&user.username)
            .detail("via", "self-service");
        w.audit(&event).await?;
        w.commit().await?;
        // A delivery failure is logged, not returned: the change it follows is made.
        for message in &messages {
            if let Err(e) = self.deliver(message).await {
                tracing::warn!(pool = %pool.slug, username = %user.username, error = %e,
                    "the verification code could not be delivered");
            }
        }
        Ok(())
    }

    /// Marks the caller's e-mail address or phone number verified when `code` is the one sent
    /// to it. A wrong guess is counted against the code (`codes.rs`), and that is committed
    /// too.
    pub async fn verify_own_attribute(
        &self,
        pool: &Pool,
        principal: &Principal,
        attribute: &str,
        code: &Secret,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        principal.require(Permission::VerifyOwnAttribute)?;
        let attribute = VerifiableAttribute::parse(attribute)?;
        let id = own_id(pool, principal)?;
        let mut w = self.store.write(pool.id).await?;
        let mut user = self.own_user_in(w.as_mut(), principal, id).await?;
        let now = self.now();
        let valid = (attribute == VerifiableAttribute::Email || user.attributes.phone.is_some())
            && self
                .check_code(w.as_mut(), user.id, attribute, code, now)
                .await?;
        if !valid {
            // A wrong guess is counted against the code: commit that.
            w.commit().await?;
            return Err(invalid_code());
        }
        match attribute {
            VerifiableAttribute::Email => user.attributes.email_verified = Some(true),
            VerifiableAttribute::Phone => user.attributes.phone_verified = Some(true),
        }
        user.updated_at = now;
        w.update_user(&user).await.map_err(user_write_error)?;
        let event = self
            .event(
                pool,
                AuditAction::UserAttributeVerified,
                Some(principal),
                meta,
            )
            .subject(&user.username)
            .detail("attribute", attribute.as_str());
        w.audit(&event).await?;
        w.commit().await?;
        Ok(())
    }
}
