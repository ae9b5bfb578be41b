//! The pool settings the admin API manages: the password policy and the templates of the
//! invitation that delivers a temporary password. A change names only the fields it sets; the
//! others keep their current values.

use gatehouse_domain::ParseError;
use gatehouse_domain::permission::Permission;
use gatehouse_domain::pool::{InvitationMessages, PasswordPolicy, Pool, PoolSettings, StaffAccess};
use gatehouse_domain::theme::{AccentColor, Color, DisplayName, Logo, Theme};

use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::txn::{PoolWrite, SessionsToEnd};

use crate::audit::EventExt;
use crate::error::ServiceResult;
use crate::{Gatehouse, Principal, RequestMeta};

/// A change to the password policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordPolicyUpdate {
    pub minimum_length: Option<i64>,
    pub require_lowercase: Option<bool>,
    pub require_uppercase: Option<bool>,
    pub require_numbers: Option<bool>,
    pub require_symbols: Option<bool>,
    pub temporary_password_validity_days: Option<i64>,
}

impl PasswordPolicyUpdate {
    /// The policy with this change applied, checked.
    pub fn apply(self, mut policy: PasswordPolicy) -> Result<PasswordPolicy, ParseError> {
        if let Some(n) = self.minimum_length {
            policy.minimum_length = u8::try_from(n)
                .map_err(|_| ParseError::new("MinimumLength", "must be between 6 and 99"))?;
        }
        if let Some(n) = self.temporary_password_validity_days {
            policy.temporary_password_validity_days = u16::try_from(n).map_err(|_| {
                ParseError::new("TemporaryPasswordValidityDays", "must be between 1 and 365")
            })?;
        }
        if let Some(b) = self.require_lowercase {
            policy.require_lowercase = b;
        }
        if let Some(b) = self.require_uppercase {
            policy.require_uppercase = b;
        }
        if let Some(b) = self.require_numbers {
            policy.require_numbers = b;
        }
        if let Some(b) = self.require_symbols {
            policy.require_symbols = b;
        }
        policy.validate_settings()?;
        Ok(policy)
    }
}

/// A change to the invitation templates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvitationMessagesUpdate {
    pub email_subject: Option<String>,
    pub email_message: Option<String>,
    pub sms_message: Option<String>,
}

impl InvitationMessagesUpdate {
    /// The templates with this change applied, checked: both messages must keep the
    /// `{username}` and `{####}` placeholders.
    pub fn apply(self, mut messages: InvitationMessages) -> Result<InvitationMessages, ParseError> {
        if let Some(s) = self.email_subject {
            messages.email_subject = s;
        }
        if let Some(s) = self.email_message {
            messages.email_message = s;
        }
        if let Some(s) = self.sms_message {
            messages.sms_message = s;
        }
        messages.validate()?;
        Ok(messages)
    }
}

/// Where a theme change starts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ThemeBase {
    /// The current theme: fields the change does not name keep their values.
    #[default]
    Current,
    /// No theme: fields the change does not name are unset.
    Empty,
}

/// A change to the pool's theme. A field that is `None` is left as it is; an empty string
/// unsets it; anything else is parsed and checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThemeUpdate {
    pub base: ThemeBase,
    pub display_name: Option<String>,
    pub accent_color: Option<String>,
    pub background_color: Option<String>,
    pub logo: Option<String>,
}

impl ThemeUpdate {
    /// The theme with this change applied, every value checked.
    pub fn apply(self, current: Theme) -> Result<Theme, ParseError> {
        fn set<T>(
            slot: &mut Option<T>,
            value: Option<String>,
            parse: impl FnOnce(&str) -> Result<T, ParseError>,
        ) -> Result<(), ParseError> {
            match value.as_deref() {
                None => {}
                Some("") => *slot = None,
                Some(v) => *slot = Some(parse(v)?),
            }
            Ok(())
        }
        let mut theme = match self.base {
            ThemeBase::Current => current,
            ThemeBase::Empty => Theme::default(),
        };
        set(
            &mut theme.display_name,
            self.display_name,
            DisplayName::parse,
        )?;
        set(
            &mut theme.accent_color,
            self.accent_color,
            AccentColor::parse,
        )?;
        set(&mut theme.background_color, self.background_color, |v| {
            Color::parse("BackgroundColor", v)
        })?;
        set(&mut theme.logo, self.logo, Logo::parse)?;
        Ok(theme)
    }
}

