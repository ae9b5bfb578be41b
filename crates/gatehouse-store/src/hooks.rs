//! A pool's hooks (see `gatehouse_domain::hooks`).

use async_trait::async_trait;
use gatehouse_domain::hooks::{Hook, HookRuntime, HookStore, HookSummary, Trigger, WasmKind};
use gatehouse_domain::ids::PoolId;
use gatehouse_domain::store::{StoreError, StoreResult};
use gatehouse_domain::time::Timestamp;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::SqlStore;
use crate::error::ResultExt;
use crate::rows::{get, parsed};

const COLUMNS: &str = "pool_id, trigger_name, runtime, wasm_kind, wasm_sha256, wasm, \
                       compatibility, sealed_artifact, url, sealed_secret, created_at, updated_at";

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("hooks: {what}"))
}

fn from_row(row: &AnyRow) -> StoreResult<Hook> {
    let runtime: String = get(row, "runtime")?;
    let runtime = match runtime.as_str() {
        "wasm" => HookRuntime::Wasm {
            kind: parsed(row, "wasm_kind", WasmKind::parse)?,
            sha256: get::<Option<String>>(row, "wasm_sha256")?
                .ok_or_else(|| corrupt("a wasm hook without its digest"))?,
            wasm: get::<Option<Vec<u8>>>(row, "wasm")?
                .ok_or_else(|| corrupt("a wasm hook without its module"))?,
            compatibility: get::<Option<String>>(row, "compatibility")?.unwrap_or_default(),
            sealed_artifact: get::<Option<Vec<u8>>>(row, "sealed_artifact")?
                .ok_or_else(|| corrupt("a wasm hook without its artifact"))?,
        },
        "webhook" => HookRuntime::Webhook {
            url: get::<Option<String>>(row, "url")?
                .ok_or_else(|| corrupt("a webhook without its URL"))?,
            sealed_secret: get::<Option<Vec<u8>>>(row, "sealed_secret")?
                .ok_or_else(|| corrupt("a webhook without its secret"))?,
        },
        other => return Err(corrupt(&format!("unknown runtime '{other}'"))),
    };
    Ok(Hook {
        pool: parsed(row, "pool_id", PoolId::parse)?,
        trigger: parsed(row, "trigger_name", Trigger::parse)?,
        runtime,
        created_at: Timestamp(get(row, "created_at")?),
        updated_at: Timestamp(get(row, "updated_at")?),
    })
}

pub(crate) async fn put_in(conn: &mut AnyConnection, hook: &Hook) -> StoreResult<()> {
    // The first setting's time stays the hook's creation.
    let created_at: Option<i64> =
        sqlx::query_scalar("SELECT created_at FROM hooks WHERE pool_id = $1 AND trigger_name = $2")
            .bind(hook.pool.to_string())
            .bind(hook.trigger.as_str())
            .fetch_optional(&mut *conn)
            .await
            .store()?;
    delete_in(conn, hook.pool, hook.trigger).await?;
    let (runtime, kind, sha, wasm, compat, artifact, url, secret) = match &hook.runtime {
        HookRuntime::Wasm {
            kind,
            sha256,
            wasm,
            compatibility,
            sealed_artifact,
        } => (
            "wasm",
            Some(kind.as_str()),
            Some(sha256.clone()),
            Some(wasm.clone()),
            Some(compatibility.clone()),
            Some(sealed_artifact.clone()),
            None,
            None,
        ),
        HookRuntime::Webhook { url, sealed_secret } => (
            "webhook",
            None,
            None,
            None,
            None,
            None,
            Some(url.clone()),
            Some(sealed_secret.clone()),
        ),
    };
    sqlx::query(&format!(
        "INSERT INTO hooks ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(hook.pool.to_string())
    .bind(hook.trigger.as_str())
    .bind(runtime)
    .bind(kind)
    .bind(sha)
    .bind(wasm)
    .bind(compat)
    .bind(artifact)
    .bind(url)
    .bind(secret)
    .bind(created_at.unwrap_or(hook.created_at.as_secs()))
    .bind(hook.updated_at.as_secs())
    .execute(&mut *conn)
    .await
    .conflict("the trigger has a hook already")?;
    Ok(())
}

pub(crate) async fn delete_in(
    conn: &mut AnyConnection,
    pool: PoolId,
    trigger: Trigger,
) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM hooks WHERE pool_id = $1 AND trigger_name = $2")
        .bind(pool.to_string())
        .bind(trigger.as_str())
        .execute(&mut *conn)
        .await
        .store()?;
    Ok(done.rows_affected() > 0)
}

#[async_trait]
impl HookStore for SqlStore {
    async fn hook_summaries(&self, pool: PoolId) -> StoreResult<Vec<HookSummary>> {
        let rows = sqlx::query(
            "SELECT trigger_name, runtime, wasm_kind, wasm_sha256, \
             CAST(LENGTH(wasm) AS BIGINT) AS size, url, updated_at \
             FROM hooks WHERE pool_id = $1 ORDER BY trigger_name",
        )
        .bind(pool.to_string())
        .fetch_all(&self.pool)
        .await
        .store()?;
        rows.iter()
            .map(|row| {
                let runtime: String = get(row, "runtime")?;
                Ok(HookSummary {
                    trigger: parsed(row, "trigger_name", Trigger::parse)?,
                    runtime: if runtime == "wasm" { "wasm" } else { "webhook" },
                    kind: get::<Option<String>>(row, "wasm_kind")?
                        .map(|k| WasmKind::parse(&k))
                        .transpose()
                        .map_err(|e| corrupt(&e.to_string()))?,
                    sha256: get(row, "wasm_sha256")?,
                    size: get(row, "size")?,
                    url: get(row, "url")?,
                    updated_at: Timestamp(get(row, "updated_at")?),
                })
            })
            .collect()
    }

    async fn hook(&self, pool: PoolId, trigger: Trigger) -> StoreResult<Option<Hook>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM hooks WHERE pool_id = $1 AND trigger_name = $2"
        ))
        .bind(pool.to_string())
        .bind(trigger.as_str())
        .fetch_optional(&self.pool)
        .await
        .store()?;
        row.as_ref().map(from_row).transpose()
    }
}
