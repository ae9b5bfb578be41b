//! Second factors: the pool's MFA setting and a user's software token (TOTP).

use std::fmt;

use crate::ParseError;
use crate::ids::{PoolId, UserId};
use crate::time::Timestamp;

/// Whether a pool's sign-in asks for a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MfaMode {
    /// No second factor is asked for, even of users who enrolled one.
    Off,
    /// Users who enrolled a factor are asked for it (the default).
    #[default]
    Optional,
    /// Every user is asked for one; a user without one enrolls at sign-in (`MFA_SETUP`).
    Required,
}

impl MfaMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MfaMode::Off => "off",
            MfaMode::Optional => "optional",
            MfaMode::Required => "required",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "off" => Ok(MfaMode::Off),
            "optional" => Ok(MfaMode::Optional),
            "required" => Ok(MfaMode::Required),
            _ => Err(ParseError::new(
                "mfa",
                format!("unknown MFA setting '{s}'; use off, optional or required"),
            )),
        }
    }
}

/// A user's software token: its secret sealed with the master key, whether the first valid
/// code confirmed it (until then it is pending and never asked for), and the last step a
/// code was accepted at (a code is good once per step).
#[derive(Clone, PartialEq, Eq)]
pub struct TotpCredential {
    pub pool: PoolId,
    pub user_id: UserId,
    pub sealed_secret: Vec<u8>,
    pub confirmed_at: Option<Timestamp>,
    pub last_step: Option<i64>,
    pub created_at: Timestamp,
}

impl TotpCredential {
    pub fn is_confirmed(&self) -> bool {
        self.confirmed_at.is_some()
    }

    /// The label the secret is sealed under, bound to its user.
    pub fn secret_label(user: UserId) -> String {
        format!("totp:{user}")
    }
}

impl fmt::Debug for TotpCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpCredential")
            .field("user_id", &self.user_id)
            .field("sealed_secret", &"[redacted]")
            .field("confirmed_at", &self.confirmed_at)
            .field("last_step", &self.last_step)
            .finish()
    }
}
