//! E-mail one-time codes: the `EMAIL_OTP` challenge, as a second factor after a password (a
//! user who turned it on, for a verified address) and, in the choice-based `USER_AUTH` flow,
//! as the first factor.
//!
//! Nothing is stored for a challenge: its code, six random digits, is sealed with the master
//! key into the challenge session itself, under the session's `jti`, so the client carries it
//! and can neither read it nor move it to another session. The answer claims the session
//! with `use_once` before it compares the code, in the transaction that signs the user in; a
//! wrong code rolls the claim back and counts toward the username's lockout, which bounds the
//! guesses exactly as for a password. Each code sent counts against the hourly sending
//! limits of the user and of the address, shared with the verification codes.

use gatehouse_crypto::secret::{Secret, constant_time_eq, sha256};
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::UserId;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::retention::CODE_WINDOW_SECS;
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::txn::PoolWrite;
use gatehouse_domain::user::User;

use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::messages::{MessageKind, OutboundMessage};
use crate::passkeys::ChallengeParameters;
use crate::principal::Principal;
use crate::signin::{ChallengeExtras, SignInOutcome};
use crate::users::codes::{CODES_PER_HOUR, numeric_code};
use crate::users::self_service::own_id;
use crate::{Gatehouse, RequestMeta};

pub const EMAIL_OTP: &str = "EMAIL_OTP";
/// The challenge parameter naming where the code went, masked (`j***@e***`).
pub const CODE_DELIVERY_DESTINATION: &str = "CODE_DELIVERY_DESTINATION";
/// The challenge parameter naming how the code went (`EMAIL`).
pub const CODE_DELIVERY_DELIVERY_MEDIUM: &str = "CODE_DELIVERY_DELIVERY_MEDIUM";

fn expired() -> ServiceError {
    ServiceError::Unauthenticated("invalid or expired session".to_owned())
}

/// Whether sign-in codes can be sent to `user`: it has an e-mail address, verified.
pub(crate) fn can_receive_codes(user: &User) -> bool {
    !user.attributes.email.trim().is_empty() && user.attributes.email_verified == Some(true)
}

/// An address as Cognito shows where a code went: its first character, then `***`, for the
/// local part and the domain (`j***@e***`).
pub fn masked_email(email: &str) -> String {
    let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
    match email.trim().split_once('@') {
        Some((local, domain)) => format!("{}***@{}***", first(local), first(domain)),
        None => "***".to_owned(),
    }
}

impl Gatehouse {
    /// Starts an `EMAIL_OTP` challenge for `user`, bound to `audience`: a new code, counted
    /// against the sending limits, sealed into the session and sent to the user's verified
    /// address. `first` marks the sign-in's first factor (`USER_AUTH`).
    pub(crate) async fn email_otp_step(
        &self,
        pool: &Pool,
        user: &User,
        audience: &str,
        first: bool,
    ) -> ServiceResult<(Secret, ChallengeParameters)> {
        if !can_receive_codes(user) {
            return Err(ServiceError::Conflict(
                "the user has no verified e-mail address to send a code to".to_owned(),
            ));
        }
        let email = user.attributes.email.trim();
        let now = self.now();
        let mut w = self.store.write(pool.id).await?;
        for key in [
            format!("user:{}:email_otp", user.id),
            format!("to:{}", email.to_lowercase()),
        ] {
            if let Err(reopens) = w
                .count_code_sent(&key, now, CODE_WINDOW_SECS, CODES_PER_HOUR)
                .await?
            {
                return Err(ServiceError::throttled_until(
                    "too many codes were sent lately; try again later",
                    reopens,
                    now,
                ));
            }
        }
        w.commit().await?;
        let code = numeric_code();
        let session = self
            .challenge_session_with(
                pool,
                &user.id.to_string(),
                audience,
                EMAIL_OTP,
                ChallengeExtras {
                    otp: Some(&code),
                    first,
                },
            )
            .await?;
        let minutes = pool.settings.challenge_session_secs() / 60;
        self.deliver(&OutboundMessage {
            kind: MessageKind::SignInCode,
            pool: pool.slug.to_string(),
            username: user.username.to_string(),
            to_email: Some(email.to_owned()),
            to_phone: None,
            subject: "Your sign-in code".to_owned(),
            body: format!(
                "Your code to sign in as {} is {}. It is good for {minutes} minutes and for \
                 this sign-in only. If you did not try to sign in, someone knows your \
                 username: ignore this message.",
                user.username,
                code.expose()
            ),
        })
        .await?;
        let mut parameters = ChallengeParameters::new();
        parameters.insert(CODE_DELIVERY_DESTINATION, masked_email(email));
        parameters.insert(CODE_DELIVERY_DELIVERY_MEDIUM, "EMAIL".to_owned());
        Ok((session, parameters))
    }

