//! Each pool's security events, in commit order (see `gatehouse_domain::security_event`).

use gatehouse_domain::ids::PoolId;
use gatehouse_domain::security_event::{SecurityEvent, StoredSecurityEvent};
use gatehouse_domain::store::StoreResult;
use gatehouse_domain::time::Timestamp;
use sqlx::any::{Any, AnyRow};
use sqlx::{AnyConnection, Executor};

use crate::error::ResultExt;
use crate::rows::{get, json, parsed, to_json};
use crate::{Dialect, SqlStore, sessions};

/// Appends events to their pool's log, numbered after everything committed before them:
/// the writer first queues on the pool's revocation lock (PostgreSQL; SQLite's one writer
/// already queues them), held to its commit. Returns their numbers.
pub(crate) async fn append_in(
    conn: &mut AnyConnection,
    dialect: Dialect,
    pool: PoolId,
    events: &[SecurityEvent],
) -> StoreResult<Vec<i64>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    sessions::lock_revocation_order(conn, dialect, pool).await?;
    let mut seqs = Vec::with_capacity(events.len());
    for event in events {
        let row = sqlx::query(
            "INSERT INTO security_events (pool_id, seq, id, txn, kind, subject, at) \
             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6 \
             FROM security_events WHERE pool_id = $1 RETURNING seq",
        )
        .bind(pool.to_string())
        .bind(event.id.as_str())
        .bind(event.txn.as_str())
        .bind(to_json(&event.kind)?)
        .bind(to_json(&event.subject)?)
        .bind(event.at.as_secs())
        .fetch_one(&mut *conn)
        .await
        .conflict("a security event with this id already exists")?;
        seqs.push(get(&row, "seq")?);
    }
    if dialect == Dialect::Postgres {
        // Delivered to every listener when (and only if) the transaction commits.
        // `pg_notify` returns `void`, which the `Any` driver cannot read: select a number.
        sqlx::query("SELECT 1 AS notified FROM (SELECT pg_notify($1, $2)) AS n")
            .bind(crate::bell::CHANNEL)
            .bind(pool.to_string())
            .execute(&mut *conn)
            .await
            .store()?;
    }
    Ok(seqs)
}

/// Up to `limit` events of `pool` committed after `after`, oldest first.
pub(crate) async fn after(
    store: &SqlStore,
    pool: PoolId,
    after: i64,
    limit: u32,
) -> StoreResult<Vec<StoredSecurityEvent>> {
    after_in(&store.pool, pool, after, limit).await
}

