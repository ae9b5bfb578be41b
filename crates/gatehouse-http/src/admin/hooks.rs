//! `/api/auth/settings/hooks` (an extension): the pool's hooks, one per trigger.
//!
//! - `GET …/hooks` lists them (without their bytes).
//! - `PUT …/hooks/{trigger}` sets one: a WebAssembly module or component as the body, with
//!   `Content-Type: application/wasm` (at most 32 MiB; it is compiled before the answer, so a
//!   module that compiles slower than the request timeout is set with the CLI), or an HTTPS
//!   webhook as JSON `{"url": …, "secret": …}`.
//! - `DELETE …/hooks/{trigger}` removes one.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, put};
use axum::{Router, response::IntoResponse, response::Response};
use gatehouse_crypto::secret::Secret;
use gatehouse_domain::hooks::{HookSummary, Trigger};
use gatehouse_service::ServiceError;
use gatehouse_service::hooks::{HookSource, MAX_WASM_BYTES};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Authenticated, IdPath, Meta, PoolCtx};

pub const HOOKS: &str = "/api/auth/settings/hooks";

pub fn routes() -> Router<AppState> {
    Router::new().route(HOOKS, get(list)).route(
        &format!("{HOOKS}/{{id}}"),
        put(set)
            .delete(delete)
            // A module is larger than any JSON body the API takes.
            .layer(axum::extract::DefaultBodyLimit::max(MAX_WASM_BYTES)),
    )
}

/// A hook as the API answers it.
#[derive(Debug, Serialize)]
pub struct HookView {
    trigger: &'static str,
    runtime: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    updated_at: i64,
}

impl From<HookSummary> for HookView {
    fn from(s: HookSummary) -> Self {
        Self {
            trigger: s.trigger.as_str(),
            runtime: s.runtime,
            kind: s.kind.map(|k| k.as_str()),
            sha256: s.sha256,
            size: s.size,
            url: s.url,
            updated_at: s.updated_at.as_secs(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct HookList {
    hooks: Vec<HookView>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookBody {
    url: String,
    secret: String,
}

fn trigger(name: &str) -> Result<Trigger, ApiError> {
    Trigger::parse(name).map_err(|e| ApiError::from(ServiceError::from(e)))
}

pub async fn list(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
) -> Result<Json<HookList>, ApiError> {
    let hooks = state.gh.list_hooks(&pool, Some(&caller)).await?;
    Ok(Json(HookList {
        hooks: hooks.into_iter().map(HookView::from).collect(),
    }))
}

pub async fn set(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    Meta(meta): Meta,
    IdPath(name): IdPath,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let trigger = trigger(&name)?;
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let source = match media.as_str() {
        "application/wasm" => HookSource::Wasm(body.to_vec()),
        "application/json" => {
            if body.len() > 64 * 1024 {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "a webhook's settings are at most 64 KiB",
                ));
            }
            let w: WebhookBody = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("the body: {e}")))?;
            HookSource::Webhook {
                url: w.url,
                secret: Secret::new(w.secret),
            }
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send a module as application/wasm, or a webhook as application/json",
            ));
        }
    };
    let summary = state
        .gh
        .set_hook(&pool, Some(&caller), trigger, source, &meta)
        .await?;
    Ok((StatusCode::OK, Json(HookView::from(summary))).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    Meta(meta): Meta,
    IdPath(name): IdPath,
) -> Result<StatusCode, ApiError> {
    let trigger = trigger(&name)?;
    state
        .gh
        .delete_hook(&pool, Some(&caller), trigger, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
