//! Groups, their members, and users' group memberships. A group's roles count for every
//! member, so giving a group a role, or a user a group, follows the rule of
//! [`ensure_may_grant`]: the caller must hold every permission it hands out. Acting on an
//! existing group or membership follows the dominance rule of SPEC §9
//! ([`Principal::ensure_dominates`]): the caller must hold what the group, or the user, holds,
//! for removals as for additions. What decides a change is read inside the write transaction
//! that makes it.

use std::collections::BTreeSet;

use gatehouse_domain::ParseError;
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::group::{Group, validate_description};
use gatehouse_domain::ids::{GroupName, Username};
use gatehouse_domain::permission::{Permission, PermissionSet, Role};
use gatehouse_domain::pool::Pool;
use gatehouse_domain::store::StoreError;
use gatehouse_domain::txn::PoolWrite;
use gatehouse_domain::user::{User, permissions_of};

use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::users::{Page, ensure_may_grant, page_limit, parse_user_cursor};
use crate::{Gatehouse, Principal, RequestMeta};

/// Most roles a group carries.
pub const MAX_GROUP_ROLES: usize = 64;
/// Most groups one request may make a user a member of.
pub const MAX_GROUPS_PER_USER: usize = 500;

/// A group to create.
#[derive(Debug, Clone, Default)]
pub struct NewGroup {
    pub name: String,
    /// Required, as in the reference document: 1 to 2,048 characters.
    pub description: String,
    pub roles: Option<Vec<String>>,
}

/// A change to a group: a new description, and new roles when given.
#[derive(Debug, Clone, Default)]
pub struct GroupUpdate {
    pub description: String,
    /// `None` keeps the group's roles.
    pub roles: Option<Vec<String>>,
}

/// Parses role names, dropping repeats and keeping the first order.
pub fn parse_roles(names: &[String]) -> Result<Vec<Role>, ParseError> {
    if names.len() > MAX_GROUP_ROLES {
        return Err(ParseError::new(
            "roles",
            format!("at most {MAX_GROUP_ROLES} roles"),
        ));
    }
    let mut roles: Vec<Role> = Vec::with_capacity(names.len());
    for name in names {
        let role = Role::parse(name)?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    Ok(roles)
}

/// Reads a group for change inside `w`, and applies the dominance rule: the caller must hold
/// every permission its roles grant, since its members hold them.
async fn group_in(
    w: &mut dyn PoolWrite,
    principal: &Principal,
    name: &GroupName,
) -> ServiceResult<Group> {
    let group = w
        .group(name)
        .await?
        .ok_or(ServiceError::NotFound("group"))?;
    principal.ensure_dominates(
        &PermissionSet::from_roles(&group.roles),
        &format!("group {}", group.name),
    )?;
    Ok(group)
}

fn group_write_error(e: StoreError) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::NotFound("group"),
        e => e.into(),
    }
}

fn parse_group_cursor(cursor: Option<&str>) -> ServiceResult<Option<GroupName>> {
    cursor
        .map(|c| GroupName::parse(c).map_err(|_| ParseError::new("cursor", "not a valid cursor")))
        .transpose()
        .map_err(ServiceError::from)
}

impl Gatehouse {
    async fn group_named(&self, pool: &Pool, name: &GroupName) -> ServiceResult<Group> {
        self.store
            .group(pool.id, name)
            .await?
            .ok_or(ServiceError::NotFound("group"))
    }

    /// Groups of the pool ordered by name; the cursor is the last name of a page.
    pub async fn list_groups(
        &self,
        pool: &Pool,
        principal: &Principal,
        cursor: Option<&str>,
        limit: u32,
    ) -> ServiceResult<Page<Group>> {
        principal.require(Permission::RetrieveGroups)?;
        let after = parse_group_cursor(cursor)?;
        let limit = page_limit(limit);
        let groups = self
            .store
            .list_groups(pool.id, after.as_ref(), limit + 1)
            .await?;
        Ok(Page::from_overfetch(groups, limit, |g| g.name.to_string()))
    }

