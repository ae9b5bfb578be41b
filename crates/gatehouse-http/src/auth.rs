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
    /// `USER_PASSWORD` only.
    #[serde(default)]
    username: Option<String>,
    /// `USER_PASSWORD` only.
    #[serde(default)]
    password: Option<String>,
    /// `REFRESH_TOKEN` only.
    #[serde(default)]
    refresh_token: Option<String>,
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
        #[serde(skip_serializing_if = "Option::is_none")]
        refresh_token: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        id_token: Option<String>,
    },
    Challenge {
        challenge: &'static str,
        session: String,
    },
}

fn answer(outcome: SignInOutcome) -> Response {
    let body = match outcome {
        SignInOutcome::Tokens { access, refresh } => SignInResponse::Tokens {
            access_token: access.token.expose().to_owned(),
            token_type: "Bearer",
            expires_in: access.expires_in,
            refresh_token: refresh.map(|r| r.expose().to_owned()),
            id_token: None,
        },
        SignInOutcome::NewPasswordRequired { session } => SignInResponse::Challenge {
            challenge: "NEW_PASSWORD_REQUIRED",
            session: session.expose().to_owned(),
        },
    };
    json_no_store(body)
}

fn json_no_store(body: SignInResponse) -> Response {
    let mut res = Json(body).into_response();
    no_store(&mut res);
    res
}

/// A field the flow needs, or 400 naming it.
fn required(value: Option<String>, flow: &str, field: &str) -> Result<String, ApiError> {
    value.ok_or_else(|| ApiError::bad_request(format!("{field}: required by the {flow} flow")))
}

/// A field the flow does not take: refused rather than ignored, so a mistake is seen.
fn absent(value: &Option<String>, flow: &str, field: &str) -> Result<(), ApiError> {
    match value {
        Some(_) => Err(ApiError::bad_request(format!(
            "{field}: not a field of the {flow} flow"
        ))),
        None => Ok(()),
    }
}

pub async fn initiate(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<InitiateRequest>,
) -> Result<Response, ApiError> {
    match req.flow.as_str() {
        "USER_PASSWORD" => {
            absent(&req.refresh_token, "USER_PASSWORD", "refresh_token")?;
            let username = required(req.username, "USER_PASSWORD", "username")?;
            let password = required(req.password, "USER_PASSWORD", "password")?;
            let outcome = state
                .gh
                .initiate_password_sign_in(
                    &pool,
                    &req.client_id,
                    req.client_secret.map(Secret::new),
                    &username,
                    &Secret::new(password),
                    &meta,
                )
                .await?;
            Ok(answer(outcome))
        }
        "REFRESH_TOKEN" => {
            absent(&req.username, "REFRESH_TOKEN", "username")?;
            absent(&req.password, "REFRESH_TOKEN", "password")?;
            let token = required(req.refresh_token, "REFRESH_TOKEN", "refresh_token")?;
            let grant = state
                .gh
                .refresh_sign_in(
                    &pool,
                    &req.client_id,
                    req.client_secret.map(Secret::new),
                    &token,
                    &meta,
                )
                .await?;
            Ok(json_no_store(SignInResponse::Tokens {
                access_token: grant.access.token.expose().to_owned(),
                token_type: "Bearer",
                expires_in: grant.access.expires_in,
                refresh_token: grant.refresh.map(|r| r.expose().to_owned()),
                id_token: grant.id_token.map(|t| t.expose().to_owned()),
            }))
        }
        other => Err(ApiError::bad_request(format!(
            "flow: '{other}' is not supported; use USER_PASSWORD or REFRESH_TOKEN"
        ))),
    }
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
