//! Second factors in sign-in: software tokens (TOTP, RFC 6238) and recovery codes.
//!
//! A user enrolls a token with a signed-in access token of its own (or, when the pool
//! requires a factor and the user has none, with its `MFA_SETUP` challenge session): the
//! secret is sealed with the master key and stays pending until the first valid code
//! confirms it, which answers the user's ten recovery codes, once. From then on its password
//! sign-ins end in `SOFTWARE_TOKEN_MFA`, answered with a current code or a recovery code.
//!
//! A code is good once: the step it was accepted at is recorded with a compare-and-set in the
//! transaction that signs the user in (or confirms the token), and a code of that step or an
//! earlier one is refused ever after. A recovery code is taken (deleted) the same way. Wrong
//! codes count toward the username's lockout exactly as wrong passwords do, and a locked
//! username cannot answer a challenge either.

use gatehouse_crypto::secret::Secret;
use gatehouse_crypto::totp;
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::{UserId, Username};
use gatehouse_domain::lockout::LockoutPolicy;
use gatehouse_domain::mfa::{MfaMode, TotpCredential};
use gatehouse_domain::pool::Pool;
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::txn::PoolWrite;
use gatehouse_domain::user::User;

use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::messages::{MessageKind, OutboundMessage};
use crate::principal::Principal;
use crate::signin::SignInOutcome;
use crate::users::self_service::own_id;
use crate::{Gatehouse, RequestMeta};

pub const SOFTWARE_TOKEN_MFA: &str = "SOFTWARE_TOKEN_MFA";
pub const MFA_SETUP: &str = "MFA_SETUP";
/// The challenge of the session Cognito's `VerifySoftwareToken` answers during `MFA_SETUP`:
/// the token is enrolled, and `RespondToAuthChallenge` `MFA_SETUP` with it signs in.
const MFA_SETUP_VERIFIED: &str = "MFA_SETUP_VERIFIED";

/// A software token being enrolled: its secret in base32 and as an `otpauth://` URI.
#[derive(Debug)]
pub struct TotpAssociation {
    pub secret: Secret,
    pub uri: Secret,
}

/// The recovery codes a confirmed enrollment answers, once.
#[derive(Debug)]
pub struct RecoveryCodes(pub Vec<Secret>);

/// An `MFA_SETUP` answered: the user's first tokens and its recovery codes.
#[derive(Debug)]
pub struct SetupDone {
    pub signed_in: SignInOutcome,
    pub recovery_codes: RecoveryCodes,
}

fn code_mismatch() -> ServiceError {
    ServiceError::Unauthenticated("invalid code".to_owned())
}

fn expired() -> ServiceError {
    ServiceError::Unauthenticated("invalid or expired session".to_owned())
}

/// `otpauth://totp/<issuer>:<user>?secret=…&issuer=…` (Google Key-Uri-Format).
fn otpauth_uri(issuer: &str, account: &str, secret_b32: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret_b32}&issuer={}&algorithm=SHA1&digits={}&period={}",
        enc(issuer),
        enc(account),
        enc(issuer),
        totp::DIGITS,
        totp::STEP_SECS
    )
}

