//! API sign-in: `POST /api/auth/initiate` and `POST /api/auth/respond`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use gatehouse_crypto::secret::Secret;
use gatehouse_service::signin::SignInOutcome;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::{ApiError, no_store};
use crate::extract::{ApiJson, MaybeAuthenticated, Meta, PoolCtx};
use gatehouse_service::mfa::SetupDone;
use gatehouse_service::principal::Principal;

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
    /// `USER_AUTH` only: `PASSWORD`, `EMAIL_OTP` or `WEB_AUTHN`.
    #[serde(default)]
    preferred_challenge: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondRequest {
    challenge: String,
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    session: String,
    /// `NEW_PASSWORD_REQUIRED` only.
    #[serde(default)]
    new_password: Option<String>,
    /// `SOFTWARE_TOKEN_MFA` (a code or a recovery code), `EMAIL_OTP` and `MFA_SETUP` only.
    #[serde(default)]
    code: Option<String>,
    /// `SELECT_MFA_TYPE` only: one of its `MFAS_CAN_CHOOSE`.
    #[serde(default)]
    answer: Option<String>,
    /// `WEB_AUTHN` only: the browser's `AuthenticationResponseJSON`.
    #[serde(default)]
    credential: Option<serde_json::Value>,
    /// `SELECT_CHALLENGE` answered with `PASSWORD` only.
    #[serde(default)]
    username: Option<String>,
    /// `SELECT_CHALLENGE` answered with `PASSWORD` only.
    #[serde(default)]
    password: Option<String>,
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
        /// `CREDENTIAL_REQUEST_OPTIONS` for `WEB_AUTHN`, `MFAS_CAN_CHOOSE` for
        /// `SELECT_MFA_TYPE` (JSON in strings, as Cognito's `ChallengeParameters`).
        #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        parameters: std::collections::BTreeMap<&'static str, String>,
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
        SignInOutcome::SelectChallenge { session, available } => SignInResponse::Challenge {
            challenge: "SELECT_CHALLENGE",
            session: session.expose().to_owned(),
            parameters: [(
                "AVAILABLE_CHALLENGES",
                serde_json::Value::from(available).to_string(),
            )]
            .into(),
        },
        SignInOutcome::NewPasswordRequired { session } => SignInResponse::Challenge {
            challenge: "NEW_PASSWORD_REQUIRED",
            session: session.expose().to_owned(),
            parameters: Default::default(),
        },
        SignInOutcome::Mfa {
            challenge,
            session,
            parameters,
        } => SignInResponse::Challenge {
            challenge,
            session: session.expose().to_owned(),
            parameters,
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
            absent(
                &req.preferred_challenge,
                "USER_PASSWORD",
                "preferred_challenge",
            )?;
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
        "USER_AUTH" => {
            absent(&req.refresh_token, "USER_AUTH", "refresh_token")?;
            let username = required(req.username, "USER_AUTH", "username")?;
            if req.password.is_some() && req.preferred_challenge.as_deref() != Some("PASSWORD") {
                return Err(ApiError::bad_request(
                    "password: only with preferred_challenge PASSWORD",
                ));
            }
            let outcome = state
                .gh
                .initiate_user_auth(
                    &pool,
                    &req.client_id,
                    req.client_secret.map(Secret::new),
                    &username,
                    req.preferred_challenge.as_deref(),
                    req.password.map(Secret::new).as_ref(),
                    &meta,
                )
                .await?;
            Ok(answer(outcome))
        }
        "REFRESH_TOKEN" => {
            absent(&req.username, "REFRESH_TOKEN", "username")?;
            absent(
                &req.preferred_challenge,
                "REFRESH_TOKEN",
                "preferred_challenge",
            )?;
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
            "flow: '{other}' is not supported; use USER_PASSWORD, USER_AUTH or REFRESH_TOKEN"
        ))),
    }
}

