//! Consents users gave third-party app clients, one row per user and client of a pool.

use gatehouse_domain::consent::Consent;
use gatehouse_domain::ids::{ClientId, PoolId, UserId};
use gatehouse_domain::store::StoreResult;
use gatehouse_domain::time::Timestamp;
use sqlx::any::{Any, AnyRow};
use sqlx::{AnyConnection, Executor};

use crate::Lock;
use crate::error::ResultExt;
use crate::rows::{get, json, parsed, to_json};

const COLUMNS: &str = "pool_id, user_id, client_id, scopes, granted_at, updated_at";

pub(crate) async fn get_one<'e>(
    conn: impl Executor<'e, Database = Any>,
    pool: PoolId,
    user: UserId,
    client: &ClientId,
    lock: Lock,
) -> StoreResult<Option<Consent>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM consents WHERE pool_id = $1 AND user_id = $2 AND client_id = $3{}",
        lock.clause()
    ))
    .bind(pool.to_string())
    .bind(user.to_string())
    .bind(client.as_str())
    .fetch_optional(conn)
    .await
    .store()?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn of_user<'e>(
    conn: impl Executor<'e, Database = Any>,
    pool: PoolId,
    user: UserId,
) -> StoreResult<Vec<Consent>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM consents WHERE pool_id = $1 AND user_id = $2 ORDER BY client_id"
    ))
    .bind(pool.to_string())
    .bind(user.to_string())
    .fetch_all(conn)
    .await
    .store()?;
    rows.iter().map(from_row).collect()
}

/// Inserts the consent, or replaces the scopes and time of the one the user gave the client.
pub(crate) async fn put_in(conn: &mut AnyConnection, consent: &Consent) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO consents ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (pool_id, user_id, client_id) \
         DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at"
    ))
    .bind(consent.pool.to_string())
    .bind(consent.user_id.to_string())
    .bind(consent.client_id.as_str())
    .bind(to_json(&consent.scopes)?)
    .bind(consent.granted_at.as_secs())
    .bind(consent.updated_at.as_secs())
    .execute(&mut *conn)
    .await
    .store()?;
    Ok(())
}

pub(crate) async fn delete_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    user: UserId,
    client: &ClientId,
) -> StoreResult<bool> {
    let done =
        sqlx::query("DELETE FROM consents WHERE pool_id = $1 AND user_id = $2 AND client_id = $3")
            .bind(pool.to_string())
            .bind(user.to_string())
            .bind(client.as_str())
            .execute(&mut *conn)
            .await
            .store()?;
    Ok(done.rows_affected() > 0)
}

fn from_row(row: &AnyRow) -> StoreResult<Consent> {
    Ok(Consent {
        pool: parsed(row, "pool_id", PoolId::parse)?,
        user_id: parsed(row, "user_id", UserId::parse)?,
        client_id: parsed(row, "client_id", ClientId::parse)?,
        scopes: json(row, "scopes")?,
        granted_at: Timestamp(get(row, "granted_at")?),
        updated_at: Timestamp(get(row, "updated_at")?),
    })
}
