//! SSF streams, their excluded subjects and their queues (see `gatehouse_domain::ssf`). Every
//! write runs in a write transaction of its own (SQLite's writer queue, PostgreSQL row locks)
//! and is a compare-and-set on what it was decided from.

use async_trait::async_trait;
use gatehouse_domain::ids::{ClientId, PoolId};
use gatehouse_domain::ssf::{
    DeliveryMethod, FanOut, HELD_MAX, QueuedSet, SsfStore, SsfStream, StreamStatus,
};
use gatehouse_domain::store::StoreResult;
use gatehouse_domain::time::Timestamp;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::error::{ResultExt, corrupt};
use crate::rows::{get, json, parsed, to_json};
use crate::{Lock, SqlStore};

const STREAM_COLUMNS: &str = "pool_id, id, client_id, description, events_requested, method, \
     endpoint_url, authorization_header, status, status_reason, position, version, created_at, \
     last_verification_at";

fn stream_from_row(row: &AnyRow) -> StoreResult<SsfStream> {
    let method: String = get(row, "method")?;
    let status: String = get(row, "status")?;
    Ok(SsfStream {
        pool: parsed(row, "pool_id", PoolId::parse)?,
        id: get(row, "id")?,
        client: parsed(row, "client_id", ClientId::parse)?,
        description: get(row, "description")?,
        events_requested: json(row, "events_requested")?,
        method: DeliveryMethod::parse(&method)
            .ok_or_else(|| corrupt("stream delivery method", &method))?,
        endpoint_url: get(row, "endpoint_url")?,
        authorization_header: get(row, "authorization_header")?,
        status: StreamStatus::parse(&status).ok_or_else(|| corrupt("stream status", &status))?,
        status_reason: get(row, "status_reason")?,
        position: get(row, "position")?,
        version: get(row, "version")?,
        created_at: Timestamp(get(row, "created_at")?),
        last_verification_at: get::<Option<i64>>(row, "last_verification_at")?.map(Timestamp),
    })
}

fn queued_from_row(row: &AnyRow) -> StoreResult<QueuedSet> {
    Ok(QueuedSet {
        jti: get(row, "jti")?,
        set: get(row, "set_jwt")?,
        attempts: get(row, "attempts")?,
        first_attempt_at: get::<Option<i64>>(row, "first_attempt_at")?.map(Timestamp),
        next_attempt_at: Timestamp(get(row, "next_attempt_at")?),
    })
}

/// Locks the stream's row until the transaction ends (PostgreSQL; SQLite's one writer
/// already serialises); `false` when there is no such stream.
async fn lock_stream(
    conn: &mut AnyConnection,
    lock: Lock,
    pool: PoolId,
    stream: &str,
) -> StoreResult<bool> {
    let row = sqlx::query(&format!(
        "SELECT id FROM ssf_streams WHERE pool_id = $1 AND id = $2{}",
        lock.clause()
    ))
    .bind(pool.to_string())
    .bind(stream)
    .fetch_optional(&mut *conn)
    .await
    .store()?;
    Ok(row.is_some())
}

/// Appends SETs to a stream's queue after its last one, up to [`HELD_MAX`] queued.
async fn append(
    conn: &mut AnyConnection,
    pool: PoolId,
    stream: &str,
    sets: &[QueuedSet],
) -> StoreResult<()> {
    if sets.is_empty() {
        return Ok(());
    }
    let row = sqlx::query(
        "SELECT COUNT(*) AS held, COALESCE(MAX(n), 0) AS last FROM ssf_queue \
         WHERE pool_id = $1 AND stream_id = $2",
    )
    .bind(pool.to_string())
    .bind(stream)
    .fetch_one(&mut *conn)
    .await
    .store()?;
    let held: i64 = get(&row, "held")?;
    let mut last: i64 = get(&row, "last")?;
    let room = usize::try_from(HELD_MAX.saturating_sub(held)).unwrap_or(0);
    for set in sets.iter().take(room) {
        last += 1;
        sqlx::query(
            "INSERT INTO ssf_queue (pool_id, stream_id, n, jti, set_jwt, attempts, \
             first_attempt_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (pool_id, stream_id, jti) DO NOTHING",
        )
        .bind(pool.to_string())
        .bind(stream)
        .bind(last)
        .bind(set.jti.as_str())
        .bind(set.set.as_str())
        .bind(set.attempts)
        .bind(set.first_attempt_at.map(|t| t.as_secs()))
        .bind(set.next_attempt_at.as_secs())
        .execute(&mut *conn)
        .await
        .store()?;
    }
    Ok(())
}