pub async fn respond(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<RespondRequest>,
) -> Result<Response, ApiError> {
    let secret = req.client_secret.map(Secret::new);
    match req.challenge.as_str() {
        "NEW_PASSWORD_REQUIRED" => {
            absent(&req.code, "NEW_PASSWORD_REQUIRED", "code")?;
            let new_password = required(req.new_password, "NEW_PASSWORD_REQUIRED", "new_password")?;
            let outcome = state
                .gh
                .respond_new_password(
                    &pool,
                    &req.client_id,
                    secret,
                    &req.session,
                    &Secret::new(new_password),
                    &meta,
                )
                .await?;
            Ok(answer(outcome))
        }
        "SOFTWARE_TOKEN_MFA" => {
            absent(&req.new_password, "SOFTWARE_TOKEN_MFA", "new_password")?;
            let code = required(req.code, "SOFTWARE_TOKEN_MFA", "code")?;
            let outcome = state
                .gh
                .respond_software_token(
                    &pool,
                    &req.client_id,
                    secret,
                    &req.session,
                    &Secret::new(code),
                    &meta,
                )
                .await?;
            Ok(answer(outcome))
        }
        "MFA_SETUP" => {
            absent(&req.new_password, "MFA_SETUP", "new_password")?;
            let code = required(req.code, "MFA_SETUP", "code")?;
            let done = state
                .gh
                .verify_totp_for_challenge(
                    &pool,
                    &req.client_id,
                    secret,
                    &req.session,
                    &code,
                    &meta,
                )
                .await?;
            Ok(setup_answer(done))
        }
        "WEB_AUTHN" => {
            absent(&req.new_password, "WEB_AUTHN", "new_password")?;
            absent(&req.code, "WEB_AUTHN", "code")?;
            let credential = req.credential.ok_or_else(|| {
                ApiError::bad_request("credential: required by the WEB_AUTHN challenge")
            })?;
            let outcome = state
                .gh
                .respond_web_authn(
                    &pool,
                    &req.client_id,
                    secret,
                    &req.session,
                    &credential,
                    &meta,
                )
                .await?;
            Ok(answer(outcome))
        }
        "EMAIL_OTP" => {
            absent(&req.new_password, "EMAIL_OTP", "new_password")?;
            let code = required(req.code, "EMAIL_OTP", "code")?;
            let outcome = state
                .gh
                .respond_email_otp(
                    &pool,
                    &req.client_id,
                    secret,
                    &req.session,
                    &Secret::new(code),
                    &meta,
                )
                .await?;
            Ok(answer(outcome))
        }
        "SELECT_MFA_TYPE" => {
            absent(&req.new_password, "SELECT_MFA_TYPE", "new_password")?;
            absent(&req.code, "SELECT_MFA_TYPE", "code")?;
            let choice = required(req.answer, "SELECT_MFA_TYPE", "answer")?;
            let outcome = state
                .gh
                .respond_select_mfa_type(&pool, &req.client_id, secret, &req.session, &choice)
                .await?;
            Ok(answer(outcome))
        }
        "SELECT_CHALLENGE" => {
            absent(&req.new_password, "SELECT_CHALLENGE", "new_password")?;
            absent(&req.code, "SELECT_CHALLENGE", "code")?;
            let choice = required(req.answer, "SELECT_CHALLENGE", "answer")?;
            if choice == "PASSWORD" {
                if req.username.is_none() || req.password.is_none() {
                    return Err(ApiError::bad_request(
                        "username, password: required by the answer PASSWORD",
                    ));
                }
            } else {
                absent(&req.username, "SELECT_CHALLENGE", "username")?;
                absent(&req.password, "SELECT_CHALLENGE", "password")?;
            }
            let outcome = state
                .gh
                .respond_select_challenge(
                    &pool,
                    &req.client_id,
                    secret,
                    &req.session,
                    req.username.as_deref().unwrap_or_default(),
                    &choice,
                    req.password.map(Secret::new).as_ref(),
                    &meta,
                )
                .await?;
            Ok(answer(outcome))
        }
        other => Err(ApiError::bad_request(format!(
            "challenge: '{other}' is not supported"
        ))),
    }
}

/// The body of `POST /api/auth/mfa/totp/associate` and `.../verify`: empty with a bearer
/// token of the user; with an `MFA_SETUP` challenge's session (and its client) instead.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TotpRequest {
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    session: Option<String>,
    /// `verify` only.
    #[serde(default)]
    code: Option<String>,
}

#[derive(Serialize)]
struct AssociateResponse {
    secret: String,
    otpauth_uri: String,
}

