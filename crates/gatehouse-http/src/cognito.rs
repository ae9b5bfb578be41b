//! Cognito's user-pool API at `POST {base}/cognito`, so that clients written against Cognito's
//! SDKs switch by changing their endpoint URL: AWS JSON 1.1 (`X-Amz-Target:
//! AWSCognitoIdentityProviderService.<Operation>`), answers of type
//! `application/x-amz-json-1.1`, errors as `{"__type": "<Cognito exception>", "message"}` with
//! status 400 for everything the request got wrong and the `x-amzn-ErrorType` header.
//!
//! The operations run the same service calls as `/api/auth/*`, the token endpoint and
//! self-service: the tokens are Gatehouse's own, and revocable like every other.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_crypto::secret::Secret;
use gatehouse_domain::client::AuthFlow;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::user::User;
use gatehouse_service::cognito::{CognitoClient, CognitoClientError};
use gatehouse_service::custom_auth::CustomAuthOutcome;
use gatehouse_service::signin::SignInOutcome;
use gatehouse_service::{RequestMeta, ServiceError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::extract::{Meta, PoolCtx};

/// The media type of AWS JSON 1.1.
pub const AMZ_JSON: &str = "application/x-amz-json-1.1";
/// The prefix of every `X-Amz-Target` of this API.
const TARGET_PREFIX: &str = "AWSCognitoIdentityProviderService.";
/// The response header that names a failure's exception.
pub const ERROR_TYPE_HEADER: &str = "x-amzn-errortype";

/// The exceptions that are failed attempts at a secret (a password, a code, a session, a
/// token): the failure limits count them (see `limits.rs`).
pub const FAILURE_EXCEPTIONS: [&str; 3] = [
    "NotAuthorizedException",
    "CodeMismatchException",
    "ExpiredCodeException",
];

/// A Cognito error: its exception name, message and status.
#[derive(Debug)]
pub struct CognitoError {
    kind: &'static str,
    message: String,
    status: StatusCode,
    /// Sent as `Retry-After` (throttling).
    retry_after_secs: Option<u32>,
}

impl CognitoError {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
            retry_after_secs: None,
        }
    }

    fn not_authorized(message: impl Into<String>) -> Self {
        Self::new("NotAuthorizedException", message)
    }

    fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterException", message)
    }

    fn serialization(message: impl Into<String>) -> Self {
        Self::new("SerializationException", message)
    }

    /// A failure that is Gatehouse's, not the request's: logged, never described.
    fn internal(detail: &str) -> Self {
        tracing::error!(error = detail, "internal error");
        Self {
            kind: "InternalErrorException",
            message: "the server failed to handle the request".to_owned(),
            status: StatusCode::INTERNAL_SERVER_ERROR,
            retry_after_secs: None,
        }
    }
}

