//! `/api/user-management/groups…` and a user's group memberships
//! (`/api/user-management/users/{username}/groups`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_service::groups::{GroupUpdate, NewGroup};
use serde::Deserialize;

use super::wire::{GroupPage, GroupView, UserPage, UserView};
use super::{ApiQuery, next_link, pool_api_url};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated, GroupPath, Meta, PageQuery, PoolCtx, UsernamePath};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGroupRequest {
    name: String,
    /// Required by the reference document (`Group.description`, at least one character).
    description: String,
    #[serde(default)]
    roles: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroupRequest {
    description: String,
    #[serde(default)]
    roles: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserGroupsRequest {
    groups: Vec<String>,
}

const GROUPS: [&str; 2] = ["user-management", "groups"];

pub async fn list(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let limit = page.limit()?;
    let found = state
        .gh
        .list_groups(&pool, &caller, page.cursor.as_deref(), limit)
        .await?;
    let next = next_link(&state, &pool, &GROUPS, found.next.as_deref(), limit, &[])?;
    Ok(Json(GroupPage {
        groups: found.items.iter().map(GroupView::from).collect(),
        next,
    })
    .into_response())
}

pub async fn create(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<CreateGroupRequest>,
) -> Result<Response, ApiError> {
    let new = NewGroup {
        name: body.name,
        description: body.description,
        roles: body.roles,
    };
    let group = state.gh.create_group(&pool, &caller, new, &meta).await?;
    let location = pool_api_url(
        &state,
        &pool,
        &["user-management", "groups", group.name.as_str()],
        &[],
    )?;
    let mut res = (StatusCode::CREATED, Json(GroupView::from(&group))).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

pub async fn get(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    GroupPath(name): GroupPath,
) -> Result<Json<GroupView>, ApiError> {
    let group = state.gh.get_group(&pool, &caller, &name).await?;
    Ok(Json(GroupView::from(&group)))
}

pub async fn update(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    GroupPath(name): GroupPath,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<UpdateGroupRequest>,
) -> Result<StatusCode, ApiError> {
    let update = GroupUpdate {
        description: body.description,
        roles: body.roles,
    };
    state
        .gh
        .update_group(&pool, &caller, &name, update, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    GroupPath(name): GroupPath,
    Meta(meta): Meta,
) -> Result<StatusCode, ApiError> {
    state.gh.delete_group(&pool, &caller, &name, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn members(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    GroupPath(name): GroupPath,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let limit = page.limit()?;
    let found = state
        .gh
        .users_in_group(&pool, &caller, &name, page.cursor.as_deref(), limit)
        .await?;
    let next = next_link(
        &state,
        &pool,
        &["user-management", "groups", name.as_str(), "users"],
        found.next.as_deref(),
        limit,
        &[],
    )?;
    Ok(Json(UserPage {
        users: found.items.iter().map(UserView::from).collect(),
        next,
    })
    .into_response())
}

pub async fn of_user(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    UsernamePath(username): UsernamePath,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let limit = page.limit()?;
    let found = state
        .gh
        .user_groups(&pool, &caller, &username, page.cursor.as_deref(), limit)
        .await?;
    let next = next_link(
        &state,
        &pool,
        &["user-management", "users", username.as_str(), "groups"],
        found.next.as_deref(),
        limit,
        &[],
    )?;
    Ok(Json(GroupPage {
        groups: found.items.iter().map(GroupView::from).collect(),
        next,
    })
    .into_response())
}

pub async fn set_of_user(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    UsernamePath(username): UsernamePath,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<UpdateUserGroupsRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .gh
        .set_user_groups(&pool, &caller, &username, &body.groups, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
