//! User administration: the BriteAuth user-management operations, and the operator's
//! command-line creation of users. Account actions live in `actions.rs`, self-service in
//! `self_service.rs`, sessions and sign-out in `sessions.rs`.
//!
//! Every operation opens with its permission check. A caller can never hand out permissions it
//! does not hold itself (through a user's roles, see [`ensure_may_grant`]), and acts on an
//! existing user only when it holds every permission that user holds (the dominance rule,
//! SPEC §9, see `Gatehouse::target_in`): for removals as for additions, for resets, disables,
//! deletions, sign-outs and links alike. Operations that would lock the caller out of its own
//! account (deleting or disabling itself) are refused.
//!
//! Every change reads the user inside the write transaction that changes it
//! ([`gatehouse_domain::txn`]), so no operation can write back a state another one replaced
//! meanwhile. Slow work (argon2, message delivery) happens before the transaction opens or
//! after it commits.

mod actions;
pub(crate) mod codes;
pub(crate) mod self_service;
mod sessions;

use gatehouse_crypto::secret::Secret;
use gatehouse_domain::ParseError;
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::{UserId, Username};
use gatehouse_domain::permission::{Permission, PermissionSet, Role};
use gatehouse_domain::pool::{InvitationMessages, Pool};
use gatehouse_domain::store::StoreError;
use gatehouse_domain::txn::PoolWrite;
use gatehouse_domain::user::{
    Enabled, MfaState, PasswordCredential, User, UserAttributes, UserStatus, permissions_of,
};

pub use codes::{CODE_DIGITS, TEMPORARY_PASSWORD_MIN_CHARS, numeric_code, temporary_password};
pub use self_service::VERIFICATION_CODE_TTL_SECS;

use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::messages::{MessageKind, OutboundMessage};
use crate::{Gatehouse, Principal, RequestMeta};

/// Largest page a listing returns.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// How long a password-reset code is valid.
pub const RESET_CODE_TTL_SECS: i64 = 3600;
const SECS_PER_DAY: i64 = 86_400;
const CONTACT_ID_MAX_CHARS: usize = 40;
const PROVIDER_NAME_MAX_CHARS: usize = 128;
const PROVIDER_USER_ID_MAX_CHARS: usize = 2048;

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The cursor that continues after this page; `None` on the last page.
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from items read in order with one more than `limit` asked for: the extra
    /// item only shows that another page follows.
    pub(crate) fn from_overfetch(
        mut items: Vec<T>,
        limit: u32,
        cursor_of: impl Fn(&T) -> String,
    ) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more {
            items.last().map(cursor_of)
        } else {
            None
        };
        Self { items, next }
    }
}

/// A page size within `1..=MAX_PAGE_SIZE`.
pub(crate) fn page_limit(limit: u32) -> u32 {
    limit.clamp(1, MAX_PAGE_SIZE)
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    /// Parsed (roles included) but not yet checked against the schema's limits.
    pub attributes: UserAttributes,
    pub contact_id: Option<String>,
}

/// An identity at an upstream provider, to link to a user.
#[derive(Debug, Clone)]
pub struct ProviderIdentity {
    pub provider_name: String,
    pub provider_user_id: String,
}

/// Refuses when `roles` would grant a permission the caller does not hold: nobody hands out
/// more power than it has.
pub(crate) fn ensure_may_grant<'a>(
    principal: &Principal,
    roles: impl IntoIterator<Item = &'a Role>,
) -> ServiceResult<()> {
    let wanted = PermissionSet::from_roles(roles);
    if principal.permissions.is_superset_of(&wanted) {
        return Ok(());
    }
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|p| !principal.holds(*p))
        .map(Permission::as_str)
        .collect();
    Err(ServiceError::Forbidden(format!(
        "cannot grant permissions the caller does not hold: {}",
        missing.join(", ")
    )))
}

/// Whether `user` is the principal itself (a user of this pool, not a staff member).
pub(crate) fn is_self(principal: &Principal, pool: &Pool, user: &User) -> bool {
    principal.home_pool == pool.slug && principal.user_id() == Some(user.id)
}

/// Maps a store error of a write on an existing user: a vanished row is "user not found".
pub(crate) fn user_write_error(e: StoreError) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::NotFound("user"),
        e => e.into(),
    }
}

pub(crate) fn parse_user_cursor(cursor: Option<&str>) -> ServiceResult<Option<Username>> {
    cursor
        .map(|c| Username::parse(c).map_err(|_| ParseError::new("cursor", "not a valid cursor")))
        .transpose()
        .map_err(ServiceError::from)
}

