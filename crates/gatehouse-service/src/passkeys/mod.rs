//! Passkeys (WebAuthn, through webauthn-rs): registration by a signed-in user, the
//! `WEB_AUTHN` second factor after a password, and passwordless sign-in with a discoverable
//! credential.
//!
//! The relying party is the pool's issuer: its host is the RP ID and its origin the only
//! origin accepted. A ceremony of a known user (a registration, a second factor) waits in the
//! database under the SHA-256 of its challenge, for five minutes, and is taken (deleted) by
//! the transaction that finishes it, whether the answer passes or not: a ceremony is answered
//! once. The challenge is read back from the answer's `clientDataJSON`, so Cognito's
//! `CompleteWebAuthnRegistration`, which carries no handle of ours, finds its ceremony as the
//! API does. A passwordless ceremony has no user until it is answered, so an anonymous start
//! writes nothing: its state is sealed with the master key for the browser to keep (a
//! cookie), and its challenge is taken once (`use_once`) when it is answered.
//!
//! User verification is always required (webauthn-rs' passkey ceremonies ask for it and
//! refuse an assertion without the UV flag): a passkey is something the user has *and*
//! something it is or knows, which is what lets it sign in without a password.
//!
//! The signature counter must grow (WebAuthn §7.2 step 21): webauthn-rs refuses an assertion
//! whose counter does not exceed the one in the ceremony's state, and the finishing
//! transaction compares it again with the stored counter (two ceremonies started from one
//! counter cannot both pass) and records it with a compare-and-set. A regression is refused
//! and audited as `user.passkey_sign_count_regressed`: the sign of a cloned authenticator.
//! Failed assertions count toward the username's lockout like wrong codes.

use std::collections::BTreeMap;
use std::time::Duration;

use gatehouse_crypto::secret::{b64url_decode, sha256};
use gatehouse_domain::ParseError;
use gatehouse_domain::ids::UserId;
use gatehouse_domain::passkey::{CEREMONY_TTL_SECS, Ceremony, CeremonyPurpose, PasskeyCredential};
use gatehouse_domain::pool::Pool;
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::user::{User, UserStatus};
use serde::Deserialize;
use webauthn_rs::prelude::{Passkey, Url, Uuid, Webauthn, WebauthnBuilder};

use crate::Gatehouse;
use crate::error::{ServiceError, ServiceResult};

pub const WEB_AUTHN: &str = "WEB_AUTHN";
pub const SELECT_MFA_TYPE: &str = "SELECT_MFA_TYPE";
/// The challenge parameter naming the factors a `SELECT_MFA_TYPE` may be answered with.
pub const MFAS_CAN_CHOOSE: &str = "MFAS_CAN_CHOOSE";
/// The challenge parameter carrying a `WEB_AUTHN` challenge's request options (JSON).
pub const CREDENTIAL_REQUEST_OPTIONS: &str = "CREDENTIAL_REQUEST_OPTIONS";
/// The longest name a passkey may be given.
const NAME_MAX: usize = 64;

mod registration;
mod sign_in;

/// The challenge parameters a sign-in step answers beside its name and session.
pub type ChallengeParameters = BTreeMap<&'static str, String>;

/// A passkey as its owner sees it.
#[derive(Debug, Clone)]
pub struct PasskeyInfo {
    pub credential_id: String,
    pub name: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub backup_eligible: bool,
    pub backup_state: bool,
}

impl From<&PasskeyCredential> for PasskeyInfo {
    fn from(p: &PasskeyCredential) -> Self {
        PasskeyInfo {
            credential_id: p.credential_id.clone(),
            name: p.name.clone(),
            created_at: p.created_at,
            last_used_at: p.last_used_at,
            backup_eligible: p.backup_eligible,
            backup_state: p.backup_state,
        }
    }
}

pub(super) fn expired() -> ServiceError {
    ServiceError::Unauthenticated("invalid or expired session".to_owned())
}

pub(super) fn no_ceremony() -> ServiceError {
    ServiceError::Unauthenticated("the passkey ceremony is unknown, used or expired".to_owned())
}

pub(super) fn refused() -> ServiceError {
    ServiceError::Unauthenticated("the passkey was refused".to_owned())
}

pub(super) fn malformed(what: &'static str, detail: impl std::fmt::Display) -> ServiceError {
    ServiceError::Invalid(ParseError::new(
        what,
        format!("not a WebAuthn {what}: {detail}"),
    ))
}

pub(super) fn internal(detail: impl std::fmt::Display) -> ServiceError {
    ServiceError::internal(format!("webauthn: {detail}"))
}

/// The challenge a browser signed, read from `clientDataJSON`: the ceremony's key.
pub(super) fn challenge_of(client_data_json: &[u8]) -> Option<[u8; 32]> {
    #[derive(Deserialize)]
    struct ClientData {
        challenge: String,
    }
    let data: ClientData = serde_json::from_slice(client_data_json).ok()?;
    let challenge = b64url_decode(&data.challenge)?;
    Some(sha256(&challenge))
}

pub(super) fn user_uuid(id: UserId) -> ServiceResult<Uuid> {
    Uuid::parse_str(&id.to_string()).map_err(internal)
}

/// A passkey may sign in only a user who could sign in with its password now.
pub(super) fn may_sign_in(user: &User) -> bool {
    user.enabled.is_enabled()
        && !matches!(
            user.status,
            UserStatus::ResetRequired | UserStatus::ForceChangePassword
        )
}

impl Gatehouse {
    /// The pool's relying party: its issuer's host as RP ID, its issuer's origin.
    pub(super) fn webauthn(&self, pool: &Pool) -> ServiceResult<Webauthn> {
        let issuer = Url::parse(&self.issuer(pool)).map_err(internal)?;
        let rp_id = issuer
            .host_str()
            .ok_or_else(|| internal("the issuer has no host"))?
            .to_owned();
        let origin = Url::parse(&issuer.origin().ascii_serialization()).map_err(internal)?;
        WebauthnBuilder::new(&rp_id, &origin)
            .map_err(internal)?
            .rp_name(pool.slug.as_str())
            .timeout(Duration::from_secs(CEREMONY_TTL_SECS.unsigned_abs()))
            .build()
            .map_err(internal)
    }

    pub(super) fn ceremony(
        &self,
        pool: &Pool,
        challenge: &[u8],
        purpose: CeremonyPurpose,
        user: UserId,
        state: String,
    ) -> Ceremony {
        Ceremony {
            pool: pool.id,
            handle_sha256: sha256(challenge),
            purpose,
            user_id: user,
            state,
            expires_at: self.now().plus_secs(CEREMONY_TTL_SECS),
        }
    }
}

pub(super) fn parse_passkey(stored: &PasskeyCredential) -> ServiceResult<Passkey> {
    serde_json::from_str(&stored.passkey).map_err(internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceremony_key_is_the_challenge_signed() {
        let data = br#"{"type":"webauthn.get","challenge":"AQID","origin":"http://localhost:1"}"#;
        assert_eq!(challenge_of(data), Some(sha256(&[1, 2, 3])));
        assert_eq!(challenge_of(b"{}"), None);
        assert_eq!(challenge_of(b"not json"), None);
        assert_eq!(challenge_of(br#"{"challenge":"***"}"#), None);
    }
}
