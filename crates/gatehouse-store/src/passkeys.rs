//! Passkeys and their ceremonies (see `gatehouse_domain::passkey`).

use gatehouse_domain::ids::{PoolId, UserId};
use gatehouse_domain::passkey::{Ceremony, CeremonyPurpose, PasskeyCredential, PasskeyUse};
use gatehouse_domain::store::StoreResult;
use gatehouse_domain::time::Timestamp;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::Lock;
use crate::error::{ResultExt, corrupt};
use crate::rows::{digest, get, parsed};

const COLUMNS: &str = "pool_id, user_id, credential_id, passkey, sign_count, backup_eligible, \
                       backup_state, name, created_at, last_used_at";

fn from_row(row: &AnyRow) -> StoreResult<PasskeyCredential> {
    let count: i64 = get(row, "sign_count")?;
    Ok(PasskeyCredential {
        pool: parsed(row, "pool_id", PoolId::parse)?,
        user_id: parsed(row, "user_id", UserId::parse)?,
        credential_id: get(row, "credential_id")?,
        passkey: get(row, "passkey")?,
        sign_count: u32::try_from(count).map_err(|_| corrupt("passkey", "sign count"))?,
        backup_eligible: get::<i64>(row, "backup_eligible")? != 0,
        backup_state: get::<i64>(row, "backup_state")? != 0,
        name: get(row, "name")?,
        created_at: Timestamp(get(row, "created_at")?),
        last_used_at: get::<Option<i64>>(row, "last_used_at")?.map(Timestamp),
    })
}

pub(crate) async fn of_user_in(
    conn: &mut AnyConnection,
    lock: Lock,
    pool: PoolId,
    user: UserId,
) -> StoreResult<Vec<PasskeyCredential>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM webauthn_credentials WHERE pool_id = $1 AND user_id = $2 \
         ORDER BY created_at, credential_id{}",
        lock.clause()
    ))
    .bind(pool.to_string())
    .bind(user.to_string())
    .fetch_all(&mut *conn)
    .await
    .store()?;
    rows.iter().map(from_row).collect()
}

pub(crate) async fn by_id_in(
    conn: &mut AnyConnection,
    lock: Lock,
    pool: PoolId,
    credential_id: &str,
) -> StoreResult<Option<PasskeyCredential>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM webauthn_credentials WHERE pool_id = $1 AND credential_id = $2{}",
        lock.clause()
    ))
    .bind(pool.to_string())
    .bind(credential_id)
    .fetch_optional(&mut *conn)
    .await
    .store()?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn add_in(conn: &mut AnyConnection, p: &PasskeyCredential) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO webauthn_credentials ({COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(p.pool.to_string())
    .bind(p.user_id.to_string())
    .bind(p.credential_id.as_str())
    .bind(p.passkey.as_str())
    .bind(i64::from(p.sign_count))
    .bind(i64::from(p.backup_eligible))
    .bind(i64::from(p.backup_state))
    .bind(p.name.as_str())
    .bind(p.created_at.as_secs())
    .bind(p.last_used_at.map(|t| t.as_secs()))
    .execute(&mut *conn)
    .await
    .conflict("this passkey is already registered")?;
    Ok(())
}

pub(crate) async fn record_use_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    used: &PasskeyUse,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE webauthn_credentials SET sign_count = $3, backup_state = $4, \
         backup_eligible = $5, passkey = $6, last_used_at = $7 \
         WHERE pool_id = $1 AND credential_id = $2 AND sign_count = $8",
    )
    .bind(pool.to_string())
    .bind(used.credential_id.as_str())
    .bind(i64::from(used.sign_count))
    .bind(i64::from(used.backup_state))
    .bind(i64::from(used.backup_eligible))
    .bind(used.passkey.as_str())
    .bind(used.at.as_secs())
    .bind(i64::from(used.expected_sign_count))
    .execute(&mut *conn)
    .await
    .store()?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn delete_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    user: UserId,
    credential_id: &str,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "DELETE FROM webauthn_credentials \
         WHERE pool_id = $1 AND user_id = $2 AND credential_id = $3",
    )
    .bind(pool.to_string())
    .bind(user.to_string())
    .bind(credential_id)
    .execute(&mut *conn)
    .await
    .store()?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn put_ceremony_in(conn: &mut AnyConnection, c: &Ceremony) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO webauthn_ceremonies \
         (pool_id, handle_sha256, purpose, user_id, state, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(c.pool.to_string())
    .bind(c.handle_sha256.to_vec())
    .bind(c.purpose.as_str())
    .bind(c.user_id.to_string())
    .bind(c.state.as_str())
    .bind(c.expires_at.as_secs())
    .execute(&mut *conn)
    .await
    .conflict("a ceremony with this handle exists")?;
    Ok(())
}

pub(crate) async fn take_ceremony_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    handle_sha256: &[u8; 32],
    now: Timestamp,
) -> StoreResult<Option<Ceremony>> {
    // One statement deletes and returns: of two answers racing, one gets the row.
    let row = sqlx::query(
        "DELETE FROM webauthn_ceremonies WHERE pool_id = $1 AND handle_sha256 = $2 \
         RETURNING pool_id, handle_sha256, purpose, user_id, state, expires_at",
    )
    .bind(pool.to_string())
    .bind(handle_sha256.to_vec())
    .fetch_optional(&mut *conn)
    .await
    .store()?;
    let Some(row) = row else {
        return Ok(None);
    };
    let ceremony = Ceremony {
        pool: parsed(&row, "pool_id", PoolId::parse)?,
        handle_sha256: digest(&row, "handle_sha256")?,
        purpose: parsed(&row, "purpose", CeremonyPurpose::parse)?,
        user_id: parsed(&row, "user_id", UserId::parse)?,
        state: get(&row, "state")?,
        expires_at: Timestamp(get(&row, "expires_at")?),
    };
    if ceremony.expires_at <= now {
        return Ok(None);
    }
    Ok(Some(ceremony))
}
