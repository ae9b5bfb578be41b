//! "Sign in with staff account" (spec section 7): a client pool's hosted sign-in takes the
//! staff pool as a built-in upstream identity provider.
//!
//! 1. The client pool's page sends the browser to the staff pool with the sealed
//!    authorization request and a *binding*: the SHA-256 of a secret the client pool keeps in
//!    a cookie of its own, so that only the browser that started can finish.
//! 2. The staff pool signs its staff member in (or finds its single sign-on session) and
//!    answers with a **staff assertion**: a JWT signed with the staff pool's access-token key,
//!    `typ: staff-assertion+jwt`, for the client pool's issuer only, valid for two minutes,
//!    naming the staff user, the request it answers and the binding.
//! 3. The client pool checks the assertion (signature against the staff pool's keys, issuer,
//!    audience, expiry, request, binding), takes its `jti` once, and signs in the pool's user
//!    linked to that staff member — created on the first sign-in with status
//!    `EXTERNAL_PROVIDER`, the staff profile copied at every sign-in (roles excepted: a pool
//!    grants its own) — in a browser session that names the staff member as who really acts.
//!
//! The session, and the tokens it issues (`identities` names the staff identity), end when
//! the pool turns staff access off or the staff member is disabled or deleted.

use gatehouse_crypto::jws::{self, Expect};
use gatehouse_crypto::secret::{Secret, random_token, sha256};
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::{PoolSlug, UserId, Username};
use gatehouse_domain::pool::{Pool, StaffAccess};
use serde::{Deserialize, Serialize};

use crate::audit::EventExt;
use crate::browser::{BrowserSession, BrowserSignIn, user_actor};
use crate::error::{ServiceError, ServiceResult};
use crate::tokens::STAFF_PROVIDER;
use crate::{Gatehouse, RequestMeta};

const TYP_STAFF_ASSERTION: &str = "staff-assertion+jwt";
/// How long a staff assertion may take from the staff pool back to the client pool.
const ASSERTION_TTL_SECS: i64 = 120;

#[derive(Debug, Serialize, Deserialize)]
struct StaffAssertion {
    iss: String,
    /// The client pool's issuer.
    aud: String,
    /// The staff user's id.
    sub: String,
    username: String,
    exp: i64,
    iat: i64,
    jti: String,
    auth_time: i64,
    /// BASE64URL(SHA-256) of the sealed authorization request it answers.
    req: String,
    /// The browser binding: BASE64URL(SHA-256) of the client pool's cookie secret.
    bnd: String,
}

/// The start of a staff sign-in in a client pool: `secret` goes into a cookie of that pool,
/// `binding` to the staff pool.
#[derive(Debug)]
pub struct StaffHandoff {
    pub secret: Secret,
    pub binding: String,
}

/// Why a staff assertion is refused; said on a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaffRefusal {
    /// The pool does not take staff (the staff pool itself, or staff access off).
    NotOffered,
    /// Not a valid assertion of the staff pool for this pool, request and browser; or
    /// expired, or already used.
    Invalid,
    /// The pool's user linked to the staff member is disabled in this pool.
    Disabled,
    /// The name the linked user would take belongs to another user of the pool.
    NameTaken,
}

impl StaffRefusal {
    pub fn message(self) -> &'static str {
        match self {
            Self::NotOffered => "This organisation does not accept staff accounts.",
            Self::Invalid => {
                "This staff sign-in expired, was already used, or was started in another browser. Go back to the application and start again."
            }
            Self::Disabled => "Your staff account is disabled in this organisation.",
            Self::NameTaken => {
                "Another account of this organisation already uses your staff account's name. Ask its administrator."
            }
        }
    }
}

fn b64_sha256(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha256(s.as_bytes()))
}

/// The username of a staff member's linked user in a client pool: `staff_{username}`, or
/// `staff_{id}` when that would be too long.
fn linked_username(staff_username: &str, staff_id: &str) -> ServiceResult<Username> {
    Username::parse(&format!("{STAFF_PROVIDER}_{staff_username}"))
        .or_else(|_| Username::parse(&format!("{STAFF_PROVIDER}_{staff_id}")))
        .map_err(Into::into)
}

impl Gatehouse {
    /// Whether `pool`'s sign-in page offers the staff account.
    pub fn offers_staff_sign_in(&self, pool: &Pool) -> bool {
        !pool.slug.is_staff() && pool.settings.staff_access == StaffAccess::Allowed
    }

    /// A new browser binding for a staff sign-in started in a client pool.
    pub fn start_staff_sign_in(&self) -> StaffHandoff {
        let secret = random_token();
        let binding = b64_sha256(secret.expose());
        StaffHandoff { secret, binding }
    }