#[async_trait]
impl SsfStore for SqlStore {
    async fn ssf_streams(
        &self,
        pool: PoolId,
        client: Option<&ClientId>,
    ) -> StoreResult<Vec<SsfStream>> {
        let rows = match client {
            Some(client) => sqlx::query(&format!(
                "SELECT {STREAM_COLUMNS} FROM ssf_streams WHERE pool_id = $1 AND client_id = $2 \
                 ORDER BY id"
            ))
            .bind(pool.to_string())
            .bind(client.to_string())
            .fetch_all(&self.pool)
            .await
            .store()?,
            None => sqlx::query(&format!(
                "SELECT {STREAM_COLUMNS} FROM ssf_streams WHERE pool_id = $1 ORDER BY id"
            ))
            .bind(pool.to_string())
            .fetch_all(&self.pool)
            .await
            .store()?,
        };
        rows.iter().map(stream_from_row).collect()
    }

    async fn ssf_stream(&self, pool: PoolId, id: &str) -> StoreResult<Option<SsfStream>> {
        let row = sqlx::query(&format!(
            "SELECT {STREAM_COLUMNS} FROM ssf_streams WHERE pool_id = $1 AND id = $2"
        ))
        .bind(pool.to_string())
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .store()?;
        row.as_ref().map(stream_from_row).transpose()
    }