/// [`after`] on a connection (inside a transaction).
pub(crate) async fn after_in<'e>(
    conn: impl Executor<'e, Database = Any>,
    pool: PoolId,
    after: i64,
    limit: u32,
) -> StoreResult<Vec<StoredSecurityEvent>> {
    let rows = sqlx::query(
        "SELECT pool_id, seq, id, txn, kind, subject, at FROM security_events \
         WHERE pool_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(pool.to_string())
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .store()?;
    rows.iter().map(from_row).collect()
}

/// The newest event's number in `pool`, 0 when it has none.
pub(crate) async fn latest(store: &SqlStore, pool: PoolId) -> StoreResult<i64> {
    let row =
        sqlx::query("SELECT COALESCE(MAX(seq), 0) AS seq FROM security_events WHERE pool_id = $1")
            .bind(pool.to_string())
            .fetch_one(&store.pool)
            .await
            .store()?;
    get(&row, "seq")
}

fn from_row(row: &AnyRow) -> StoreResult<StoredSecurityEvent> {
    Ok(StoredSecurityEvent {
        seq: get(row, "seq")?,
        event: SecurityEvent {
            pool: parsed(row, "pool_id", PoolId::parse)?,
            id: get(row, "id")?,
            txn: get(row, "txn")?,
            kind: json(row, "kind")?,
            subject: json(row, "subject")?,
            at: Timestamp(get(row, "at")?),
        },
    })
}

/// The highest number the purge deleted from `pool`'s log, 0 when none.
pub(crate) async fn horizon(store: &SqlStore, pool: PoolId) -> StoreResult<i64> {
    let row = sqlx::query(
        "SELECT COALESCE(MAX(seq), 0) AS seq FROM security_event_horizons WHERE pool_id = $1",
    )
    .bind(pool.to_string())
    .fetch_one(&store.pool)
    .await
    .store()?;
    get(&row, "seq")
}

/// The events of `pool` numbered up to `up_to` whose time is `since` or later, oldest first.
pub(crate) async fn in_effect(
    store: &SqlStore,
    pool: PoolId,
    since: Timestamp,
    up_to: i64,
) -> StoreResult<Vec<StoredSecurityEvent>> {
    let rows = sqlx::query(
        "SELECT pool_id, seq, id, txn, kind, subject, at FROM security_events \
         WHERE pool_id = $1 AND at >= $2 AND seq <= $3 ORDER BY seq",
    )
    .bind(pool.to_string())
    .bind(since.as_secs())
    .bind(up_to)
    .fetch_all(&store.pool)
    .await
    .store()?;
    rows.iter().map(from_row).collect()
}

/// The oldest events of a pool from before `$2`, never its newest (the next one is numbered
/// after it, and cursors stand on it), at most `$3`.
const PURGE_BATCH: &str = "SELECT seq FROM security_events \
     WHERE pool_id = $1 AND at < $2 \
       AND seq < (SELECT MAX(n.seq) FROM security_events n WHERE n.pool_id = $1) \
     ORDER BY seq LIMIT $3";

/// Deletes the batch's events (judged again as they are now, never the newest).
const PURGE_DELETE: &str = "DELETE FROM security_events \
     WHERE pool_id = $1 AND at < $2 AND seq <= $3 \
       AND seq < (SELECT MAX(n.seq) FROM security_events n WHERE n.pool_id = $1)";

/// Raises the pool's horizon to `$2` (never lowers it: purges of several instances race).
const RAISE_HORIZON: &str = "INSERT INTO security_event_horizons (pool_id, seq) VALUES ($1, $2) \
     ON CONFLICT (pool_id) DO UPDATE SET seq = CASE \
       WHEN excluded.seq > security_event_horizons.seq THEN excluded.seq \
       ELSE security_event_horizons.seq END";

/// Deletes `pool`'s events from before `before` except its newest, `batch` at a time, each
/// batch in one transaction with the raise of the pool's horizon to the batch's highest
/// number, so that a reader never sees an event gone without the horizon past it. Returns
/// how many were deleted.
pub(crate) async fn purge(
    store: &SqlStore,
    pool: PoolId,
    before: Timestamp,
    batch: i64,
) -> StoreResult<u64> {
    let id = pool.to_string();
    let mut total = 0;
    loop {
        let mut tx = store.begin().await?;
        let rows = sqlx::query(PURGE_BATCH)
            .bind(id.as_str())
            .bind(before.as_secs())
            .bind(batch)
            .fetch_all(&mut *tx)
            .await
            .store()?;
        let mut top = None;
        for row in &rows {
            let seq: i64 = get(row, "seq")?;
            top = top.max(Some(seq));
        }
        let Some(top) = top else {
            return Ok(total);
        };
        let done = sqlx::query(PURGE_DELETE)
            .bind(id.as_str())
            .bind(before.as_secs())
            .bind(top)
            .execute(&mut *tx)
            .await
            .store()?;
        sqlx::query(RAISE_HORIZON)
            .bind(id.as_str())
            .bind(top)
            .execute(&mut *tx)
            .await
            .store()?;
        tx.commit().await.store()?;
        total += done.rows_affected();
        if i64::try_from(rows.len()).unwrap_or(i64::MAX) < batch {
            return Ok(total);
        }
    }
}