fn parse_contact_id(contact_id: Option<String>) -> Result<Option<String>, ParseError> {
    match contact_id {
        None => Ok(None),
        Some(c) => {
            let n = c.chars().count();
            if n == 0 || n > CONTACT_ID_MAX_CHARS || c.chars().any(char::is_control) {
                Err(ParseError::new(
                    "contact_id",
                    format!("must be 1 to {CONTACT_ID_MAX_CHARS} characters"),
                ))
            } else {
                Ok(Some(c))
            }
        }
    }
}

fn check_link_part(field: &'static str, v: &str, max: usize) -> Result<(), ParseError> {
    let n = v.chars().count();
    if n == 0 || n > max || v.chars().any(char::is_control) || v.trim() != v {
        return Err(ParseError::new(
            field,
            format!(
                "must be 1 to {max} characters without control characters or surrounding spaces"
            ),
        ));
    }
    Ok(())
}

/// How `*_verified` flags given with new attributes are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VerifiedFlags {
    /// An administrator's values count; an omitted flag keeps the stored one while the
    /// attribute is unchanged.
    AsGiven,
    /// Only verification sets a flag: the stored one stays while the attribute is unchanged.
    Ignored,
}

/// The verified flag of one attribute after an update.
fn verified_after(
    old_value: Option<&str>,
    old_flag: Option<bool>,
    new_value: Option<&str>,
    given: Option<bool>,
    mode: VerifiedFlags,
) -> Option<bool> {
    let changed = old_value != new_value;
    match (mode, given) {
        _ if new_value.is_none() => None,
        (VerifiedFlags::AsGiven, Some(flag)) => Some(flag),
        _ if changed => Some(false),
        _ => old_flag,
    }
}

/// Applies the verified-flag rules to attributes replacing `old`.
pub(crate) fn reconcile_verified(
    old: &UserAttributes,
    mut new: UserAttributes,
    mode: VerifiedFlags,
) -> UserAttributes {
    new.email_verified = verified_after(
        Some(&old.email),
        old.email_verified,
        Some(&new.email),
        new.email_verified,
        mode,
    );
    new.phone_verified = verified_after(
        old.phone.as_deref(),
        old.phone_verified,
        new.phone.as_deref(),
        new.phone_verified,
        mode,
    );
    new
}

impl Gatehouse {
    /// Users of the pool ordered by username; the cursor is the last username of a page.
    pub async fn list_users(
        &self,
        pool: &Pool,
        principal: &Principal,
        cursor: Option<&str>,
        limit: u32,
    ) -> ServiceResult<Page<User>> {
        principal.require(Permission::RetrieveUsers)?;
        self.list_users_as_operator(pool, cursor, limit).await
    }

    /// The operator's listing of a pool's users (the CLI), with no permission check.
    pub async fn list_users_as_operator(
        &self,
        pool: &Pool,
        cursor: Option<&str>,
        limit: u32,
    ) -> ServiceResult<Page<User>> {
        let after = parse_user_cursor(cursor)?;
        let limit = page_limit(limit);
        let users = self
            .store
            .list_users(pool.id, after.as_ref(), limit + 1)
            .await?;
        Ok(Page::from_overfetch(users, limit, |u| {
            u.username.to_string()
        }))
    }

    /// Creates a user with a temporary password, delivered in an invitation made from the
    /// pool's templates. The user must choose its own password at first sign-in.
    pub async fn create_user(
        &self,
        pool: &Pool,
        principal: &Principal,
        new: NewUser,
        meta: &RequestMeta,
    ) -> ServiceResult<User> {
        principal.require(Permission::CreateUser)?;
        let username = Username::parse(&new.username)?;
        new.attributes.validate()?;
        let contact_id = parse_contact_id(new.contact_id)?;
        ensure_may_grant(principal, &new.attributes.roles)?;
        let (user, _) = self
            .insert_user(
                pool,
                username,
                new.attributes,
                contact_id,
                None,
                Some(principal),
                meta,
            )
            .await?;
        Ok(user)
    }

