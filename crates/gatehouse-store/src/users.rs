//! Users, their links to upstream identities, and their verification codes.

use gatehouse_domain::ids::{PoolId, UserId, Username};
use gatehouse_domain::store::{StoreError, StoreResult};
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::user::{
    Enabled, FederatedIdentity, MfaState, PasswordCredential, PreviousEmail, User, UserStatus,
    VerifiableAttribute, VerificationCode,
};
use sqlx::any::Any;
use sqlx::{AnyConnection, Executor};

use crate::error::{ResultExt, expect_row};
use crate::rows::{Columns, digest, flag, get, parsed, to_json};
use crate::{Lock, SqlStore};

/// The columns of `users`, in the order [`from_row`] reads them by name.
pub(crate) const COLUMNS: &str = "pool_id, id, username, enabled, status, attributes, contact_id, \
     password_phc, password_temporary_until, tokens_not_before, mfa, created_at, updated_at, \
     previous_email, email_changed_at";

/// [`COLUMNS`] qualified by the alias `u`, for joins.
pub(crate) const COLUMNS_U: &str = "u.pool_id, u.id, u.username, u.enabled, u.status, \
     u.attributes, u.contact_id, u.password_phc, u.password_temporary_until, \
     u.tokens_not_before, u.mfa, u.created_at, u.updated_at, u.previous_email, \
     u.email_changed_at";

const USERNAME_TAKEN: &str = "a user with this username already exists";

pub(crate) async fn insert_in(conn: &mut AnyConnection, user: &User) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO users ({COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    ))
    .bind(user.pool.to_string())
    .bind(user.id.to_string())
    .bind(user.username.as_str())
    .bind(flag(user.enabled.is_enabled()))
    .bind(user.status.as_str())
    .bind(to_json(&user.attributes)?)
    .bind(user.contact_id.as_deref())
    .bind(user.password.as_ref().map(|p| p.phc.as_str()))
    .bind(
        user.password
            .as_ref()
            .and_then(|p| p.temporary_until)
            .map(Timestamp::as_secs),
    )
    .bind(user.tokens_not_before.map(Timestamp::as_secs))
    .bind(user.mfa.as_stored())
    .bind(user.created_at.as_secs())
    .bind(user.updated_at.as_secs())
    .bind(user.previous_email.as_ref().map(|p| p.address.as_str()))
    .bind(user.previous_email.as_ref().map(|p| p.changed_at.as_secs()))
    .execute(&mut *conn)
    .await
    .conflict(USERNAME_TAKEN)?;
    Ok(())
}

pub(crate) async fn by_username<'e>(
    conn: impl Executor<'e, Database = Any>,
    pool: PoolId,
    username: &Username,
    lock: Lock,
) -> StoreResult<Option<User>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM users WHERE pool_id = $1 AND username = $2{}",
        lock.clause()
    ))
    .bind(pool.to_string())
    .bind(username.as_str())
    .fetch_optional(conn)
    .await
    .store()?;
    row.as_ref().map(from_row).transpose()
}

/// The user an upstream identity is linked to.
pub(crate) async fn by_identity<'e>(
    conn: impl Executor<'e, Database = Any>,
    pool: PoolId,
    provider_name: &str,
    provider_user_id: &str,
    lock: Lock,
) -> StoreResult<Option<User>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS_U} FROM users u JOIN identity_links l \
         ON l.pool_id = u.pool_id AND l.user_id = u.id \
         WHERE l.pool_id = $1 AND l.provider_name = $2 AND l.provider_user_id = $3{}",
        lock.clause()
    ))
    .bind(pool.to_string())
    .bind(provider_name)
    .bind(provider_user_id)
    .fetch_optional(conn)
    .await
    .store()?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn by_id<'e>(
    conn: impl Executor<'e, Database = Any>,
    pool: PoolId,
    id: UserId,
    lock: Lock,
) -> StoreResult<Option<User>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM users WHERE pool_id = $1 AND id = $2{}",
        lock.clause()
    ))
    .bind(pool.to_string())
    .bind(id.to_string())
    .fetch_optional(conn)
    .await
    .store()?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn list(
    store: &SqlStore,
    pool: PoolId,
    after: Option<&Username>,
    limit: u32,
) -> StoreResult<Vec<User>> {
    let rows = match after {
        Some(after) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM users WHERE pool_id = $1 AND username > $2 \
                 ORDER BY username LIMIT $3"
            ))
            .bind(pool.to_string())
            .bind(after.as_str())
            .bind(i64::from(limit))
            .fetch_all(&store.pool)
            .await
        }
        None => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM users WHERE pool_id = $1 ORDER BY username LIMIT $2"
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

