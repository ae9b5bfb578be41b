//! Identity providers, pending federated sign-ins and SAML service-provider keys (see
//! `gatehouse_domain::federation`).

use async_trait::async_trait;
use gatehouse_domain::federation::{
    AttributeMapping, FederatedSession, FederationStore, IdentityProvider, PendingFederation,
    ProviderName, ProviderProtocol, SamlSpKey,
};
use gatehouse_domain::ids::{PoolId, SessionId, UserId};
use gatehouse_domain::permission::{PermissionSet, Role};
use gatehouse_domain::store::StoreResult;
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::user::{FederatedIdentity, UserAttributes};
use sqlx::any::{Any, AnyRow};
use sqlx::{AnyConnection, Executor};

use crate::error::{ResultExt, corrupt, expect_row};
use crate::rows::{digest, flag, get, json, parsed, to_json};
use crate::{Lock, SqlStore};

const COLUMNS: &str =
    "pool_id, name, enabled, protocol, attribute_mapping, sealed_secret, created_at, updated_at";

fn from_row(row: &AnyRow) -> StoreResult<IdentityProvider> {
    let protocol: ProviderProtocol = json(row, "protocol")?;
    let mapping: AttributeMapping = json(row, "attribute_mapping")?;
    Ok(IdentityProvider {
        pool: parsed(row, "pool_id", PoolId::parse)?,
        name: parsed(row, "name", ProviderName::parse)?,
        enabled: get::<i64>(row, "enabled")? != 0,
        protocol,
        attribute_mapping: mapping,
        sealed_secret: get(row, "sealed_secret")?,
        created_at: Timestamp(get(row, "created_at")?),
        updated_at: Timestamp(get(row, "updated_at")?),
    })
}

pub(crate) async fn get_one<'e>(
    conn: impl Executor<'e, Database = Any>,
    pool: PoolId,
    name: &ProviderName,
    lock: Lock,
) -> StoreResult<Option<IdentityProvider>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM identity_providers WHERE pool_id = $1 AND name = $2{}",
        lock.clause()
    ))
    .bind(pool.to_string())
    .bind(name.as_str())
    .fetch_optional(conn)
    .await
    .store()?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn create_in(conn: &mut AnyConnection, idp: &IdentityProvider) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO identity_providers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(idp.pool.to_string())
    .bind(idp.name.as_str())
    .bind(flag(idp.enabled))
    .bind(to_json(&idp.protocol)?)
    .bind(to_json(&idp.attribute_mapping)?)
    .bind(idp.sealed_secret.clone())
    .bind(idp.created_at.as_secs())
    .bind(idp.updated_at.as_secs())
    .execute(&mut *conn)
    .await
    .conflict("the pool has an identity provider of this name")?;
    Ok(())
}

pub(crate) async fn update_in(conn: &mut AnyConnection, idp: &IdentityProvider) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE identity_providers SET enabled = $3, protocol = $4, attribute_mapping = $5, \
         sealed_secret = $6, updated_at = $7 WHERE pool_id = $1 AND name = $2",
    )
    .bind(idp.pool.to_string())
    .bind(idp.name.as_str())
    .bind(flag(idp.enabled))
    .bind(to_json(&idp.protocol)?)
    .bind(to_json(&idp.attribute_mapping)?)
    .bind(idp.sealed_secret.clone())
    .bind(idp.updated_at.as_secs())
    .execute(&mut *conn)
    .await
    .store()?;
    expect_row(done.rows_affected())
}

pub(crate) async fn delete_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    name: &ProviderName,
) -> StoreResult<bool> {
    sqlx::query("DELETE FROM identity_links WHERE pool_id = $1 AND provider_name = $2")
        .bind(pool.to_string())
        .bind(name.as_str())
        .execute(&mut *conn)
        .await
        .store()?;
    let done = sqlx::query("DELETE FROM identity_providers WHERE pool_id = $1 AND name = $2")
        .bind(pool.to_string())
        .bind(name.as_str())
        .execute(&mut *conn)
        .await
        .store()?;
    Ok(done.rows_affected() > 0)
}