/// An invitation carries a live temporary password, so its templates may link only to the
/// pool itself (its issuer's origin, or one of its hosts), and the password must stand apart
/// from any link: a template cannot hand it to another site, or put it in a URL at all.
fn links_stay_in_pool(text: &str, issuer: &str, pool: &Pool) -> Result<(), ParseError> {
    let refuse = |why: String| Err(ParseError::new("EmailMessage", why));
    let lower = text.to_ascii_lowercase();
    for scheme in ["javascript:", "data:", "vbscript:"] {
        if lower.contains(scheme) {
            return refuse(format!("must not contain {scheme} links"));
        }
    }
    let own = |authority: &str| {
        let authority = authority.to_ascii_lowercase();
        let issuer_authority = issuer
            .split_once("://")
            .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
        authority == issuer_authority.to_ascii_lowercase()
            || pool.hosts.iter().any(|h| authority == h.as_str())
    };
    // Every `//authority` (with a scheme or protocol-relative) must be the pool's.
    let mut rest = text;
    while let Some(at) = rest.find("//") {
        let after = &rest[at + 2..];
        let end = after
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | ')')
            })
            .unwrap_or(after.len());
        let authority = &after[..end];
        if !own(authority) {
            return refuse(format!(
                "may link only to the pool's own address ({issuer}), not to '{authority}'"
            ));
        }
        rest = &after[end..];
    }
    for word in text.split_whitespace() {
        if word.contains("{####}") {
            let bare = word.trim_matches(|c: char| {
                matches!(
                    c,
                    '.' | ',' | ';' | ':' | '!' | '?' | '"' | '\'' | '(' | ')'
                )
            });
            if bare != "{####}" {
                return refuse(
                    "the temporary password {####} must stand apart, not inside a link or word"
                        .to_owned(),
                );
            }
        }
    }
    Ok(())
}

impl Gatehouse {
    /// Reads the pool's settings inside a write transaction (not from the cache, so that a
    /// change never undoes another made meanwhile), applies `change`, and writes them back
    /// with their audit event. The transaction is returned uncommitted, for the caller to
    /// add what must happen with the change, and commit.
    async fn change_settings(
        &self,
        pool: &Pool,
        principal: &Principal,
        meta: &RequestMeta,
        what: &str,
        change: impl FnOnce(&mut PoolSettings) -> ServiceResult<()>,
    ) -> ServiceResult<Box<dyn PoolWrite>> {
        let mut w = self.store.write(pool.id).await?;
        let mut settings = w.pool_settings().await?;
        change(&mut settings)?;
        w.update_pool_settings(&settings).await?;
        let event = self
            .event(
                pool,
                AuditAction::PoolSettingsUpdated,
                Some(principal),
                meta,
            )
            .subject(&pool.slug)
            .detail("changed", what);
        w.audit(&event).await?;
        Ok(w)
    }

    /// Commits a settings change and forgets the cached pool.
    async fn commit_settings(&self, pool: &Pool, w: Box<dyn PoolWrite>) -> ServiceResult<()> {
        w.commit().await?;
        self.pools.forget(&pool.slug);
        Ok(())
    }

    /// The password policy. Public, as in the reference API: clients show it to people
    /// choosing a password.
    pub fn password_policy(&self, pool: &Pool) -> PasswordPolicy {
        pool.settings.password_policy.clone()
    }

    pub async fn update_password_policy(
        &self,
        pool: &Pool,
        principal: &Principal,
        update: PasswordPolicyUpdate,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        principal.require(Permission::UpdatePasswordPolicy)?;
        let w = self
            .change_settings(pool, principal, meta, "password_policy", |s| {
                s.password_policy = update.apply(s.password_policy.clone())?;
                Ok(())
            })
            .await?;
        self.commit_settings(pool, w).await
    }

    pub async fn invitation_messages(
        &self,
        pool: &Pool,
        principal: &Principal,
    ) -> ServiceResult<InvitationMessages> {
        principal.require(Permission::GetInvitationMessageTemplates)?;
        Ok(pool.settings.invitation_messages.clone())
    }

