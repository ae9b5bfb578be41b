//! Deleting rows that no longer decide anything (`gatehouse_domain::retention`).
//!
//! Each kind is deleted in batches of at most `policy.batch` rows, one short write
//! transaction per batch, so that SQLite's single writer is free between batches. A batch
//! names the rows to delete in a subquery and repeats the condition on the deleted rows
//! themselves: on PostgreSQL a row changed meanwhile by another transaction (a failure
//! counted again, a code replaced) is judged again as it now is, and a row another instance
//! deleted first is simply not counted twice.

use gatehouse_domain::retention::{PurgeCounts, PurgePolicy};
use gatehouse_domain::store::StoreResult;
use gatehouse_domain::time::Timestamp;

use crate::SqlStore;
use crate::error::ResultExt;
use crate::pools;

/// Sessions that expired, or were revoked, before `$1`.
const SESSIONS: &str = "DELETE FROM sessions \
     WHERE (expires_at < $1 OR revoked_at < $1) AND (pool_id, id) IN \
       (SELECT pool_id, id FROM sessions WHERE expires_at < $1 OR revoked_at < $1 LIMIT $2)";

/// Revoked token ids that expired before `$1`, except the newest of each pool: its `seq` is
/// what the next one is numbered after (`MAX(seq) + 1`) and where readers' cursors stand.
const REVOKED_TOKENS: &str = "DELETE FROM revoked_tokens \
     WHERE expires_at < $1 \
       AND seq < (SELECT MAX(n.seq) FROM revoked_tokens n WHERE n.pool_id = revoked_tokens.pool_id) \
       AND (pool_id, jti) IN \
       (SELECT r.pool_id, r.jti FROM revoked_tokens r \
         WHERE r.expires_at < $1 \
           AND r.seq < (SELECT MAX(m.seq) FROM revoked_tokens m WHERE m.pool_id = r.pool_id) \
         LIMIT $2)";

/// Verification codes that expired before `$1`.
const VERIFICATION_CODES: &str = "DELETE FROM verification_codes \
     WHERE expires_at < $1 AND (pool_id, user_id, attribute) IN \
       (SELECT pool_id, user_id, attribute FROM verification_codes WHERE expires_at < $1 LIMIT $2)";

/// Runs of failures whose last one was before `$1` and whose lock, if any, ended before `$2`.
const SIGN_IN_FAILURES: &str = "DELETE FROM sign_in_failures \
     WHERE last_failure_at < $1 AND (locked_until IS NULL OR locked_until < $2) \
       AND (pool_id, username) IN \
       (SELECT pool_id, username FROM sign_in_failures \
         WHERE last_failure_at < $1 AND (locked_until IS NULL OR locked_until < $2) LIMIT $3)";

/// Windows of codes sent that opened before `$1` (and so have closed).
const CODE_ISSUANCE: &str = "DELETE FROM code_issuance \
     WHERE window_start < $1 AND (pool_id, quota_key) IN \
       (SELECT pool_id, quota_key FROM code_issuance WHERE window_start < $1 LIMIT $2)";

/// Authorization codes that expired before `$1` (a replay after that finds nothing to end:
/// what the code issued has been exchanged long ago, and its session is judged on its own).
const AUTHORIZATION_CODES: &str = "DELETE FROM authorization_codes \
     WHERE expires_at < $1 AND (pool_id, code_sha256) IN \
       (SELECT pool_id, code_sha256 FROM authorization_codes WHERE expires_at < $1 LIMIT $2)";

/// Refresh tokens that expired before `$1`, used or not: until then a used one must stay, so
/// that presenting it again ends its family.
const REFRESH_TOKENS: &str = "DELETE FROM refresh_tokens \
     WHERE expires_at < $1 AND (pool_id, token_sha256) IN \
       (SELECT pool_id, token_sha256 FROM refresh_tokens WHERE expires_at < $1 LIMIT $2)";

/// Federated sign-ins sent to a provider that expired before `$1` without coming back.
const PENDING_FEDERATIONS: &str = "DELETE FROM pending_federations \
     WHERE expires_at < $1 AND (pool_id, handle_sha256) IN \
       (SELECT pool_id, handle_sha256 FROM pending_federations WHERE expires_at < $1 LIMIT $2)";

