//! Passkeys (WebAuthn credentials) and the ceremonies that register and use them.
//!
//! The domain keeps a credential as the web-authentication library serialised it (opaque
//! text here) beside what Gatehouse itself decides with: the credential id, the last
//! signature counter accepted and the backup flags. A ceremony of a known user (a
//! registration, a second factor) waits, single use, under the SHA-256 of its challenge until
//! it expires; a passwordless one, which has no user yet, is kept sealed by the browser.

use crate::ParseError;
use crate::ids::{PoolId, UserId};
use crate::time::Timestamp;

/// How long a ceremony waits for the browser's answer.
pub const CEREMONY_TTL_SECS: i64 = 300;

/// A user's passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyCredential {
    pub pool: PoolId,
    pub user_id: UserId,
    /// The credential id, base64url without padding.
    pub credential_id: String,
    /// The credential (public key, algorithm, flags) as the WebAuthn library serialises it.
    pub passkey: String,
    /// The last signature counter accepted; an assertion must exceed it (unless both are 0).
    pub sign_count: u32,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub name: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

impl PasskeyCredential {
    /// Whether an assertion's counter would go backwards (or stand still) from the one
    /// stored: WebAuthn §7.2 step 21, the sign of a cloned authenticator. A counter of zero
    /// on both sides means the authenticator keeps none.
    pub fn counter_regressed(&self, presented: u32) -> bool {
        (presented > 0 || self.sign_count > 0) && presented <= self.sign_count
    }
}

/// A passkey's use recorded after a good assertion: a compare-and-set on the counter read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyUse {
    pub credential_id: String,
    /// The counter the stored credential had when the assertion was checked.
    pub expected_sign_count: u32,
    pub sign_count: u32,
    pub backup_state: bool,
    pub backup_eligible: bool,
    /// The credential with its counter and flags brought up to date.
    pub passkey: String,
    pub at: Timestamp,
}

/// What a ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyPurpose {
    /// Registering a passkey for a signed-in user.
    Registration,
    /// A passkey as the second factor of a sign-in (the user proved its password).
    SecondFactor,
}

impl CeremonyPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CeremonyPurpose::Registration => "registration",
            CeremonyPurpose::SecondFactor => "second_factor",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "registration" => Ok(CeremonyPurpose::Registration),
            "second_factor" => Ok(CeremonyPurpose::SecondFactor),
            _ => Err(ParseError::new(
                "purpose",
                format!("unknown ceremony '{s}'"),
            )),
        }
    }
}

/// A WebAuthn ceremony waiting for its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceremony {
    pub pool: PoolId,
    pub handle_sha256: [u8; 32],
    pub purpose: CeremonyPurpose,
    /// The user it is for.
    pub user_id: UserId,
    /// The WebAuthn library's state, opaque here (its challenge among it).
    pub state: String,
    pub expires_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(sign_count: u32) -> PasskeyCredential {
        PasskeyCredential {
            pool: PoolId::new_random(),
            user_id: UserId::new_random(),
            credential_id: "AAAA".to_owned(),
            passkey: "{}".to_owned(),
            sign_count,
            backup_eligible: false,
            backup_state: false,
            name: "key".to_owned(),
            created_at: Timestamp(0),
            last_used_at: None,
        }
    }

    #[test]
    fn a_counter_must_grow_unless_the_authenticator_keeps_none() {
        assert!(!credential(0).counter_regressed(0));
        assert!(!credential(0).counter_regressed(1));
        assert!(!credential(4).counter_regressed(5));
        assert!(credential(5).counter_regressed(5));
        assert!(credential(5).counter_regressed(4));
        assert!(credential(5).counter_regressed(0));
    }

    #[test]
    fn purposes_round_trip() {
        for p in [CeremonyPurpose::Registration, CeremonyPurpose::SecondFactor] {
            assert_eq!(CeremonyPurpose::parse(p.as_str()).unwrap(), p);
        }
        assert!(CeremonyPurpose::parse("other").is_err());
    }
}