impl Gatehouse {
    /// The second factors `user` can answer with now, read through `w`, in the order they
    /// are offered: a confirmed software token, passkeys, e-mail codes (turned on, and the
    /// address still verified).
    pub(crate) async fn mfa_factors(
        &self,
        w: &mut dyn PoolWrite,
        user: &User,
    ) -> ServiceResult<Vec<&'static str>> {
        let mut factors = Vec::new();
        if w.totp_credential(user.id)
            .await?
            .is_some_and(|c| c.is_confirmed())
        {
            factors.push(SOFTWARE_TOKEN_MFA);
        }
        if !w.passkeys_of_user(user.id).await?.is_empty() {
            factors.push(crate::passkeys::WEB_AUTHN);
        }
        if user.mfa.has_email_otp() && crate::email_otp::can_receive_codes(user) {
            factors.push(crate::email_otp::EMAIL_OTP);
        }
        Ok(factors)
    }

    /// The second-factor challenge a user who just proved its password must answer before
    /// it is signed in, read in the sign-in's transaction: none when the pool's MFA is off;
    /// the one factor the user holds (`SOFTWARE_TOKEN_MFA`, `WEB_AUTHN`, `EMAIL_OTP`),
    /// `SELECT_MFA_TYPE` for several; `MFA_SETUP` when the pool requires a factor and the
    /// user has none.
    pub(crate) async fn mfa_challenge_for(
        &self,
        pool: &Pool,
        w: &mut dyn PoolWrite,
        user: &User,
    ) -> ServiceResult<Option<&'static str>> {
        self.mfa_challenge_after(pool, w, user, None).await
    }

    /// [`Gatehouse::mfa_challenge_for`] once the sign-in passed `passed` as its first factor
    /// (an e-mail code in `USER_AUTH`), which is not asked for again.
    pub(crate) async fn mfa_challenge_after(
        &self,
        pool: &Pool,
        w: &mut dyn PoolWrite,
        user: &User,
        passed: Option<&str>,
    ) -> ServiceResult<Option<&'static str>> {
        if pool.settings.mfa == MfaMode::Off {
            return Ok(None);
        }
        let mut factors = self.mfa_factors(w, user).await?;
        factors.retain(|f| Some(*f) != passed);
        Ok(match (factors.as_slice(), pool.settings.mfa) {
            ([], MfaMode::Required) => Some(MFA_SETUP),
            ([], _) => None,
            ([one], _) => Some(*one),
            _ => Some(crate::passkeys::SELECT_MFA_TYPE),
        })
    }

    /// Refuses a code while the username is locked out or backing off.
    pub(crate) async fn code_attempt_allowed(
        &self,
        pool: &Pool,
        name: &Username,
    ) -> ServiceResult<()> {
        let now = self.now();
        if let Some(failures) = self.store.sign_in_failures(pool.id, name).await?
            && let Some(at) = LockoutPolicy::default().next_attempt_at(&failures, now)
        {
            return Err(ServiceError::throttled_until(
                "too many failed sign-ins for this username; try again later",
                at,
                now,
            ));
        }
        Ok(())
    }

    /// A factor passed: the username's failures, kept while the factor was owed, end with
    /// `w`, the transaction that signs the user in.
    pub(crate) async fn clear_failures_in(
        &self,
        w: &mut dyn PoolWrite,
        pool: &Pool,
        name: &Username,
    ) -> ServiceResult<()> {
        if self.store.sign_in_failures(pool.id, name).await?.is_some() {
            w.clear_sign_in_failures(name).await?;
        }
        Ok(())
    }

    /// Counts a wrong code like a wrong password, and answers the refusal. Called with no
    /// write transaction open.
    pub(crate) async fn wrong_code(
        &self,
        pool: &Pool,
        name: &Username,
        meta: &RequestMeta,
    ) -> ServiceResult<ServiceError> {
        self.count_sign_in_failure(pool, name, &LockoutPolicy::default(), self.now(), meta)
            .await?;
        Ok(code_mismatch())
    }

    fn open_secret(&self, pool: &Pool, credential: &TotpCredential) -> ServiceResult<Vec<u8>> {
        let secret = self
            .keyring
            .open_code(
                pool.id,
                &TotpCredential::secret_label(credential.user_id),
                &credential.sealed_secret,
            )
            .ok_or_else(|| ServiceError::internal("a software token secret cannot be opened"))?;
        base32_decode(secret.expose())
            .ok_or_else(|| ServiceError::internal("a software token secret is malformed"))
    }

    /// Stores a new pending token for `user` inside `w`, unless a confirmed one exists.
    async fn associate_in(
        &self,
        w: &mut dyn PoolWrite,
        pool: &Pool,
        user: &User,
    ) -> ServiceResult<TotpAssociation> {
        if w.totp_credential(user.id)
            .await?
            .is_some_and(|c| c.is_confirmed())
        {
            return Err(ServiceError::Conflict(
                "a software token is already enrolled; an administrator can disable MFA first"
                    .to_owned(),
            ));
        }
        let b32 = totp::base32(&totp::new_secret());
        let sealed = self.keyring.seal_code(
            pool.id,
            &TotpCredential::secret_label(user.id),
            &Secret::new(b32.clone()),
        )?;
        w.put_totp_credential(&TotpCredential {
            pool: pool.id,
            user_id: user.id,
            sealed_secret: sealed,
            confirmed_at: None,
            last_step: None,
            created_at: self.now(),
        })
        .await?;
        let uri = otpauth_uri(pool.slug.as_str(), user.username.as_str(), &b32);
        Ok(TotpAssociation {
            secret: Secret::new(b32),
            uri: Secret::new(uri),
        })
    }

    /// Starts enrolling a software token for the caller (its own access token; never an
    /// impersonated one). The enrollment is pending until [`Gatehouse::verify_totp`].
    pub async fn associate_totp(
        &self,
        pool: &Pool,
        principal: &Principal,
    ) -> ServiceResult<TotpAssociation> {
        refuse_impersonation(principal)?;
        let id = own_id(pool, principal)?;
        let mut w = self.store.write(pool.id).await?;
        let user = self.own_user_in(w.as_mut(), principal, id).await?;
        let association = self.associate_in(w.as_mut(), pool, &user).await?;
        w.commit().await?;
        Ok(association)
    }

    /// Confirms the caller's pending software token with its first valid code, and answers
    /// the user's new recovery codes (shown this once).
    pub async fn verify_totp(
        &self,
        pool: &Pool,
        principal: &Principal,
        code: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<RecoveryCodes> {
        refuse_impersonation(principal)?;
        let id = own_id(pool, principal)?;
        let mut w = self.store.write(pool.id).await?;
        let user = self.own_user_in(w.as_mut(), principal, id).await?;
        self.code_attempt_allowed(pool, &user.username).await?;
        match self.confirm_in(w.as_mut(), pool, &user, code, meta).await? {
            Some(codes) => {
                w.commit().await?;
                Ok(codes)
            }
            None => {
                drop(w);
                Err(self.wrong_code(pool, &user.username, meta).await?)
            }
        }
    }

    /// Confirms `user`'s pending token inside `w` if `code` is valid: records its step, marks
    /// the user enrolled, replaces its recovery codes. `None` when the code is wrong (or of a
    /// step already used).
    async fn confirm_in(
        &self,
        w: &mut dyn PoolWrite,
        pool: &Pool,
        user: &User,
        code: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<Option<RecoveryCodes>> {
        let credential = w
            .totp_credential(user.id)
            .await?
            .filter(|c| !c.is_confirmed())
            .ok_or_else(|| {
                ServiceError::Conflict(
                    "no software token is being enrolled; associate one first".to_owned(),
                )
            })?;
        let secret = self.open_secret(pool, &credential)?;
        let now = self.now();
        let Some(step) = totp::matching_step(&secret, code.trim(), now.as_secs()) else {
            return Ok(None);
        };
        if !w.accept_totp_step(user.id, step, Some(now)).await? {
            return Ok(None);
        }
        let mut updated = w
            .user_by_id(user.id)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        updated.mfa = updated.mfa.with_software_token();
        updated.updated_at = now;
        w.update_user(&updated)
            .await
            .map_err(crate::users::user_write_error)?;
        let codes: Vec<String> = (0..totp::RECOVERY_CODES)
            .map(|_| totp::new_recovery_code())
            .collect();
        let digests: Vec<String> = codes
            .iter()
            .filter_map(|c| totp::recovery_code_digest(c))
            .collect();
        w.replace_recovery_codes(user.id, &digests).await?;
        let event = self
            .event(pool, AuditAction::UserMfaEnrolled, None, meta)
            .subject(&user.username)
            .detail("factor", "software_token");
        w.audit(&event).await?;
        Ok(Some(RecoveryCodes(
            codes.into_iter().map(Secret::new).collect(),
        )))
    }

    /// `MFA_SETUP`, first half: the challenge session stands in for an access token to
    /// start enrolling a token. The session is not used up: the verification answers it.
    pub async fn associate_totp_for_challenge(
        &self,
        pool: &Pool,
        client_id: &str,
        client_secret: Option<Secret>,
        session: &str,
    ) -> ServiceResult<TotpAssociation> {
        let client = self.sign_in_client(pool, client_id, client_secret).await?;
        let claims = self
            .verify_challenge(pool, client.client_id.as_str(), session, MFA_SETUP)
            .await?;
        let user_id = UserId::parse(&claims.sub).map_err(|_| expired())?;
        let mut w = self.store.write(pool.id).await?;
        let user = w
            .user_by_id(user_id)
            .await?
            .filter(|u| u.enabled.is_enabled())
            .ok_or_else(expired)?;
        let association = self.associate_in(w.as_mut(), pool, &user).await?;
        w.commit().await?;
        Ok(association)
    }

    /// Starts enrolling a software token for `user`, who owes the pool a factor (the hosted
    /// pages' `MFA_SETUP`, after the password).
    pub(crate) async fn associate_totp_for_user(
        &self,
        pool: &Pool,
        user: &User,
    ) -> ServiceResult<TotpAssociation> {
        let mut w = self.store.write(pool.id).await?;
        let user = w
            .user_by_id(user.id)
            .await?
            .filter(|u| u.enabled.is_enabled())
            .ok_or_else(expired)?;
        let association = self.associate_in(w.as_mut(), pool, &user).await?;
        w.commit().await?;
        Ok(association)
    }

    /// `MFA_SETUP`, second half: the first valid code confirms the token, uses the challenge
    /// session up and signs the user in, in one transaction.
    pub async fn verify_totp_for_challenge(
        &self,
        pool: &Pool,
        client_id: &str,
        client_secret: Option<Secret>,
        session: &str,
        code: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<SetupDone> {
        let client = self.sign_in_client(pool, client_id, client_secret).await?;
        let (w, user, codes) = self
            .confirm_setup(pool, client.client_id.as_str(), session, code, meta)
            .await?;
        let signed_in = self.start_session(pool, &client, w, &user, meta).await?;
        Ok(SetupDone {
            signed_in,
            recovery_codes: codes,
        })
    }

    /// Checks an `MFA_SETUP` answer bound to `audience`: the session claimed and the token
    /// confirmed in a transaction answered open, to sign the user in with.
    pub(crate) async fn confirm_setup(
        &self,
        pool: &Pool,
        audience: &str,
        session: &str,
        code: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<(Box<dyn PoolWrite>, User, RecoveryCodes)> {
        let claims = self
            .verify_challenge(pool, audience, session, MFA_SETUP)
            .await?;
        let user_id = UserId::parse(&claims.sub).map_err(|_| expired())?;
        let now = self.now();
        let mut w = self.store.write(pool.id).await?;
        let user = w
            .user_by_id(user_id)
            .await?
            .filter(|u| u.enabled.is_enabled())
            .ok_or_else(expired)?;
        self.code_attempt_allowed(pool, &user.username).await?;
        // The claim first: a used session is refused as such. A wrong code rolls it back,
        // so the user may try again while the session lasts (the lockout bounds the tries).
        if !w.use_once(&claims.jti, now, Timestamp(claims.exp)).await? {
            return Err(expired());
        }
        let Some(codes) = self.confirm_in(w.as_mut(), pool, &user, code, meta).await? else {
            drop(w);
            return Err(self.wrong_code(pool, &user.username, meta).await?);
        };
        Ok((w, user, codes))
    }

    /// Cognito's `AssociateSoftwareToken` with the `MFA_SETUP` session (its request names
    /// no client: the session's own audience stands). The session is not used up.
    pub async fn associate_totp_for_session(
        &self,
        pool: &Pool,
        session: &str,
    ) -> ServiceResult<TotpAssociation> {
        let claims = self
            .verify_challenge_for(pool, None, session, MFA_SETUP)
            .await?;
        let user_id = UserId::parse(&claims.sub).map_err(|_| expired())?;
        let mut w = self.store.write(pool.id).await?;
        let user = w
            .user_by_id(user_id)
            .await?
            .filter(|u| u.enabled.is_enabled())
            .ok_or_else(expired)?;
        let association = self.associate_in(w.as_mut(), pool, &user).await?;
        w.commit().await?;
        Ok(association)
    }

    /// Cognito's `VerifySoftwareToken` with the `MFA_SETUP` session: the first valid code
    /// confirms the token and uses the session up, in one transaction, and a new session
    /// (for the same client) answers `MFA_SETUP` to sign in. Cognito shows no recovery
    /// codes; the user's are made as for every enrollment and can be replaced by enrolling
    /// again after `disable-mfa`.
    pub async fn verify_totp_for_session(
        &self,
        pool: &Pool,
        session: &str,
        code: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<Secret> {
        let claims = self
            .verify_challenge_for(pool, None, session, MFA_SETUP)
            .await?;
        let user_id = UserId::parse(&claims.sub).map_err(|_| expired())?;
        let now = self.now();
        let mut w = self.store.write(pool.id).await?;
        let user = w
            .user_by_id(user_id)
            .await?
            .filter(|u| u.enabled.is_enabled())
            .ok_or_else(expired)?;
        self.code_attempt_allowed(pool, &user.username).await?;
        if !w.use_once(&claims.jti, now, Timestamp(claims.exp)).await? {
            return Err(expired());
        }
        if self
            .confirm_in(w.as_mut(), pool, &user, code, meta)
            .await?
            .is_none()
        {
            drop(w);
            return Err(self.wrong_code(pool, &user.username, meta).await?);
        }
        w.commit().await?;
        self.challenge_session(pool, &user, &claims.aud, MFA_SETUP_VERIFIED)
            .await
    }

    /// Cognito's `RespondToAuthChallenge` `MFA_SETUP`: the session `VerifySoftwareToken`
    /// answered signs the user in, once, for the client it was issued to.
    pub async fn respond_mfa_setup(
        &self,
        pool: &Pool,
        client_id: &str,
        client_secret: Option<Secret>,
        session: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<SignInOutcome> {
        let client = self.sign_in_client(pool, client_id, client_secret).await?;
        let claims = self
            .verify_challenge(pool, client.client_id.as_str(), session, MFA_SETUP_VERIFIED)
            .await?;
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
            .filter(|u| u.enabled.is_enabled() && u.mfa.has_software_token())
            .ok_or_else(expired)?;
        self.start_session(pool, &client, w, &user, meta).await
    }

    /// Answers `SOFTWARE_TOKEN_MFA` with a current code or a recovery code: in one
    /// transaction the session is used up, the code's step (or the recovery code) is taken,
    /// and the user is signed in.
    pub async fn respond_software_token(
        &self,
        pool: &Pool,
        client_id: &str,
        client_secret: Option<Secret>,
        session: &str,
        code: &Secret,
        meta: &RequestMeta,
    ) -> ServiceResult<SignInOutcome> {
        let client = self.sign_in_client(pool, client_id, client_secret).await?;
        let (w, user, recovery) = self
            .answer_software_token(pool, client.client_id.as_str(), session, code, meta)
            .await?;
        let outcome = self.start_session(pool, &client, w, &user, meta).await?;
        if recovery {
            self.notify_recovery_code_used(pool, &user).await;
        }
        Ok(outcome)
    }

    /// Checks an answer to `SOFTWARE_TOKEN_MFA` bound to `audience`, and answers the open
    /// transaction to sign the user in with, and whether a recovery code was used.
    pub(crate) async fn answer_software_token(
        &self,
        pool: &Pool,
        audience: &str,
        session: &str,
        code: &Secret,
        meta: &RequestMeta,
    ) -> ServiceResult<(Box<dyn PoolWrite>, User, bool)> {
        let claims = self
            .verify_challenge(pool, audience, session, SOFTWARE_TOKEN_MFA)
            .await?;
        let user_id = UserId::parse(&claims.sub).map_err(|_| expired())?;
        let known = self
            .store
            .user_by_id(pool.id, user_id)
            .await?
            .ok_or_else(expired)?;
        self.code_attempt_allowed(pool, &known.username).await?;
        let now = self.now();
        let answer = code.expose().trim();
        let is_totp = answer.len() == totp::DIGITS && answer.bytes().all(|b| b.is_ascii_digit());
        let mut w = self.store.write(pool.id).await?;
        let user = w
            .user_by_id(user_id)
            .await?
            .filter(|u| u.enabled.is_enabled())
            .ok_or_else(expired)?;
        let credential = w
            .totp_credential(user.id)
            .await?
            .filter(|c| c.is_confirmed())
            .ok_or_else(expired)?;
        // The claim first, so a used session is refused as such: of answers racing on one
        // challenge, exactly one passes. A wrong code rolls it back with the transaction, so
        // the user may try again while the session lasts (the lockout bounds the tries).
        if !w.use_once(&claims.jti, now, Timestamp(claims.exp)).await? {
            return Err(expired());
        }
        let accepted = if is_totp {
            let secret = self.open_secret(pool, &credential)?;
            match totp::matching_step(&secret, answer, now.as_secs()) {
                Some(step) => w.accept_totp_step(user.id, step, None).await?,
                None => false,
            }
        } else {
            match totp::recovery_code_digest(answer) {
                Some(digest) => w.take_recovery_code(user.id, &digest).await?,
                None => false,
            }
        };
        if !accepted {
            drop(w);
            return Err(self.wrong_code(pool, &user.username, meta).await?);
        }
        let mut used = self
            .event(pool, AuditAction::TokenRevoked, None, meta)
            .subject(&user.username)
            .detail("challenge", SOFTWARE_TOKEN_MFA);
        if !is_totp {
            used = self
                .event(pool, AuditAction::MfaRecoveryCodeUsed, None, meta)
                .subject(&user.username)
                .detail("challenge", SOFTWARE_TOKEN_MFA);
        }
        w.audit(&used).await?;
        self.clear_failures_in(w.as_mut(), pool, &user.username)
            .await?;
        Ok((w, user, !is_totp))
    }

    /// Tells the user a recovery code was used. A failed delivery does not undo the
    /// sign-in (it is audited as the code's use already is).
    pub(crate) async fn notify_recovery_code_used(&self, pool: &Pool, user: &User) {
        self.security_notice(
            pool,
            user,
            "A recovery code was used to sign in",
            &format!(
                "A recovery code of your account {} was used to sign in. If this was not you, \
                 contact your administrator.",
                user.username
            ),
        )
        .await;
    }

    /// Tells the user its second factors were removed by an administrator.
    pub(crate) async fn notify_mfa_disabled(&self, pool: &Pool, user: &User) {
        self.security_notice(
            pool,
            user,
            "Multi-factor authentication was turned off",
            &format!(
                "An administrator removed the second factors of your account {}: its \
                 authenticator app and recovery codes no longer work, and you were signed out. \
                 If you did not ask for this, contact your administrator.",
                user.username
            ),
        )
        .await;
    }

    /// A notice to the user's e-mail address; a failed delivery is logged, not raised (what
    /// it tells of is done and audited already).
    async fn security_notice(&self, pool: &Pool, user: &User, subject: &str, body: &str) {
        let message = OutboundMessage {
            kind: MessageKind::SecurityNotice,
            pool: pool.slug.to_string(),
            username: user.username.to_string(),
            to_email: Some(user.attributes.email.clone()).filter(|e| !e.is_empty()),
            to_phone: None,
            subject: subject.to_owned(),
            body: body.to_owned(),
        };
        if let Err(e) = self.deliver(&message).await {
            tracing::warn!(error = %e, subject, "a security notice was not delivered");
        }
    }
}

fn refuse_impersonation(principal: &Principal) -> ServiceResult<()> {
    if principal.is_impersonated() {
        return Err(ServiceError::Forbidden(
            "an impersonated token cannot enroll a second factor".to_owned(),
        ));
    }
    Ok(())
}

/// RFC 4648 base32 (upper case, no padding) back to bytes.
fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_round_trips() {
        for len in 0..25 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base32_decode(&totp::base32(&data)).unwrap(), data);
        }
        assert_eq!(base32_decode("ab"), None);
    }

    #[test]
    fn otpauth_uri_escapes_its_parts() {
        let uri = otpauth_uri("my pool", "a:b@c", "ABC");
        assert_eq!(
            uri,
            "otpauth://totp/my%20pool:a%3Ab%40c?secret=ABC&issuer=my%20pool&algorithm=SHA1&digits=6&period=30"
        );
    }
}
