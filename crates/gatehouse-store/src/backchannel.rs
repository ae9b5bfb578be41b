//! Back-channel logout: each pool's place in its event log, and the deliveries it planned
//! (see `gatehouse_domain::backchannel`).

use gatehouse_domain::backchannel::{Delivery, DeliveryState};
use gatehouse_domain::ids::{ClientId, PoolId};
use gatehouse_domain::store::StoreResult;
use gatehouse_domain::time::Timestamp;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::error::{ResultExt, corrupt};
use crate::rows::{get, parsed};
use crate::{Dialect, SqlStore};

const COLUMNS: &str = "pool_id, id, client_id, event_seq, event_id, sub, sid, uri, state, \
     attempts, status, error, created_at, updated_at, next_attempt_at";

/// The pool's cursor, created at 0 if it has none, and locked until the commit.
pub(crate) async fn cursor_in(
    conn: &mut AnyConnection,
    dialect: Dialect,
    pool: PoolId,
) -> StoreResult<i64> {
    sqlx::query(
        "INSERT INTO backchannel_logout_cursors (pool_id, seq) VALUES ($1, 0) \
         ON CONFLICT (pool_id) DO NOTHING",
    )
    .bind(pool.to_string())
    .execute(&mut *conn)
    .await
    .store()?;
    let row = sqlx::query(&format!(
        "SELECT seq FROM backchannel_logout_cursors WHERE pool_id = $1{}",
        dialect.row_lock().clause()
    ))
    .bind(pool.to_string())
    .fetch_one(&mut *conn)
    .await
    .store()?;
    get(&row, "seq")
}

pub(crate) async fn set_cursor_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    seq: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE backchannel_logout_cursors SET seq = $2 WHERE pool_id = $1")
        .bind(pool.to_string())
        .bind(seq)
        .execute(&mut *conn)
        .await
        .store()?;
    Ok(())
}

pub(crate) async fn cursor(store: &SqlStore, pool: PoolId) -> StoreResult<i64> {
    let row = sqlx::query(
        "SELECT COALESCE(MAX(seq), 0) AS seq FROM backchannel_logout_cursors WHERE pool_id = $1",
    )
    .bind(pool.to_string())
    .fetch_one(&store.pool)
    .await
    .store()?;
    get(&row, "seq")
}

pub(crate) async fn put_in(conn: &mut AnyConnection, deliveries: &[Delivery]) -> StoreResult<()> {
    for d in deliveries {
        sqlx::query(&format!(
            "INSERT INTO backchannel_logout_deliveries ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        ))
        .bind(d.pool.to_string())
        .bind(d.id.as_str())
        .bind(d.client_id.as_str())
        .bind(d.event_seq)
        .bind(d.event_id.as_str())
        .bind(d.sub.as_str())
        .bind(d.sid.clone())
        .bind(d.uri.as_str())
        .bind(d.state.as_str())
        .bind(i64::from(d.attempts))
        .bind(d.status.map(i64::from))
        .bind(d.error.clone())
        .bind(d.created_at.as_secs())
        .bind(d.updated_at.as_secs())
        .bind(d.next_attempt_at.map(|t| t.as_secs()))
        .execute(&mut *conn)
        .await
        .conflict("a back-channel logout delivery with this id already exists")?;
    }
    Ok(())
}

/// Claims due deliveries: selects them (on PostgreSQL locking them and skipping rows another
/// claim holds locked) and leases them, in the caller's transaction.
pub(crate) async fn claim_in(
    conn: &mut AnyConnection,
    dialect: Dialect,
    pool: PoolId,
    now: Timestamp,
    lease_id: &str,
    lease_until: Timestamp,
    limit: u32,
) -> StoreResult<Vec<Delivery>> {
    let skip_locked = match dialect {
        Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        Dialect::Sqlite => "",
    };
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM backchannel_logout_deliveries \
         WHERE pool_id = $1 AND next_attempt_at IS NOT NULL AND next_attempt_at <= $2 \
         AND (lease_until IS NULL OR lease_until <= $2) \
         ORDER BY next_attempt_at, id LIMIT $3{skip_locked}"
    ))
    .bind(pool.to_string())
    .bind(now.as_secs())
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .store()?;
    let claimed = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
    for d in &claimed {
        sqlx::query(
            "UPDATE backchannel_logout_deliveries SET lease_id = $3, lease_until = $4 \
             WHERE pool_id = $1 AND id = $2",
        )
        .bind(pool.to_string())
        .bind(d.id.as_str())
        .bind(lease_id)
        .bind(lease_until.as_secs())
        .execute(&mut *conn)
        .await
        .store()?;
    }
    Ok(claimed)
}

