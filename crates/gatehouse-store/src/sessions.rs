//! Sessions and revoked access tokens.

use gatehouse_domain::ids::{ClientId, PoolId, PoolSlug, SessionId, UserId, Username};
use gatehouse_domain::session::{Actor, Revocation, RevokedToken, Session, SessionKind};
use gatehouse_domain::store::{SessionFilter, StoreResult};
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::txn::SessionsToEnd;
use sqlx::any::{Any, AnyRow};
use sqlx::{AnyConnection, Executor};

use crate::error::{ResultExt, corrupt};
use crate::rows::{Param, bind_all, digest, get, opt_json, opt_parsed, parsed, to_json};
use crate::{Dialect, Lock, SqlStore};

const COLUMNS: &str = "pool_id, id, user_id, username, client_id, kind, actor, actor_id, reason, \
                       created_at, expires_at, revoked_at, actor_pool, parent_id, secret_sha256";

const SIGN_IN: &str = "sign_in";
const BROWSER: &str = "browser";
const AUTHORIZED: &str = "authorized";
const IMPERSONATION: &str = "impersonation";

pub(crate) async fn create_in(conn: &mut AnyConnection, session: &Session) -> StoreResult<()> {
    let (sql, params) = insert(session)?;
    bind_all(sqlx::query(&sql), &params)
        .execute(&mut *conn)
        .await
        .conflict("a session with this id already exists")?;
    Ok(())
}

/// The statement that stores a new session.
pub(crate) fn insert(session: &Session) -> StoreResult<(String, Vec<Param>)> {
    let (mut parent, mut secret) = (None, None);
    let (kind, actor, reason) = match &session.kind {
        SessionKind::SignIn => (SIGN_IN, None, None),
        SessionKind::Browser {
            secret_sha256,
            staff,
        } => {
            secret = Some(secret_sha256.to_vec());
            (BROWSER, staff.as_ref(), None)
        }
        SessionKind::Authorized { browser, staff } => {
            parent = Some(browser.to_string());
            (AUTHORIZED, staff.as_ref(), None)
        }
        SessionKind::Impersonation { actor, reason } => {
            (IMPERSONATION, Some(actor), reason.as_deref())
        }
    };
    let sql = format!(
        "INSERT INTO sessions ({COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    );
    let params = vec![
        Param::text(session.pool.to_string()),
        Param::text(session.id.to_string()),
        Param::text(session.user_id.to_string()),
        Param::text(session.username.as_str()),
        Param::opt_text(session.client_id.as_ref().map(ClientId::as_str)),
        Param::text(kind),
        Param::Text(actor.map(to_json).transpose()?),
        Param::opt_text(actor.map(|a| a.id.as_str())),
        Param::opt_text(reason),
        Param::Int(Some(session.created_at.as_secs())),
        Param::Int(Some(session.expires_at.as_secs())),
        Param::Int(session.revoked_at.map(Timestamp::as_secs)),
        Param::opt_text(actor.map(|a| a.pool.as_str())),
        Param::opt_text(parent),
        Param::Blob(secret),
    ];
    Ok((sql, params))
}

pub(crate) async fn get_one<'e>(
    conn: impl Executor<'e, Database = Any>,
    pool: PoolId,
    id: SessionId,
    lock: Lock,
) -> StoreResult<Option<Session>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM sessions WHERE pool_id = $1 AND id = $2{}",
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
    filter: SessionFilter,
) -> StoreResult<Vec<Session>> {
    let rows = match filter {
        SessionFilter::ActiveOfUser(user, now) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM sessions \
                 WHERE pool_id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3 \
                 ORDER BY created_at, id"
            ))
            .bind(pool.to_string())
            .bind(user.to_string())
            .bind(now.as_secs())
            .fetch_all(&store.pool)
            .await
        }
        SessionFilter::ActiveImpersonations(now) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM sessions \
                 WHERE pool_id = $1 AND kind = '{IMPERSONATION}' AND revoked_at IS NULL \
                 AND expires_at > $2 \
                 ORDER BY created_at, id"
            ))
            .bind(pool.to_string())
            .bind(now.as_secs())
            .fetch_all(&store.pool)
            .await
        }
    }
    .store()?;
    rows.iter().map(from_row).collect()
}

/// Ends the active sessions `which` names, returning them as they were before.
pub(crate) async fn end_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    which: &SessionsToEnd,
    at: Timestamp,
) -> StoreResult<Vec<Session>> {
    let mut fourth = None;
    let (scope, second, third) = match which {
        SessionsToEnd::One(id) => ("pool_id = $2 AND id = $3", pool.to_string(), id.to_string()),
        SessionsToEnd::OfUser(user) => (
            "pool_id = $2 AND user_id = $3",
            pool.to_string(),
            user.to_string(),
        ),
        SessionsToEnd::WithChildren(id) => (
            "pool_id = $2 AND (id = $3 OR parent_id = $3)",
            pool.to_string(),
            id.to_string(),
        ),
        SessionsToEnd::ActedByStaff => (
            "pool_id = $2 AND actor_pool = $3",
            pool.to_string(),
            PoolSlug::staff().as_str().to_owned(),
        ),
        SessionsToEnd::AuthorizedFor { user, client } => {
            fourth = Some(client.as_str().to_owned());
            (
                "pool_id = $2 AND user_id = $3 AND client_id = $4 AND kind = 'authorized'",
                pool.to_string(),
                user.to_string(),
            )
        }
        // Every pool: an actor's authority spans pools.
        SessionsToEnd::ActedBy {
            pool: actor_pool,
            actor_id,
        } => (
            "actor_id = $2 AND actor_pool = $3",
            actor_id.clone(),
            actor_pool.as_str().to_owned(),
        ),
    };
    let sql = format!(
        "UPDATE sessions SET revoked_at = $1 \
         WHERE revoked_at IS NULL AND expires_at > $1 AND {scope} RETURNING {COLUMNS}"
    );
    let mut query = sqlx::query(&sql)
        .bind(at.as_secs())
        .bind(second)
        .bind(third);
    if let Some(fourth) = fourth {
        query = query.bind(fourth);
    }
    let rows = query.fetch_all(&mut *conn).await.store()?;
    let mut ended = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
    ended.sort_by_key(|s| (s.created_at, s.id.to_string()));
    Ok(ended)
}

