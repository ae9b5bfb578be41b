//! The impersonation endpoints: the seed's `POST …/users/{username}/impersonate`, the
//! reference's `POST /api/auth/impersonate`, and listing and ending impersonations.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatehouse_domain::ids::{SessionId, Username};
use gatehouse_domain::session::SessionKind;
use gatehouse_service::impersonation::{ImpersonationGrant, ImpersonationRequest};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::{ApiError, no_store};
use crate::extract::{ApiJson, Authenticated, IdPath, Meta, OptionalJson, PoolCtx, UsernamePath};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpersonateBody {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
}

#[derive(Serialize)]
struct SeedResponse {
    id: String,
    #[serde(rename = "type")]
    type_: &'static str,
    attributes: SeedAttributes,
}

#[derive(Serialize)]
struct SeedAttributes {
    token: String,
    token_type: &'static str,
    expires_in: u32,
    impersonation_id: String,
    impersonator: String,
}

fn no_store_json<T: Serialize>(body: T) -> Response {
    let mut res = Json(body).into_response();
    no_store(&mut res);
    res
}

pub async fn impersonate_user(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    UsernamePath(username): UsernamePath,
    Meta(meta): Meta,
    OptionalJson(body): OptionalJson<ImpersonateBody>,
) -> Result<Response, ApiError> {
    let grant: ImpersonationGrant = state
        .gh
        .impersonate(
            &pool,
            &caller,
            &username,
            ImpersonationRequest {
                reason: body.reason,
                expires_in: body.expires_in,
            },
            &meta,
        )
        .await?;
    Ok(no_store_json(SeedResponse {
        id: grant.username.to_string(),
        type_: "access-token",
        attributes: SeedAttributes {
            token: grant.token.expose().to_owned(),
            token_type: "Bearer",
            expires_in: grant.expires_in,
            impersonation_id: grant.impersonation_id.to_string(),
            impersonator: grant.impersonator,
        },
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpersonateByBody {
    username: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
}

#[derive(Serialize)]
struct AccessTokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u32,
    impersonation_id: String,
}

pub async fn impersonate_by_body(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<ImpersonateByBody>,
) -> Result<Response, ApiError> {
    let username =
        Username::parse(&body.username).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let grant = state
        .gh
        .impersonate(
            &pool,
            &caller,
            &username,
            ImpersonationRequest {
                reason: body.reason,
                expires_in: body.expires_in,
            },
            &meta,
        )
        .await?;
    Ok(no_store_json(AccessTokenResponse {
        access_token: grant.token.expose().to_owned(),
        token_type: "Bearer",
        expires_in: grant.expires_in,
        impersonation_id: grant.impersonation_id.to_string(),
    }))
}

#[derive(Serialize)]
struct ImpersonationView {
    id: String,
    username: String,
    impersonator: gatehouse_domain::session::Actor,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    created_at: i64,
    expires_at: i64,
}

#[derive(Serialize)]
struct ImpersonationList {
    impersonations: Vec<ImpersonationView>,
}

pub async fn list(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
) -> Result<Response, ApiError> {
    let sessions = state.gh.list_impersonations(&pool, &caller).await?;
    let impersonations = sessions
        .into_iter()
        .filter_map(|s| match s.kind {
            SessionKind::Impersonation { actor, reason } => Some(ImpersonationView {
                id: s.id.to_string(),
                username: s.username.to_string(),
                impersonator: actor,
                reason,
                created_at: s.created_at.as_secs(),
                expires_at: s.expires_at.as_secs(),
            }),
            SessionKind::SignIn | SessionKind::Browser { .. } | SessionKind::Authorized { .. } => {
                None
            }
        })
        .collect();
    Ok(Json(ImpersonationList { impersonations }).into_response())
}

pub async fn end(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    IdPath(id): IdPath,
    Meta(meta): Meta,
) -> Result<StatusCode, ApiError> {
    let id = SessionId::parse(&id).map_err(|_| ApiError::not_found("impersonation not found"))?;
    state
        .gh
        .end_impersonation(&pool, &caller, id, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