    async fn ssf_create_stream(&self, s: &SsfStream) -> StoreResult<SsfStream> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO ssf_streams (pool_id, id, client_id, description, events_requested, \
             method, endpoint_url, authorization_header, status, status_reason, position, \
             version, created_at, last_verification_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, COALESCE(MAX(seq), 0), 1, $11, NULL \
             FROM security_events WHERE pool_id = $1",
        )
        .bind(s.pool.to_string())
        .bind(s.id.as_str())
        .bind(s.client.to_string())
        .bind(s.description.as_deref())
        .bind(to_json(&s.events_requested)?)
        .bind(s.method.urn())
        .bind(s.endpoint_url.as_deref())
        .bind(s.authorization_header.as_deref())
        .bind(s.status.as_str())
        .bind(s.status_reason.as_deref())
        .bind(s.created_at.as_secs())
        .execute(&mut *tx)
        .await
        .conflict("the receiver has a stream already")?;
        let row = sqlx::query(&format!(
            "SELECT {STREAM_COLUMNS} FROM ssf_streams WHERE pool_id = $1 AND id = $2"
        ))
        .bind(s.pool.to_string())
        .bind(s.id.as_str())
        .fetch_one(&mut *tx)
        .await
        .store()?;
        let stored = stream_from_row(&row)?;
        tx.commit().await.store()?;
        Ok(stored)
    }

    async fn ssf_update_stream(&self, s: &SsfStream) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let changed = sqlx::query(
            "UPDATE ssf_streams SET description = $3, events_requested = $4, method = $5, \
             endpoint_url = $6, authorization_header = $7, status = $8, status_reason = $9, \
             version = version + 1 WHERE pool_id = $1 AND id = $2 AND version = $10",
        )
        .bind(s.pool.to_string())
        .bind(s.id.as_str())
        .bind(s.description.as_deref())
        .bind(to_json(&s.events_requested)?)
        .bind(s.method.urn())
        .bind(s.endpoint_url.as_deref())
        .bind(s.authorization_header.as_deref())
        .bind(s.status.as_str())
        .bind(s.status_reason.as_deref())
        .bind(s.version)
        .execute(&mut *tx)
        .await
        .store()?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        if s.status == StreamStatus::Disabled {
            sqlx::query("DELETE FROM ssf_queue WHERE pool_id = $1 AND stream_id = $2")
                .bind(s.pool.to_string())
                .bind(s.id.as_str())
                .execute(&mut *tx)
                .await
                .store()?;
        }
        tx.commit().await.store()?;
        Ok(true)
    }

    async fn ssf_delete_stream(&self, pool: PoolId, id: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        for table in ["ssf_queue", "ssf_excluded_subjects", "ssf_delivery_errors"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE pool_id = $1 AND stream_id = $2"
            ))
            .bind(pool.to_string())
            .bind(id)
            .execute(&mut *tx)
            .await
            .store()?;
        }
        let gone = sqlx::query("DELETE FROM ssf_streams WHERE pool_id = $1 AND id = $2")
            .bind(pool.to_string())
            .bind(id)
            .execute(&mut *tx)
            .await
            .store()?
            .rows_affected();
        tx.commit().await.store()?;
        Ok(gone > 0)
    }

    async fn ssf_mark_verification(
        &self,
        pool: PoolId,
        id: &str,
        last: Option<Timestamp>,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let changed = match last {
            Some(last) => sqlx::query(
                "UPDATE ssf_streams SET last_verification_at = $3 \
                 WHERE pool_id = $1 AND id = $2 AND last_verification_at = $4",
            )
            .bind(pool.to_string())
            .bind(id)
            .bind(at.as_secs())
            .bind(last.as_secs()),
            None => sqlx::query(
                "UPDATE ssf_streams SET last_verification_at = $3 \
                 WHERE pool_id = $1 AND id = $2 AND last_verification_at IS NULL",
            )
            .bind(pool.to_string())
            .bind(id)
            .bind(at.as_secs()),
        }
        .execute(&mut *tx)
        .await
        .store()?
        .rows_affected();
        tx.commit().await.store()?;
        Ok(changed > 0)
    }

    async fn ssf_excluded_subjects(&self, pool: PoolId, stream: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT key FROM ssf_excluded_subjects WHERE pool_id = $1 AND stream_id = $2 \
             ORDER BY key",
        )
        .bind(pool.to_string())
        .bind(stream)
        .fetch_all(&self.pool)
        .await
        .store()?;
        rows.iter().map(|r| get(r, "key")).collect()
    }

    async fn ssf_exclude_subject(
        &self,
        pool: PoolId,
        stream: &str,
        key: &str,
        excluded: bool,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        if excluded {
            sqlx::query(
                "INSERT INTO ssf_excluded_subjects (pool_id, stream_id, key) VALUES ($1, $2, $3) \
                 ON CONFLICT (pool_id, stream_id, key) DO NOTHING",
            )
        } else {
            sqlx::query(
                "DELETE FROM ssf_excluded_subjects \
                 WHERE pool_id = $1 AND stream_id = $2 AND key = $3",
            )
        }
        .bind(pool.to_string())
        .bind(stream)
        .bind(key)
        .execute(&mut *tx)
        .await
        // The stream went meanwhile: there is nothing to change.
        .or_else(|e| match e {
            sqlx::Error::Database(db)
                if db.kind() == sqlx::error::ErrorKind::ForeignKeyViolation =>
            {
                Ok(Default::default())
            }
            e => Err(e),
        })
        .store()?;
        tx.commit().await.store()
    }

    async fn ssf_fan_out(&self, pool: PoolId, stream: &str, fan: FanOut<'_>) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let moved = sqlx::query(
            "UPDATE ssf_streams SET position = $4 \
             WHERE pool_id = $1 AND id = $2 AND position = $3",
        )
        .bind(pool.to_string())
        .bind(stream)
        .bind(fan.from)
        .bind(fan.to)
        .execute(&mut *tx)
        .await
        .store()?
        .rows_affected();
        if moved == 0 {
            return Ok(false);
        }
        append(&mut tx, pool, stream, fan.sets).await?;
        tx.commit().await.store()?;
        Ok(true)
    }

    async fn ssf_enqueue(&self, pool: PoolId, stream: &str, sets: &[QueuedSet]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        if lock_stream(&mut tx, self.dialect.row_lock(), pool, stream).await? {
            append(&mut tx, pool, stream, sets).await?;
        }
        tx.commit().await.store()
    }

    async fn ssf_queued(
        &self,
        pool: PoolId,
        stream: &str,
        limit: u32,
    ) -> StoreResult<Vec<QueuedSet>> {
        let rows = sqlx::query(
            "SELECT jti, set_jwt, attempts, first_attempt_at, next_attempt_at FROM ssf_queue \
             WHERE pool_id = $1 AND stream_id = $2 ORDER BY n LIMIT $3",
        )
        .bind(pool.to_string())
        .bind(stream)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .store()?;
        rows.iter().map(queued_from_row).collect()
    }

    async fn ssf_queued_more_than(&self, pool: PoolId, stream: &str, n: u32) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS held FROM (SELECT n FROM ssf_queue \
             WHERE pool_id = $1 AND stream_id = $2 LIMIT $3) AS q",
        )
        .bind(pool.to_string())
        .bind(stream)
        .bind(i64::from(n) + 1)
        .fetch_one(&self.pool)
        .await
        .store()?;
        let held: i64 = get(&row, "held")?;
        Ok(held > i64::from(n))
    }

    async fn ssf_dequeue(&self, pool: PoolId, stream: &str, jtis: &[String]) -> StoreResult<u64> {
        if jtis.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let mut removed = 0;
        for jti in jtis {
            removed += sqlx::query(
                "DELETE FROM ssf_queue WHERE pool_id = $1 AND stream_id = $2 AND jti = $3",
            )
            .bind(pool.to_string())
            .bind(stream)
            .bind(jti.as_str())
            .execute(&mut *tx)
            .await
            .store()?
            .rows_affected();
        }
        tx.commit().await.store()?;
        Ok(removed)
    }

    async fn ssf_retry_later(
        &self,
        pool: PoolId,
        stream: &str,
        queued: &QueuedSet,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE ssf_queue SET attempts = $4, first_attempt_at = $5, next_attempt_at = $6 \
             WHERE pool_id = $1 AND stream_id = $2 AND jti = $3",
        )
        .bind(pool.to_string())
        .bind(stream)
        .bind(queued.jti.as_str())
        .bind(queued.attempts)
        .bind(queued.first_attempt_at.map(|t| t.as_secs()))
        .bind(queued.next_attempt_at.as_secs())
        .execute(&mut *tx)
        .await
        .store()?;
        tx.commit().await.store()
    }

    async fn ssf_record_error(
        &self,
        pool: PoolId,
        stream: &str,
        jti: &str,
        err: &str,
        description: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        if lock_stream(&mut tx, self.dialect.row_lock(), pool, stream).await? {
            sqlx::query(
                "INSERT INTO ssf_delivery_errors (pool_id, stream_id, jti, err, description, at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (pool_id, stream_id, jti) \
                 DO UPDATE SET err = $4, description = $5, at = $6",
            )
            .bind(pool.to_string())
            .bind(stream)
            .bind(jti)
            .bind(err)
            .bind(description)
            .bind(at.as_secs())
            .execute(&mut *tx)
            .await
            .store()?;
            // Only the newest errors are kept.
            sqlx::query(
                "DELETE FROM ssf_delivery_errors WHERE pool_id = $1 AND stream_id = $2 \
                 AND jti NOT IN (SELECT jti FROM ssf_delivery_errors \
                 WHERE pool_id = $1 AND stream_id = $2 ORDER BY at DESC, jti LIMIT 100)",
            )
            .bind(pool.to_string())
            .bind(stream)
            .execute(&mut *tx)
            .await
            .store()?;
        }
        tx.commit().await.store()
    }

    async fn ssf_take_lease(
        &self,
        pool: PoolId,
        stream: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let taken = sqlx::query(
            "UPDATE ssf_streams SET lease_owner = $3, lease_until = $5 \
             WHERE pool_id = $1 AND id = $2 \
             AND (lease_owner IS NULL OR lease_owner = $3 OR lease_until < $4)",
        )
        .bind(pool.to_string())
        .bind(stream)
        .bind(owner)
        .bind(now.as_secs())
        .bind(until.as_secs())
        .execute(&mut *tx)
        .await
        .store()?
        .rows_affected();
        tx.commit().await.store()?;
        Ok(taken > 0)
    }

    async fn ssf_release_lease(&self, pool: PoolId, stream: &str, owner: &str) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE ssf_streams SET lease_owner = NULL, lease_until = NULL \
             WHERE pool_id = $1 AND id = $2 AND lease_owner = $3",
        )
        .bind(pool.to_string())
        .bind(stream)
        .bind(owner)
        .execute(&mut *tx)
        .await
        .store()?;
        tx.commit().await.store()
    }
}