    pub async fn update_invitation_messages(
        &self,
        pool: &Pool,
        principal: &Principal,
        update: InvitationMessagesUpdate,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        principal.require(Permission::UpdateInvitationMessageTemplates)?;
        let issuer = self.issuer(pool);
        let w = self
            .change_settings(pool, principal, meta, "invitation_messages", |s| {
                let messages = update.apply(s.invitation_messages.clone())?;
                for text in [&messages.email_message, &messages.sms_message] {
                    links_stay_in_pool(text, &issuer, pool)?;
                }
                s.invitation_messages = messages;
                Ok(())
            })
            .await?;
        self.commit_settings(pool, w).await
    }

    /// The theme of the pool's hosted pages.
    pub fn theme(&self, pool: &Pool, principal: &Principal) -> ServiceResult<Theme> {
        principal.require(Permission::GetTheme)?;
        Ok(pool.settings.theme.clone())
    }

    /// Changes the theme of the pool's hosted pages; answers the theme as it now is.
    pub async fn update_theme(
        &self,
        pool: &Pool,
        principal: &Principal,
        update: ThemeUpdate,
        meta: &RequestMeta,
    ) -> ServiceResult<Theme> {
        principal.require(Permission::UpdateTheme)?;
        let mut changed = Theme::default();
        let w = self
            .change_settings(pool, principal, meta, "theme", |s| {
                s.theme = update.apply(s.theme.clone())?;
                changed = s.theme.clone();
                Ok(())
            })
            .await?;
        self.commit_settings(pool, w).await?;
        Ok(changed)
    }

    /// Whether the pool's sign-in asks for a second factor.
    pub fn mfa_setting(
        &self,
        pool: &Pool,
        principal: &Principal,
    ) -> ServiceResult<gatehouse_domain::mfa::MfaMode> {
        principal.require(Permission::GetMfa)?;
        Ok(pool.settings.mfa)
    }

    /// Sets whether the pool's sign-in asks for a second factor: `off`, `optional` (users who
    /// enrolled one are asked for it) or `required` (users without one enroll at sign-in).
    pub async fn update_mfa_setting(
        &self,
        pool: &Pool,
        principal: &Principal,
        mode: Option<gatehouse_domain::mfa::MfaMode>,
        auth_session_minutes: Option<u8>,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        principal.require(Permission::UpdateMfa)?;
        let range = gatehouse_domain::pool::AUTH_SESSION_MINUTES;
        if let Some(m) = auth_session_minutes
            && !range.contains(&m)
        {
            return Err(gatehouse_domain::ParseError::new(
                "AuthSessionValidity",
                format!(
                    "a challenge session lasts {} to {} minutes",
                    range.start(),
                    range.end()
                ),
            )
            .into());
        }
        let w = self
            .change_settings(pool, principal, meta, "mfa", |s| {
                if let Some(mode) = mode {
                    s.mfa = mode;
                }
                if let Some(m) = auth_session_minutes {
                    s.auth_session_minutes = Some(m);
                }
                Ok(())
            })
            .await?;
        self.commit_settings(pool, w).await
    }

    /// Whether the staff pool's tokens are accepted by this pool.
    pub fn staff_access(&self, pool: &Pool, principal: &Principal) -> ServiceResult<StaffAccess> {
        principal.require(Permission::GetStaffAccess)?;
        Ok(pool.settings.staff_access)
    }

