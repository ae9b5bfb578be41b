//! Second factors: software tokens and recovery codes (see `gatehouse_domain::mfa`).

use gatehouse_domain::ids::{PoolId, UserId};
use gatehouse_domain::mfa::TotpCredential;
use gatehouse_domain::store::StoreResult;
use gatehouse_domain::time::Timestamp;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::error::ResultExt;
use crate::rows::{get, parsed};

const COLUMNS: &str = "pool_id, user_id, sealed_secret, confirmed_at, last_step, created_at";

fn from_row(row: &AnyRow) -> StoreResult<TotpCredential> {
    Ok(TotpCredential {
        pool: parsed(row, "pool_id", PoolId::parse)?,
        user_id: parsed(row, "user_id", UserId::parse)?,
        sealed_secret: get(row, "sealed_secret")?,
        confirmed_at: get::<Option<i64>>(row, "confirmed_at")?.map(Timestamp),
        last_step: get(row, "last_step")?,
        created_at: Timestamp(get(row, "created_at")?),
    })
}

pub(crate) async fn totp_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    user: UserId,
) -> StoreResult<Option<TotpCredential>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM totp_credentials WHERE pool_id = $1 AND user_id = $2"
    ))
    .bind(pool.to_string())
    .bind(user.to_string())
    .fetch_optional(&mut *conn)
    .await
    .store()?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn put_totp_in(
    conn: &mut AnyConnection,
    credential: &TotpCredential,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM totp_credentials WHERE pool_id = $1 AND user_id = $2")
        .bind(credential.pool.to_string())
        .bind(credential.user_id.to_string())
        .execute(&mut *conn)
        .await
        .store()?;
    sqlx::query(&format!(
        "INSERT INTO totp_credentials ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
    ))
    .bind(credential.pool.to_string())
    .bind(credential.user_id.to_string())
    .bind(credential.sealed_secret.clone())
    .bind(credential.confirmed_at.map(|t| t.as_secs()))
    .bind(credential.last_step)
    .bind(credential.created_at.as_secs())
    .execute(&mut *conn)
    .await
    .conflict("the user already has a software token")?;
    Ok(())
}

pub(crate) async fn accept_step_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    user: UserId,
    step: i64,
    confirm: Option<Timestamp>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE totp_credentials SET last_step = $3, confirmed_at = COALESCE(confirmed_at, $4) \
         WHERE pool_id = $1 AND user_id = $2 AND (last_step IS NULL OR last_step < $3)",
    )
    .bind(pool.to_string())
    .bind(user.to_string())
    .bind(step)
    .bind(confirm.map(|t| t.as_secs()))
    .execute(&mut *conn)
    .await
    .store()?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn replace_recovery_codes_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    user: UserId,
    digests: &[String],
) -> StoreResult<()> {
    sqlx::query("DELETE FROM recovery_codes WHERE pool_id = $1 AND user_id = $2")
        .bind(pool.to_string())
        .bind(user.to_string())
        .execute(&mut *conn)
        .await
        .store()?;
    for d in digests {
        sqlx::query("INSERT INTO recovery_codes (pool_id, user_id, digest) VALUES ($1, $2, $3)")
            .bind(pool.to_string())
            .bind(user.to_string())
            .bind(d.as_str())
            .execute(&mut *conn)
            .await
            .conflict("a recovery code is repeated")?;
    }
    Ok(())
}

pub(crate) async fn take_recovery_code_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    user: UserId,
    digest: &str,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "DELETE FROM recovery_codes WHERE pool_id = $1 AND user_id = $2 AND digest = $3",
    )
    .bind(pool.to_string())
    .bind(user.to_string())
    .bind(digest)
    .execute(&mut *conn)
    .await
    .store()?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn remove_factors_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    user: UserId,
) -> StoreResult<bool> {
    let mut removed = 0;
    for table in ["totp_credentials", "recovery_codes", "webauthn_credentials"] {
        removed += sqlx::query(&format!(
            "DELETE FROM {table} WHERE pool_id = $1 AND user_id = $2"
        ))
        .bind(pool.to_string())
        .bind(user.to_string())
        .execute(&mut *conn)
        .await
        .store()?
        .rows_affected();
    }
    Ok(removed > 0)
}
