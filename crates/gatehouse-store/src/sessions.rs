//! Sessions and revoked access tokens.

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::ids::{ClientId, PoolId, SessionId, UserId, Username};
use gatehouse_domain::session::{Actor, RevokedToken, Session, SessionKind};
use gatehouse_domain::store::{SessionFilter, StoreResult};
use gatehouse_domain::time::Timestamp;
use sqlx::any::AnyRow;

use crate::error::{ResultExt, corrupt, expect_row};
use crate::rows::{get, opt_json, opt_parsed, parsed, to_json};
use crate::{SqlStore, audit};

const COLUMNS: &str = "pool_id, id, user_id, username, client_id, kind, actor, actor_id, reason, \
                       created_at, expires_at, revoked_at";

const SIGN_IN: &str = "sign_in";
const IMPERSONATION: &str = "impersonation";

pub(crate) async fn create(
    store: &SqlStore,
    session: &Session,
    event: &AuditEvent,
) -> StoreResult<()> {
    let (kind, actor, reason) = match &session.kind {
        SessionKind::SignIn => (SIGN_IN, None, None),
        SessionKind::Impersonation { actor, reason } => {
            (IMPERSONATION, Some(actor), reason.as_deref())
        }
    };
    let mut tx = store.begin().await?;
    sqlx::query(&format!(
        "INSERT INTO sessions ({COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(session.pool.to_string())
    .bind(session.id.to_string())
    .bind(session.user_id.to_string())
    .bind(session.username.as_str())
    .bind(session.client_id.as_ref().map(ClientId::as_str))
    .bind(kind)
    .bind(actor.map(to_json).transpose()?)
    .bind(actor.map(|a| a.id.as_str()))
    .bind(reason)
    .bind(session.created_at.as_secs())
    .bind(session.expires_at.as_secs())
    .bind(session.revoked_at.map(Timestamp::as_secs))
    .execute(&mut *tx)
    .await
    .conflict("a session with this id already exists")?;
    audit::insert(&mut tx, event).await?;
    tx.commit().await.store()
}

pub(crate) async fn get_one(
    store: &SqlStore,
    pool: PoolId,
    id: SessionId,
) -> StoreResult<Option<Session>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM sessions WHERE pool_id = $1 AND id = $2"
    ))
    .bind(pool.to_string())
    .bind(id.to_string())
    .fetch_optional(&store.pool)
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

pub(crate) async fn revoke(
    store: &SqlStore,
    pool: PoolId,
    id: SessionId,
    at: Timestamp,
    event: &AuditEvent,
) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = $3 \
         WHERE pool_id = $1 AND id = $2 AND revoked_at IS NULL",
    )
    .bind(pool.to_string())
    .bind(id.to_string())
    .bind(at.as_secs())
    .execute(&mut *tx)
    .await
    .store()?;
    expect_row(done.rows_affected())?;
    audit::insert(&mut tx, event).await?;
    tx.commit().await.store()
}

pub(crate) async fn revoke_token(
    store: &SqlStore,
    token: &RevokedToken,
    event: &AuditEvent,
) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    sqlx::query(
        "INSERT INTO revoked_tokens (pool_id, jti, expires_at, revoked_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (pool_id, jti) DO NOTHING",
    )
    .bind(token.pool.to_string())
    .bind(token.jti.as_str())
    .bind(token.expires_at.as_secs())
    .bind(token.revoked_at.as_secs())
    .execute(&mut *tx)
    .await
    .store()?;
    audit::insert(&mut tx, event).await?;
    tx.commit().await.store()
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

fn from_row(row: &AnyRow) -> StoreResult<Session> {
    let kind: String = get(row, "kind")?;
    let kind = match kind.as_str() {
        SIGN_IN => SessionKind::SignIn,
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
