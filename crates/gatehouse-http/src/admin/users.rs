//! `/api/user-management/users…`: users, the caller's own profile (`me`), sessions and
//! global sign-out.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_crypto::secret::Secret;
use gatehouse_domain::session::{Session, SessionKind};
use gatehouse_service::users::{NewUser, ProviderIdentity};
use serde::{Deserialize, Serialize};

use super::wire::{ActorView, AttributesWire, UserPage, UserView};
use super::{ApiQuery, next_link, pool_api_url};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated, Meta, PageQuery, PoolCtx, UsernamePath};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    username: String,
    attributes: AttributesWire,
    #[serde(default)]
    contact_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    attributes: AttributesWire,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkToProviderRequest {
    provider_name: String,
    provider_user_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyAttributeRequest {
    verification_code: String,
    attribute: String,
}

#[derive(Serialize)]
struct CreatedUser {
    user: UserView,
}

#[derive(Serialize)]
struct SessionView {
    id: String,
    kind: &'static str,
    client_id: Option<String>,
    created_at: i64,
    expires_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    impersonator: Option<ActorView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl From<&Session> for SessionView {
    fn from(s: &Session) -> Self {
        let (impersonator, reason) = match &s.kind {
            SessionKind::Impersonation { actor, reason } => {
                (Some(ActorView::from(actor)), reason.clone())
            }
            SessionKind::SignIn | SessionKind::Browser { .. } | SessionKind::Authorized { .. } => {
                (None, None)
            }
        };
        let kind = s.kind_name();
        Self {
            id: s.id.to_string(),
            kind,
            client_id: s.client_id.as_ref().map(ToString::to_string),
            created_at: s.created_at.as_secs(),
            expires_at: s.expires_at.as_secs(),
            impersonator,
            reason,
        }
    }
}

#[derive(Serialize)]
struct SessionList {
    sessions: Vec<SessionView>,
}

const USERS: [&str; 2] = ["user-management", "users"];

pub async fn list(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let limit = page.limit()?;
    let found = state
        .gh
        .list_users(&pool, &caller, page.cursor.as_deref(), limit)
        .await?;
    let next = next_link(&state, &pool, &USERS, found.next.as_deref(), limit, &[])?;
    Ok(Json(UserPage {
        users: found.items.iter().map(UserView::from).collect(),
        next,
    })
    .into_response())
}

pub async fn create(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<CreateUserRequest>,
) -> Result<Response, ApiError> {
    let new = NewUser {
        username: body.username,
        attributes: body.attributes.into_domain()?,
        contact_id: body.contact_id,
    };
    let user = state.gh.create_user(&pool, &caller, new, &meta).await?;
    let location = pool_api_url(
        &state,
        &pool,
        &["user-management", "users", user.username.as_str()],
        &[],
    )?;
    let mut res = (
        StatusCode::CREATED,
        Json(CreatedUser {
            user: UserView::from(&user),
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

pub async fn get(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    UsernamePath(username): UsernamePath,
) -> Result<Json<UserView>, ApiError> {
    let user = state.gh.get_user(&pool, &caller, &username).await?;
    Ok(Json(UserView::from(&user)))
}

pub async fn update(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    UsernamePath(username): UsernamePath,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<UpdateUserRequest>,
) -> Result<StatusCode, ApiError> {
    let attributes = body.attributes.into_domain()?;
    state
        .gh
        .update_user(&pool, &caller, &username, attributes, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    UsernamePath(username): UsernamePath,
    Meta(meta): Meta,
) -> Result<StatusCode, ApiError> {
    state
        .gh
        .delete_user(&pool, &caller, &username, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn enable(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    UsernamePath(username): UsernamePath,
    Meta(meta): Meta,
) -> Result<StatusCode, ApiError> {
    state
        .gh
        .enable_user(&pool, &caller, &username, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn disable(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    UsernamePath(username): UsernamePath,
    Meta(meta): Meta,
) -> Result<StatusCode, ApiError> {
    state
        .gh
        .disable_user(&pool, &caller, &username, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn reset_password(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    UsernamePath(username): UsernamePath,
    Meta(meta): Meta,
) -> Result<StatusCode, ApiError> {
    state
        .gh
        .reset_user_password(&pool, &caller, &username, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn disable_mfa(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    UsernamePath(username): UsernamePath,
    Meta(meta): Meta,
) -> Result<StatusCode, ApiError> {
    state
        .gh
        .disable_user_mfa(&pool, &caller, &username, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn link_to_provider(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    UsernamePath(username): UsernamePath,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<LinkToProviderRequest>,
) -> Result<StatusCode, ApiError> {
    let identity = ProviderIdentity {
        provider_name: body.provider_name,
        provider_user_id: body.provider_user_id,
    };
    state
        .gh
        .link_user_to_provider(&pool, &caller, &username, identity, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn sessions(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    UsernamePath(username): UsernamePath,
) -> Result<Response, ApiError> {
    let sessions = state.gh.user_sessions(&pool, &caller, &username).await?;
    Ok(Json(SessionList {
        sessions: sessions.iter().map(SessionView::from).collect(),
    })
    .into_response())
}

pub async fn sign_out(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    UsernamePath(username): UsernamePath,
    Meta(meta): Meta,
) -> Result<StatusCode, ApiError> {
    state
        .gh
        .sign_out_user(&pool, &caller, &username, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn get_me(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
) -> Result<Json<UserView>, ApiError> {
    let user = state.gh.get_own_user(&pool, &caller).await?;
    Ok(Json(UserView::from(&user)))
}

pub async fn update_me(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<UpdateUserRequest>,
) -> Result<StatusCode, ApiError> {
    let attributes = body.attributes.into_domain()?;
    state
        .gh
        .update_own_user(&pool, &caller, attributes, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn verify_attribute(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<VerifyAttributeRequest>,
) -> Result<StatusCode, ApiError> {
    let code = Secret::new(body.verification_code);
    state
        .gh
        .verify_own_attribute(&pool, &caller, &body.attribute, &code, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
