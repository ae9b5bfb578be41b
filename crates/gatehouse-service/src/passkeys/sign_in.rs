//! Signing in with a passkey: the `WEB_AUTHN` second factor, the choice of
//! `SELECT_MFA_TYPE`, and passwordless sign-in with a discoverable credential.

use gatehouse_crypto::secret::{Secret, b64url, b64url_decode};
use gatehouse_domain::ParseError;
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::UserId;
use gatehouse_domain::lockout::LockoutPolicy;
use gatehouse_domain::mfa::MfaMode;
use gatehouse_domain::passkey::{
    CEREMONY_TTL_SECS, CeremonyPurpose, PasskeyCredential, PasskeyUse,
};
use gatehouse_domain::pool::Pool;
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::txn::PoolWrite;
use gatehouse_domain::user::User;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, PasskeyAuthentication, PublicKeyCredential, WebauthnError,
};

use super::{
    CREDENTIAL_REQUEST_OPTIONS, ChallengeParameters, MFAS_CAN_CHOOSE, SELECT_MFA_TYPE, WEB_AUTHN,
    challenge_of, expired, internal, malformed, may_sign_in, no_ceremony, parse_passkey, refused,
};
use serde::{Deserialize, Serialize};

use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::signin::SignInOutcome;
use crate::{Gatehouse, RequestMeta};

/// The label a passwordless ceremony's state is sealed under.
const PASSWORDLESS_LABEL: &str = "passkey-passwordless";

/// A passwordless ceremony's state as the browser keeps it, sealed.
#[derive(Serialize, Deserialize)]
struct SealedCeremony {
    /// webauthn-rs' `DiscoverableAuthentication` (its challenge among it).
    state: String,
    /// When it expires (Unix seconds).
    exp: i64,
}

/// How an assertion failed, for the audit log and the lockout.
enum Refusal {
    /// The counter did not grow: a cloned authenticator.
    Regressed {
        credential_id: String,
        presented: u32,
    },
    /// Anything else: a bad signature, no user verification, another origin or challenge,
    /// a credential that is not the user's.
    Invalid(String),
}

impl Gatehouse {
    /// The session and parameters of a second-factor challenge `challenge` for `user`, bound
    /// to `audience`: `WEB_AUTHN` starts an assertion ceremony over the user's passkeys and
    /// carries its options; `SELECT_MFA_TYPE` names the factors to choose from.
    pub(crate) async fn mfa_step(
        &self,
        pool: &Pool,
        user: &User,
        audience: &str,
        challenge: &'static str,
    ) -> ServiceResult<(Secret, ChallengeParameters)> {
        let mut parameters = ChallengeParameters::new();
        match challenge {
            WEB_AUTHN => {
                let options = self.start_second_factor(pool, user).await?;
                parameters.insert(CREDENTIAL_REQUEST_OPTIONS, options.to_string());
            }
            crate::email_otp::EMAIL_OTP => {
                return self.email_otp_step(pool, user, audience, false).await;
            }
            SELECT_MFA_TYPE => {
                let mut w = self.store.write(pool.id).await?;
                let choices = self.mfa_factors(w.as_mut(), user).await?;
                drop(w);
                parameters.insert(MFAS_CAN_CHOOSE, serde_json::json!(choices).to_string());
            }
            _ => {}
        }
        let session = self
            .challenge_session(pool, user, audience, challenge)
            .await?;
        Ok((session, parameters))
    }

    /// A sign-in step's outcome for the API: the challenge, its session and parameters.
    pub(crate) async fn mfa_outcome(
        &self,
        pool: &Pool,
        user: &User,
        audience: &str,
        challenge: &'static str,
    ) -> ServiceResult<SignInOutcome> {
        let (session, parameters) = self.mfa_step(pool, user, audience, challenge).await?;
        Ok(SignInOutcome::Mfa {
            challenge,
            session,
            parameters,
        })
    }