/// Records a revoked (or used) id; `false` if it was already there. The row takes the pool's
/// next `seq` in commit order: on PostgreSQL, writers of one pool queue on an advisory lock
/// held to the end of their transaction; on SQLite the single writer already queues them.
pub(crate) async fn revoke_token_in(
    conn: &mut AnyConnection,
    dialect: Dialect,
    token: &RevokedToken,
) -> StoreResult<bool> {
    lock_revocation_order(conn, dialect, token.pool).await?;
    let done = sqlx::query(
        "INSERT INTO revoked_tokens (pool_id, jti, expires_at, revoked_at, seq) \
         SELECT $1, $2, $3, $4, COALESCE(MAX(seq), 0) + 1 FROM revoked_tokens WHERE pool_id = $1 \
         ON CONFLICT (pool_id, jti) DO NOTHING",
    )
    .bind(token.pool.to_string())
    .bind(token.jti.as_str())
    .bind(token.expires_at.as_secs())
    .bind(token.revoked_at.as_secs())
    .execute(&mut *conn)
    .await
    .store()?;
    Ok(done.rows_affected() == 1)
}

/// Queues this transaction behind every other of the pool that numbers revocations or
/// security events, until its commit (PostgreSQL; SQLite's single writer already queues
/// them). One lock for both, so a transaction that takes both numbers cannot deadlock with
/// one that takes them in the other order.
pub(crate) async fn lock_revocation_order(
    conn: &mut AnyConnection,
    dialect: Dialect,
    pool: PoolId,
) -> StoreResult<()> {
    if dialect == Dialect::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("gatehouse.revoked_tokens.{pool}"))
            .execute(&mut *conn)
            .await
            .store()?;
    }
    Ok(())
}

pub(crate) async fn is_token_revoked(
    store: &SqlStore,
    pool: PoolId,
    jti: &str,
) -> StoreResult<bool> {
    let row = sqlx::query("SELECT jti FROM revoked_tokens WHERE pool_id = $1 AND jti = $2")
        .bind(pool.to_string())
        .bind(jti)
        .fetch_optional(&store.pool)
        .await
        .store()?;
    Ok(row.is_some())
}

/// Revocations of `pool` committed after `after` that have not expired at `now`, and the
/// newest one in any case, so that the reader's cursor moves past expired rows.
pub(crate) async fn revocations_after(
    store: &SqlStore,
    pool: PoolId,
    after: i64,
    now: Timestamp,
) -> StoreResult<Vec<Revocation>> {
    let rows = sqlx::query(
        "SELECT seq, jti, expires_at FROM revoked_tokens \
         WHERE pool_id = $1 AND seq > $2 AND (expires_at > $3 OR seq = \
           (SELECT MAX(seq) FROM revoked_tokens WHERE pool_id = $1)) \
         ORDER BY seq",
    )
    .bind(pool.to_string())
    .bind(after)
    .bind(now.as_secs())
    .fetch_all(&store.pool)
    .await
    .store()?;
    rows.iter()
        .map(|row| {
            Ok(Revocation {
                seq: get(row, "seq")?,
                jti: get(row, "jti")?,
                expires_at: Timestamp(get(row, "expires_at")?),
            })
        })
        .collect()
}

fn from_row(row: &AnyRow) -> StoreResult<Session> {
    let kind: String = get(row, "kind")?;
    let kind = match kind.as_str() {
        SIGN_IN => SessionKind::SignIn,
        BROWSER => SessionKind::Browser {
            secret_sha256: digest(row, "secret_sha256")?,
            staff: opt_json::<Actor>(row, "actor")?,
        },
        AUTHORIZED => SessionKind::Authorized {
            browser: parsed(row, "parent_id", SessionId::parse)?,
            staff: opt_json::<Actor>(row, "actor")?,
        },
        IMPERSONATION => SessionKind::Impersonation {
            actor: opt_json::<Actor>(row, "actor")?
                .ok_or_else(|| corrupt("session actor", "missing for an impersonation"))?,
            reason: get(row, "reason")?,
        },
        other => return Err(corrupt("session kind", other)),
    };
    let revoked_at: Option<i64> = get(row, "revoked_at")?;
    Ok(Session {
        id: parsed(row, "id", SessionId::parse)?,
        pool: parsed(row, "pool_id", PoolId::parse)?,
        user_id: parsed(row, "user_id", UserId::parse)?,
        username: parsed(row, "username", Username::parse)?,
        client_id: opt_parsed(row, "client_id", ClientId::parse)?,
        kind,
        created_at: Timestamp(get(row, "created_at")?),
        expires_at: Timestamp(get(row, "expires_at")?),
        revoked_at: revoked_at.map(Timestamp),
    })
}
