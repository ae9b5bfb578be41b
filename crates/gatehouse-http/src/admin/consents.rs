//! `/api/user-management/users/{username}/consents…` (an extension): what the user allowed
//! third-party app clients, and taking it back.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatehouse_domain::consent::Consent;
use serde::Serialize;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Authenticated, IdPath, Meta, PoolCtx, UsernamePath};

#[derive(Debug, Serialize, PartialEq, Eq)]
struct ConsentView {
    client_id: String,
    scopes: Vec<String>,
    granted_at: i64,
    updated_at: i64,
}

impl From<&Consent> for ConsentView {
    fn from(c: &Consent) -> Self {
        Self {
            client_id: c.client_id.to_string(),
            scopes: c.scopes.clone(),
            granted_at: c.granted_at.as_secs(),
            updated_at: c.updated_at.as_secs(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ConsentList {
    consents: Vec<ConsentView>,
}

pub async fn list(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    UsernamePath(username): UsernamePath,
) -> Result<Json<ConsentList>, ApiError> {
    let consents = state.gh.user_consents(&pool, &caller, &username).await?;
    Ok(Json(ConsentList {
        consents: consents.iter().map(ConsentView::from).collect(),
    }))
}

pub async fn revoke(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    UsernamePath(username): UsernamePath,
    IdPath(client_id): IdPath,
    Meta(meta): Meta,
) -> Result<StatusCode, ApiError> {
    state
        .gh
        .revoke_consent(&pool, &caller, &username, &client_id, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