/// The union of the permissions of the users linked to a provider (their roles and their
/// groups' roles).
pub(crate) async fn standing_of_linked_users(
    conn: &mut AnyConnection,
    pool: PoolId,
    name: &ProviderName,
) -> StoreResult<PermissionSet> {
    let rows = sqlx::query(
        "SELECT u.attributes FROM users u JOIN identity_links l \
         ON l.pool_id = u.pool_id AND l.user_id = u.id \
         WHERE l.pool_id = $1 AND l.provider_name = $2",
    )
    .bind(pool.to_string())
    .bind(name.as_str())
    .fetch_all(&mut *conn)
    .await
    .store()?;
    let mut set = PermissionSet::default();
    for row in &rows {
        let attributes: UserAttributes = json(row, "attributes")?;
        set.extend(&PermissionSet::from_roles(&attributes.roles));
    }
    let rows = sqlx::query(
        "SELECT DISTINCT g.name, g.roles FROM groups g \
         JOIN group_members m ON m.pool_id = g.pool_id AND m.group_name = g.name \
         JOIN identity_links l ON l.pool_id = m.pool_id AND l.user_id = m.user_id \
         WHERE l.pool_id = $1 AND l.provider_name = $2",
    )
    .bind(pool.to_string())
    .bind(name.as_str())
    .fetch_all(&mut *conn)
    .await
    .store()?;
    for row in &rows {
        let roles: Vec<Role> = json(row, "roles")?;
        set.extend(&PermissionSet::from_roles(&roles));
    }
    Ok(set)
}

pub(crate) async fn identities_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    user: UserId,
) -> StoreResult<Vec<FederatedIdentity>> {
    let rows = sqlx::query(
        "SELECT pool_id, provider_name, provider_user_id, user_id, created_at \
         FROM identity_links WHERE pool_id = $1 AND user_id = $2 \
         ORDER BY created_at, provider_name, provider_user_id",
    )
    .bind(pool.to_string())
    .bind(user.to_string())
    .fetch_all(&mut *conn)
    .await
    .store()?;
    rows.iter()
        .map(|row| {
            Ok(FederatedIdentity {
                pool: parsed(row, "pool_id", PoolId::parse)?,
                provider_name: get(row, "provider_name")?,
                provider_user_id: get(row, "provider_user_id")?,
                user_id: parsed(row, "user_id", UserId::parse)?,
                created_at: Timestamp(get(row, "created_at")?),
            })
        })
        .collect()
}

const SESSION_COLUMNS: &str = "pool_id, session_id, provider_name, subject, name_id_format, \
     session_index, sealed_id_token, created_at";

fn session_from_row(row: &AnyRow) -> StoreResult<FederatedSession> {
    Ok(FederatedSession {
        pool: parsed(row, "pool_id", PoolId::parse)?,
        session_id: parsed(row, "session_id", SessionId::parse)?,
        provider: parsed(row, "provider_name", ProviderName::parse)?,
        subject: get(row, "subject")?,
        name_id_format: get(row, "name_id_format")?,
        session_index: get(row, "session_index")?,
        sealed_id_token: get(row, "sealed_id_token")?,
        created_at: Timestamp(get(row, "created_at")?),
    })
}

pub(crate) async fn put_session_in(
    conn: &mut AnyConnection,
    session: &FederatedSession,
) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO federated_sessions ({SESSION_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(session.pool.to_string())
    .bind(session.session_id.to_string())
    .bind(session.provider.as_str())
    .bind(session.subject.as_str())
    .bind(session.name_id_format.clone())
    .bind(session.session_index.clone())
    .bind(session.sealed_id_token.clone())
    .bind(session.created_at.as_secs())
    .execute(&mut *conn)
    .await
    .conflict("the session is already recorded as federated")?;
    Ok(())
}

pub(crate) async fn sessions_of_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    provider: &ProviderName,
    subject: &str,
) -> StoreResult<Vec<FederatedSession>> {
    let rows = sqlx::query(&format!(
        "SELECT {SESSION_COLUMNS} FROM federated_sessions \
         WHERE pool_id = $1 AND provider_name = $2 AND subject = $3 \
         ORDER BY created_at, session_id"
    ))
    .bind(pool.to_string())
    .bind(provider.as_str())
    .bind(subject)
    .fetch_all(&mut *conn)
    .await
    .store()?;
    rows.iter().map(session_from_row).collect()
}