/// Passkey ceremonies that expired before `$1` without their answer.
const WEBAUTHN_CEREMONIES: &str = "DELETE FROM webauthn_ceremonies \
     WHERE expires_at < $1 AND (pool_id, handle_sha256) IN \
       (SELECT pool_id, handle_sha256 FROM webauthn_ceremonies WHERE expires_at < $1 LIMIT $2)";

/// One pool's audit events recorded before `$2`.
const AUDIT_EVENTS: &str = "DELETE FROM audit_events \
     WHERE pool_id = $1 AND at < $2 AND seq IN \
       (SELECT seq FROM audit_events WHERE pool_id = $1 AND at < $2 LIMIT $3)";

pub(crate) async fn purge_expired(
    store: &SqlStore,
    now: Timestamp,
    policy: &PurgePolicy,
) -> StoreResult<PurgeCounts> {
    let batch = i64::from(policy.batch.max(1));
    let sessions_before = now.plus_secs(-policy.session_grace_secs).as_secs();
    let tokens_before = now.plus_secs(-policy.revocation_margin_secs).as_secs();
    let failures_before = now.plus_secs(-policy.failure_quiet_secs).as_secs();
    let mut counts = PurgeCounts {
        sessions: in_batches(
            store,
            batch,
            |q| q.bind(sessions_before).bind(batch),
            SESSIONS,
        )
        .await?,
        revoked_tokens: in_batches(
            store,
            batch,
            |q| q.bind(tokens_before).bind(batch),
            REVOKED_TOKENS,
        )
        .await?,
        verification_codes: in_batches(
            store,
            batch,
            |q| q.bind(now.as_secs()).bind(batch),
            VERIFICATION_CODES,
        )
        .await?,
        sign_in_failures: in_batches(
            store,
            batch,
            |q| q.bind(failures_before).bind(now.as_secs()).bind(batch),
            SIGN_IN_FAILURES,
        )
        .await?,
        code_issuance: in_batches(
            store,
            batch,
            |q| {
                q.bind(now.plus_secs(-policy.code_window_secs).as_secs())
                    .bind(batch)
            },
            CODE_ISSUANCE,
        )
        .await?,
        authorization_codes: in_batches(
            store,
            batch,
            |q| q.bind(sessions_before).bind(batch),
            AUTHORIZATION_CODES,
        )
        .await?,
        refresh_tokens: in_batches(
            store,
            batch,
            |q| q.bind(sessions_before).bind(batch),
            REFRESH_TOKENS,
        )
        .await?,
        pending_federations: in_batches(
            store,
            batch,
            |q| q.bind(now.as_secs()).bind(batch),
            PENDING_FEDERATIONS,
        )
        .await?,
        webauthn_ceremonies: in_batches(
            store,
            batch,
            |q| q.bind(now.as_secs()).bind(batch),
            WEBAUTHN_CEREMONIES,
        )
        .await?,
        audit_events: 0,
        security_events: 0,
    };
    for pool in pools::list(store, None, None).await? {
        let events_before = now.plus_secs(-pool.settings.security_event_retention_secs());
        counts.security_events +=
            crate::security_events::purge(store, pool.id, events_before, batch).await?;
        if let Some(cutoff) = pool.settings.audit_cutoff(now) {
            let id = pool.id.to_string();
            counts.audit_events += in_batches(
                store,
                batch,
                |q| q.bind(id.clone()).bind(cutoff.as_secs()).bind(batch),
                AUDIT_EVENTS,
            )
            .await?;
        }
    }
    Ok(counts)
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Runs the delete `sql`, its arguments bound by `bind`, one transaction at a time until a
/// batch deletes fewer than `batch` rows; the rows deleted in all.
async fn in_batches<'q>(
    store: &SqlStore,
    batch: i64,
    bind: impl Fn(Query<'q>) -> Query<'q>,
    sql: &'q str,
) -> StoreResult<u64> {
    let mut total = 0;
    loop {
        let mut tx = store.begin().await?;
        let done = bind(sqlx::query(sql)).execute(&mut *tx).await.store()?;
        tx.commit().await.store()?;
        let deleted = done.rows_affected();
        total += deleted;
        if i64::try_from(deleted).unwrap_or(i64::MAX) < batch {
            return Ok(total);
        }
    }
}
