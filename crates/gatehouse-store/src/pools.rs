//! Pools, their host names and their signing keys.

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::ids::{PoolId, PoolSlug};
use gatehouse_domain::pool::{HostName, Pool, PoolSettings, SigningAlg};
use gatehouse_domain::store::{KeyPurpose, KeyState, SigningKeyRecord, StoreError, StoreResult};
use gatehouse_domain::time::Timestamp;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::error::{ResultExt, expect_row};
use crate::rows::{get, json, parsed, to_json};
use crate::{Lock, SqlStore, audit};

const HOST_TAKEN: &str = "a host name is already bound to a pool";

pub(crate) async fn create(
    store: &SqlStore,
    pool: &Pool,
    keys: &[SigningKeyRecord],
    event: &AuditEvent,
) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    sqlx::query("INSERT INTO pools (id, slug, settings, created_at) VALUES ($1, $2, $3, $4)")
        .bind(pool.id.to_string())
        .bind(pool.slug.as_str())
        .bind(to_json(&pool.settings)?)
        .bind(pool.created_at.as_secs())
        .execute(&mut *tx)
        .await
        .conflict("a pool with this slug already exists")?;
    insert_hosts(&mut tx, pool.id, &pool.hosts).await?;
    for key in keys {
        if key.pool != pool.id {
            return Err(other_pools_key());
        }
        insert_key(&mut tx, pool.id, key).await?;
    }
    audit::insert(&mut tx, event).await?;
    tx.commit().await.store()
}

pub(crate) async fn by_slug(store: &SqlStore, slug: &PoolSlug) -> StoreResult<Option<Pool>> {
    let row = sqlx::query("SELECT id, slug, settings, created_at FROM pools WHERE slug = $1")
        .bind(slug.as_str())
        .fetch_optional(&store.pool)
        .await
        .store()?;
    with_hosts(store, row).await
}

pub(crate) async fn by_host(store: &SqlStore, host: &HostName) -> StoreResult<Option<Pool>> {
    let row = sqlx::query(
        "SELECT p.id, p.slug, p.settings, p.created_at FROM pools p \
         JOIN pool_hosts h ON h.pool_id = p.id WHERE h.host = $1",
    )
    .bind(host.as_str())
    .fetch_optional(&store.pool)
    .await
    .store()?;
    with_hosts(store, row).await
}

/// Pools in slug order: all of them, or a page of at most `limit` after `after`.
pub(crate) async fn list(
    store: &SqlStore,
    after: Option<&PoolSlug>,
    limit: Option<u32>,
) -> StoreResult<Vec<Pool>> {
    // One statement for the page and one for its hosts, whatever the page's size.
    const PAGE: &str = "SELECT id FROM pools WHERE slug > $1 ORDER BY slug LIMIT $2";
    let after = after.map_or("", PoolSlug::as_str);
    let limit = limit.map_or(i64::MAX, i64::from);
    let rows = sqlx::query(
        "SELECT id, slug, settings, created_at FROM pools WHERE slug > $1 ORDER BY slug LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(&store.pool)
    .await
    .store()?;
    let host_rows = sqlx::query(&format!(
        "SELECT pool_id, host FROM pool_hosts WHERE pool_id IN ({PAGE}) ORDER BY position, host"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(&store.pool)
    .await
    .store()?;
    let mut hosts: BTreeMap<String, Vec<HostName>> = BTreeMap::new();
    for row in &host_rows {
        let pool_id: String = get(row, "pool_id")?;
        hosts
            .entry(pool_id)
            .or_default()
            .push(parsed(row, "host", HostName::parse)?);
    }
    rows.iter()
        .map(|row| {
            let id: String = get(row, "id")?;
            pool_from_row(row, hosts.remove(&id).unwrap_or_default())
        })
        .collect()
}

pub(crate) async fn settings_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    lock: Lock,
) -> StoreResult<PoolSettings> {
    let row = sqlx::query(&format!(
        "SELECT settings FROM pools WHERE id = $1{}",
        lock.clause()
    ))
    .bind(pool.to_string())
    .fetch_optional(&mut *conn)
    .await
    .store()?
    .ok_or(StoreError::NotFound)?;
    json(&row, "settings")
}

pub(crate) async fn update_settings_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    settings: &PoolSettings,
) -> StoreResult<()> {
    let done = sqlx::query("UPDATE pools SET settings = $2 WHERE id = $1")
        .bind(pool.to_string())
        .bind(to_json(settings)?)
        .execute(&mut *conn)
        .await
        .store()?;
    expect_row(done.rows_affected())
}

pub(crate) async fn set_hosts(
    store: &SqlStore,
    pool: PoolId,
    hosts: &[HostName],
    event: &AuditEvent,
) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    lock_pool(&mut tx, pool).await?;
    sqlx::query("DELETE FROM pool_hosts WHERE pool_id = $1")
        .bind(pool.to_string())
        .execute(&mut *tx)
        .await
        .store()?;
    insert_hosts(&mut tx, pool, hosts).await?;
    audit::insert(&mut tx, event).await?;
    tx.commit().await.store()
}

pub(crate) async fn signing_keys(
    store: &SqlStore,
    pool: PoolId,
) -> StoreResult<Vec<SigningKeyRecord>> {
    let rows = sqlx::query(SELECT_KEYS)
        .bind(pool.to_string())
        .fetch_all(&store.pool)
        .await
        .store()?;
    rows.iter().map(key_from_row).collect()
}

