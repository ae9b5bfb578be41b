//! Pools (tenants) and their settings.

use crate::ParseError;
use crate::ids::{PoolId, PoolSlug};
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub id: PoolId,
    pub slug: PoolSlug,
    pub settings: PoolSettings,
    /// Host names whose root serves this pool (`Host: acme.example.com`).
    pub hosts: Vec<HostName>,
    pub created_at: Timestamp,
}

/// Whether the staff pool's tokens are accepted by this pool's admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaffAccess {
    Allowed,
    Denied,
}

/// Signature algorithms for a pool's access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SigningAlg {
    ES256,
    RS256,
    EdDSA,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::ES256 => "ES256",
            SigningAlg::RS256 => "RS256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "ES256" => Ok(Self::ES256),
            "RS256" => Ok(Self::RS256),
            "EdDSA" => Ok(Self::EdDSA),
            _ => Err(ParseError::new("alg", "must be ES256, RS256 or EdDSA")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolSettings {
    pub access_token_ttl_secs: u32,
    pub max_impersonation_ttl_secs: u32,
    pub staff_access: StaffAccess,
    pub signing_alg: SigningAlg,
    pub password_policy: PasswordPolicy,
    pub invitation_messages: InvitationMessages,
    /// Days audit events of this pool are kept; `None` keeps them forever (the default).
    /// Events older than this are deleted by the periodic purge. `Some(0)` is read as one day.
    #[serde(default)]
    pub audit_retention_days: Option<u32>,
    /// How the hosted pages are branded; absent in rows from before themes (no theme).
    #[serde(default)]
    pub theme: crate::theme::Theme,
    /// Whether sign-in asks for a second factor; absent in rows from before MFA (optional).
    #[serde(default)]
    pub mfa: crate::mfa::MfaMode,
    /// Minutes a challenge session may be answered in (Cognito's `AuthSessionValidity`,
    /// 3 to 15); absent in rows from before it (3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_session_minutes: Option<u8>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 3600,
            max_impersonation_ttl_secs: 900,
            staff_access: StaffAccess::Allowed,
            signing_alg: SigningAlg::ES256,
            password_policy: PasswordPolicy::default(),
            invitation_messages: InvitationMessages::default(),
            audit_retention_days: None,
            theme: crate::theme::Theme::default(),
            mfa: crate::mfa::MfaMode::default(),
            auth_session_minutes: None,
        }
    }
}

/// The shortest and longest a challenge session may last, in minutes (Cognito's bounds).
pub const AUTH_SESSION_MINUTES: std::ops::RangeInclusive<u8> = 3..=15;

impl PoolSettings {
    /// How long a challenge session of this pool may be answered, in seconds.
    pub fn challenge_session_secs(&self) -> i64 {
        let minutes = self
            .auth_session_minutes
            .unwrap_or(*AUTH_SESSION_MINUTES.start())
            .clamp(*AUTH_SESSION_MINUTES.start(), *AUTH_SESSION_MINUTES.end());
        i64::from(minutes) * 60
    }

    /// How long a security event of this pool matters: the longest lifetime of a token it
    /// could refuse (access and ID tokens, impersonations), plus five minutes for the clocks
    /// of the services that verify them. Refresh tokens do not count: Gatehouse checks those
    /// itself. Past this every token the event refuses has expired, so the fleet feed forgets
    /// it (its snapshot leaves it out, the purge deletes it).
    pub fn security_event_retention_secs(&self) -> i64 {
        i64::from(
            self.access_token_ttl_secs
                .max(self.max_impersonation_ttl_secs),
        ) + crate::retention::CLOCK_SKEW_SECS
    }

    /// The oldest audit event time kept at `now`, if events expire at all.
    pub fn audit_cutoff(&self, now: Timestamp) -> Option<Timestamp> {
        self.audit_retention_days
            .map(|days| now.plus_secs(-i64::from(days.max(1)) * crate::retention::DAY_SECS))
    }
}

/// Cognito-shaped password policy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PasswordPolicy {
    pub minimum_length: u8,
    pub require_lowercase: bool,
    pub require_uppercase: bool,
    pub require_numbers: bool,
    pub require_symbols: bool,
    pub temporary_password_validity_days: u16,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            minimum_length: 8,
            require_lowercase: false,
            require_uppercase: false,
            require_numbers: false,
            require_symbols: false,
            temporary_password_validity_days: 7,
        }
    }
}

/// Symbols that count as such for `require_symbols` (Cognito's list).
pub const PASSWORD_SYMBOLS: &str = "^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+-";

/// Longest password accepted, so hashing cost stays bounded.
pub const PASSWORD_MAX_CHARS: usize = 256;

impl PasswordPolicy {
    pub fn validate_settings(&self) -> Result<(), ParseError> {
        if !(6..=99).contains(&self.minimum_length) {
            return Err(ParseError::new("MinimumLength", "must be between 6 and 99"));
        }
        if !(1..=365).contains(&self.temporary_password_validity_days) {
            return Err(ParseError::new(
                "TemporaryPasswordValidityDays",
                "must be between 1 and 365",
            ));
        }
        Ok(())
    }

    /// The policy in words, for the page that asks for a new password.
    pub fn describe(&self) -> String {
        let mut rules = vec![format!("at least {} characters", self.minimum_length)];
        for (on, what) in [
            (self.require_lowercase, "a lowercase letter"),
            (self.require_uppercase, "an uppercase letter"),
            (self.require_numbers, "a number"),
            (self.require_symbols, "a symbol"),
        ] {
            if on {
                rules.push(what.to_owned());
            }
        }
        format!("Use {}.", rules.join(", "))
    }

