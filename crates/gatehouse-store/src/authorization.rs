//! Authorization codes and refresh tokens: stored by the SHA-256 of their secret, used once
//! by one `UPDATE … WHERE used_at IS NULL` (the compare-and-set), scoped to one pool.

use gatehouse_domain::authorization::{AuthorizationCode, CodeTaken, RefreshTaken, RefreshToken};
use gatehouse_domain::ids::{ClientId, PoolId, SessionId, UserId};
use gatehouse_domain::store::StoreResult;
use gatehouse_domain::time::Timestamp;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::error::{ResultExt, expect_row};
use crate::rows::{digest, get, json, opt_parsed, parsed, to_json};

const CODE_COLUMNS: &str = "pool_id, code_sha256, client_id, redirect_uri, user_id, \
     browser_session, scopes, nonce, code_challenge, auth_time, created_at, expires_at";

pub(crate) async fn put_code_in(
    conn: &mut AnyConnection,
    code: &AuthorizationCode,
) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO authorization_codes ({CODE_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(code.pool.to_string())
    .bind(&code.code_sha256[..])
    .bind(code.client_id.as_str())
    .bind(code.redirect_uri.as_str())
    .bind(code.user_id.to_string())
    .bind(code.browser_session.to_string())
    .bind(to_json(&code.scopes)?)
    .bind(code.nonce.as_deref())
    .bind(code.code_challenge.as_deref())
    .bind(code.auth_time.as_secs())
    .bind(code.created_at.as_secs())
    .bind(code.expires_at.as_secs())
    .execute(&mut *conn)
    .await
    .conflict("an authorization code with this value already exists")?;
    Ok(())
}

pub(crate) async fn take_code_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    code_sha256: &[u8; 32],
    at: Timestamp,
) -> StoreResult<CodeTaken> {
    let taken = sqlx::query(&format!(
        "UPDATE authorization_codes SET used_at = $3 \
         WHERE pool_id = $1 AND code_sha256 = $2 AND used_at IS NULL RETURNING {CODE_COLUMNS}"
    ))
    .bind(pool.to_string())
    .bind(&code_sha256[..])
    .bind(at.as_secs())
    .fetch_optional(&mut *conn)
    .await
    .store()?;
    if let Some(row) = taken {
        return Ok(CodeTaken::Fresh(Box::new(code_from_row(&row)?)));
    }
    let used = sqlx::query(
        "SELECT issued_session FROM authorization_codes WHERE pool_id = $1 AND code_sha256 = $2",
    )
    .bind(pool.to_string())
    .bind(&code_sha256[..])
    .fetch_optional(&mut *conn)
    .await
    .store()?;
    Ok(match used {
        Some(row) => CodeTaken::Replayed {
            issued: opt_parsed(&row, "issued_session", SessionId::parse)?,
        },
        None => CodeTaken::Unknown,
    })
}

pub(crate) async fn set_code_issued_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    code_sha256: &[u8; 32],
    session: SessionId,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE authorization_codes SET issued_session = $3 \
         WHERE pool_id = $1 AND code_sha256 = $2",
    )
    .bind(pool.to_string())
    .bind(&code_sha256[..])
    .bind(session.to_string())
    .execute(&mut *conn)
    .await
    .store()?;
    expect_row(done.rows_affected())
}

fn code_from_row(row: &AnyRow) -> StoreResult<AuthorizationCode> {
    Ok(AuthorizationCode {
        pool: parsed(row, "pool_id", PoolId::parse)?,
        code_sha256: digest(row, "code_sha256")?,
        client_id: parsed(row, "client_id", ClientId::parse)?,
        redirect_uri: get(row, "redirect_uri")?,
        user_id: parsed(row, "user_id", UserId::parse)?,
        browser_session: parsed(row, "browser_session", SessionId::parse)?,
        scopes: json(row, "scopes")?,
        nonce: get(row, "nonce")?,
        code_challenge: get(row, "code_challenge")?,
        auth_time: Timestamp(get(row, "auth_time")?),
        created_at: Timestamp(get(row, "created_at")?),
        expires_at: Timestamp(get(row, "expires_at")?),
    })
}

const REFRESH_COLUMNS: &str = "pool_id, token_sha256, session_id, client_id, user_id, scopes, \
     auth_time, created_at, expires_at";

pub(crate) async fn put_refresh_in(
    conn: &mut AnyConnection,
    token: &RefreshToken,
) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO refresh_tokens ({REFRESH_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(token.pool.to_string())
    .bind(&token.token_sha256[..])
    .bind(token.session.to_string())
    .bind(token.client_id.as_str())
    .bind(token.user_id.to_string())
    .bind(to_json(&token.scopes)?)
    .bind(token.auth_time.as_secs())
    .bind(token.created_at.as_secs())
    .bind(token.expires_at.as_secs())
    .execute(&mut *conn)
    .await
    .conflict("a refresh token with this value already exists")?;
    Ok(())
}

pub(crate) async fn take_refresh_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    token_sha256: &[u8; 32],
    at: Timestamp,
) -> StoreResult<RefreshTaken> {
    let taken = sqlx::query(&format!(
        "UPDATE refresh_tokens SET used_at = $3 \
         WHERE pool_id = $1 AND token_sha256 = $2 AND used_at IS NULL RETURNING {REFRESH_COLUMNS}"
    ))
    .bind(pool.to_string())
    .bind(&token_sha256[..])
    .bind(at.as_secs())
    .fetch_optional(&mut *conn)
    .await
    .store()?;
    if let Some(row) = taken {
        return Ok(RefreshTaken::Fresh(Box::new(refresh_from_row(&row)?)));
    }
    let used = sqlx::query(&format!(
        "SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE pool_id = $1 AND token_sha256 = $2"
    ))
    .bind(pool.to_string())
    .bind(&token_sha256[..])
    .fetch_optional(&mut *conn)
    .await
    .store()?;
    Ok(match used {
        Some(row) => RefreshTaken::Reused(Box::new(refresh_from_row(&row)?)),
        None => RefreshTaken::Unknown,
    })
}

fn refresh_from_row(row: &AnyRow) -> StoreResult<RefreshToken> {
    Ok(RefreshToken {
        pool: parsed(row, "pool_id", PoolId::parse)?,
        token_sha256: digest(row, "token_sha256")?,
        session: parsed(row, "session_id", SessionId::parse)?,
        client_id: parsed(row, "client_id", ClientId::parse)?,
        user_id: parsed(row, "user_id", UserId::parse)?,
        scopes: json(row, "scopes")?,
        auth_time: Timestamp(get(row, "auth_time")?),
        created_at: Timestamp(get(row, "created_at")?),
        expires_at: Timestamp(get(row, "expires_at")?),
    })
}