    /// The client pool a staff sign-in is for, if it exists and takes staff.
    pub async fn staff_sign_in_target(
        &self,
        slug: &str,
    ) -> ServiceResult<Option<std::sync::Arc<Pool>>> {
        let Ok(slug) = PoolSlug::parse(slug) else {
            return Ok(None);
        };
        match self.pool(&slug).await {
            Ok(pool) if self.offers_staff_sign_in(&pool) => Ok(Some(pool)),
            Ok(_) | Err(ServiceError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Signs, as the staff pool, that the staff member of `session` signed in for `target`'s
    /// request `sealed_request`, from the browser bound by `binding`.
    pub async fn staff_assertion(
        &self,
        staff_pool: &Pool,
        target: &Pool,
        session: &BrowserSession,
        sealed_request: &str,
        binding: &str,
    ) -> ServiceResult<String> {
        if !staff_pool.slug.is_staff() {
            return Err(ServiceError::internal(
                "a staff assertion outside the staff pool",
            ));
        }
        let keys = self.pool_keys(staff_pool).await?;
        let now = self.now();
        let claims = StaffAssertion {
            iss: self.issuer(staff_pool),
            aud: self.issuer(target),
            sub: session.user.id.to_string(),
            username: session.user.username.to_string(),
            exp: now.plus_secs(ASSERTION_TTL_SECS).as_secs(),
            iat: now.as_secs(),
            jti: random_token().expose().to_owned(),
            auth_time: session.auth_time().as_secs(),
            req: b64_sha256(sealed_request),
            bnd: binding.to_owned(),
        };
        Ok(jws::sign(&keys.signing, TYP_STAFF_ASSERTION, &claims)?)
    }

    /// Checks a staff assertion presented to `pool` and signs its staff member in there (see
    /// the module's documentation). `cookie_secret` is the secret of this browser's binding
    /// cookie.
    pub async fn sign_in_with_staff(
        &self,
        pool: &Pool,
        assertion: &str,
        sealed_request: &str,
        cookie_secret: Option<&str>,
        meta: &RequestMeta,
    ) -> ServiceResult<Result<BrowserSignIn, StaffRefusal>> {
        if !self.offers_staff_sign_in(pool) {
            return Ok(Err(StaffRefusal::NotOffered));
        }
        let staff_pool = self.pool(&PoolSlug::staff()).await?;
        let keys = self.pool_keys(&staff_pool).await?;
        let staff_issuer = self.issuer(&staff_pool);
        let audience = self.issuer(pool);
        let verified: Option<StaffAssertion> = jws::verify(
            assertion,
            |kid| keys.verifying_key(kid),
            &Expect {
                typ: TYP_STAFF_ASSERTION,
                issuer: &staff_issuer,
                audience: Some(&audience),
            },
        )
        .ok();
        let now = self.now();
        let Some(claims) = verified.filter(|c| {
            c.exp > now.as_secs()
                && c.req == b64_sha256(sealed_request)
                && cookie_secret.is_some_and(|s| b64_sha256(s) == c.bnd)
        }) else {
            return Ok(Err(StaffRefusal::Invalid));
        };
        let Ok(staff_id) = UserId::parse(&claims.sub) else {
            return Ok(Err(StaffRefusal::Invalid));
        };

        let mut w = self.store.write(pool.id).await?;
        // The pool's consent to staff, read under the pool's lock: turning it off waits for
        // this sign-in, whose session it then ends, or this sign-in sees it off.
        if w.pool_settings().await?.staff_access != StaffAccess::Allowed {
            return Ok(Err(StaffRefusal::NotOffered));
        }
        // The staff member as the staff pool knows them now, read under their row's lock:
        // disabling or deleting them waits for this sign-in, whose session it then ends, or
        // this sign-in sees them gone.
        let staff_user = w.acting_user(staff_pool.id, staff_id).await?;
        let Some(staff_user) = staff_user.filter(|u| u.enabled.is_enabled()) else {
            return Ok(Err(StaffRefusal::Invalid));
        };
        let staff = user_actor(&staff_pool, &staff_user);
        let expires = gatehouse_domain::time::Timestamp(claims.exp);
        if !w
            .use_once(&format!("staff-assertion:{}", claims.jti), now, expires)
            .await?
        {
            return Ok(Err(StaffRefusal::Invalid));
        }
        let provider_user_id = staff_user.id.to_string();
        let user = match w
            .user_by_identity(STAFF_PROVIDER, &provider_user_id)
            .await?
        {
            Some(mut user) => {
                if !user.enabled.is_enabled() {
                    w.commit().await?;
                    return Ok(Err(StaffRefusal::Disabled));
                }
                let mut attributes = staff_user.attributes.clone();
                attributes.roles = std::mem::take(&mut user.attributes.roles);
                if attributes != user.attributes {
                    user.attributes = attributes;
                    user.updated_at = now;
                    w.update_user(&user).await?;
                }
                user
            }
            None => {
                let mut attributes = staff_user.attributes.clone();
                attributes.roles = Vec::new();
                let username = linked_username(staff_user.username.as_str(), &provider_user_id)?;
                let link = (STAFF_PROVIDER, provider_user_id.as_str());
                let Some(user) = crate::federation::create_linked_user(
                    w.as_mut(),
                    pool,
                    username,
                    attributes,
                    link,
                    now,
                )
                .await?
                else {
                    return Ok(Err(StaffRefusal::NameTaken));
                };
                let created = self
                    .event(pool, AuditAction::UserCreated, None, meta)
                    .actor(staff.clone())
                    .subject(&user.username)
                    .detail("via", "staff account")
                    .detail("staff_username", &staff_user.username);
                w.audit(&created).await?;
                user
            }
        };
        Ok(Ok(self
            .start_browser_session(pool, w, user, Some(staff), meta)
            .await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linked_usernames_are_prefixed_and_fall_back_to_the_id() {
        assert_eq!(
            linked_username("alice", "u1").unwrap().as_str(),
            "staff_alice"
        );
        let long = "a".repeat(Username::MAX_CHARS);
        assert_eq!(
            linked_username(&long, "0123").unwrap().as_str(),
            "staff_0123"
        );
    }

    #[test]
    fn the_binding_is_the_cookie_secrets_digest() {
        assert_eq!(
            b64_sha256("abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }
}