    /// The operator's way to create a user (the CLI), with no permission check. With a
    /// password (checked against the pool's policy) the user is `CONFIRMED` and nothing is
    /// sent. Without one it is created as through the API, and the temporary password that
    /// was delivered is also returned, for the operator.
    pub async fn create_user_with_password(
        &self,
        pool: &Pool,
        username: &str,
        attributes: UserAttributes,
        password: Option<Secret>,
        contact_id: Option<String>,
    ) -> ServiceResult<(User, Option<Secret>)> {
        let username = Username::parse(username)?;
        attributes.validate()?;
        let contact_id = parse_contact_id(contact_id)?;
        self.insert_user(
            pool,
            username,
            attributes,
            contact_id,
            password,
            None,
            &RequestMeta::default(),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_user(
        &self,
        pool: &Pool,
        username: Username,
        mut attributes: UserAttributes,
        contact_id: Option<String>,
        password: Option<Secret>,
        principal: Option<&Principal>,
        meta: &RequestMeta,
    ) -> ServiceResult<(User, Option<Secret>)> {
        if self
            .store
            .user_by_username(pool.id, &username)
            .await?
            .is_some()
        {
            return Err(ServiceError::Conflict(
                "a user with this username already exists".to_owned(),
            ));
        }
        let policy = &pool.settings.password_policy;
        let now = self.now();
        let (credential, status, temporary) = match password {
            Some(password) => {
                policy.check(password.expose())?;
                let credential = PasswordCredential {
                    phc: self.hasher.hash(&password).await?,
                    temporary_until: None,
                };
                (credential, UserStatus::Confirmed, None)
            }
            None => {
                let temporary = temporary_password(policy);
                let valid_days = i64::from(policy.temporary_password_validity_days);
                let credential = PasswordCredential {
                    phc: self.hasher.hash(&temporary).await?,
                    temporary_until: Some(now.plus_secs(valid_days * SECS_PER_DAY)),
                };
                (credential, UserStatus::ForceChangePassword, Some(temporary))
            }
        };
        attributes.updated_at = Some(now.as_secs());
        let user = User {
            id: UserId::new_random(),
            pool: pool.id,
            username,
            enabled: Enabled::Yes,
            status,
            attributes,
            contact_id,
            password: Some(credential),
            tokens_not_before: None,
            mfa: MfaState::NONE,
            previous_email: None,
            created_at: now,
            updated_at: now,
        };
        // Delivered before the user is stored: if delivery fails, nothing was created and the
        // request can simply be repeated.
        if let Some(temporary) = &temporary {
            self.send_invitation(pool, &user, temporary).await?;
        }
        let event = self
            .event(pool, AuditAction::UserCreated, principal, meta)
            .subject(&user.username)
            .detail("status", user.status.as_str());
        self.store.create_user(&user, &event).await?;
        Ok((user, temporary))
    }

    async fn send_invitation(
        &self,
        pool: &Pool,
        user: &User,
        password: &Secret,
    ) -> ServiceResult<()> {
        let templates = &pool.settings.invitation_messages;
        let name = user.username.as_str();
        let message = OutboundMessage {
            kind: MessageKind::Invitation,
            pool: pool.slug.to_string(),
            username: name.to_owned(),
            to_email: Some(user.attributes.email.clone()),
            to_phone: user.attributes.phone.clone(),
            subject: templates
                .email_subject
                .replace(InvitationMessages::USERNAME, name),
            body: InvitationMessages::render(&templates.email_message, name, password.expose()),
        };
        self.deliver(&message).await
    }

    pub(crate) async fn deliver(&self, message: &OutboundMessage) -> ServiceResult<()> {
        self.messages
            .send(message)
            .await
            .map_err(|e| ServiceError::internal(e.to_string()))
    }

    pub async fn get_user(
        &self,
        pool: &Pool,
        principal: &Principal,
        username: &Username,
    ) -> ServiceResult<User> {
        principal.require(Permission::GetUser)?;
        self.user_named(pool, username).await
    }

    /// Reads a user for change inside `w`, and applies the dominance rule: the caller must
    /// hold every permission the user holds (its roles and its groups' roles, read in the same
    /// transaction), self-service aside.
    pub(crate) async fn target_in(
        &self,
        w: &mut dyn PoolWrite,
        principal: &Principal,
        username: &Username,
    ) -> ServiceResult<User> {
        let user = w
            .user_by_username(username)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        let groups = w.groups_of_user(user.id).await?;
        principal.ensure_dominates(&permissions_of(&user, &groups), "the user")?;
        Ok(user)
    }

    /// Replaces a user's attributes. The caller must dominate the user (so it can neither
    /// take roles from someone who holds more than it, nor mark the e-mail of such a user
    /// verified), and roles the user did not have yet must grant nothing the caller lacks.
    /// An omitted `email_verified` or `phone_verified` keeps its value while the attribute is
    /// unchanged and becomes false when it changes. A changed e-mail address is remembered as
    /// the previous one, which hears of password resets for a while.
    pub async fn update_user(
        &self,
        pool: &Pool,
        principal: &Principal,
        username: &Username,
        attributes: UserAttributes,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        principal.require(Permission::UpdateUser)?;
        attributes.validate()?;
        let mut w = self.store.write(pool.id).await?;
        let mut user = self.target_in(w.as_mut(), principal, username).await?;
        let added = attributes
            .roles
            .iter()
            .filter(|r| !user.attributes.roles.contains(r));
        ensure_may_grant(principal, added)?;
        let roles_changed = role_set(&attributes.roles) != role_set(&user.attributes.roles);
        let now = self.now();
        let mut attributes =
            reconcile_verified(&user.attributes, attributes, VerifiedFlags::AsGiven);
        attributes.updated_at = Some(now.as_secs());
        user.note_email_change(&attributes.email, now);
        user.attributes = attributes;
        user.updated_at = now;
        w.update_user(&user).await.map_err(user_write_error)?;
        let event = self
            .event(pool, AuditAction::UserUpdated, Some(principal), meta)
            .subject(&user.username)
            .detail("roles_changed", roles_changed);
        w.audit(&event).await?;
        if roles_changed {
            self.tell_claims_changed(w.as_mut(), &user).await?;
        }
        w.commit().await?;
        Ok(())
    }
}

fn role_set(roles: &[Role]) -> std::collections::BTreeSet<&Role> {
    roles.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(email: &str, verified: Option<bool>) -> UserAttributes {
        UserAttributes {
            email: email.to_owned(),
            name: "N".to_owned(),
            email_verified: verified,
            ..UserAttributes::default()
        }
    }

    fn principal_with(roles: &[&str]) -> Principal {
        let roles: Vec<Role> = roles.iter().map(|r| Role::parse(r).unwrap()).collect();
        Principal {
            subject: crate::principal::Subject::User {
                id: UserId::new_random(),
                username: Username::parse("caller").unwrap(),
            },
            home_pool: gatehouse_domain::ids::PoolSlug::parse("acme").unwrap(),
            permissions: PermissionSet::from_roles(&roles),
            token: crate::principal::TokenFacts {
                jti: "j".to_owned(),
                sid: None,
                client_id: None,
                act: None,
                expires_at: 0,
                scope: None,
            },
        }
    }

    #[test]
    fn nobody_grants_more_than_it_holds() {
        let role = |r: &str| Role::parse(r).unwrap();
        let clerk = principal_with(&["user:CreateUser", "user:GetUser"]);
        assert!(ensure_may_grant(&clerk, &[role("claims-adjuster")]).is_ok());
        assert!(ensure_may_grant(&clerk, &[role("user:CreateUser")]).is_ok());
        assert!(ensure_may_grant(&clerk, &[]).is_ok());
        let err = ensure_may_grant(&clerk, &[role("support")]).unwrap_err();
        assert!(matches!(err, ServiceError::Forbidden(m) if m.contains("user:Impersonate")));
        assert!(ensure_may_grant(&clerk, &[role("admin")]).is_err());
        let admin = principal_with(&["admin"]);
        assert!(ensure_may_grant(&admin, &[role("admin"), role("support")]).is_ok());
    }

    #[test]
    fn pages_know_whether_more_follow() {
        let p = Page::from_overfetch(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(p.items, vec![1, 2]);
        assert_eq!(p.next.as_deref(), Some("2"));
        let last = Page::from_overfetch(vec![1, 2], 2, |n| n.to_string());
        assert_eq!(last.next, None);
        let empty = Page::<i32>::from_overfetch(vec![], 5, |n| n.to_string());
        assert_eq!(empty.next, None);
    }

    #[test]
    fn admin_verified_flags_follow_the_rules() {
        let old = attrs("a@x.io", Some(true));
        let kept = reconcile_verified(&old, attrs("a@x.io", None), VerifiedFlags::AsGiven);
        assert_eq!(kept.email_verified, Some(true));
        let changed = reconcile_verified(&old, attrs("b@x.io", None), VerifiedFlags::AsGiven);
        assert_eq!(changed.email_verified, Some(false));
        let set = reconcile_verified(&old, attrs("b@x.io", Some(true)), VerifiedFlags::AsGiven);
        assert_eq!(set.email_verified, Some(true));
    }

    #[test]
    fn own_updates_cannot_set_verified_flags() {
        let old = attrs("a@x.io", Some(false));
        let same = reconcile_verified(&old, attrs("a@x.io", Some(true)), VerifiedFlags::Ignored);
        assert_eq!(same.email_verified, Some(false));
        let changed = reconcile_verified(&old, attrs("b@x.io", Some(true)), VerifiedFlags::Ignored);
        assert_eq!(changed.email_verified, Some(false));
        let mut with_phone = attrs("a@x.io", None);
        with_phone.phone = Some("+1555".to_owned());
        with_phone.phone_verified = Some(true);
        let dropped =
            reconcile_verified(&with_phone, attrs("a@x.io", None), VerifiedFlags::Ignored);
        assert_eq!(dropped.phone_verified, None);
    }

    #[test]
    fn contact_ids_are_bounded() {
        assert_eq!(parse_contact_id(None), Ok(None));
        assert!(parse_contact_id(Some(String::new())).is_err());
        assert!(parse_contact_id(Some("x".repeat(41))).is_err());
        assert_eq!(parse_contact_id(Some("c-1".into())), Ok(Some("c-1".into())));
    }

    #[test]
    fn cursors_are_usernames() {
        assert!(parse_user_cursor(Some("alice")).is_ok());
        assert!(parse_user_cursor(Some("")).is_err());
        assert!(parse_user_cursor(None).unwrap().is_none());
    }
}