/// Writes every mutable field of the user.
pub(crate) async fn update_in(conn: &mut AnyConnection, user: &User) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE users SET username = $3, enabled = $4, status = $5, attributes = $6, \
         contact_id = $7, password_phc = $8, password_temporary_until = $9, \
         tokens_not_before = $10, mfa = $11, updated_at = $12, previous_email = $13, \
         email_changed_at = $14 \
         WHERE pool_id = $1 AND id = $2",
    )
    .bind(user.pool.to_string())
    .bind(user.id.to_string())
    .bind(user.username.as_str())
    .bind(flag(user.enabled.is_enabled()))
    .bind(user.status.as_str())
    .bind(to_json(&user.attributes)?)
    .bind(user.contact_id.as_deref())
    .bind(user.password.as_ref().map(|p| p.phc.as_str()))
    .bind(
        user.password
            .as_ref()
            .and_then(|p| p.temporary_until)
            .map(Timestamp::as_secs),
    )
    .bind(user.tokens_not_before.map(Timestamp::as_secs))
    .bind(user.mfa.as_stored())
    .bind(user.updated_at.as_secs())
    .bind(user.previous_email.as_ref().map(|p| p.address.as_str()))
    .bind(user.previous_email.as_ref().map(|p| p.changed_at.as_secs()))
    .execute(&mut *conn)
    .await
    .conflict(USERNAME_TAKEN)?;
    expect_row(done.rows_affected())
}

pub(crate) async fn delete_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    id: UserId,
) -> StoreResult<()> {
    // Memberships, links, sessions and codes go with the user (ON DELETE CASCADE).
    let done = sqlx::query("DELETE FROM users WHERE pool_id = $1 AND id = $2")
        .bind(pool.to_string())
        .bind(id.to_string())
        .execute(&mut *conn)
        .await
        .store()?;
    expect_row(done.rows_affected())
}

/// `NotFound` unless the user exists in the pool.
pub(crate) async fn exists(conn: &mut AnyConnection, pool: PoolId, id: UserId) -> StoreResult<()> {
    let row = sqlx::query("SELECT id FROM users WHERE pool_id = $1 AND id = $2")
        .bind(pool.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .store()?;
    row.map(|_| ()).ok_or(StoreError::NotFound)
}

pub(crate) async fn link_in(conn: &mut AnyConnection, link: &FederatedIdentity) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO identity_links \
         (pool_id, provider_name, provider_user_id, user_id, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(link.pool.to_string())
    .bind(link.provider_name.as_str())
    .bind(link.provider_user_id.as_str())
    .bind(link.user_id.to_string())
    .bind(link.created_at.as_secs())
    .execute(&mut *conn)
    .await
    .conflict("this upstream identity is already linked to a user")?;
    Ok(())
}

pub(crate) async fn identities(
    store: &SqlStore,
    pool: PoolId,
    id: UserId,
) -> StoreResult<Vec<FederatedIdentity>> {
    let rows = sqlx::query(
        "SELECT pool_id, provider_name, provider_user_id, user_id, created_at \
         FROM identity_links WHERE pool_id = $1 AND user_id = $2 \
         ORDER BY provider_name, provider_user_id",
    )
    .bind(pool.to_string())
    .bind(id.to_string())
    .fetch_all(&store.pool)
    .await
    .store()?;
    rows.iter()
        .map(|row| {
            Ok(FederatedIdentity {
                pool: parsed(row, "pool_id", PoolId::parse)?,
                provider_name: get(row, "provider_name")?,
                provider_user_id: get(row, "provider_user_id")?,
                user_id: parsed(row, "user_id", UserId::parse)?,
                created_at: Timestamp(get(row, "created_at")?),
            })
        })
        .collect()
}

pub(crate) async fn put_code<'e>(
    conn: impl Executor<'e, Database = Any>,
    code: &VerificationCode,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO verification_codes \
           (pool_id, user_id, attribute, code_sha256, expires_at, attempts, destination, sealed_code) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (pool_id, user_id, attribute) \
         DO UPDATE SET code_sha256 = excluded.code_sha256, expires_at = excluded.expires_at, \
           attempts = excluded.attempts, destination = excluded.destination, \
           sealed_code = excluded.sealed_code",
    )
    .bind(code.pool.to_string())
    .bind(code.user_id.to_string())
    .bind(code.attribute.as_str())
    .bind(code.code_sha256.as_slice())
    .bind(code.expires_at.as_secs())
    .bind(i64::from(code.attempts))
    .bind(code.destination.as_str())
    .bind(code.sealed_code.as_deref())
    .execute(conn)
    .await
    .store()?;
    Ok(())
}

