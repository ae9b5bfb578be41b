//! App clients.

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::backchannel::BackchannelLogout;
use gatehouse_domain::client::{AppClient, AuthFlow, GrantType, SecretDigest, parse_auth_flows};
use gatehouse_domain::ids::{ClientId, PoolId};
use gatehouse_domain::store::StoreResult;
use gatehouse_domain::time::Timestamp;
use sqlx::any::{Any, AnyRow};
use sqlx::{AnyConnection, Executor};

use crate::error::{ResultExt, corrupt, expect_row};
use crate::rows::{flag, get, json, opt_digest, opt_json, parsed, to_json};
use crate::{Lock, SqlStore, audit};

const COLUMNS: &str = "pool_id, client_id, name, secret_sha256, scopes, grant_types, \
     redirect_uris, post_logout_redirect_uris, third_party, created_at, \
     backchannel_logout_uri, backchannel_logout_session_required, secret_sealed, \
     explicit_auth_flows";

pub(crate) async fn create(
    store: &SqlStore,
    client: &AppClient,
    event: &AuditEvent,
) -> StoreResult<()> {
    let grant_types: Vec<&str> = client.grant_types.iter().map(|g| g.as_str()).collect();
    let mut tx = store.begin().await?;
    sqlx::query(&format!(
        "INSERT INTO app_clients ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(client.pool.to_string())
    .bind(client.client_id.as_str())
    .bind(client.name.as_str())
    .bind(client.secret_sha256.map(|d| d.0.to_vec()))
    .bind(to_json(&client.scopes)?)
    .bind(to_json(&grant_types)?)
    .bind(to_json(&client.redirect_uris)?)
    .bind(to_json(&client.post_logout_redirect_uris)?)
    .bind(flag(client.third_party))
    .bind(client.created_at.as_secs())
    .bind(client.backchannel_logout.as_ref().map(|b| b.uri.clone()))
    .bind(flag(
        client
            .backchannel_logout
            .as_ref()
            .is_some_and(|b| b.session_required),
    ))
    .bind(client.secret_sealed.clone())
    .bind(auth_flows_json(client)?)
    .execute(&mut *tx)
    .await
    .conflict("an app client with this id already exists")?;
    audit::insert(&mut tx, event).await?;
    tx.commit().await.store()
}

pub(crate) async fn get_one<'e>(
    conn: impl Executor<'e, Database = Any>,
    pool: PoolId,
    id: &ClientId,
    lock: Lock,
) -> StoreResult<Option<AppClient>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM app_clients WHERE pool_id = $1 AND client_id = $2{}",
        lock.clause()
    ))
    .bind(pool.to_string())
    .bind(id.as_str())
    .fetch_optional(conn)
    .await
    .store()?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn list(store: &SqlStore, pool: PoolId) -> StoreResult<Vec<AppClient>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM app_clients WHERE pool_id = $1 ORDER BY created_at, client_id"
    ))
    .bind(pool.to_string())
    .fetch_all(&store.pool)
    .await
    .store()?;
    rows.iter().map(from_row).collect()
}

/// Writes what of the client may change after its creation: its sign-in flows.
pub(crate) async fn update_in(conn: &mut AnyConnection, client: &AppClient) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE app_clients SET explicit_auth_flows = $3 WHERE pool_id = $1 AND client_id = $2",
    )
    .bind(client.pool.to_string())
    .bind(client.client_id.as_str())
    .bind(auth_flows_json(client)?)
    .execute(&mut *conn)
    .await
    .store()?;
    expect_row(done.rows_affected())
}

/// A client's flows as a JSON array of their names; always written, so a client keeps the
/// flows it was given even if the default changes.
fn auth_flows_json(client: &AppClient) -> StoreResult<String> {
    let names: Vec<&str> = client.auth_flows.iter().map(|f| f.as_str()).collect();
    to_json(&names)
}

pub(crate) async fn delete_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    id: &ClientId,
) -> StoreResult<()> {
    let done = sqlx::query("DELETE FROM app_clients WHERE pool_id = $1 AND client_id = $2")
        .bind(pool.to_string())
        .bind(id.as_str())
        .execute(&mut *conn)
        .await
        .store()?;
    expect_row(done.rows_affected())
}

fn from_row(row: &AnyRow) -> StoreResult<AppClient> {
    let grant_names: Vec<String> = json(row, "grant_types")?;
    let grant_types = grant_names
        .iter()
        .map(|g| GrantType::parse(g).map_err(|e| corrupt("grant_types", e)))
        .collect::<StoreResult<Vec<_>>>()?;
    let auth_flows = match opt_json::<Vec<String>>(row, "explicit_auth_flows")? {
        Some(names) => parse_auth_flows(&names).map_err(|e| corrupt("explicit_auth_flows", e))?,
        None => AuthFlow::DEFAULT.to_vec(),
    };
    Ok(AppClient {
        pool: parsed(row, "pool_id", PoolId::parse)?,
        client_id: parsed(row, "client_id", ClientId::parse)?,
        name: get(row, "name")?,
        secret_sha256: opt_digest(row, "secret_sha256")?.map(SecretDigest),
        secret_sealed: get(row, "secret_sealed")?,
        scopes: json(row, "scopes")?,
        grant_types,
        redirect_uris: json(row, "redirect_uris")?,
        post_logout_redirect_uris: json(row, "post_logout_redirect_uris")?,
        third_party: get::<i64>(row, "third_party")? != 0,
        backchannel_logout: get::<Option<String>>(row, "backchannel_logout_uri")?
            .map(|uri| -> StoreResult<BackchannelLogout> {
                Ok(BackchannelLogout {
                    uri,
                    session_required: get::<i64>(row, "backchannel_logout_session_required")? != 0,
                })
            })
            .transpose()?,
        auth_flows,
        created_at: Timestamp(get(row, "created_at")?),
    })
}
