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
