//! Permissions are the `resource:Action` names of the reference API's `x-briteaccess` tags, plus
//! those of Gatehouse's extensions. Roles are named sets of permissions; a user's permissions
//! come from its `roles` attribute and its groups' roles, an app client's from its scopes.

use std::collections::BTreeSet;
use std::fmt;

use crate::ParseError;

macro_rules! permissions {
    ($($variant:ident => $name:literal,)*) => {
        /// Every permission Gatehouse checks.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Permission {
            $($variant,)*
        }

        impl Permission {
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Permission::$variant => $name,)*
                }
            }

            pub fn parse(s: &str) -> Result<Self, ParseError> {
                match s {
                    $($name => Ok(Permission::$variant),)*
                    _ => Err(ParseError::new("permission", format!("unknown permission '{s}'"))),
                }
            }
        }
    };
}

permissions! {
    // From the reference document.
    TokenEndpoint => "oauth2:TokenEndpoint",
    GetPasswordPolicy => "settings:GetPasswordPolicy",
    UpdatePasswordPolicy => "settings:UpdatePasswordPolicy",
    GetInvitationMessageTemplates => "settings:GetInvitationMessageTemplates",
    UpdateInvitationMessageTemplates => "settings:UpdateInvitationMessageTemplates",
    Impersonate => "user:Impersonate",
    CreateAppClient => "app-client:Create",
    RetrieveUsers => "user:RetrieveUsers",
    CreateUser => "user:CreateUser",
    GetUser => "user:GetUser",
    DeleteUser => "user:DeleteUser",
    UpdateUser => "user:UpdateUser",
    UpdateOwnUser => "user:UpdateOwnUser",
    RetrieveGroups => "group:RetrieveGroups",
    CreateGroup => "group:CreateGroup",
    GetGroup => "group:GetGroup",
    UpdateGroup => "group:UpdateGroup",
    DeleteGroup => "group:DeleteGroup",
    EnableUser => "user:EnableUser",
    DisableUser => "user:DisableUser",
    ResetUserPassword => "user:ResetUserPassword",
    RetrieveUserGroupMembership => "user:RetrieveUserGroupMembership",
    UpdateUserGroupMembership => "user:UpdateUserGroupMembership",
    DisableUserMfa => "user:DisableUserMFA",
    LinkUserToIdentityProvider => "user:LinkUserToIdentityProvider",
    RetrieveUsersInGroup => "group:RetrieveUsersInGroup",
    VerifyOwnAttribute => "user:VerifyOwnAttribute",
    // Gatehouse's extensions, named in the same style.
    ImpersonatePrivileged => "user:ImpersonatePrivileged",
    RetrieveImpersonations => "user:RetrieveImpersonations",
    EndImpersonation => "user:EndImpersonation",
    SignOutUser => "user:SignOutUser",
    RetrieveUserSessions => "user:RetrieveUserSessions",
    RetrieveAppClients => "app-client:Retrieve",
    UpdateAppClient => "app-client:Update",
    DeleteAppClient => "app-client:Delete",
    RetrieveAuditEvents => "audit:RetrieveEvents",
    GetStaffAccess => "settings:GetStaffAccess",
    UpdateStaffAccess => "settings:UpdateStaffAccess",
    GetTheme => "settings:GetTheme",
    UpdateTheme => "settings:UpdateTheme",
    GetMfa => "settings:GetMfa",
    UpdateMfa => "settings:UpdateMfa",
    GetHooks => "settings:GetHooks",
    UpdateHooks => "settings:UpdateHooks",
    RetrieveRevocations => "auth:RetrieveRevocations",
    RetrievePools => "pool:RetrievePools",
    CreatePool => "pool:CreatePool",
    UpdatePool => "pool:UpdatePool",
    CreateIdentityProvider => "identity-provider:Create",
    RetrieveIdentityProviders => "identity-provider:Retrieve",
    UpdateIdentityProvider => "identity-provider:Update",
    DeleteIdentityProvider => "identity-provider:Delete",
}

impl Permission {
    /// Permissions every signed-in user holds over its own profile.
    pub const SELF_SERVICE: &'static [Permission] =
        &[Permission::UpdateOwnUser, Permission::VerifyOwnAttribute];

    /// Pool management exists only in the staff pool.
    pub fn is_staff_only(self) -> bool {
        matches!(
            self,
            Permission::RetrievePools | Permission::CreatePool | Permission::UpdatePool
        )
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A built-in role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinRole {
    /// Every permission in its pool.
    Admin,
    /// Read users and groups, and impersonate non-privileged users.
    Support,
}

impl BuiltinRole {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "support" => Some(Self::Support),
            _ => None,
        }
    }

    pub fn permissions(self) -> &'static [Permission] {
        match self {
            BuiltinRole::Admin => Permission::ALL,
            BuiltinRole::Support => &[
                Permission::RetrieveUsers,
                Permission::GetUser,
                Permission::RetrieveUserGroupMembership,
                Permission::RetrieveGroups,
                Permission::GetGroup,
                Permission::RetrieveUsersInGroup,
                Permission::Impersonate,
            ],
        }
    }
}

/// A role name as it appears in a user's `roles` attribute or a group's roles. A role is a
/// built-in role, a permission name (granting that permission), or any other name, which grants
/// no Gatehouse permission but travels in tokens for downstream services.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Role(String);

