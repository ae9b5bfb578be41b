//! Choice-based sign-in (Cognito's `USER_AUTH` flow): the user proves its first factor with
//! a password (`PASSWORD`), a code sent to its verified e-mail address (`EMAIL_OTP`) or a
//! passkey (`WEB_AUTHN`), named up front (`PREFERRED_CHALLENGE`) or chosen from the
//! `AvailableChallenges` of a `SELECT_CHALLENGE` step.
//!
//! What follows the first factor is what follows a password anywhere: a password leads to
//! the user's second factor (or `NEW_PASSWORD_REQUIRED`, or `MFA_SETUP`); an e-mail code to
//! the user's other factor if it has one; a passkey, with the user verification Gatehouse
//! always requires, is two factors and signs in. An e-mail code alone is one factor, so it
//! is not offered as the first in a pool that requires MFA.
//!
//! A username without an enabled user gets the same kind of answer as one with a verified
//! address and no passkey: `PASSWORD` and `EMAIL_OTP`, a session, and for `EMAIL_OTP` a
//! challenge whose code was never sent and that every answer fails.

use gatehouse_crypto::secret::Secret;
use gatehouse_domain::ParseError;
use gatehouse_domain::client::AppClient;
use gatehouse_domain::ids::{UserId, Username};
use gatehouse_domain::mfa::MfaMode;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::user::User;

use crate::email_otp::{EMAIL_OTP, can_receive_codes};
use crate::error::{ServiceError, ServiceResult};
use crate::passkeys::{ChallengeParameters, WEB_AUTHN};
use crate::signin::{ChallengeExtras, PasswordChecked, SignInOutcome};
use crate::users::codes::numeric_code;
use crate::{Gatehouse, RequestMeta};

pub const SELECT_CHALLENGE: &str = "SELECT_CHALLENGE";
pub const PASSWORD: &str = "PASSWORD";

/// The first factors Cognito names, and whether Gatehouse offers each.
fn first_factor(name: &str) -> ServiceResult<&'static str> {
    match name {
        PASSWORD => Ok(PASSWORD),
        EMAIL_OTP => Ok(EMAIL_OTP),
        WEB_AUTHN => Ok(WEB_AUTHN),
        "PASSWORD_SRP" => Err(invalid("Gatehouse does not speak SRP; use PASSWORD")),
        "SMS_OTP" => Err(invalid("this user pool does not send text messages")),
        _ => Err(invalid(
            "choose PASSWORD, EMAIL_OTP or WEB_AUTHN (one of AvailableChallenges)",
        )),
    }
}

fn invalid(message: &str) -> ServiceError {
    ServiceError::Invalid(ParseError::new("challenge", message))
}

fn expired() -> ServiceError {
    ServiceError::Unauthenticated("invalid or expired session".to_owned())
}

impl Gatehouse {
    /// `InitiateAuth` `USER_AUTH` for `username`: the preferred first factor's step when the
    /// user has it (`PASSWORD` needs `password` with it), else `SELECT_CHALLENGE` with the
    /// factors it has.
    #[allow(clippy::too_many_arguments)]
    pub async fn initiate_user_auth(
        &self,
        pool: &Pool,
        client_id: &str,
        client_secret: Option<Secret>,
        username: &str,
        preferred: Option<&str>,
        password: Option<&Secret>,
        meta: &RequestMeta,
    ) -> ServiceResult<SignInOutcome> {
        let client = self.sign_in_client(pool, client_id, client_secret).await?;
        self.require_auth_flow(&client, gatehouse_domain::client::AuthFlow::UserAuth)?;
        let preferred = preferred.map(first_factor).transpose()?;
        if preferred == Some(PASSWORD) {
            let password = password.ok_or_else(|| {
                ServiceError::Invalid(ParseError::new(
                    "PASSWORD",
                    "required with PREFERRED_CHALLENGE PASSWORD",
                ))
            })?;
            return self
                .password_first_factor(pool, &client, username, password, None, meta)
                .await;
        }
        let name = Username::parse(username).ok();
        if let Some(name) = &name {
            self.code_attempt_allowed(pool, name).await?;
        }
        let user = match &name {
            Some(name) => self
                .store
                .user_by_username(pool.id, name)
                .await?
                .filter(|u| u.enabled.is_enabled()),
            None => None,
        };
        let available = first_factors(pool, user.as_ref());
        let audience = client.client_id.as_str();
        if let Some(chosen) = preferred
            && available.contains(&chosen)
        {
            return self
                .first_factor_step(pool, user.as_ref(), audience, chosen)
                .await;
        }
        let sub = user
            .as_ref()
            .map_or_else(|| UserId::new_random().to_string(), |u| u.id.to_string());
        let session = self
            .challenge_session_with(
                pool,
                &sub,
                audience,
                SELECT_CHALLENGE,
                ChallengeExtras {
                    otp: None,
                    first: true,
                },
            )
            .await?;
        Ok(SignInOutcome::SelectChallenge { session, available })
    }