    /// Starts an assertion over `user`'s passkeys; answers
    /// `PublicKeyCredentialRequestOptionsJSON`.
    async fn start_second_factor(
        &self,
        pool: &Pool,
        user: &User,
    ) -> ServiceResult<serde_json::Value> {
        let webauthn = self.webauthn(pool)?;
        let mut w = self.store.write(pool.id).await?;
        let mut passkeys = Vec::new();
        for p in w.passkeys_of_user(user.id).await? {
            passkeys.push(parse_passkey(&p)?);
        }
        if passkeys.is_empty() {
            return Err(expired());
        }
        let (options, state) = webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(internal)?;
        let state = serde_json::to_string(&state).map_err(internal)?;
        let challenge = options.public_key.challenge.to_vec();
        w.put_ceremony(&self.ceremony(
            pool,
            &challenge,
            CeremonyPurpose::SecondFactor,
            user.id,
            state,
        ))
        .await?;
        w.commit().await?;
        serde_json::to_value(&options.public_key).map_err(internal)
    }

    /// Answers `SELECT_MFA_TYPE` through the API: the session is used up and the chosen
    /// factor's challenge follows.
    pub async fn respond_select_mfa_type(
        &self,
        pool: &Pool,
        client_id: &str,
        client_secret: Option<Secret>,
        session: &str,
        answer: &str,
    ) -> ServiceResult<SignInOutcome> {
        let client = self.sign_in_client(pool, client_id, client_secret).await?;
        let (user, chosen) = self
            .answer_select_mfa_type(pool, client.client_id.as_str(), session, answer)
            .await?;
        self.mfa_outcome(pool, &user, client.client_id.as_str(), chosen)
            .await
    }

    /// Takes a `SELECT_MFA_TYPE` session bound to `audience` and reads the choice.
    pub(crate) async fn answer_select_mfa_type(
        &self,
        pool: &Pool,
        audience: &str,
        session: &str,
        answer: &str,
    ) -> ServiceResult<(User, &'static str)> {
        let unknown = || {
            ServiceError::Invalid(ParseError::new(
                "answer",
                "choose one of the challenge's MFAS_CAN_CHOOSE",
            ))
        };
        let chosen = [
            crate::mfa::SOFTWARE_TOKEN_MFA,
            WEB_AUTHN,
            crate::email_otp::EMAIL_OTP,
        ]
        .into_iter()
        .find(|f| *f == answer)
        .ok_or_else(unknown)?;
        let claims = self
            .verify_challenge(pool, audience, session, SELECT_MFA_TYPE)
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
            .filter(|u| u.enabled.is_enabled())
            .ok_or_else(expired)?;
        // Only a factor the user holds now: the choice cannot reach one it never set up.
        if !self.mfa_factors(w.as_mut(), &user).await?.contains(&chosen) {
            return Err(unknown());
        }
        w.commit().await?;
        Ok((user, chosen))
    }

    /// Answers `WEB_AUTHN` through the API with `AuthenticationResponseJSON`.
    pub async fn respond_web_authn(
        &self,
        pool: &Pool,
        client_id: &str,
        client_secret: Option<Secret>,
        session: &str,
        credential: &serde_json::Value,
        meta: &RequestMeta,
    ) -> ServiceResult<SignInOutcome> {
        let client = self.sign_in_client(pool, client_id, client_secret).await?;
        let (w, user) = self
            .answer_web_authn(pool, client.client_id.as_str(), session, credential, meta)
            .await?;
        self.start_session(pool, &client, w, &user, meta).await
    }

