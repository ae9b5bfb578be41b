//! Users and their profiles.

use std::fmt;

use crate::ParseError;
use crate::ids::{PoolId, UserId, Username};
use crate::permission::{Permission, PermissionSet, Role};
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub pool: PoolId,
    pub username: Username,
    pub enabled: Enabled,
    pub status: UserStatus,
    pub attributes: UserAttributes,
    pub contact_id: Option<String>,
    pub password: Option<PasswordCredential>,
    /// Tokens issued at or before this instant are no longer valid (disable, reset, sign-out).
    pub tokens_not_before: Option<Timestamp>,
    /// Whether a second factor is enrolled; `disable-mfa` clears it.
    pub mfa: MfaState,
    /// The address the e-mail replaced, while the change is recent enough to matter: a reset
    /// code sent within [`EMAIL_CHANGE_NOTICE_SECS`] of a change also notifies it.
    pub previous_email: Option<PreviousEmail>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The permissions of a user in these groups: its roles, the groups' roles, and self-service.
pub fn permissions_of(user: &User, groups: &[crate::group::Group]) -> PermissionSet {
    let mut set = PermissionSet::from_roles(&user.attributes.roles);
    for g in groups {
        set.extend(&PermissionSet::from_roles(&g.roles));
    }
    for p in Permission::SELF_SERVICE {
        set.insert(*p);
    }
    set
}

/// How long after an e-mail change the previous address still hears of password resets.
pub const EMAIL_CHANGE_NOTICE_SECS: i64 = 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousEmail {
    pub address: String,
    pub changed_at: Timestamp,
}

impl User {
    /// Records that the e-mail address is changing at `now` (call before replacing it).
    pub fn note_email_change(&mut self, new_email: &str, now: Timestamp) {
        if !self.attributes.email.eq_ignore_ascii_case(new_email) {
            self.previous_email = Some(PreviousEmail {
                address: self.attributes.email.clone(),
                changed_at: now,
            });
        }
    }

    /// The previous address to notify of a reset at `now`, if the e-mail changed recently.
    pub fn recently_replaced_email(&self, now: Timestamp) -> Option<&str> {
        self.previous_email
            .as_ref()
            .filter(|p| now.as_secs() - p.changed_at.as_secs() < EMAIL_CHANGE_NOTICE_SECS)
            .filter(|p| !p.address.is_empty())
            .map(|p| p.address.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enabled {
    Yes,
    No,
}

impl Enabled {
    pub fn is_enabled(self) -> bool {
        self == Enabled::Yes
    }
}

/// The second factors a user holds, as a set: a confirmed software token, one passkey or
/// more, and e-mail one-time codes (turned on by the user, for a verified address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MfaState {
    pub software_token: bool,
    pub passkey: bool,
    pub email_otp: bool,
}

impl MfaState {
    /// No factor at all.
    pub const NONE: MfaState = MfaState {
        software_token: false,
        passkey: false,
        email_otp: false,
    };

    /// The factors' names in their stored order, each with whether it is held.
    fn words(self) -> [(&'static str, bool); 3] {
        [
            ("software_token", self.software_token),
            ("passkey", self.passkey),
            ("email_otp", self.email_otp),
        ]
    }

    /// Whether a confirmed software token is among the user's factors.
    pub fn has_software_token(self) -> bool {
        self.software_token
    }

    /// Whether e-mail one-time codes are among the user's factors.
    pub fn has_email_otp(self) -> bool {
        self.email_otp
    }

    /// Whether the user holds a second factor it must present at sign-in.
    pub fn has_factor(self) -> bool {
        self != MfaState::NONE
    }

    /// The state once a software token is confirmed.
    pub fn with_software_token(self) -> Self {
        Self {
            software_token: true,
            ..self
        }
    }

    /// The state once a passkey is registered.
    pub fn with_passkey(self) -> Self {
        Self {
            passkey: true,
            ..self
        }
    }

    /// The state once the user's last passkey is removed.
    pub fn without_passkey(self) -> Self {
        Self {
            passkey: false,
            ..self
        }
    }

    /// The state once e-mail one-time codes are turned on.
    pub fn with_email_otp(self) -> Self {
        Self {
            email_otp: true,
            ..self
        }
    }

    /// The stored form: the held factors' names joined with `+`, or `none`.
    pub fn as_stored(self) -> String {
        let held: Vec<&str> = self
            .words()
            .into_iter()
            .filter_map(|(word, held)| held.then_some(word))
            .collect();
        if held.is_empty() {
            "none".to_owned()
        } else {
            held.join("+")
        }
    }

    /// Reads [`MfaState::as_stored`]'s form back (any order; each name at most once).
    pub fn parse_stored(s: &str) -> Result<Self, ParseError> {
        let mut state = MfaState::NONE;
        if s == "none" {
            return Ok(state);
        }
        for word in s.split('+') {
            let flag = match word {
                "software_token" => &mut state.software_token,
                "passkey" => &mut state.passkey,
                "email_otp" => &mut state.email_otp,
                _ => return Err(ParseError::new("mfa", format!("unknown factor '{word}'"))),
            };
            if *flag {
                return Err(ParseError::new("mfa", format!("factor '{word}' twice")));
            }
            *flag = true;
        }
        Ok(state)
    }
}

/// A stored password: the argon2id PHC string, and when a temporary one expires.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordCredential {
    pub phc: String,
    pub temporary_until: Option<Timestamp>,
}

impl fmt::Debug for PasswordCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordCredential")
            .field("phc", &"[redacted]")
            .field("temporary_until", &self.temporary_until)
            .finish()
    }
}

