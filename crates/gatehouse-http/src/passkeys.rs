//! Passkeys through the API: registration with the user's own bearer token
//! (`/api/auth/mfa/webauthn/register/start` then `.../finish`), and the user's list of
//! passkeys, which it may prune. Sign-in with a passkey answers `WEB_AUTHN` at
//! `/api/auth/respond` (`auth.rs`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatehouse_service::passkeys::PasskeyInfo;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::{ApiError, no_store};
use crate::extract::{ApiJson, Authenticated, IdPath, Meta, PoolCtx};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinishRequest {
    /// The browser's `RegistrationResponseJSON` (`PublicKeyCredential.toJSON()`).
    credential: serde_json::Value,
    /// What the user calls it; "Passkey" when left out.
    #[serde(default)]
    name: Option<String>,
}

#[derive(Serialize)]
pub struct PasskeyView {
    credential_id: String,
    name: String,
    created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<i64>,
    backup_eligible: bool,
    backup_state: bool,
}

impl From<&PasskeyInfo> for PasskeyView {
    fn from(p: &PasskeyInfo) -> Self {
        PasskeyView {
            credential_id: p.credential_id.clone(),
            name: p.name.clone(),
            created_at: p.created_at.as_secs(),
            last_used_at: p.last_used_at.map(|t| t.as_secs()),
            backup_eligible: p.backup_eligible,
            backup_state: p.backup_state,
        }
    }
}

fn no_store_json(status: StatusCode, body: impl Serialize) -> Response {
    let mut res = (status, Json(body)).into_response();
    no_store(&mut res);
    res
}

/// `POST /api/auth/mfa/webauthn/register/start`: `{"publicKey": …}`, the argument of
/// `navigator.credentials.create` in its JSON form.
pub async fn register_start(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
) -> Result<Response, ApiError> {
    let options = state.gh.start_passkey_registration(&pool, &caller).await?;
    Ok(no_store_json(
        StatusCode::OK,
        serde_json::json!({ "publicKey": options }),
    ))
}

/// `POST /api/auth/mfa/webauthn/register/finish`: stores the passkey (201).
pub async fn register_finish(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<FinishRequest>,
) -> Result<Response, ApiError> {
    let info = state
        .gh
        .finish_passkey_registration(&pool, &caller, &req.credential, req.name.as_deref(), &meta)
        .await?;
    Ok(no_store_json(StatusCode::CREATED, PasskeyView::from(&info)))
}

/// `GET /api/auth/mfa/webauthn/credentials`: the caller's passkeys.
pub async fn list(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
) -> Result<Response, ApiError> {
    let list = state.gh.list_own_passkeys(&pool, &caller).await?;
    let views: Vec<PasskeyView> = list.iter().map(PasskeyView::from).collect();
    Ok(no_store_json(
        StatusCode::OK,
        serde_json::json!({ "credentials": views }),
    ))
}

/// `DELETE /api/auth/mfa/webauthn/credentials/{id}`: removes one of the caller's passkeys.
pub async fn delete(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Authenticated(caller): Authenticated,
    IdPath(id): IdPath,
    Meta(meta): Meta,
) -> Result<StatusCode, ApiError> {
    state
        .gh
        .delete_own_passkey(&pool, &caller, &id, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