    /// `RespondToAuthChallenge` `SELECT_CHALLENGE`: the chosen first factor. `PASSWORD`
    /// (with `password`) is checked at once and uses the session up in the transaction that
    /// signs in; `EMAIL_OTP` and `WEB_AUTHN` use it up and start their challenge.
    #[allow(clippy::too_many_arguments)]
    pub async fn respond_select_challenge(
        &self,
        pool: &Pool,
        client_id: &str,
        client_secret: Option<Secret>,
        session: &str,
        username: &str,
        answer: &str,
        password: Option<&Secret>,
        meta: &RequestMeta,
    ) -> ServiceResult<SignInOutcome> {
        let client = self.sign_in_client(pool, client_id, client_secret).await?;
        let audience = client.client_id.as_str();
        let chosen = first_factor(answer)?;
        let claims = self
            .verify_challenge(pool, audience, session, SELECT_CHALLENGE)
            .await?;
        if chosen == PASSWORD {
            let password = password.ok_or_else(|| {
                ServiceError::Invalid(ParseError::new("PASSWORD", "required with ANSWER PASSWORD"))
            })?;
            return self
                .password_first_factor(pool, &client, username, password, Some(&claims), meta)
                .await;
        }
        let user_id = UserId::parse(&claims.sub).map_err(|_| expired())?;
        let mut w = self.store.write(pool.id).await?;
        if !w
            .use_once(&claims.jti, self.now(), Timestamp(claims.exp))
            .await?
        {
            return Err(expired());
        }
        let user = w
            .user_by_id(user_id)
            .await?
            .filter(|u| u.enabled.is_enabled());
        // A choice that is not offered leaves the session good (the claim rolls back).
        if !first_factors(pool, user.as_ref()).contains(&chosen) {
            return Err(invalid("that challenge is not among AvailableChallenges"));
        }
        w.commit().await?;
        self.first_factor_step(pool, user.as_ref(), audience, chosen)
            .await
    }

    /// The step of a passwordless first factor: an e-mail code sent (for a username
    /// without a user, one never sent), or a passkey assertion to make.
    async fn first_factor_step(
        &self,
        pool: &Pool,
        user: Option<&User>,
        audience: &str,
        chosen: &'static str,
    ) -> ServiceResult<SignInOutcome> {
        let (session, parameters) = match (chosen, user) {
            (EMAIL_OTP, Some(user)) => self.email_otp_step(pool, user, audience, true).await?,
            (EMAIL_OTP, None) => {
                let mut parameters = ChallengeParameters::new();
                parameters.insert(crate::email_otp::CODE_DELIVERY_DESTINATION, "***".into());
                parameters.insert(
                    crate::email_otp::CODE_DELIVERY_DELIVERY_MEDIUM,
                    "EMAIL".into(),
                );
                let session = self
                    .challenge_session_with(
                        pool,
                        &UserId::new_random().to_string(),
                        audience,
                        EMAIL_OTP,
                        ChallengeExtras {
                            otp: Some(&numeric_code()),
                            first: true,
                        },
                    )
                    .await?;
                (session, parameters)
            }
            (WEB_AUTHN, Some(user)) => self.mfa_step(pool, user, audience, WEB_AUTHN).await?,
            _ => return Err(invalid("that challenge is not among AvailableChallenges")),
        };
        Ok(SignInOutcome::Mfa {
            challenge: chosen,
            session,
            parameters,
        })
    }

    /// A password as the first factor: exactly the password sign-in's step, and when it
    /// answers a `SELECT_CHALLENGE` (`claims`), that session is used up in the transaction
    /// that signs in (or that the second factor's challenge follows), for the user it was
    /// issued to.
    async fn password_first_factor(
        &self,
        pool: &Pool,
        client: &AppClient,
        username: &str,
        password: &Secret,
        claims: Option<&crate::signin::ChallengeClaims>,
        meta: &RequestMeta,
    ) -> ServiceResult<SignInOutcome> {
        let audience = client.client_id.as_str();
        match self.check_password(pool, username, password, meta).await? {
            PasswordChecked::NewPasswordRequired { user } => {
                if let Some(claims) = claims {
                    self.take_select_challenge(pool, claims, &user).await?;
                }
                Ok(SignInOutcome::NewPasswordRequired {
                    session: self.new_password_challenge(pool, &user, audience).await?,
                })
            }
            PasswordChecked::SignedIn { mut w, user } => {
                if let Some(claims) = claims {
                    self.claim_select_challenge(w.as_mut(), claims, &user)
                        .await?;
                }
                if let Some(challenge) = self.mfa_challenge_for(pool, w.as_mut(), &user).await? {
                    w.commit().await?;
                    return self.mfa_outcome(pool, &user, audience, challenge).await;
                }
                self.start_session(pool, client, w, &user, meta).await
            }
        }
    }

    /// Uses up a `SELECT_CHALLENGE` session answered for `user`.
    async fn take_select_challenge(
        &self,
        pool: &Pool,
        claims: &crate::signin::ChallengeClaims,
        user: &User,
    ) -> ServiceResult<()> {
        let mut w = self.store.write(pool.id).await?;
        self.claim_select_challenge(w.as_mut(), claims, user)
            .await?;
        w.commit().await?;
        Ok(())
    }

    /// Takes a `SELECT_CHALLENGE` session through `w`, if it was issued to `user`.
    async fn claim_select_challenge(
        &self,
        w: &mut dyn gatehouse_domain::txn::PoolWrite,
        claims: &crate::signin::ChallengeClaims,
        user: &User,
    ) -> ServiceResult<()> {
        if claims.sub != user.id.to_string()
            || !w
                .use_once(&claims.jti, self.now(), Timestamp(claims.exp))
                .await?
        {
            return Err(expired());
        }
        Ok(())
    }
}

/// The first factors `user` can sign in with, in the order offered. A username without an
/// enabled user is answered as one with a verified address and no passkey.
fn first_factors(pool: &Pool, user: Option<&User>) -> Vec<&'static str> {
    let mut factors = vec![PASSWORD];
    let email = user.is_none_or(can_receive_codes);
    if email && pool.settings.mfa != MfaMode::Required {
        factors.push(EMAIL_OTP);
    }
    if user.is_some_and(|u| u.mfa.passkey) {
        factors.push(WEB_AUTHN);
    }
    factors
}