    /// Checks a password against the policy; the error lists every rule it breaks.
    pub fn check(&self, password: &str) -> Result<(), ParseError> {
        let mut broken = Vec::new();
        let n = password.chars().count();
        if n < usize::from(self.minimum_length) {
            broken.push(format!("at least {} characters", self.minimum_length));
        }
        if n > PASSWORD_MAX_CHARS {
            broken.push(format!("at most {PASSWORD_MAX_CHARS} characters"));
        }
        if self.require_lowercase && !password.chars().any(|c| c.is_lowercase()) {
            broken.push("a lowercase letter".to_owned());
        }
        if self.require_uppercase && !password.chars().any(|c| c.is_uppercase()) {
            broken.push("an uppercase letter".to_owned());
        }
        if self.require_numbers && !password.chars().any(|c| c.is_ascii_digit()) {
            broken.push("a number".to_owned());
        }
        if self.require_symbols && !password.chars().any(|c| PASSWORD_SYMBOLS.contains(c)) {
            broken.push("a symbol".to_owned());
        }
        if broken.is_empty() {
            Ok(())
        } else {
            Err(ParseError::new(
                "password",
                format!("the password policy requires {}", broken.join(", ")),
            ))
        }
    }
}

/// Templates of the message that delivers a temporary password.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct InvitationMessages {
    pub email_subject: String,
    pub email_message: String,
    pub sms_message: String,
}

impl Default for InvitationMessages {
    fn default() -> Self {
        Self {
            email_subject: "Your temporary password".to_owned(),
            email_message: "Your username is {username} and temporary password is {####}."
                .to_owned(),
            sms_message: "Your username is {username} and temporary password is {####}.".to_owned(),
        }
    }
}

impl InvitationMessages {
    pub const USERNAME: &'static str = "{username}";
    pub const CODE: &'static str = "{####}";

    pub fn validate(&self) -> Result<(), ParseError> {
        for (field, text) in [
            ("EmailMessage", &self.email_message),
            ("SMSMessage", &self.sms_message),
        ] {
            if !text.contains(Self::USERNAME) || !text.contains(Self::CODE) {
                return Err(ParseError::new(
                    field,
                    "must contain the {username} and {####} placeholders",
                ));
            }
        }
        if self.email_subject.trim().is_empty() || self.email_subject.chars().count() > 140 {
            return Err(ParseError::new(
                "EmailSubject",
                "must be 1 to 140 characters",
            ));
        }
        if self.email_message.chars().count() > 20_000 {
            return Err(ParseError::new(
                "EmailMessage",
                "must be at most 20,000 characters",
            ));
        }
        if self.sms_message.chars().count() > 140 {
            return Err(ParseError::new(
                "SMSMessage",
                "must be at most 140 characters",
            ));
        }
        Ok(())
    }

    pub fn render(template: &str, username: &str, code: &str) -> String {
        template
            .replace(Self::USERNAME, username)
            .replace(Self::CODE, code)
    }
}

/// A DNS host name bound to a pool, lowercased, without port.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct HostName(String);

impl HostName {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let lower = s.to_ascii_lowercase();
        let ok = !lower.is_empty()
            && lower.len() <= 253
            && lower.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if ok {
            Ok(Self(lower))
        } else {
            Err(ParseError::new("host", "not a valid host name"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_lists_every_broken_rule() {
        let p = PasswordPolicy {
            minimum_length: 10,
            require_numbers: true,
            require_symbols: true,
            ..PasswordPolicy::default()
        };
        let err = p.check("short").unwrap_err();
        assert!(err.message.contains("at least 10"));
        assert!(err.message.contains("a number"));
        assert!(err.message.contains("a symbol"));
        assert!(p.check("long-enough-1").is_ok());
    }

    #[test]
    fn invitation_templates_need_both_placeholders() {
        let mut m = InvitationMessages::default();
        assert!(m.validate().is_ok());
        m.sms_message = "Your code is {####}".into();
        assert_eq!(m.validate().unwrap_err().field, "SMSMessage");
    }

    #[test]
    fn settings_without_audit_retention_keep_events_forever() {
        let stored = r#"{"access_token_ttl_secs":600,"staff_access":"denied"}"#;
        let s: PoolSettings = serde_json::from_str(stored).unwrap();
        assert_eq!(s.audit_retention_days, None);
        assert_eq!(s.access_token_ttl_secs, 600);
        assert_eq!(s.audit_cutoff(Timestamp(1_000_000)), None);
        let s: PoolSettings = serde_json::from_str(r#"{"audit_retention_days":2}"#).unwrap();
        assert_eq!(
            s.audit_cutoff(Timestamp(1_000_000)),
            Some(Timestamp(827_200))
        );
        let s: PoolSettings = serde_json::from_str(r#"{"audit_retention_days":0}"#).unwrap();
        assert_eq!(
            s.audit_cutoff(Timestamp(1_000_000)),
            Some(Timestamp(913_600))
        );
    }

    #[test]
    fn host_names_are_checked_and_lowercased() {
        assert_eq!(
            HostName::parse("Acme.Example.com").unwrap().as_str(),
            "acme.example.com"
        );
        assert!(HostName::parse("acme..com").is_err());
        assert!(HostName::parse("acme.com:8080").is_err());
    }
}