pub(crate) async fn finish_in(
    conn: &mut AnyConnection,
    d: &Delivery,
    lease_id: &str,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE backchannel_logout_deliveries SET state = $4, attempts = $5, status = $6, \
         error = $7, updated_at = $8, next_attempt_at = $9, lease_id = NULL, lease_until = NULL \
         WHERE pool_id = $1 AND id = $2 AND lease_id = $3",
    )
    .bind(d.pool.to_string())
    .bind(d.id.as_str())
    .bind(lease_id)
    .bind(d.state.as_str())
    .bind(i64::from(d.attempts))
    .bind(d.status.map(i64::from))
    .bind(d.error.clone())
    .bind(d.updated_at.as_secs())
    .bind(d.next_attempt_at.map(|t| t.as_secs()))
    .execute(&mut *conn)
    .await
    .store()?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn due(store: &SqlStore, pool: PoolId, now: Timestamp) -> StoreResult<bool> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM backchannel_logout_deliveries \
         WHERE pool_id = $1 AND next_attempt_at IS NOT NULL AND next_attempt_at <= $2 \
         AND (lease_until IS NULL OR lease_until <= $2)",
    )
    .bind(pool.to_string())
    .bind(now.as_secs())
    .fetch_one(&store.pool)
    .await
    .store()?;
    Ok(get::<i64>(&row, "n")? > 0)
}

pub(crate) async fn of_client(
    store: &SqlStore,
    pool: PoolId,
    client: &ClientId,
    limit: u32,
) -> StoreResult<Vec<Delivery>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM backchannel_logout_deliveries \
         WHERE pool_id = $1 AND client_id = $2 \
         ORDER BY created_at DESC, event_seq DESC, id DESC LIMIT $3"
    ))
    .bind(pool.to_string())
    .bind(client.as_str())
    .bind(i64::from(limit))
    .fetch_all(&store.pool)
    .await
    .store()?;
    rows.iter().map(from_row).collect()
}

fn from_row(row: &AnyRow) -> StoreResult<Delivery> {
    let state: String = get(row, "state")?;
    let attempts: i64 = get(row, "attempts")?;
    let status: Option<i64> = get(row, "status")?;
    Ok(Delivery {
        pool: parsed(row, "pool_id", PoolId::parse)?,
        id: get(row, "id")?,
        client_id: parsed(row, "client_id", ClientId::parse)?,
        event_seq: get(row, "event_seq")?,
        event_id: get(row, "event_id")?,
        sub: get(row, "sub")?,
        sid: get(row, "sid")?,
        uri: get(row, "uri")?,
        state: DeliveryState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
        attempts: u32::try_from(attempts).map_err(|e| corrupt("attempts", e))?,
        status: status
            .map(u16::try_from)
            .transpose()
            .map_err(|e| corrupt("status", e))?,
        error: get(row, "error")?,
        created_at: Timestamp(get(row, "created_at")?),
        updated_at: Timestamp(get(row, "updated_at")?),
        next_attempt_at: get::<Option<i64>>(row, "next_attempt_at")?.map(Timestamp),
    })
}
