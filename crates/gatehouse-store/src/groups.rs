//! Groups and memberships.

use std::collections::BTreeSet;

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::group::Group;
use gatehouse_domain::ids::{GroupName, PoolId, UserId, Username};
use gatehouse_domain::store::{StoreError, StoreResult};
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::user::User;
use sqlx::any::Any;
use sqlx::{AnyConnection, Executor};

use crate::error::{ResultExt, expect_row};
use crate::rows::{Columns, to_json};
use crate::{Lock, SqlStore, audit, users};

const COLUMNS: &str = "pool_id, name, description, roles, created_at";

pub(crate) async fn create(store: &SqlStore, group: &Group, event: &AuditEvent) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    sqlx::query(&format!(
        "INSERT INTO groups ({COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
    ))
    .bind(group.pool.to_string())
    .bind(group.name.as_str())
    .bind(group.description.as_str())
    .bind(to_json(&group.roles)?)
    .bind(group.created_at.as_secs())
    .execute(&mut *tx)
    .await
    .conflict("a group with this name already exists")?;
    audit::insert(&mut tx, event).await?;
    tx.commit().await.store()
}

pub(crate) async fn get_one<'e>(
    conn: impl Executor<'e, Database = Any>,
    pool: PoolId,
    name: &GroupName,
    lock: Lock,
) -> StoreResult<Option<Group>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM groups WHERE pool_id = $1 AND name = $2{}",
        lock.clause()
    ))
    .bind(pool.to_string())
    .bind(name.as_str())
    .fetch_optional(conn)
    .await
    .store()?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn list(
    store: &SqlStore,
    pool: PoolId,
    after: Option<&GroupName>,
    limit: u32,
) -> StoreResult<Vec<Group>> {
    let rows = match after {
        Some(after) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM groups WHERE pool_id = $1 AND name > $2 \
                 ORDER BY name LIMIT $3"
            ))
            .bind(pool.to_string())
            .bind(after.as_str())
            .bind(i64::from(limit))
            .fetch_all(&store.pool)
            .await
        }
        None => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM groups WHERE pool_id = $1 ORDER BY name LIMIT $2"
            ))
            .bind(pool.to_string())
            .bind(i64::from(limit))
            .fetch_all(&store.pool)
            .await
        }
    }
    .store()?;
    rows.iter().map(from_row).collect()
}

pub(crate) async fn update_in(conn: &mut AnyConnection, group: &Group) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE groups SET description = $3, roles = $4 WHERE pool_id = $1 AND name = $2",
    )
    .bind(group.pool.to_string())
    .bind(group.name.as_str())
    .bind(group.description.as_str())
    .bind(to_json(&group.roles)?)
    .execute(&mut *conn)
    .await
    .store()?;
    expect_row(done.rows_affected())
}

pub(crate) async fn delete_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    name: &GroupName,
) -> StoreResult<()> {
    // Memberships go with the group (ON DELETE CASCADE).
    let done = sqlx::query("DELETE FROM groups WHERE pool_id = $1 AND name = $2")
        .bind(pool.to_string())
        .bind(name.as_str())
        .execute(&mut *conn)
        .await
        .store()?;
    expect_row(done.rows_affected())
}

/// The groups of user `$2` in pool `$1`.
pub(crate) const OF_USER: &str = "SELECT g.pool_id, g.name, g.description, g.roles, g.created_at \
     FROM group_members m \
     JOIN groups g ON g.pool_id = m.pool_id AND g.name = m.group_name \
     WHERE m.pool_id = $1 AND m.user_id = $2 \
     ORDER BY g.name";

pub(crate) async fn of_user<'e>(
    conn: impl Executor<'e, Database = Any>,
    pool: PoolId,
    user: UserId,
) -> StoreResult<Vec<Group>> {
    let rows = sqlx::query(OF_USER)
        .bind(pool.to_string())
        .bind(user.to_string())
        .fetch_all(conn)
        .await
        .store()?;
    rows.iter().map(from_row).collect()
}

pub(crate) async fn set_user_groups_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    user: UserId,
    groups: &[GroupName],
) -> StoreResult<()> {
    let wanted: BTreeSet<&str> = groups.iter().map(GroupName::as_str).collect();
    users::exists(&mut *conn, pool, user).await?;
    for name in &wanted {
        group_exists(&mut *conn, pool, name).await?;
    }
    sqlx::query("DELETE FROM group_members WHERE pool_id = $1 AND user_id = $2")
        .bind(pool.to_string())
        .bind(user.to_string())
        .execute(&mut *conn)
        .await
        .store()?;
    for name in wanted {
        sqlx::query("INSERT INTO group_members (pool_id, group_name, user_id) VALUES ($1, $2, $3)")
            .bind(pool.to_string())
            .bind(name)
            .bind(user.to_string())
            .execute(&mut *conn)
            .await
            .store()?;
    }
    Ok(())
}

pub(crate) async fn members(
    store: &SqlStore,
    pool: PoolId,
    group: &GroupName,
    after: Option<&Username>,
    limit: u32,
) -> StoreResult<Vec<User>> {
    let cols = users::COLUMNS_U;
    let base = format!(
        "SELECT {cols} FROM group_members m \
         JOIN users u ON u.pool_id = m.pool_id AND u.id = m.user_id \
         WHERE m.pool_id = $1 AND m.group_name = $2"
    );
    let rows = match after {
        Some(after) => {
            sqlx::query(&format!(
                "{base} AND u.username > $3 ORDER BY u.username LIMIT $4"
            ))
            .bind(pool.to_string())
            .bind(group.as_str())
            .bind(after.as_str())
            .bind(i64::from(limit))
            .fetch_all(&store.pool)
            .await
        }
        None => {
            sqlx::query(&format!("{base} ORDER BY u.username LIMIT $3"))
                .bind(pool.to_string())
                .bind(group.as_str())
                .bind(i64::from(limit))
                .fetch_all(&store.pool)
                .await
        }
    }
    .store()?;
    rows.iter().map(users::from_row).collect()
}

async fn group_exists(conn: &mut AnyConnection, pool: PoolId, name: &str) -> StoreResult<()> {
    let row = sqlx::query("SELECT name FROM groups WHERE pool_id = $1 AND name = $2")
        .bind(pool.to_string())
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .store()?;
    row.map(|_| ()).ok_or(StoreError::NotFound)
}

pub(crate) fn from_row(row: &impl Columns) -> StoreResult<Group> {
    Ok(Group {
        pool: row.parse("pool_id", PoolId::parse)?,
        name: row.parse("name", GroupName::parse)?,
        description: row.text_of("description")?,
        roles: row.json_of("roles")?,
        created_at: Timestamp(row.int_of("created_at")?),
    })
}