macro_rules! statuses {
    ($($variant:ident => $name:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum UserStatus { $($variant,)* }

        impl UserStatus {
            pub fn as_str(self) -> &'static str {
                match self { $(UserStatus::$variant => $name,)* }
            }
            pub fn parse(s: &str) -> Result<Self, ParseError> {
                match s {
                    $($name => Ok(UserStatus::$variant),)*
                    _ => Err(ParseError::new("status", format!("unknown status '{s}'"))),
                }
            }
        }
    };
}

statuses! {
    Unconfirmed => "UNCONFIRMED",
    Confirmed => "CONFIRMED",
    Archived => "ARCHIVED",
    Compromised => "COMPROMISED",
    Unknown => "UNKNOWN",
    ResetRequired => "RESET_REQUIRED",
    ForceChangePassword => "FORCE_CHANGE_PASSWORD",
    ExternalProvider => "EXTERNAL_PROVIDER",
}

impl UserStatus {
    /// States from which an administrator may reset the password.
    pub fn allows_password_reset(self) -> bool {
        matches!(
            self,
            UserStatus::Confirmed | UserStatus::ForceChangePassword | UserStatus::ResetRequired
        )
    }
}

/// OIDC standard claims plus `roles`: the profile of a user.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserAttributes {
    pub email: String,
    pub name: String,
    pub roles: Vec<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zoneinfo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthdate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
}

/// OIDC address claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

const TEXT_MAX: usize = 2048;

fn check_text(field: &'static str, v: &str, max: usize) -> Result<(), ParseError> {
    let n = v.chars().count();
    if n == 0 || n > max {
        return Err(ParseError::new(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(ParseError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn check_opt(field: &'static str, v: &Option<String>, max: usize) -> Result<(), ParseError> {
    v.as_deref().map_or(Ok(()), |v| check_text(field, v, max))
}

impl UserAttributes {
    /// Checks the limits of the reference schema. `roles` are already parsed.
    pub fn validate(&self) -> Result<(), ParseError> {
        check_text("email", &self.email, TEXT_MAX)?;
        let at = self.email.find('@');
        if !matches!(at, Some(i) if i > 0 && i + 1 < self.email.len())
            || self.email.chars().any(char::is_whitespace)
        {
            return Err(ParseError::new("email", "not an e-mail address"));
        }
        check_text("name", &self.name, TEXT_MAX)?;
        check_opt("given_name", &self.given_name, TEXT_MAX)?;
        check_opt("family_name", &self.family_name, TEXT_MAX)?;
        check_opt("middle_name", &self.middle_name, TEXT_MAX)?;
        check_opt("nickname", &self.nickname, TEXT_MAX)?;
        check_opt("preferred_username", &self.preferred_username, 128)?;
        check_opt("phone", &self.phone, TEXT_MAX)?;
        check_opt("zoneinfo", &self.zoneinfo, TEXT_MAX)?;
        check_opt("picture", &self.picture, TEXT_MAX)?;
        check_opt("website", &self.website, TEXT_MAX)?;
        check_opt("locale", &self.locale, TEXT_MAX)?;
        check_opt("profile", &self.profile, TEXT_MAX)?;
        check_opt("birthdate", &self.birthdate, TEXT_MAX)?;
        check_opt("gender", &self.gender, TEXT_MAX)?;
        if self.roles.len() > 64 {
            return Err(ParseError::new("roles", "at most 64 roles"));
        }
        if let Some(a) = &self.address {
            for (f, v) in [
                ("address.formatted", &a.formatted),
                ("address.street_address", &a.street_address),
                ("address.locality", &a.locality),
                ("address.region", &a.region),
                ("address.postal_code", &a.postal_code),
                ("address.country", &a.country),
            ] {
                check_opt(f, v, TEXT_MAX)?;
            }
        }
        Ok(())
    }
}

/// A link from an upstream identity to a pool user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedIdentity {
    pub pool: PoolId,
    pub provider_name: String,
    pub provider_user_id: String,
    pub user_id: UserId,
    pub created_at: Timestamp,
}

/// A code sent to verify an attribute (`email` or `phone`), stored as its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationCode {
    pub pool: PoolId,
    pub user_id: UserId,
    pub attribute: VerifiableAttribute,
    pub code_sha256: [u8; 32],
    pub expires_at: Timestamp,
    /// Wrong guesses made against this code so far.
    pub attempts: u32,
    /// Where it was sent (an e-mail address or a phone number).
    pub destination: String,
    /// The code sealed with the master key, so that a re-send to the same destination sends
    /// the same code.
    pub sealed_code: Option<Vec<u8>>,
}

impl VerificationCode {
    /// The wrong guess that ends a code.
    pub const MAX_ATTEMPTS: u32 = 5;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifiableAttribute {
    Email,
    Phone,
}

impl VerifiableAttribute {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "email" => Ok(Self::Email),
            "phone" | "phone_number" => Ok(Self::Phone),
            _ => Err(ParseError::new("attribute", "must be 'email' or 'phone'")),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MfaState;

    #[test]
    fn mfa_state_round_trips_every_combination() {
        for bits in 0..8u8 {
            let state = MfaState {
                software_token: bits & 1 != 0,
                passkey: bits & 2 != 0,
                email_otp: bits & 4 != 0,
            };
            assert_eq!(MfaState::parse_stored(&state.as_stored()).unwrap(), state);
        }
        // The forms stored before e-mail codes existed still read.
        assert_eq!(
            MfaState::parse_stored("software_token+passkey").unwrap(),
            MfaState::NONE.with_software_token().with_passkey()
        );
        assert_eq!(MfaState::NONE.as_stored(), "none");
    }

    #[test]
    fn mfa_state_refuses_unknown_or_repeated_factors() {
        for bad in ["", "sms", "passkey+passkey", "none+passkey", "passkey+"] {
            assert!(MfaState::parse_stored(bad).is_err(), "{bad}");
        }
    }
}