    /// Turns staff access on or off. Off, the pool refuses every staff token at once — also
    /// the caller's own, when it is staff — and the impersonations staff started in the pool
    /// end in the same transaction.
    pub async fn update_staff_access(
        &self,
        pool: &Pool,
        principal: &Principal,
        access: StaffAccess,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        principal.require(Permission::UpdateStaffAccess)?;
        if pool.slug.is_staff() {
            return Err(ParseError::new(
                "StaffAccessEnabled",
                "the staff pool always accepts its own tokens",
            )
            .into());
        }
        let mut w = self
            .change_settings(pool, principal, meta, "staff_access", |s| {
                s.staff_access = access;
                Ok(())
            })
            .await?;
        if access == StaffAccess::Denied {
            // Staff impersonations, and the sessions of staff who signed in with the staff
            // account.
            self.end_sessions_in(
                w.as_mut(),
                pool,
                principal,
                &SessionsToEnd::ActedByStaff,
                meta,
                &crate::security_events::Cause::new(
                    gatehouse_domain::security_event::InitiatingEntity::Admin,
                    "staff access turned off",
                ),
            )
            .await?;
        }
        self.commit_settings(pool, w).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invitation_links_lead_only_to_the_pool() {
        use gatehouse_domain::ids::{PoolId, PoolSlug};
        use gatehouse_domain::pool::HostName;
        let pool = Pool {
            id: PoolId::new_random(),
            slug: PoolSlug::parse("acme").unwrap(),
            settings: Default::default(),
            hosts: vec![HostName::parse("login.acme.example").unwrap()],
            created_at: gatehouse_domain::time::Timestamp(0),
        };
        let issuer = "https://id.example.com/pools/acme";
        let ok = |t: &str| links_stay_in_pool(t, issuer, &pool).is_ok();
        assert!(ok("Hi {username}, your password is {####}."));
        assert!(ok(
            "Sign in at https://id.example.com/pools/acme/login: {username} / \"{####}\""
        ));
        assert!(ok("Visit https://login.acme.example/ with {####}"));
        assert!(!ok("Sign in at https://evil.example/ with {####}"));
        assert!(!ok("<a href=\"//evil.example/x\">here</a> {####}"));
        assert!(!ok("https://id.example.com.evil.example/ {####}"));
        assert!(!ok("https://id.example.com@evil.example/ {####}"));
        assert!(!ok("<a href=\"javascript:alert(1)\">x</a> {####}"));
        // Even the pool's own URL may not carry the password, nor may a bare domain.
        assert!(!ok("https://id.example.com/pools/acme/?p={####}"));
        assert!(!ok("evil.example/?p={####}"));
    }

    #[test]
    fn policy_changes_keep_unnamed_fields_and_are_checked() {
        let base = PasswordPolicy::default();
        let p = PasswordPolicyUpdate {
            minimum_length: Some(12),
            require_symbols: Some(true),
            ..Default::default()
        }
        .apply(base.clone())
        .unwrap();
        assert_eq!(p.minimum_length, 12);
        assert!(p.require_symbols);
        assert_eq!(
            p.temporary_password_validity_days,
            base.temporary_password_validity_days
        );

        for bad in [
            PasswordPolicyUpdate {
                minimum_length: Some(5),
                ..Default::default()
            },
            PasswordPolicyUpdate {
                minimum_length: Some(1000),
                ..Default::default()
            },
            PasswordPolicyUpdate {
                minimum_length: Some(-1),
                ..Default::default()
            },
            PasswordPolicyUpdate {
                temporary_password_validity_days: Some(0),
                ..Default::default()
            },
            PasswordPolicyUpdate {
                temporary_password_validity_days: Some(70_000),
                ..Default::default()
            },
        ] {
            assert!(bad.clone().apply(base.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn theme_changes_set_keep_unset_and_clear() {
        let current = ThemeUpdate {
            display_name: Some("Acme".into()),
            accent_color: Some("#1f5fbf".into()),
            ..Default::default()
        }
        .apply(Theme::default())
        .unwrap();
        let kept = ThemeUpdate {
            background_color: Some("#eeeeee".into()),
            ..Default::default()
        }
        .apply(current.clone())
        .unwrap();
        assert_eq!(kept.display_name, current.display_name);
        assert_eq!(kept.background_color.unwrap().to_string(), "#eeeeee");
        let unset = ThemeUpdate {
            display_name: Some(String::new()),
            ..Default::default()
        }
        .apply(current.clone())
        .unwrap();
        assert!(unset.display_name.is_none());
        assert_eq!(unset.accent_color, current.accent_color);
        let cleared = ThemeUpdate {
            base: ThemeBase::Empty,
            ..Default::default()
        }
        .apply(current.clone())
        .unwrap();
        assert!(cleared.is_empty());
        let err = ThemeUpdate {
            accent_color: Some("#ffff00".into()),
            ..Default::default()
        }
        .apply(current)
        .unwrap_err();
        assert_eq!(err.field, "AccentColor");
    }

    #[test]
    fn template_changes_need_the_placeholders() {
        let base = InvitationMessages::default();
        let ok = InvitationMessagesUpdate {
            email_subject: Some("Welcome".into()),
            ..Default::default()
        }
        .apply(base.clone())
        .unwrap();
        assert_eq!(ok.email_subject, "Welcome");
        assert_eq!(ok.email_message, base.email_message);
        let err = InvitationMessagesUpdate {
            email_message: Some("Hello {username}".into()),
            ..Default::default()
        }
        .apply(base)
        .unwrap_err();
        assert_eq!(err.field, "EmailMessage");
    }
}