    /// Checks an answer to `EMAIL_OTP` bound to `audience`: in one transaction, answered
    /// open for the caller to sign the user in with, the session is claimed and the code
    /// compared. Answers the user, and whether the code was the sign-in's first factor.
    pub(crate) async fn answer_email_otp(
        &self,
        pool: &Pool,
        audience: &str,
        session: &str,
        code: &Secret,
        meta: &RequestMeta,
    ) -> ServiceResult<(Box<dyn PoolWrite>, User, bool)> {
        let claims = self
            .verify_challenge(pool, audience, session, EMAIL_OTP)
            .await?;
        let user_id = UserId::parse(&claims.sub).map_err(|_| expired())?;
        let expected = self.challenge_otp(pool, &claims).ok_or_else(expired)?;
        // A session of a username without a user (`USER_AUTH` answers one) fails as a
        // wrong code does: no code was ever sent for it.
        let known = self
            .store
            .user_by_id(pool.id, user_id)
            .await?
            .ok_or_else(|| ServiceError::Unauthenticated("invalid code".to_owned()))?;
        self.code_attempt_allowed(pool, &known.username).await?;
        let now = self.now();
        let mut w = self.store.write(pool.id).await?;
        let user = w
            .user_by_id(user_id)
            .await?
            .filter(|u| u.enabled.is_enabled())
            .ok_or_else(expired)?;
        // The claim first, so a used session is refused as such; a wrong code rolls it back
        // with the transaction, and the lockout bounds the tries.
        if !w.use_once(&claims.jti, now, Timestamp(claims.exp)).await? {
            return Err(expired());
        }
        let presented = sha256(code.expose().trim().as_bytes());
        if !constant_time_eq(&presented, &sha256(expected.expose().as_bytes())) {
            drop(w);
            return Err(self.wrong_code(pool, &user.username, meta).await?);
        }
        let used = self
            .event(pool, AuditAction::TokenRevoked, None, meta)
            .subject(&user.username)
            .detail("challenge", EMAIL_OTP);
        w.audit(&used).await?;
        self.clear_failures_in(w.as_mut(), pool, &user.username)
            .await?;
        Ok((w, user, claims.first))
    }

    /// Answers `EMAIL_OTP` through the API: a second factor's code signs the user in; a
    /// first factor's leads to the user's other factor if it has one.
    pub async fn respond_email_otp(
        &self,
        pool: &Pool,
        client_id: &str,
        client_secret: Option<Secret>,
        session: &str,
        code: &Secret,
        meta: &RequestMeta,
    ) -> ServiceResult<SignInOutcome> {
        let client = self.sign_in_client(pool, client_id, client_secret).await?;
        let audience = client.client_id.as_str();
        let (mut w, user, first) = self
            .answer_email_otp(pool, audience, session, code, meta)
            .await?;
        if first
            && let Some(next) = self
                .mfa_challenge_after(pool, w.as_mut(), &user, Some(EMAIL_OTP))
                .await?
        {
            w.commit().await?;
            return self.mfa_outcome(pool, &user, audience, next).await;
        }
        self.start_session(pool, &client, w, &user, meta).await
    }

    /// Turns e-mail one-time codes on as a second factor of the caller (its own access
    /// token; never an impersonated one), whose e-mail address must be verified. Its
    /// password sign-ins then end in `EMAIL_OTP` (or `SELECT_MFA_TYPE` beside another
    /// factor) while the pool's MFA is not off.
    pub async fn enable_email_otp(
        &self,
        pool: &Pool,
        principal: &Principal,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        if principal.is_impersonated() {
            return Err(ServiceError::Forbidden(
                "an impersonated token cannot enroll a second factor".to_owned(),
            ));
        }
        let id = own_id(pool, principal)?;
        let mut w = self.store.write(pool.id).await?;
        let mut user = self.own_user_in(w.as_mut(), principal, id).await?;
        if !can_receive_codes(&user) {
            return Err(ServiceError::Conflict(
                "verify the e-mail address first: codes go only to a verified address".to_owned(),
            ));
        }
        if user.mfa.has_email_otp() {
            return Ok(());
        }
        user.mfa = user.mfa.with_email_otp();
        user.updated_at = self.now();
        w.update_user(&user)
            .await
            .map_err(crate::users::user_write_error)?;
        let event = self
            .event(pool, AuditAction::UserMfaEnrolled, None, meta)
            .subject(&user.username)
            .detail("factor", "email_otp");
        w.audit(&event).await?;
        w.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::masked_email;

    #[test]
    fn masks_an_address_as_cognito_does() {
        assert_eq!(masked_email("jane@example.com"), "j***@e***");
        assert_eq!(masked_email(" a@b "), "a***@b***");
        assert_eq!(masked_email("no-at-sign"), "***");
        assert_eq!(masked_email("@x"), "***@x***");
    }
}