/// One statement: concurrent senders each count, and the window is decided on the row the
/// statement itself produced.
pub(crate) async fn count_code_sent(
    conn: &mut sqlx::AnyConnection,
    pool: PoolId,
    key: &str,
    now: Timestamp,
    window_secs: i64,
    max: u32,
) -> StoreResult<Result<(), Timestamp>> {
    let row = sqlx::query(
        "INSERT INTO code_issuance (pool_id, quota_key, window_start, issued) \
         VALUES ($1, $2, $3, 1) \
         ON CONFLICT (pool_id, quota_key) DO UPDATE SET \
           issued = CASE WHEN code_issuance.window_start <= $4 THEN 1 \
                    ELSE code_issuance.issued + 1 END, \
           window_start = CASE WHEN code_issuance.window_start <= $4 THEN $3 \
                          ELSE code_issuance.window_start END \
         RETURNING issued, window_start",
    )
    .bind(pool.to_string())
    .bind(key)
    .bind(now.as_secs())
    .bind(now.as_secs() - window_secs)
    .fetch_one(conn)
    .await
    .store()?;
    let issued: i64 = get(&row, "issued")?;
    let opened = Timestamp(get(&row, "window_start")?);
    Ok(if issued > i64::from(max) {
        Err(opened.plus_secs(window_secs))
    } else {
        Ok(())
    })
}

pub(crate) async fn take_code<'e>(
    conn: impl Executor<'e, Database = Any>,
    pool: PoolId,
    user: UserId,
    attribute: VerifiableAttribute,
) -> StoreResult<Option<VerificationCode>> {
    // One statement: two concurrent takes cannot both receive the code.
    let row = sqlx::query(
        "DELETE FROM verification_codes WHERE pool_id = $1 AND user_id = $2 AND attribute = $3 \
         RETURNING code_sha256, expires_at, attempts, destination, sealed_code",
    )
    .bind(pool.to_string())
    .bind(user.to_string())
    .bind(attribute.as_str())
    .fetch_optional(conn)
    .await
    .store()?;
    row.map(|row| {
        Ok(VerificationCode {
            pool,
            user_id: user,
            attribute,
            code_sha256: digest(&row, "code_sha256")?,
            expires_at: Timestamp(get(&row, "expires_at")?),
            attempts: u32::try_from(get::<i64>(&row, "attempts")?).unwrap_or(u32::MAX),
            destination: get(&row, "destination")?,
            sealed_code: get(&row, "sealed_code")?,
        })
    })
    .transpose()
}

pub(crate) fn from_row(row: &impl Columns) -> StoreResult<User> {
    let temporary_until = row.int("password_temporary_until")?;
    Ok(User {
        id: row.parse("id", UserId::parse)?,
        pool: row.parse("pool_id", PoolId::parse)?,
        username: row.parse("username", Username::parse)?,
        enabled: if row.int_of("enabled")? != 0 {
            Enabled::Yes
        } else {
            Enabled::No
        },
        status: row.parse("status", UserStatus::parse)?,
        attributes: row.json_of("attributes")?,
        contact_id: row.text("contact_id")?,
        password: row.text("password_phc")?.map(|phc| PasswordCredential {
            phc,
            temporary_until: temporary_until.map(Timestamp),
        }),
        tokens_not_before: row.int("tokens_not_before")?.map(Timestamp),
        mfa: row.parse("mfa", MfaState::parse_stored)?,
        previous_email: match (row.text("previous_email")?, row.int("email_changed_at")?) {
            (Some(address), Some(at)) => Some(PreviousEmail {
                address,
                changed_at: Timestamp(at),
            }),
            _ => None,
        },
        created_at: Timestamp(row.int_of("created_at")?),
        updated_at: Timestamp(row.int_of("updated_at")?),
    })
}