    pub async fn create_group(
        &self,
        pool: &Pool,
        principal: &Principal,
        new: NewGroup,
        meta: &RequestMeta,
    ) -> ServiceResult<Group> {
        principal.require(Permission::CreateGroup)?;
        let name = GroupName::parse(&new.name)?;
        validate_description(&new.description)?;
        let description = new.description;
        let roles = parse_roles(new.roles.as_deref().unwrap_or_default())?;
        ensure_may_grant(principal, &roles)?;
        let group = Group {
            pool: pool.id,
            name,
            description,
            roles,
            created_at: self.now(),
        };
        let event = self
            .event(pool, AuditAction::GroupCreated, Some(principal), meta)
            .subject(&group.name);
        self.store.create_group(&group, &event).await?;
        Ok(group)
    }

    pub async fn get_group(
        &self,
        pool: &Pool,
        principal: &Principal,
        name: &GroupName,
    ) -> ServiceResult<Group> {
        principal.require(Permission::GetGroup)?;
        self.group_named(pool, name).await
    }

    /// Sets a group's description, and its roles when given. The caller must dominate the
    /// group as it is (hold every permission of its current roles), and the roles it gives
    /// the group must grant nothing the caller lacks: taking roles away needs them as much
    /// as handing them out.
    pub async fn update_group(
        &self,
        pool: &Pool,
        principal: &Principal,
        name: &GroupName,
        update: GroupUpdate,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        principal.require(Permission::UpdateGroup)?;
        validate_description(&update.description)?;
        let roles = update.roles.as_deref().map(parse_roles).transpose()?;
        let mut w = self.store.write(pool.id).await?;
        let mut group = group_in(w.as_mut(), principal, name).await?;
        let mut event = self
            .event(pool, AuditAction::GroupUpdated, Some(principal), meta)
            .subject(&group.name);
        let mut roles_changed = false;
        if let Some(roles) = roles {
            ensure_may_grant(principal, roles.iter().filter(|r| !group.roles.contains(r)))?;
            let names: Vec<&str> = roles.iter().map(Role::as_str).collect();
            event = event.detail("roles", names.join(" "));
            roles_changed = roles != group.roles;
            group.roles = roles;
        }
        group.description = update.description;
        w.update_group(&group).await.map_err(group_write_error)?;
        w.audit(&event).await?;
        if roles_changed {
            let roles = group.roles.iter().map(|r| r.as_str().to_owned()).collect();
            self.tell_group_changed(w.as_mut(), group.name.as_str(), roles)
                .await?;
        }
        w.commit().await?;
        Ok(())
    }

    /// Deletes a group; its members lose its roles, so the caller must hold them.
    pub async fn delete_group(
        &self,
        pool: &Pool,
        principal: &Principal,
        name: &GroupName,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        principal.require(Permission::DeleteGroup)?;
        let mut w = self.store.write(pool.id).await?;
        group_in(w.as_mut(), principal, name).await?;
        let event = self
            .event(pool, AuditAction::GroupDeleted, Some(principal), meta)
            .subject(name);
        w.delete_group(name).await.map_err(group_write_error)?;
        w.audit(&event).await?;
        self.tell_group_changed(w.as_mut(), name.as_str(), Vec::new())
            .await?;
        w.commit().await?;
        Ok(())
    }

    /// Members of a group ordered by username; the cursor is the last username of a page.
    pub async fn users_in_group(
        &self,
        pool: &Pool,
        principal: &Principal,
        name: &GroupName,
        cursor: Option<&str>,
        limit: u32,
    ) -> ServiceResult<Page<User>> {
        principal.require(Permission::RetrieveUsersInGroup)?;
        let after = parse_user_cursor(cursor)?;
        let limit = page_limit(limit);
        self.group_named(pool, name).await?;
        let users = self
            .store
            .users_in_group(pool.id, name, after.as_ref(), limit + 1)
            .await?;
        Ok(Page::from_overfetch(users, limit, |u| {
            u.username.to_string()
        }))
    }