    /// Checks an answer to `WEB_AUTHN` bound to `audience`, and answers the open
    /// transaction to sign the user in with (the session used up, the ceremony taken, the
    /// counter recorded).
    pub(crate) async fn answer_web_authn(
        &self,
        pool: &Pool,
        audience: &str,
        session: &str,
        credential: &serde_json::Value,
        meta: &RequestMeta,
    ) -> ServiceResult<(Box<dyn PoolWrite>, User)> {
        let claims = self
            .verify_challenge(pool, audience, session, WEB_AUTHN)
            .await?;
        if pool.settings.mfa == MfaMode::Off {
            return Err(expired());
        }
        let user_id = UserId::parse(&claims.sub).map_err(|_| expired())?;
        let known = self
            .store
            .user_by_id(pool.id, user_id)
            .await?
            .ok_or_else(expired)?;
        self.code_attempt_allowed(pool, &known.username).await?;
        let assertion: PublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|e| malformed("credential", e))?;
        let handle = challenge_of(&assertion.response.client_data_json).ok_or_else(no_ceremony)?;
        let webauthn = self.webauthn(pool)?;
        let now = self.now();
        let mut w = self.store.write(pool.id).await?;
        let user = w
            .user_by_id(user_id)
            .await?
            .filter(|u| u.enabled.is_enabled())
            .ok_or_else(expired)?;
        let ceremony = w
            .take_ceremony(&handle, now)
            .await?
            .filter(|c| c.purpose == CeremonyPurpose::SecondFactor && c.user_id == user.id);
        let Some(ceremony) = ceremony else {
            drop(w);
            return Err(no_ceremony());
        };
        let state: PasskeyAuthentication =
            serde_json::from_str(&ceremony.state).map_err(internal)?;
        let credential_id = b64url(assertion.get_credential_id());
        let stored = w
            .passkey(&credential_id)
            .await?
            .filter(|p| p.user_id == user.id);
        let checked = match stored {
            Some(stored) => {
                let result = webauthn.finish_passkey_authentication(&assertion, &state);
                self.check_assertion(w.as_mut(), stored, result, now)
                    .await?
            }
            None => Err(Refusal::Invalid("not a passkey of this user".to_owned())),
        };
        if let Err(refusal) = checked {
            return Err(self.refuse_assertion(pool, w, &user, refusal, meta).await?);
        }
        // The claim: of answers racing on one challenge, exactly one passes.
        if !w.use_once(&claims.jti, now, Timestamp(claims.exp)).await? {
            return Err(expired());
        }
        let event = self
            .event(pool, AuditAction::UserPasskeyUsed, None, meta)
            .subject(&user.username)
            .detail("challenge", WEB_AUTHN)
            .detail("credential_id", &credential_id);
        w.audit(&event).await?;
        self.clear_failures_in(w.as_mut(), pool, &user.username)
            .await?;
        Ok((w, user))
    }

    /// Starts a passwordless sign-in: options for a discoverable credential, which names its
    /// user (`PublicKeyCredentialRequestOptionsJSON`), and the ceremony's state sealed with
    /// the master key for the browser to keep (a cookie): an anonymous start writes nothing,
    /// and only the browser that started can finish.
    pub async fn start_passwordless(
        &self,
        pool: &Pool,
    ) -> ServiceResult<(serde_json::Value, Secret)> {
        let webauthn = self.webauthn(pool)?;
        let (options, state) = webauthn
            .start_discoverable_authentication()
            .map_err(internal)?;
        let sealed = SealedCeremony {
            state: serde_json::to_string(&state).map_err(internal)?,
            exp: self.now().plus_secs(CEREMONY_TTL_SECS).as_secs(),
        };
        let sealed = self.keyring.seal_code(
            pool.id,
            PASSWORDLESS_LABEL,
            &Secret::new(serde_json::to_string(&sealed).map_err(internal)?),
        )?;
        let options = serde_json::to_value(&options.public_key).map_err(internal)?;
        Ok((options, Secret::new(b64url(&sealed))))
    }

    /// Finishes a passwordless sign-in with the state [`Self::start_passwordless`] sealed:
    /// its challenge is taken once (`use_once`, until the ceremony would expire) in the
    /// transaction that checks the assertion; the credential's user handle names the user,
    /// whose passkey must verify. Answers the open transaction to sign the user in with.
    pub(crate) async fn finish_passwordless(
        &self,
        pool: &Pool,
        credential: &serde_json::Value,
        sealed: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<(Box<dyn PoolWrite>, User)> {
        let assertion: PublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|e| malformed("credential", e))?;
        let handle = challenge_of(&assertion.response.client_data_json).ok_or_else(no_ceremony)?;
        let ceremony = b64url_decode(sealed)
            .and_then(|bytes| self.keyring.open_code(pool.id, PASSWORDLESS_LABEL, &bytes))
            .and_then(|plain| serde_json::from_str::<SealedCeremony>(plain.expose()).ok())
            .ok_or_else(no_ceremony)?;
        let now = self.now();
        if ceremony.exp <= now.as_secs() {
            return Err(no_ceremony());
        }
        let webauthn = self.webauthn(pool)?;
        let (uuid, raw_id) = webauthn
            .identify_discoverable_authentication(&assertion)
            .map_err(|_| refused())?;
        let user_id = UserId::parse(&uuid.to_string()).map_err(|_| refused())?;
        let credential_id = b64url(raw_id);
        if let Some(known) = self.store.user_by_id(pool.id, user_id).await? {
            self.code_attempt_allowed(pool, &known.username).await?;
        }
        let mut w = self.store.write(pool.id).await?;
        // The claim: of answers racing on one ceremony, exactly one goes on; a refused one
        // spends it too (its transaction commits with the refusal's audit event).
        let claim = format!("passkey-challenge:{}", b64url(&handle));
        if !w.use_once(&claim, now, Timestamp(ceremony.exp)).await? {
            return Err(no_ceremony());
        }
        let state: DiscoverableAuthentication =
            serde_json::from_str(&ceremony.state).map_err(internal)?;
        let Some(user) = w.user_by_id(user_id).await?.filter(may_sign_in) else {
            w.commit().await?;
            return Err(refused());
        };
        let stored = w
            .passkey(&credential_id)
            .await?
            .filter(|p| p.user_id == user.id);
        let checked = match stored {
            Some(stored) => {
                let passkey = parse_passkey(&stored)?;
                let result =
                    webauthn.finish_discoverable_authentication_v2(&assertion, state, &passkey);
                self.check_assertion(w.as_mut(), stored, result, now)
                    .await?
            }
            None => Err(Refusal::Invalid("not a passkey of this user".to_owned())),
        };
        if let Err(refusal) = checked {
            return Err(self.refuse_assertion(pool, w, &user, refusal, meta).await?);
        }
        let event = self
            .event(pool, AuditAction::UserPasskeyUsed, None, meta)
            .subject(&user.username)
            .detail("challenge", "PASSWORDLESS")
            .detail("credential_id", &credential_id);
        w.audit(&event).await?;
        self.clear_failures_in(w.as_mut(), pool, &user.username)
            .await?;
        Ok((w, user))
    }

    /// After webauthn-rs checked an assertion against `stored`: the counter compared with
    /// the stored one (read in this transaction) and recorded by compare-and-set.
    async fn check_assertion(
        &self,
        w: &mut dyn PoolWrite,
        stored: PasskeyCredential,
        result: Result<webauthn_rs::prelude::AuthenticationResult, WebauthnError>,
        now: Timestamp,
    ) -> ServiceResult<Result<(), Refusal>> {
        let result = match result {
            Ok(r) => r,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                return Ok(Err(Refusal::Regressed {
                    credential_id: stored.credential_id,
                    presented: 0,
                }));
            }
            Err(e) => return Ok(Err(Refusal::Invalid(e.to_string()))),
        };
        if !result.user_verified() {
            return Ok(Err(Refusal::Invalid("no user verification".to_owned())));
        }
        let presented = result.counter();
        if stored.counter_regressed(presented) {
            return Ok(Err(Refusal::Regressed {
                credential_id: stored.credential_id,
                presented,
            }));
        }
        let mut passkey = parse_passkey(&stored)?;
        passkey.update_credential(&result);
        let used = PasskeyUse {
            credential_id: stored.credential_id.clone(),
            expected_sign_count: stored.sign_count,
            sign_count: presented,
            backup_state: result.backup_state(),
            backup_eligible: result.backup_eligible(),
            passkey: serde_json::to_string(&passkey).map_err(internal)?,
            at: now,
        };
        if !w.record_passkey_use(&used).await? {
            return Ok(Err(Refusal::Regressed {
                credential_id: stored.credential_id,
                presented,
            }));
        }
        Ok(Ok(()))
    }

    /// Refuses an assertion: the ceremony stays taken (committed with the audit event), and
    /// the failure counts toward the username's lockout.
    async fn refuse_assertion(
        &self,
        pool: &Pool,
        mut w: Box<dyn PoolWrite>,
        user: &User,
        refusal: Refusal,
        meta: &RequestMeta,
    ) -> ServiceResult<ServiceError> {
        let event = match refusal {
            Refusal::Regressed {
                credential_id,
                presented,
            } => self
                .event(pool, AuditAction::UserPasskeySignCountRegressed, None, meta)
                .subject(&user.username)
                .detail("credential_id", credential_id)
                .detail("presented", presented)
                .denied(),
            Refusal::Invalid(reason) => self
                .event(pool, AuditAction::UserPasskeyRefused, None, meta)
                .subject(&user.username)
                .detail("reason", reason)
                .denied(),
        };
        w.audit(&event).await?;
        w.commit().await?;
        self.count_sign_in_failure(
            pool,
            &user.username,
            &LockoutPolicy::default(),
            self.now(),
            meta,
        )
        .await?;
        Ok(refused())
    }
}