fn sp_key_from_row(row: &AnyRow) -> StoreResult<SamlSpKey> {
    Ok(SamlSpKey {
        pool: parsed(row, "pool_id", PoolId::parse)?,
        sealed_key: get(row, "sealed_key")?,
        certificate: get(row, "certificate")?,
        created_at: Timestamp(get(row, "created_at")?),
    })
}

#[async_trait]
impl FederationStore for SqlStore {
    async fn identity_providers(&self, pool: PoolId) -> StoreResult<Vec<IdentityProvider>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM identity_providers WHERE pool_id = $1 ORDER BY name"
        ))
        .bind(pool.to_string())
        .fetch_all(&self.pool)
        .await
        .store()?;
        rows.iter().map(from_row).collect()
    }

    async fn identity_provider(
        &self,
        pool: PoolId,
        name: &ProviderName,
    ) -> StoreResult<Option<IdentityProvider>> {
        get_one(&self.pool, pool, name, Lock::None).await
    }

    async fn saml_sp_key(&self, pool: PoolId) -> StoreResult<Option<SamlSpKey>> {
        let row = sqlx::query(
            "SELECT pool_id, sealed_key, certificate, created_at FROM saml_sp_keys \
             WHERE pool_id = $1",
        )
        .bind(pool.to_string())
        .fetch_optional(&self.pool)
        .await
        .store()?;
        row.as_ref().map(sp_key_from_row).transpose()
    }

    async fn put_saml_sp_key(&self, key: &SamlSpKey) -> StoreResult<SamlSpKey> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO saml_sp_keys (pool_id, sealed_key, certificate, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (pool_id) DO NOTHING",
        )
        .bind(key.pool.to_string())
        .bind(key.sealed_key.clone())
        .bind(key.certificate.clone())
        .bind(key.created_at.as_secs())
        .execute(&mut *tx)
        .await
        .store()?;
        let row = sqlx::query(
            "SELECT pool_id, sealed_key, certificate, created_at FROM saml_sp_keys \
             WHERE pool_id = $1",
        )
        .bind(key.pool.to_string())
        .fetch_one(&mut *tx)
        .await
        .store()?;
        let stored = sp_key_from_row(&row)?;
        tx.commit().await.store()?;
        Ok(stored)
    }

    async fn put_pending_federation(&self, pending: &PendingFederation) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO pending_federations \
             (pool_id, handle_sha256, provider_name, payload, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(pending.pool.to_string())
        .bind(pending.handle_sha256.to_vec())
        .bind(pending.provider.as_str())
        .bind(pending.payload.as_str())
        .bind(pending.expires_at.as_secs())
        .execute(&mut *tx)
        .await
        .conflict("a pending sign-in has this handle")?;
        tx.commit().await.store()
    }

    async fn take_pending_federation(
        &self,
        pool: PoolId,
        handle_sha256: &[u8; 32],
        now: Timestamp,
    ) -> StoreResult<Option<PendingFederation>> {
        // One statement deletes and returns: of two callbacks racing, one gets the row.
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "DELETE FROM pending_federations WHERE pool_id = $1 AND handle_sha256 = $2 \
             RETURNING pool_id, handle_sha256, provider_name, payload, expires_at",
        )
        .bind(pool.to_string())
        .bind(handle_sha256.to_vec())
        .fetch_optional(&mut *tx)
        .await
        .store()?;
        tx.commit().await.store()?;
        let Some(row) = row else {
            return Ok(None);
        };
        let pending = PendingFederation {
            pool: parsed(&row, "pool_id", PoolId::parse)?,
            handle_sha256: digest(&row, "handle_sha256")?,
            provider: parsed(&row, "provider_name", ProviderName::parse)?,
            payload: get(&row, "payload")?,
            expires_at: Timestamp(get(&row, "expires_at")?),
        };
        if pending.expires_at <= now {
            return Ok(None);
        }
        if pending.pool != pool {
            return Err(corrupt("pending federation", "another pool's row"));
        }
        Ok(Some(pending))
    }

    async fn federated_session(
        &self,
        pool: PoolId,
        session: SessionId,
    ) -> StoreResult<Option<FederatedSession>> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM federated_sessions \
             WHERE pool_id = $1 AND session_id = $2"
        ))
        .bind(pool.to_string())
        .bind(session.to_string())
        .fetch_optional(&self.pool)
        .await
        .store()?;
        row.as_ref().map(session_from_row).transpose()
    }
}
