//! Failed sign-ins per username (`gatehouse_domain::lockout`).

use gatehouse_domain::ids::{PoolId, Username};
use gatehouse_domain::lockout::{LockoutPolicy, SignInFailures};
use gatehouse_domain::store::StoreResult;
use gatehouse_domain::time::Timestamp;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::SqlStore;
use crate::error::ResultExt;

fn from_row(row: &AnyRow) -> StoreResult<SignInFailures> {
    let count: i64 = row.try_get("failures").store()?;
    Ok(SignInFailures {
        count: u32::try_from(count).unwrap_or(u32::MAX),
        last_at: Timestamp(row.try_get("last_failure_at").store()?),
        locked_until: row
            .try_get::<Option<i64>, _>("locked_until")
            .store()?
            .map(Timestamp),
    })
}

pub(crate) async fn get(
    store: &SqlStore,
    pool: PoolId,
    username: &Username,
) -> StoreResult<Option<SignInFailures>> {
    sqlx::query(
        "SELECT failures, last_failure_at, locked_until FROM sign_in_failures \
         WHERE pool_id = $1 AND username = $2",
    )
    .bind(pool.to_string())
    .bind(username.as_str())
    .fetch_optional(&store.pool)
    .await
    .store()?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// One statement: concurrent failures on any instance each count, and the lock is decided on
/// the count the statement itself produced.
pub(crate) async fn record(
    store: &SqlStore,
    pool: PoolId,
    username: &Username,
    now: Timestamp,
    policy: &LockoutPolicy,
) -> StoreResult<SignInFailures> {
    const NEXT: &str = "CASE WHEN sign_in_failures.last_failure_at < $4 THEN 1 \
                        ELSE sign_in_failures.failures + 1 END";
    let sql = format!(
        "INSERT INTO sign_in_failures (pool_id, username, failures, last_failure_at, locked_until) \
         VALUES ($1, $2, 1, $3, CASE WHEN 1 >= $5 THEN $6 ELSE NULL END) \
         ON CONFLICT (pool_id, username) DO UPDATE SET \
           failures = {NEXT}, \
           last_failure_at = $3, \
           locked_until = CASE WHEN {NEXT} >= $5 THEN $6 ELSE NULL END \
         RETURNING failures, last_failure_at, locked_until"
    );
    let mut tx = store.begin().await?;
    let row = sqlx::query(&sql)
        .bind(pool.to_string())
        .bind(username.as_str())
        .bind(now.as_secs())
        .bind(now.as_secs() - policy.reset_after_secs)
        .bind(i64::from(policy.lock_at))
        .bind(now.plus_secs(policy.lock_secs).as_secs())
        .fetch_one(&mut *tx)
        .await
        .store()?;
    let failures = from_row(&row)?;
    tx.commit().await.store()?;
    Ok(failures)
}

pub(crate) async fn clear(store: &SqlStore, pool: PoolId, username: &Username) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    clear_in(&mut tx, pool, username).await?;
    tx.commit().await.store()
}

/// Whether there was anything to forget.
pub(crate) async fn clear_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    username: &Username,
) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM sign_in_failures WHERE pool_id = $1 AND username = $2")
        .bind(pool.to_string())
        .bind(username.as_str())
        .execute(conn)
        .await
        .store()?;
    Ok(done.rows_affected() > 0)
}