impl IntoResponse for CognitoError {
    fn into_response(self) -> Response {
        let body = json!({"__type": self.kind, "message": self.message});
        let mut res = amz_json(self.status, &body);
        res.headers_mut()
            .insert(ERROR_TYPE_HEADER, HeaderValue::from_static(self.kind));
        if let Some(secs) = self.retry_after_secs {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// What an operation was doing when the service refused it: it decides which Cognito
/// exception and message the refusal becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Doing {
    /// Checking a username and password.
    SignIn,
    /// Answering a challenge with its session.
    Challenge,
    /// Using a refresh token.
    Refresh,
    /// Acting with an access token.
    AccessToken,
    /// Changing a password, proving the current one.
    ChangePassword,
    /// Setting a password with a code sent to the user.
    Code,
    /// Answering with a software token's code (and a session or an access token).
    MfaCode,
    /// Anything else.
    Other,
}

fn from_service(e: ServiceError, doing: Doing) -> CognitoError {
    match e {
        ServiceError::Internal(e) => CognitoError::internal(e.detail()),
        // Cognito's answer when a trigger fails or answers what it cannot use.
        ServiceError::HookFailed { trigger, reason } => CognitoError::new(
            if reason.starts_with("bad_output") {
                "InvalidLambdaResponseException"
            } else {
                "UnexpectedLambdaException"
            },
            format!("{trigger} failed with error {reason}."),
        ),
        // Gatehouse (or the pool's hooks) too busy: Cognito's throttling, whatever the step.
        ServiceError::Busy {
            retry_after_secs, ..
        } => CognitoError {
            retry_after_secs: Some(retry_after_secs),
            ..CognitoError::new("TooManyRequestsException", "Rate exceeded")
        },
        ServiceError::Throttled { .. } => match doing {
            // Cognito's answer to a locked-out username.
            Doing::SignIn => CognitoError::not_authorized("Password attempts exceeded"),
            Doing::ChangePassword => CognitoError::new(
                "LimitExceededException",
                "Attempt limit exceeded, please try after some time.",
            ),
            _ => CognitoError::new("TooManyRequestsException", "Rate exceeded"),
        },
        // A flow the client's ExplicitAuthFlows leave out, in Cognito's words.
        ServiceError::Invalid(p) if p.field == AuthFlow::FIELD => {
            CognitoError::invalid_parameter(p.message)
        }
        ServiceError::Invalid(p) => match doing {
            Doing::Code if p.field == "code" => CognitoError::new(
                "CodeMismatchException",
                "Invalid verification code provided, please try again.",
            ),
            // A challenge's choice that is not offered (`SELECT_CHALLENGE`).
            Doing::Challenge if p.field == "challenge" => {
                CognitoError::invalid_parameter(p.message)
            }
            Doing::Challenge | Doing::ChangePassword | Doing::Code => {
                CognitoError::new("InvalidPasswordException", p.message)
            }
            _ => CognitoError::invalid_parameter(format!("{}: {}", p.field, p.message)),
        },
        ServiceError::Unauthenticated(m) => match doing {
            Doing::SignIn if m.contains("temporary password has expired") => {
                CognitoError::not_authorized(
                    "Temporary password has expired and must be reset by an administrator.",
                )
            }
            Doing::SignIn => CognitoError::not_authorized("Incorrect username or password."),
            Doing::Challenge => CognitoError::not_authorized("Invalid session for the user."),
            Doing::Refresh => CognitoError::not_authorized("Invalid Refresh Token"),
            Doing::AccessToken if m.contains("revoked") => {
                CognitoError::not_authorized("Access Token has been revoked")
            }
            Doing::AccessToken => CognitoError::not_authorized("Invalid Access Token"),
            Doing::ChangePassword if m.contains("incorrect username or password") => {
                CognitoError::not_authorized("Incorrect username or password.")
            }
            Doing::ChangePassword => CognitoError::not_authorized(m),
            Doing::MfaCode if m == "invalid code" => {
                CognitoError::new("CodeMismatchException", "Invalid code received for user")
            }
            Doing::MfaCode => CognitoError::not_authorized("Invalid session for the user."),
            Doing::Code | Doing::Other => CognitoError::not_authorized(m),
        },
        ServiceError::OAuth(_) | ServiceError::Gone(_) => match doing {
            Doing::Refresh => CognitoError::not_authorized("Invalid Refresh Token"),
            _ => CognitoError::not_authorized("The request is not authorized."),
        },
        ServiceError::Forbidden(m) => CognitoError::not_authorized(m),
        ServiceError::NotFound(what) => {
            CognitoError::new("ResourceNotFoundException", format!("{what} not found"))
        }
        ServiceError::Conflict(m) => CognitoError::invalid_parameter(m),
    }
}

fn amz_json(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut res = (status, bytes).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(AMZ_JSON));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

type Answer = Result<Value, CognitoError>;

/// `POST {base}/cognito`.
pub async fn cognito(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Meta(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match dispatch(&state, &pool, &meta, &headers, &body).await {
        Ok(v) => amz_json(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

async fn dispatch(
    state: &AppState,
    pool: &Arc<Pool>,
    meta: &RequestMeta,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media != AMZ_JSON && media != "application/json" {
        return Err(CognitoError::serialization(format!(
            "Content-Type must be {AMZ_JSON}"
        )));
    }
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(operation) = target.strip_prefix(TARGET_PREFIX) else {
        return Err(CognitoError::new(
            "UnknownOperationException",
            "X-Amz-Target must name an operation of AWSCognitoIdentityProviderService",
        ));
    };
    let request: Value = serde_json::from_slice(body)
        .map_err(|_| CognitoError::serialization("the request body is not valid JSON"))?;
    if !request.is_object() {
        return Err(CognitoError::serialization(
            "the request body must be a JSON object",
        ));
    }
    let gh = &state.gh;
    match operation {
        "InitiateAuth" => initiate_auth(state, pool, meta, parse(request)?).await,
        "RespondToAuthChallenge" => respond(state, pool, meta, parse(request)?).await,
        "GetUser" => {
            let req: WithAccessToken = parse(request)?;
            let (_, user) = user_of(state, pool, &req.access_token).await?;
            Ok(user_answer(&user))
        }
        "ChangePassword" => {
            let req: ChangePasswordRequest = parse(request)?;
            let (principal, _) = user_of(state, pool, &req.access_token).await?;
            gh.cognito_change_password(
                pool,
                &principal,
                &Secret::new(req.previous_password),
                &Secret::new(req.proposed_password),
                meta,
            )
            .await
            .map_err(|e| from_service(e, Doing::ChangePassword))?;
            Ok(json!({}))
        }
        "ForgotPassword" => {
            let req: ForgotPasswordRequest = parse(request)?;
            app_client(state, pool, &req.client_id, &req.username, &req.secret_hash).await?;
            gh.forgot_password(pool, &req.username, meta)
                .await
                .map_err(|e| from_service(e, Doing::Other))?;
            // The same answer whatever the username: it tells nobody who has an account.
            Ok(json!({"CodeDeliveryDetails": {
                "Destination": "***",
                "DeliveryMedium": "EMAIL",
                "AttributeName": "email",
            }}))
        }
        "ConfirmForgotPassword" => {
            let req: ConfirmForgotPasswordRequest = parse(request)?;
            let client =
                app_client(state, pool, &req.client_id, &req.username, &req.secret_hash).await?;
            gh.confirm_password_reset(
                pool,
                &req.client_id,
                client.secret,
                &req.username,
                &Secret::new(req.confirmation_code),
                &Secret::new(req.password),
                meta,
            )
            .await
            .map_err(|e| from_service(e, Doing::Code))?;
            Ok(json!({}))
        }
        "GlobalSignOut" => {
            let req: WithAccessToken = parse(request)?;
            let (principal, _) = user_of(state, pool, &req.access_token).await?;
            gh.cognito_global_sign_out(pool, &principal, meta)
                .await
                .map_err(|e| from_service(e, Doing::AccessToken))?;
            Ok(json!({}))
        }
        "RevokeToken" => {
            let req: RevokeTokenRequest = parse(request)?;
            gh.cognito_revoke_refresh(
                pool,
                &req.client_id,
                req.client_secret.map(Secret::new),
                &req.token,
                meta,
            )
            .await
            .map_err(|e| from_service(e, Doing::Other))?;
            Ok(json!({}))
        }
        "AssociateSoftwareToken" => {
            let req: SoftwareTokenRequest = parse(request)?;
            let association = match (&req.access_token, &req.session) {
                (Some(token), _) => {
                    let (principal, _) = user_of(state, pool, token).await?;
                    gh.associate_totp(pool, &principal).await
                }
                (None, Some(session)) => gh.associate_totp_for_session(pool, session).await,
                (None, None) => {
                    return Err(CognitoError::invalid_parameter(
                        "AccessToken or Session is required",
                    ));
                }
            }
            .map_err(|e| from_service(e, Doing::MfaCode))?;
            let mut answer = json!({"SecretCode": association.secret.expose()});
            if let (None, Some(session)) = (&req.access_token, &req.session) {
                answer["Session"] = Value::from(session.as_str());
            }
            Ok(answer)
        }
        "VerifySoftwareToken" => {
            let req: SoftwareTokenRequest = parse(request)?;
            let code = req
                .user_code
                .ok_or_else(|| CognitoError::invalid_parameter("UserCode is required"))?;
            match (&req.access_token, &req.session) {
                (Some(token), _) => {
                    let (principal, _) = user_of(state, pool, token).await?;
                    gh.verify_totp(pool, &principal, &code, meta)
                        .await
                        .map_err(|e| from_service(e, Doing::MfaCode))?;
                    Ok(json!({"Status": "SUCCESS"}))
                }
                (None, Some(session)) => {
                    let next = gh
                        .verify_totp_for_session(pool, session, &code, meta)
                        .await
                        .map_err(|e| from_service(e, Doing::MfaCode))?;
                    Ok(json!({"Status": "SUCCESS", "Session": next.expose()}))
                }
                (None, None) => Err(CognitoError::invalid_parameter(
                    "AccessToken or Session is required",
                )),
            }
        }
        "SetUserMFAPreference" => {
            let req: MfaPreferenceRequest = parse(request)?;
            let (principal, user) = user_of(state, pool, &req.access_token).await?;
            if set_mfa_preference(&user, &req)? {
                gh.enable_email_otp(pool, &principal, meta)
                    .await
                    .map_err(|e| match e {
                        ServiceError::Conflict(m) => CognitoError::invalid_parameter(m),
                        other => from_service(other, Doing::AccessToken),
                    })?;
            }
            Ok(json!({}))
        }
        "StartWebAuthnRegistration" => {
            let req: WithAccessToken = parse(request)?;
            let (principal, _) = user_of(state, pool, &req.access_token).await?;
            let options = gh
                .start_passkey_registration(pool, &principal)
                .await
                .map_err(|e| from_service(e, Doing::AccessToken))?;
            Ok(json!({ "CredentialCreationOptions": options }))
        }
        "CompleteWebAuthnRegistration" => {
            let req: CompleteWebAuthnRequest = parse(request)?;
            let (principal, _) = user_of(state, pool, &req.access_token).await?;
            let credential = json_document(req.credential, "Credential")?;
            gh.finish_passkey_registration(pool, &principal, &credential, None, meta)
                .await
                .map_err(passkey_error)?;
            Ok(json!({}))
        }
        other => Err(CognitoError::new(
            "UnknownOperationException",
            format!("{other} is not an operation of this API"),
        )),
    }
}

/// The operation's fields; a missing or mistyped one is Cognito's
/// `InvalidParameterException`. Fields Gatehouse does not use (`ClientMetadata`,
/// `AnalyticsMetadata`, `UserContextData`, …) are accepted and ignored, as SDKs send them.
fn parse<T: DeserializeOwned>(request: Value) -> Result<T, CognitoError> {
    serde_json::from_value(request).map_err(|e| CognitoError::invalid_parameter(e.to_string()))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InitiateAuthRequest {
    auth_flow: String,
    client_id: String,
    #[serde(default)]
    auth_parameters: Map<String, Value>,
    /// Handed to the pool's hooks as `clientMetadata`.
    #[serde(default)]
    client_metadata: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RespondRequest {
    challenge_name: String,
    client_id: String,
    #[serde(default)]
    session: Option<String>,
    #[serde(default)]
    challenge_responses: Map<String, Value>,
    #[serde(default)]
    client_metadata: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WithAccessToken {
    access_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SoftwareTokenRequest {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    session: Option<String>,
    #[serde(default)]
    user_code: Option<String>,
}

/// One factor's setting in `SetUserMFAPreference`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FactorSetting {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    preferred_mfa: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MfaPreferenceRequest {
    access_token: String,
    #[serde(default)]
    software_token_mfa_settings: Option<FactorSetting>,
    #[serde(default, rename = "SMSMfaSettings")]
    sms_mfa_settings: Option<FactorSetting>,
    #[serde(default)]
    email_mfa_settings: Option<FactorSetting>,
}

/// `SetUserMFAPreference`: checks the request against the user's factors, and answers
/// whether e-mail codes are to be turned on. A software token is enrolled through
/// `AssociateSoftwareToken` and a confirmed one is always used, so enabling it (or preferring
/// it) is accepted once it is verified; e-mail codes are turned on here, for a verified
/// address. Several factors are offered with `SELECT_MFA_TYPE`: a preference is accepted and
/// not kept. Turning a factor off is refused: with a stolen access token it would remove the
/// second factor that token's theft should still meet; an administrator's `disable-mfa` does
/// it, under the dominance rule, and tells the user.
fn set_mfa_preference(user: &User, req: &MfaPreferenceRequest) -> Result<bool, CognitoError> {
    let wants = |s: &FactorSetting| s.enabled == Some(true) || s.preferred_mfa == Some(true);
    if req.sms_mfa_settings.as_ref().is_some_and(wants) {
        return Err(CognitoError::invalid_parameter(
            "SMSMfaSettings: this user pool does not offer that factor",
        ));
    }
    for setting in [&req.software_token_mfa_settings, &req.email_mfa_settings]
        .into_iter()
        .flatten()
    {
        if setting.enabled == Some(false) {
            return Err(CognitoError::invalid_parameter(
                "a second factor is removed by an administrator (disable-mfa), not by its user",
            ));
        }
    }
    if let Some(setting) = &req.software_token_mfa_settings
        && wants(setting)
        && !user.mfa.has_software_token()
    {
        return Err(CognitoError::invalid_parameter(
            "User has not verified software token mfa",
        ));
    }
    Ok(req.email_mfa_settings.as_ref().is_some_and(wants))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChangePasswordRequest {
    access_token: String,
    previous_password: String,
    proposed_password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ForgotPasswordRequest {
    client_id: String,
    username: String,
    #[serde(default)]
    secret_hash: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConfirmForgotPasswordRequest {
    client_id: String,
    username: String,
    confirmation_code: String,
    password: String,
    #[serde(default)]
    secret_hash: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RevokeTokenRequest {
    token: String,
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CompleteWebAuthnRequest {
    access_token: String,
    /// `RegistrationResponseJSON`: a JSON document, or a string holding one.
    credential: Value,
}

/// A WebAuthn response given as a JSON document or as a string holding one (Cognito's
/// `CREDENTIAL` challenge response is a string).
fn json_document(value: Value, name: &str) -> Result<Value, CognitoError> {
    let document = match value {
        Value::String(s) => serde_json::from_str(&s).map_err(|_| {
            CognitoError::invalid_parameter(format!("{name} must be a JSON document"))
        })?,
        other => other,
    };
    if !document.is_object() {
        return Err(CognitoError::invalid_parameter(format!(
            "{name} must be a JSON object"
        )));
    }
    Ok(document)
}

/// A passkey registration's refusal under Cognito's WebAuthn exception names.
fn passkey_error(e: ServiceError) -> CognitoError {
    match e {
        ServiceError::Unauthenticated(m) if m.contains("ceremony") => CognitoError::new(
            "WebAuthnChallengeNotFoundException",
            "The registration's challenge is unknown, used or expired.",
        ),
        ServiceError::Unauthenticated(m) if m.contains("registration was refused") => {
            CognitoError::new("WebAuthnCredentialNotSupportedException", m)
        }
        other => from_service(other, Doing::AccessToken),
    }
}

/// A string parameter of `AuthParameters` or `ChallengeResponses`.
fn param(params: &Map<String, Value>, name: &str) -> Result<Option<String>, CognitoError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(CognitoError::invalid_parameter(format!(
            "{name} must be a string"
        ))),
    }
}

fn required(params: &Map<String, Value>, name: &str, flow: &str) -> Result<String, CognitoError> {
    param(params, name)?.ok_or_else(|| {
        CognitoError::invalid_parameter(format!("Missing required parameter {name} for {flow}"))
    })
}

/// The app client the request names, with `SECRET_HASH` checked for a client with a secret.
async fn app_client(
    state: &AppState,
    pool: &Pool,
    client_id: &str,
    username: &str,
    secret_hash: &Option<String>,
) -> Result<CognitoClient, CognitoError> {
    match state
        .gh
        .cognito_client(pool, client_id, username, secret_hash.as_deref())
        .await
        .map_err(|e| from_service(e, Doing::Other))?
    {
        Ok(client) => Ok(client),
        Err(CognitoClientError::Unknown) => Err(CognitoError::new(
            "ResourceNotFoundException",
            "User pool client does not exist.",
        )),
        Err(CognitoClientError::SecretHashMissing) => Err(CognitoError::not_authorized(format!(
            "Client {client_id} is configured with secret but SECRET_HASH was not received"
        ))),
        Err(CognitoClientError::SecretHashMismatch) => Err(CognitoError::not_authorized(format!(
            "Unable to verify secret hash for client {client_id}"
        ))),
    }
}

async fn user_of(
    state: &AppState,
    pool: &Arc<Pool>,
    token: &str,
) -> Result<(gatehouse_service::Principal, User), CognitoError> {
    state
        .gh
        .cognito_user(pool, token)
        .await
        .map_err(|e| from_service(e, Doing::AccessToken))
}

/// The tokens of a sign-in, as `AuthenticationResult`.
fn authentication_result(
    access: &Secret,
    expires_in: u32,
    id_token: Option<&Secret>,
    refresh: Option<&Secret>,
) -> Value {
    let mut result = Map::new();
    result.insert("AccessToken".into(), Value::from(access.expose()));
    result.insert("ExpiresIn".into(), Value::from(expires_in));
    result.insert("TokenType".into(), Value::from("Bearer"));
    if let Some(id) = id_token {
        result.insert("IdToken".into(), Value::from(id.expose()));
    }
    if let Some(r) = refresh {
        result.insert("RefreshToken".into(), Value::from(r.expose()));
    }
    json!({"AuthenticationResult": result, "ChallengeParameters": {}})
}

/// A sign-in's answer: its tokens, with an ID token for the client, or its challenge.
async fn outcome_answer(
    state: &AppState,
    pool: &Pool,
    client: &CognitoClient,
    outcome: SignInOutcome,
    username: &str,
) -> Answer {
    match outcome {
        SignInOutcome::Tokens { access, refresh } => {
            let id_token = state
                .gh
                .cognito_id_token(pool, &client.client, &access)
                .await
                .map_err(|e| from_service(e, Doing::Other))?;
            Ok(authentication_result(
                &access.token,
                access.expires_in,
                Some(&id_token),
                refresh.as_ref(),
            ))
        }
        SignInOutcome::SelectChallenge { session, available } => Ok(json!({
            "ChallengeName": "SELECT_CHALLENGE",
            "Session": session.expose(),
            "ChallengeParameters": {},
            "AvailableChallenges": available,
        })),
        SignInOutcome::NewPasswordRequired { session } => Ok(json!({
            "ChallengeName": "NEW_PASSWORD_REQUIRED",
            "Session": session.expose(),
            "ChallengeParameters": {
                "USER_ID_FOR_SRP": username,
                "requiredAttributes": "[]",
                "userAttributes": "{}",
            },
        })),
        // The second factor, with its Cognito name; `MFA_SETUP` names what can be set up.
        SignInOutcome::Mfa {
            challenge,
            session,
            parameters: named,
        } => {
            let mut parameters = json!({"USER_ID_FOR_SRP": username});
            if challenge == "MFA_SETUP" {
                parameters["MFAS_CAN_SETUP"] = Value::from("[\"SOFTWARE_TOKEN_MFA\"]");
            }
            for (name, value) in named {
                parameters[name] = Value::from(value);
            }
            Ok(json!({
                "ChallengeName": challenge,
                "Session": session.expose(),
                "ChallengeParameters": parameters,
            }))
        }
    }
}

/// A step of the custom flow: its tokens, or the next `CUSTOM_CHALLENGE`.
async fn custom_answer(
    state: &AppState,
    pool: &Pool,
    client: &CognitoClient,
    outcome: CustomAuthOutcome,
    username: &str,
) -> Answer {
    match outcome {
        CustomAuthOutcome::SignedIn(outcome) => {
            outcome_answer(state, pool, client, outcome, username).await
        }
        CustomAuthOutcome::Challenge {
            session,
            parameters,
        } => Ok(json!({
            "ChallengeName": "CUSTOM_CHALLENGE",
            "Session": session.expose(),
            "ChallengeParameters": parameters,
        })),
    }
}

async fn initiate_auth(
    state: &AppState,
    pool: &Arc<Pool>,
    meta: &RequestMeta,
    req: InitiateAuthRequest,
) -> Answer {
    let params = &req.auth_parameters;
    match req.auth_flow.as_str() {
        "USER_PASSWORD_AUTH" => {
            let username = required(params, "USERNAME", "USER_PASSWORD_AUTH")?;
            let password = required(params, "PASSWORD", "USER_PASSWORD_AUTH")?;
            let secret_hash = param(params, "SECRET_HASH")?;
            let client = app_client(state, pool, &req.client_id, &username, &secret_hash).await?;
            let outcome = state
                .gh
                .initiate_password_sign_in(
                    pool,
                    &req.client_id,
                    client.secret.clone(),
                    &username,
                    &Secret::new(password),
                    meta,
                )
                .await
                .map_err(|e| from_service(e, Doing::SignIn))?;
            outcome_answer(state, pool, &client, outcome, &username).await
        }
        "REFRESH_TOKEN_AUTH" | "REFRESH_TOKEN" => {
            let token = required(params, "REFRESH_TOKEN", &req.auth_flow)?;
            // A client with a secret proves it with the SECRET_HASH of the USERNAME it sends
            // along (what Cognito's SDKs send with a refresh).
            let secret_hash = param(params, "SECRET_HASH")?;
            let username = param(params, "USERNAME")?.unwrap_or_default();
            let client = app_client(state, pool, &req.client_id, &username, &secret_hash).await?;
            let grant = state
                .gh
                .refresh_sign_in(pool, &req.client_id, client.secret, &token, meta)
                .await
                .map_err(|e| from_service(e, Doing::Refresh))?;
            // Cognito answers a refresh without a new refresh token; Gatehouse rotates
            // refresh tokens (a used one ends its family), so the next one is sent.
            Ok(authentication_result(
                &grant.access.token,
                grant.access.expires_in,
                grant.id_token.as_ref(),
                grant.refresh.as_ref(),
            ))
        }
        "CUSTOM_AUTH" => {
            let username = required(params, "USERNAME", "CUSTOM_AUTH")?;
            if let Some(name) = param(params, "CHALLENGE_NAME")?
                && name != "CUSTOM_CHALLENGE"
            {
                return Err(CognitoError::invalid_parameter(format!(
                    "CHALLENGE_NAME {name} is not supported: Gatehouse does not speak SRP"
                )));
            }
            let secret_hash = param(params, "SECRET_HASH")?;
            let client = app_client(state, pool, &req.client_id, &username, &secret_hash).await?;
            let outcome = state
                .gh
                .initiate_custom_auth(
                    pool,
                    &req.client_id,
                    client.secret.clone(),
                    &username,
                    &req.client_metadata,
                    meta,
                )
                .await
                .map_err(|e| from_service(e, Doing::SignIn))?;
            custom_answer(state, pool, &client, outcome, &username).await
        }
        "USER_AUTH" => {
            let username = required(params, "USERNAME", "USER_AUTH")?;
            let preferred = param(params, "PREFERRED_CHALLENGE")?;
            let password = param(params, "PASSWORD")?.map(Secret::new);
            let secret_hash = param(params, "SECRET_HASH")?;
            let client = app_client(state, pool, &req.client_id, &username, &secret_hash).await?;
            let outcome = state
                .gh
                .initiate_user_auth(
                    pool,
                    &req.client_id,
                    client.secret.clone(),
                    &username,
                    preferred.as_deref(),
                    password.as_ref(),
                    meta,
                )
                .await
                .map_err(|e| from_service(e, Doing::SignIn))?;
            outcome_answer(state, pool, &client, outcome, &username).await
        }
        "USER_SRP_AUTH" | "ADMIN_NO_SRP_AUTH" | "ADMIN_USER_PASSWORD_AUTH" => Err(
            CognitoError::invalid_parameter(format!("AuthFlow {} is not supported", req.auth_flow)),
        ),
        other => Err(CognitoError::invalid_parameter(format!(
            "1 validation error detected: Value '{other}' at 'authFlow' failed to satisfy constraint"
        ))),
    }
}

/// The challenges `RespondToAuthChallenge` answers.
const ANSWERED: [&str; 8] = [
    "NEW_PASSWORD_REQUIRED",
    "SOFTWARE_TOKEN_MFA",
    "MFA_SETUP",
    "CUSTOM_CHALLENGE",
    "WEB_AUTHN",
    "SELECT_MFA_TYPE",
    "EMAIL_OTP",
    "SELECT_CHALLENGE",
];

async fn respond(
    state: &AppState,
    pool: &Arc<Pool>,
    meta: &RequestMeta,
    req: RespondRequest,
) -> Answer {
    let name = req.challenge_name.as_str();
    if !ANSWERED.contains(&name) {
        return Err(CognitoError::invalid_parameter(format!(
            "ChallengeName {name} is not supported"
        )));
    }
    // What every answer carries: the username, the session, and the client (its
    // SECRET_HASH checked against the username).
    let responses = &req.challenge_responses;
    let username = required(responses, "USERNAME", name)?;
    let secret_hash = param(responses, "SECRET_HASH")?;
    let session = req
        .session
        .clone()
        .ok_or_else(|| CognitoError::invalid_parameter("Missing required parameter Session"))?;
    let client = app_client(state, pool, &req.client_id, &username, &secret_hash).await?;
    let secret = || client.secret.clone();
    let gh = &state.gh;
    let id = req.client_id.as_str();
    let (outcome, doing) = match name {
        "NEW_PASSWORD_REQUIRED" => {
            let new_password = Secret::new(required(responses, "NEW_PASSWORD", name)?);
            let outcome = gh
                .respond_new_password(pool, id, secret(), &session, &new_password, meta)
                .await;
            (outcome, Doing::Challenge)
        }
        "SOFTWARE_TOKEN_MFA" => {
            let code = Secret::new(required(responses, "SOFTWARE_TOKEN_MFA_CODE", name)?);
            let outcome = gh
                .respond_software_token(pool, id, secret(), &session, &code, meta)
                .await;
            (outcome, Doing::MfaCode)
        }
        "MFA_SETUP" => {
            let outcome = gh
                .respond_mfa_setup(pool, id, secret(), &session, meta)
                .await;
            (outcome, Doing::MfaCode)
        }
        "EMAIL_OTP" => {
            let code = Secret::new(required(responses, "EMAIL_OTP_CODE", name)?);
            let outcome = gh
                .respond_email_otp(pool, id, secret(), &session, &code, meta)
                .await;
            (outcome, Doing::MfaCode)
        }
        "CUSTOM_CHALLENGE" => {
            let answer = responses.get("ANSWER").cloned().ok_or_else(|| {
                CognitoError::invalid_parameter(
                    "Missing required parameter ANSWER for CUSTOM_CHALLENGE",
                )
            })?;
            let outcome = gh
                .respond_custom_challenge(
                    pool,
                    id,
                    secret(),
                    &session,
                    &username,
                    &answer,
                    &req.client_metadata,
                    meta,
                )
                .await
                .map_err(|e| from_service(e, Doing::Challenge))?;
            return custom_answer(state, pool, &client, outcome, &username).await;
        }
        "WEB_AUTHN" => {
            let credential = required(responses, "CREDENTIAL", name)?;
            let credential = json_document(Value::String(credential), "CREDENTIAL")?;
            let outcome = gh
                .respond_web_authn(pool, id, secret(), &session, &credential, meta)
                .await;
            (outcome, Doing::Challenge)
        }
        "SELECT_MFA_TYPE" => {
            let answer = required(responses, "ANSWER", name)?;
            let outcome = gh
                .respond_select_mfa_type(pool, id, secret(), &session, &answer)
                .await;
            (outcome, Doing::Challenge)
        }
        _ => {
            // SELECT_CHALLENGE: a password answer is a sign-in's password step.
            let answer = required(responses, "ANSWER", name)?;
            let password = param(responses, "PASSWORD")?.map(Secret::new);
            let doing = if password.is_some() {
                Doing::SignIn
            } else {
                Doing::Challenge
            };
            let outcome = gh
                .respond_select_challenge(
                    pool,
                    id,
                    secret(),
                    &session,
                    &username,
                    &answer,
                    password.as_ref(),
                    meta,
                )
                .await;
            (outcome, doing)
        }
    };
    let outcome = outcome.map_err(|e| from_service(e, doing))?;
    outcome_answer(state, pool, &client, outcome, &username).await
}

/// `GetUser`'s answer: the user's attributes under Cognito's names.
fn user_answer(user: &User) -> Value {
    let a = &user.attributes;
    let software_token = user.mfa.has_software_token();
    let mut attrs: Vec<(&str, String)> = vec![("sub", user.id.to_string())];
    attrs.push(("email", a.email.clone()));
    if let Some(v) = a.email_verified {
        attrs.push(("email_verified", v.to_string()));
    }
    if !a.name.is_empty() {
        attrs.push(("name", a.name.clone()));
    }
    let optional = [
        ("given_name", &a.given_name),
        ("family_name", &a.family_name),
        ("middle_name", &a.middle_name),
        ("nickname", &a.nickname),
        ("preferred_username", &a.preferred_username),
        ("phone_number", &a.phone),
        ("zoneinfo", &a.zoneinfo),
        ("picture", &a.picture),
        ("website", &a.website),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            attrs.push((name, v.clone()));
        }
    }
    if let Some(v) = a.phone_verified {
        attrs.push(("phone_number_verified", v.to_string()));
    }
    let attributes: Vec<Value> = attrs
        .into_iter()
        .map(|(n, v)| json!({"Name": n, "Value": v}))
        .collect();
    let mut answer = json!({
        "Username": user.username.as_str(),
        "UserAttributes": attributes,
        "MFAOptions": [],
        "UserMFASettingList": [],
    });
    let mut settings = Vec::new();
    if software_token {
        settings.push("SOFTWARE_TOKEN_MFA");
    }
    if user.mfa.has_email_otp() {
        settings.push("EMAIL_OTP");
    }
    if let Some(first) = settings.first() {
        answer["PreferredMfaSetting"] = Value::from(*first);
        answer["UserMFASettingList"] = json!(settings);
    }
    answer
}

/// The failure limits' refusal, as Cognito answers it.
pub fn too_many_requests(retry_after_secs: u32) -> Response {
    CognitoError {
        retry_after_secs: Some(retry_after_secs),
        ..CognitoError::new(
            "TooManyRequestsException",
            "Too many failed attempts; try again later",
        )
    }
    .into_response()
}
