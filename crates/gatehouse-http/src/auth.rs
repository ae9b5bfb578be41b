//! API sign-in: `POST /api/auth/initiate` and `POST /api/auth/respond`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use gatehouse_crypto::secret::Secret;
use gatehouse_service::signin::SignInOutcome;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::{ApiError, no_store};
use crate::extract::{ApiJson, Meta, PoolCtx};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitiateRequest {
    flow: String,
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    username: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondRequest {
    challenge: String,
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    session: String,
    new_password: String,
}

#[derive(Serialize)]
#[serde(untagged)]
enum SignInResponse {
    Tokens {
        access_token: String,
        token_type: &'static str,
        expires_in: u32,
    },
    Challenge {
        challenge: &'static str,
        session: String,
    },
}

fn answer(outcome: SignInOutcome) -> Response {
    let body = match outcome {
        SignInOutcome::Tokens(t) => SignInResponse::Tokens {
            access_token: t.token.expose().to_owned(),
            token_type: "Bearer",
            expires_in: t.expires_in,
        },
        SignInOutcome::NewPasswordRequired { session } => SignInResponse::Challenge {
            challenge: "NEW_PASSWORD_REQUIRED",
            session: session.expose().to_owned(),
        },
    };
    let mut res = Json(body).into_response();
    no_store(&mut res);
    res
}

pub async fn initiate(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<InitiateRequest>,
) -> Result<Response, ApiError> {
    if req.flow != "USER_PASSWORD" {
        return Err(ApiError::bad_request(format!(
            "flow: '{}' is not supported; use USER_PASSWORD",
            req.flow
        )));
    }
    let outcome = state
        .gh
        .initiate_password_sign_in(
            &pool,
            &req.client_id,
            req.client_secret.map(Secret::new),
            &req.username,
            &Secret::new(req.password),
            &meta,
        )
        .await?;
    Ok(answer(outcome))
}

pub async fn respond(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<RespondRequest>,
) -> Result<Response, ApiError> {
    if req.challenge != "NEW_PASSWORD_REQUIRED" {
        return Err(ApiError::bad_request(format!(
            "challenge: '{}' is not supported",
            req.challenge
        )));
    }
    let outcome = state
        .gh
        .respond_new_password(
            &pool,
            &req.client_id,
            req.client_secret.map(Secret::new),
            &req.session,
            &Secret::new(req.new_password),
            &meta,
        )
        .await?;
    Ok(answer(outcome))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmResetRequest {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    username: String,
    code: String,
    new_password: String,
}

/// `POST /api/auth/confirm-password-reset`: the code an administrator's reset sent, and a
/// new password.
pub async fn confirm_password_reset(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<ConfirmResetRequest>,
) -> Result<axum::http::StatusCode, ApiError> {
    state
        .gh
        .confirm_password_reset(
            &pool,
            &req.client_id,
            req.client_secret.map(Secret::new),
            &req.username,
            &Secret::new(req.code),
            &Secret::new(req.new_password),
            &meta,
        )
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