    /// The groups a user belongs to, ordered by name; the cursor is the last name of a page.
    pub async fn user_groups(
        &self,
        pool: &Pool,
        principal: &Principal,
        username: &Username,
        cursor: Option<&str>,
        limit: u32,
    ) -> ServiceResult<Page<Group>> {
        principal.require(Permission::RetrieveUserGroupMembership)?;
        let after = parse_group_cursor(cursor)?;
        let limit = page_limit(limit);
        let user = self.user_named(pool, username).await?;
        let groups: Vec<Group> = self
            .store
            .groups_of_user(pool.id, user.id)
            .await?
            .into_iter()
            .filter(|g| after.as_ref().is_none_or(|a| g.name > *a))
            .take(
                usize::try_from(limit)
                    .unwrap_or(usize::MAX)
                    .saturating_add(1),
            )
            .collect();
        Ok(Page::from_overfetch(groups, limit, |g| g.name.to_string()))
    }

    /// Makes the user a member of exactly these groups. The caller must dominate the user (its
    /// own roles and those of its groups), and hold the roles of every group the user joins
    /// or leaves.
    pub async fn set_user_groups(
        &self,
        pool: &Pool,
        principal: &Principal,
        username: &Username,
        names: &[String],
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        principal.require(Permission::UpdateUserGroupMembership)?;
        if names.len() > MAX_GROUPS_PER_USER {
            return Err(
                ParseError::new("groups", format!("at most {MAX_GROUPS_PER_USER} groups")).into(),
            );
        }
        let wanted: BTreeSet<GroupName> = names
            .iter()
            .map(|n| GroupName::parse(n))
            .collect::<Result<_, _>>()?;
        let mut w = self.store.write(pool.id).await?;
        let user = w
            .user_by_username(username)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        let current = w.groups_of_user(user.id).await?;
        // Dominating the user covers the roles of every group it is in, so of those it leaves.
        principal.ensure_dominates(
            &permissions_of(&user, &current),
            &format!("user {}", user.username),
        )?;
        let mut added_roles: Vec<Role> = Vec::new();
        for name in &wanted {
            if current.iter().all(|g| g.name != *name) {
                let group = w
                    .group(name)
                    .await?
                    .ok_or(ServiceError::NotFound("group"))?;
                added_roles.extend(group.roles);
            }
        }
        ensure_may_grant(principal, &added_roles)?;
        let wanted: Vec<GroupName> = wanted.into_iter().collect();
        let listed: Vec<&str> = wanted.iter().map(GroupName::as_str).collect();
        let event = self
            .event(pool, AuditAction::UserGroupsUpdated, Some(principal), meta)
            .subject(&user.username)
            .detail("groups", listed.join(","));
        w.set_user_groups(user.id, &wanted)
            .await
            .map_err(group_write_error)?;
        w.audit(&event).await?;
        self.tell_claims_changed(w.as_mut(), &user).await?;
        w.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_parsed_and_deduplicated() {
        let names = vec!["admin".to_owned(), "support".to_owned(), "admin".to_owned()];
        let roles = parse_roles(&names).unwrap();
        let got: Vec<&str> = roles.iter().map(Role::as_str).collect();
        assert_eq!(got, ["admin", "support"]);
        assert!(parse_roles(&["has space".to_owned()]).is_err());
        assert!(parse_roles(&vec!["r".to_owned(); MAX_GROUP_ROLES + 1]).is_err());
    }

    #[test]
    fn group_cursors_are_group_names() {
        assert!(parse_group_cursor(Some("Claims team")).unwrap().is_some());
        assert!(parse_group_cursor(Some("a/b")).is_err());
    }
}