const SELECT_KEYS: &str = "SELECT pool_id, kid, alg, purpose, state, sealed_private_key, public_jwk, \
     created_at, COALESCE(state_since, created_at) AS state_since \
     FROM signing_keys WHERE pool_id = $1 ORDER BY created_at, kid";

/// The pool's keys inside a write transaction, after taking the pool's row lock.
pub(crate) async fn signing_keys_in(
    conn: &mut AnyConnection,
    pool: PoolId,
) -> StoreResult<Vec<SigningKeyRecord>> {
    lock_pool(conn, pool).await?;
    let rows = sqlx::query(SELECT_KEYS)
        .bind(pool.to_string())
        .fetch_all(&mut *conn)
        .await
        .store()?;
    rows.iter().map(key_from_row).collect()
}

pub(crate) async fn replace_keys_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    keys: &[SigningKeyRecord],
) -> StoreResult<()> {
    sqlx::query("DELETE FROM signing_keys WHERE pool_id = $1")
        .bind(pool.to_string())
        .execute(&mut *conn)
        .await
        .store()?;
    for key in keys {
        if key.pool != pool {
            return Err(other_pools_key());
        }
        insert_key(conn, pool, key).await?;
    }
    Ok(())
}

fn other_pools_key() -> StoreError {
    StoreError::Backend("a signing key of another pool was given to a pool's write".to_owned())
}

/// Deletes the pool; its rows in every other table go with it (`ON DELETE CASCADE`).
pub(crate) async fn delete(store: &SqlStore, pool: PoolId, event: &AuditEvent) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    let done = sqlx::query("DELETE FROM pools WHERE id = $1")
        .bind(pool.to_string())
        .execute(&mut *tx)
        .await
        .store()?;
    expect_row(done.rows_affected())?;
    audit::insert(&mut tx, event).await?;
    tx.commit().await.store()
}

/// Takes the pool's row lock for the rest of the transaction (a no-op write: PostgreSQL locks
/// the row, SQLite's writer lock is already held), so that two replacements of its hosts run
/// one after the other instead of merging their inserts.
async fn lock_pool(conn: &mut AnyConnection, pool: PoolId) -> StoreResult<()> {
    let done = sqlx::query("UPDATE pools SET slug = slug WHERE id = $1")
        .bind(pool.to_string())
        .execute(&mut *conn)
        .await
        .store()?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

async fn insert_hosts(
    conn: &mut AnyConnection,
    pool: PoolId,
    hosts: &[HostName],
) -> StoreResult<()> {
    // The order is kept (the first host names the issuer); a repeated host counts once.
    let mut seen = BTreeSet::new();
    let unique = hosts.iter().filter(|h| seen.insert(h.as_str()));
    for (position, host) in unique.enumerate() {
        sqlx::query("INSERT INTO pool_hosts (host, pool_id, position) VALUES ($1, $2, $3)")
            .bind(host.as_str())
            .bind(pool.to_string())
            .bind(i64::try_from(position).unwrap_or(i64::MAX))
            .execute(&mut *conn)
            .await
            .conflict(HOST_TAKEN)?;
    }
    Ok(())
}

async fn insert_key(
    conn: &mut AnyConnection,
    pool: PoolId,
    key: &SigningKeyRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO signing_keys \
         (pool_id, kid, alg, purpose, state, sealed_private_key, public_jwk, created_at, \
          state_since) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(pool.to_string())
    .bind(key.kid.as_str())
    .bind(key.alg.as_str())
    .bind(key.purpose.as_str())
    .bind(key.state.as_str())
    .bind(key.sealed_private_key.as_slice())
    .bind(key.public_jwk.as_str())
    .bind(key.created_at.as_secs())
    .bind(key.state_since.as_secs())
    .execute(&mut *conn)
    .await
    .conflict("a signing key with this kid already exists")?;
    Ok(())
}

async fn with_hosts(store: &SqlStore, row: Option<AnyRow>) -> StoreResult<Option<Pool>> {
    let Some(row) = row else { return Ok(None) };
    let id: String = get(&row, "id")?;
    let host_rows =
        sqlx::query("SELECT host FROM pool_hosts WHERE pool_id = $1 ORDER BY position, host")
            .bind(id)
            .fetch_all(&store.pool)
            .await
            .store()?;
    let hosts = host_rows
        .iter()
        .map(|r| parsed(r, "host", HostName::parse))
        .collect::<StoreResult<Vec<_>>>()?;
    pool_from_row(&row, hosts).map(Some)
}

fn pool_from_row(row: &AnyRow, hosts: Vec<HostName>) -> StoreResult<Pool> {
    Ok(Pool {
        id: parsed(row, "id", PoolId::parse)?,
        slug: parsed(row, "slug", PoolSlug::parse)?,
        settings: json(row, "settings")?,
        hosts,
        created_at: Timestamp(get(row, "created_at")?),
    })
}

fn key_from_row(row: &AnyRow) -> StoreResult<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        pool: parsed(row, "pool_id", PoolId::parse)?,
        kid: get(row, "kid")?,
        alg: parsed(row, "alg", SigningAlg::parse)?,
        purpose: parsed(row, "purpose", |s| {
            KeyPurpose::parse(s).ok_or("unknown key purpose")
        })?,
        state: parsed(row, "state", |s| {
            KeyState::parse(s).ok_or("unknown key state")
        })?,
        sealed_private_key: get(row, "sealed_private_key")?,
        public_jwk: get(row, "public_jwk")?,
        created_at: Timestamp(get(row, "created_at")?),
        state_since: Timestamp(get(row, "state_since")?),
    })
}