impl Role {
    pub const MAX_CHARS: usize = 128;

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let n = s.chars().count();
        if n == 0 || n > Self::MAX_CHARS || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ParseError::new(
                "roles",
                "a role is 1 to 128 characters without whitespace",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Gatehouse permissions this role grants.
    pub fn permissions(&self) -> Vec<Permission> {
        if let Some(builtin) = BuiltinRole::parse(&self.0) {
            builtin.permissions().to_vec()
        } else if let Ok(p) = Permission::parse(&self.0) {
            vec![p]
        } else {
            Vec::new()
        }
    }
}

/// A resolved set of permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionSet(BTreeSet<Permission>);

impl PermissionSet {
    pub fn from_roles<'a>(roles: impl IntoIterator<Item = &'a Role>) -> Self {
        Self(roles.into_iter().flat_map(Role::permissions).collect())
    }

    pub fn from_permissions(perms: impl IntoIterator<Item = Permission>) -> Self {
        Self(perms.into_iter().collect())
    }

    pub fn contains(&self, p: Permission) -> bool {
        self.0.contains(&p)
    }

    pub fn insert(&mut self, p: Permission) {
        self.0.insert(p);
    }

    pub fn extend(&mut self, other: &PermissionSet) {
        self.0.extend(other.0.iter().copied());
    }

    pub fn iter(&self) -> impl Iterator<Item = Permission> + '_ {
        self.0.iter().copied()
    }

    pub fn is_superset_of(&self, other: &PermissionSet) -> bool {
        self.0.is_superset(&other.0)
    }

    /// The permissions held beyond the self-service every signed-in user has.
    pub fn beyond_self_service(&self) -> impl Iterator<Item = Permission> + '_ {
        self.iter()
            .filter(|p| !Permission::SELF_SERVICE.contains(p))
    }

    /// Whether any permission is held beyond self-service: such a holder is privileged, and
    /// impersonating it needs `user:ImpersonatePrivileged`.
    pub fn is_privileged(&self) -> bool {
        self.beyond_self_service().next().is_some()
    }

    /// The dominance rule: the permissions of `target` (self-service aside) that `self` lacks.
    /// Acting on an existing user or group needs this to be empty, for removals as for
    /// additions: nobody changes, or takes power from, someone who holds more.
    pub fn lacks_of(&self, target: &PermissionSet) -> Vec<Permission> {
        target
            .beyond_self_service()
            .filter(|p| !self.contains(*p))
            .collect()
    }
}

/// An OAuth scope an app client may hold: an OIDC scope or a permission name.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Scope(String);

impl Scope {
    pub const OIDC: &'static [&'static str] = &[
        "openid",
        "profile",
        "email",
        "phone",
        "address",
        "offline_access",
    ];

    /// The SSF receiver scopes (CAEP interoperability profile): `ssf.manage` manages the
    /// client's own stream (and reads it), `ssf.read` reads it.
    pub const SSF: &'static [&'static str] = &[Self::SSF_MANAGE, Self::SSF_READ];
    pub const SSF_MANAGE: &'static str = "ssf.manage";
    pub const SSF_READ: &'static str = "ssf.read";

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if Self::OIDC.contains(&s) || Self::SSF.contains(&s) || Permission::parse(s).is_ok() {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::new(
                "scope",
                format!(
                    "unknown scope '{s}': use an OIDC scope, ssf.manage, ssf.read or a permission name"
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn permission(&self) -> Option<Permission> {
        Permission::parse(&self.0).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permission_round_trips_through_its_name() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Ok(*p));
        }
    }

    #[test]
    fn roles_grant_permissions() {
        let support = Role::parse("support").unwrap();
        let set = PermissionSet::from_roles([&support]);
        assert!(set.contains(Permission::Impersonate));
        assert!(!set.contains(Permission::ImpersonatePrivileged));
        assert!(!set.contains(Permission::CreateUser));
        let admin = Role::parse("admin").unwrap();
        assert!(PermissionSet::from_roles([&admin]).contains(Permission::ImpersonatePrivileged));
        let custom = Role::parse("claims-adjuster").unwrap();
        assert!(PermissionSet::from_roles([&custom]).iter().next().is_none());
        let direct = Role::parse("user:Impersonate").unwrap();
        assert!(PermissionSet::from_roles([&direct]).contains(Permission::Impersonate));
    }

    #[test]
    fn dominance_ignores_self_service_and_counts_every_other_permission() {
        let of = |roles: &[&str]| {
            let roles: Vec<Role> = roles.iter().map(|r| Role::parse(r).unwrap()).collect();
            let mut set = PermissionSet::from_roles(&roles);
            for p in Permission::SELF_SERVICE {
                set.insert(*p);
            }
            set
        };
        let plain = of(&[]);
        let helpdesk = of(&["user:UpdateUser", "user:ResetUserPassword"]);
        let admin = of(&["admin"]);
        assert!(!plain.is_privileged());
        assert!(helpdesk.is_privileged());
        // A client holds no self-service, yet dominates a plain user.
        let client = PermissionSet::from_permissions([Permission::UpdateUser]);
        assert!(client.lacks_of(&plain).is_empty());
        assert!(helpdesk.lacks_of(&plain).is_empty());
        assert!(admin.lacks_of(&helpdesk).is_empty());
        assert_eq!(
            helpdesk.lacks_of(&of(&["user:UpdateUser", "user:DeleteUser"])),
            [Permission::DeleteUser]
        );
        assert!(!helpdesk.lacks_of(&admin).is_empty());
        assert!(helpdesk.lacks_of(&helpdesk).is_empty());
    }

    #[test]
    fn scopes_are_oidc_or_permissions() {
        assert!(Scope::parse("openid").is_ok());
        assert!(Scope::parse("user:Impersonate").is_ok());
        assert!(Scope::parse("root").is_err());
    }
}