/// The caller: a challenge session when the body names one (a bearer token sent too is not
/// used), else the bearer token's user; neither is 401.
fn totp_caller(
    principal: Option<Principal>,
    req: &TotpRequest,
) -> Result<Option<(Principal, ())>, ApiError> {
    match (principal, &req.session) {
        (_, Some(_)) => Ok(None),
        (Some(p), None) => {
            absent(&req.client_id, "token", "client_id")?;
            absent(&req.client_secret, "token", "client_secret")?;
            Ok(Some((p, ())))
        }
        (None, None) => Err(ApiError::unauthenticated(
            "a bearer token or an MFA_SETUP session is required",
        )),
    }
}

/// `POST /api/auth/mfa/totp/associate`: starts enrolling a software token.
pub async fn totp_associate(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req = totp_body(&body)?;
    absent(&req.code, "associate", "code")?;
    let association = match totp_caller(principal, &req)? {
        Some((p, ())) => state.gh.associate_totp(&pool, &p).await?,
        None => {
            let client_id = required(req.client_id, "MFA_SETUP", "client_id")?;
            state
                .gh
                .associate_totp_for_challenge(
                    &pool,
                    &client_id,
                    req.client_secret.map(Secret::new),
                    req.session.as_deref().unwrap_or_default(),
                )
                .await?
        }
    };
    let mut res = Json(AssociateResponse {
        secret: association.secret.expose().to_owned(),
        otpauth_uri: association.uri.expose().to_owned(),
    })
    .into_response();
    no_store(&mut res);
    Ok(res)
}

/// `POST /api/auth/mfa/totp/verify`: confirms the token with its first code; answers the
/// recovery codes (and, for an `MFA_SETUP` session, the sign-in's tokens).
pub async fn totp_verify(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Meta(meta): Meta,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req = totp_body(&body)?;
    let code = req
        .code
        .clone()
        .ok_or_else(|| ApiError::bad_request("code: required"))?;
    match totp_caller(principal, &req)? {
        Some((p, ())) => {
            let codes = state.gh.verify_totp(&pool, &p, &code, &meta).await?;
            let mut res = Json(serde_json::json!({
                "status": "SUCCESS",
                "recovery_codes": codes.0.iter().map(|c| c.expose()).collect::<Vec<_>>(),
            }))
            .into_response();
            no_store(&mut res);
            Ok(res)
        }
        None => {
            let client_id = required(req.client_id, "MFA_SETUP", "client_id")?;
            let done = state
                .gh
                .verify_totp_for_challenge(
                    &pool,
                    &client_id,
                    req.client_secret.map(Secret::new),
                    req.session.as_deref().unwrap_or_default(),
                    &code,
                    &meta,
                )
                .await?;
            Ok(setup_answer(done))
        }
    }
}

/// `POST /api/auth/mfa/email`: turns e-mail one-time codes on as a second factor of the
/// bearer token's user, whose address must be verified.
pub async fn email_otp_enable(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Meta(meta): Meta,
    MaybeAuthenticated(principal): MaybeAuthenticated,
) -> Result<Response, ApiError> {
    let principal =
        principal.ok_or_else(|| ApiError::unauthenticated("a bearer token is required"))?;
    state.gh.enable_email_otp(&pool, &principal, &meta).await?;
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

/// An empty body reads as `{}`; anything else must be a JSON object of [`TotpRequest`].
fn totp_body(body: &[u8]) -> Result<TotpRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(TotpRequest::default());
    }
    crate::extract::parse_json(body)
}

/// The tokens of an `MFA_SETUP` sign-in, with the recovery codes shown this once.
fn setup_answer(done: SetupDone) -> Response {
    let codes: Vec<String> = done
        .recovery_codes
        .0
        .iter()
        .map(|c| c.expose().to_owned())
        .collect();
    let mut body = serde_json::Map::new();
    if let SignInOutcome::Tokens { access, refresh } = done.signed_in {
        body.insert("access_token".to_owned(), access.token.expose().into());
        body.insert("token_type".to_owned(), "Bearer".into());
        body.insert("expires_in".to_owned(), access.expires_in.into());
        if let Some(r) = refresh {
            body.insert("refresh_token".to_owned(), r.expose().into());
        }
    }
    body.insert("recovery_codes".to_owned(), codes.into());
    let mut res = Json(serde_json::Value::Object(body)).into_response();
    no_store(&mut res);
    res
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
