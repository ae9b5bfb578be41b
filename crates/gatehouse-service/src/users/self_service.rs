//! Self-service: a signed-in user reads and updates its own profile (`/users/me`) and proves
//! its e-mail address or phone number with a code.
//!
//! A user can never change its own roles this way, nor mark an attribute verified except by
//! presenting the code that was sent to it.

use gatehouse_crypto::secret::{Secret, constant_time_eq, sha256};
use gatehouse_domain::ParseError;
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::permission::Permission;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::user::{User, UserAttributes, VerifiableAttribute, VerificationCode};

use super::{VerifiedFlags, numeric_code, reconcile_verified, role_set, user_write_error};
use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
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

impl Gatehouse {
    /// The caller's own user record: only a user of this pool has one here.
    async fn own_profile(&self, pool: &Pool, principal: &Principal) -> ServiceResult<User> {
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
        self.store
            .user_by_id(pool.id, *id)
            .await?
            .ok_or(ServiceError::NotFound("user"))
    }

    /// The caller's own profile. Reading it is part of self-service, so it takes the
    /// permission every user holds over its own profile.
    pub async fn get_own_user(&self, pool: &Pool, principal: &Principal) -> ServiceResult<User> {
        principal.require(Permission::UpdateOwnUser)?;
        self.own_profile(pool, principal).await
    }

    /// Replaces the caller's own attributes. The roles given must be the roles the user has
    /// (in any order); anything else is refused. A changed e-mail address or phone number
    /// becomes unverified and a code is sent to it; verified flags in the request are ignored.
    pub async fn update_own_user(
        &self,
        pool: &Pool,
        principal: &Principal,
        attributes: UserAttributes,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        principal.require(Permission::UpdateOwnUser)?;
        attributes.validate()?;
        let mut user = self.own_profile(pool, principal).await?;
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
        user.attributes = updated;
        user.updated_at = now;
        let event = self
            .event(pool, AuditAction::UserUpdated, Some(principal), meta)
            .subject(&user.username)
            .detail("via", "self-service");
        self.store
            .update_user(&user, &event)
            .await
            .map_err(user_write_error)?;
        if email_changed {
            self.send_verification_code(pool, &user, VerifiableAttribute::Email)
                .await?;
        }
        if phone_changed {
            self.send_verification_code(pool, &user, VerifiableAttribute::Phone)
                .await?;
        }
        Ok(())
    }

    /// Stores a fresh code for the attribute (replacing an earlier one) and sends it. A
    /// delivery failure is logged, not returned: the change it follows is already made.
    async fn send_verification_code(
        &self,
        pool: &Pool,
        user: &User,
        attribute: VerifiableAttribute,
    ) -> ServiceResult<()> {
        let code = numeric_code();
        self.store
            .put_verification_code(&VerificationCode {
                pool: pool.id,
                user_id: user.id,
                attribute,
                code_sha256: sha256(code.expose().as_bytes()),
                expires_at: self.now().plus_secs(VERIFICATION_CODE_TTL_SECS),
            })
            .await?;
        let (to_email, to_phone, what) = match attribute {
            VerifiableAttribute::Email => {
                (Some(user.attributes.email.clone()), None, "e-mail address")
            }
            VerifiableAttribute::Phone => (None, user.attributes.phone.clone(), "phone number"),
        };
        let message = OutboundMessage {
            kind: MessageKind::AttributeVerification,
            pool: pool.slug.to_string(),
            username: user.username.to_string(),
            to_email,
            to_phone,
            subject: format!("Verify your {what}"),
            body: format!("Your verification code is {}.", code.expose()),
        };
        if let Err(e) = self.deliver(&message).await {
            tracing::warn!(pool = %pool.slug, username = %user.username, error = %e,
                "the verification code could not be delivered");
        }
        Ok(())
    }

    /// Marks the caller's e-mail address or phone number verified when `code` is the one sent
    /// to it. A code is good for one attempt: a wrong guess uses it up.
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
        let mut user = self.own_profile(pool, principal).await?;
        let stored = self
            .store
            .take_verification_code(pool.id, user.id, attribute)
            .await?
            .ok_or_else(invalid_code)?;
        let now = self.now();
        let presented = sha256(code.expose().trim().as_bytes());
        if stored.expires_at <= now || !constant_time_eq(&stored.code_sha256, &presented) {
            return Err(invalid_code());
        }
        match attribute {
            VerifiableAttribute::Email => user.attributes.email_verified = Some(true),
            VerifiableAttribute::Phone => {
                if user.attributes.phone.is_none() {
                    return Err(invalid_code());
                }
                user.attributes.phone_verified = Some(true);
            }
        }
        user.updated_at = now;
        let event = self
            .event(
                pool,
                AuditAction::UserAttributeVerified,
                Some(principal),
                meta,
            )
            .subject(&user.username)
            .detail("attribute", attribute.as_str());
        self.store
            .update_user(&user, &event)
            .await
            .map_err(user_write_error)
    }
}
