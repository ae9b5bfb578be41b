//! Extractors: the pool a request is for, the principal its bearer token proves, request
//! metadata for the audit log, and JSON bodies whose errors use the API's error shape.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use gatehouse_domain::ids::{GroupName, PoolSlug, Username};
use gatehouse_domain::pool::Pool;
use gatehouse_service::{Principal, RequestMeta};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

/// Longest path parameter accepted, as the reference document allows.
pub const MAX_PATH_PARAM_CHARS: usize = 2048;

/// The path parameters of the matched route, copied once per request.
#[derive(Debug, Clone, Default)]
pub struct PathParams(pub Vec<(String, String)>);

async fn params(parts: &mut Parts, state: &AppState) -> Result<PathParams, ApiError> {
    if let Some(p) = parts.extensions.get::<PathParams>() {
        return Ok(p.clone());
    }
    let raw = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::bad_request("the path is not valid UTF-8"))?;
    let p = PathParams(
        raw.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    );
    parts.extensions.insert(p.clone());
    Ok(p)
}

async fn param(parts: &mut Parts, state: &AppState, name: &str) -> Result<String, ApiError> {
    let p = params(parts, state).await?;
    let v =
        p.0.into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .ok_or_else(|| ApiError::not_found("no such resource"))?;
    if v.chars().count() > MAX_PATH_PARAM_CHARS {
        return Err(ApiError::bad_request(format!(
            "{name}: must be at most {MAX_PATH_PARAM_CHARS} characters"
        )));
    }
    Ok(v)
}

/// The pool named by the `{pool}` path segment.
#[derive(Debug, Clone)]
pub struct PoolCtx(pub Arc<Pool>);

impl FromRequestParts<AppState> for PoolCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(p) = parts.extensions.get::<PoolCtx>() {
            return Ok(p.clone());
        }
        let slug = param(parts, state, "pool").await?;
        let slug = PoolSlug::parse(&slug).map_err(|_| ApiError::not_found("pool not found"))?;
        let pool = state.gh.pool(&slug).await.map_err(ApiError::from)?;
        let ctx = PoolCtx(pool);
        parts.extensions.insert(ctx.clone());
        Ok(ctx)
    }
}

/// The `{username}` path segment, parsed.
#[derive(Debug, Clone)]
pub struct UsernamePath(pub Username);

impl FromRequestParts<AppState> for UsernamePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let v = param(parts, state, "username").await?;
        Username::parse(&v)
            .map(UsernamePath)
            .map_err(|e| ApiError::bad_request(e.to_string()))
    }
}

/// The `{group}` path segment, parsed.
#[derive(Debug, Clone)]
pub struct GroupPath(pub GroupName);

impl FromRequestParts<AppState> for GroupPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let v = param(parts, state, "group").await?;
        GroupName::parse(&v)
            .map(GroupPath)
            .map_err(|e| ApiError::bad_request(e.to_string()))
    }
}

/// A named path segment as a string, bounded in length (for ids).
#[derive(Debug, Clone)]
pub struct IdPath(pub String);

impl FromRequestParts<AppState> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        param(parts, state, "id").await.map(IdPath)
    }
}

/// Request facts for the audit log.
#[derive(Debug, Clone)]
pub struct Meta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        Ok(Meta(RequestMeta { ip }))
    }
}

/// The credentials of an `Authorization` header of `scheme` (any case, as clients send it).
fn authorization<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (sent, credentials) = value.split_once(' ')?;
    sent.eq_ignore_ascii_case(scheme)
        .then(|| credentials.trim())
}

pub fn bearer_token(parts: &Parts) -> Option<&str> {
    authorization(&parts.headers, "bearer").filter(|t| !t.is_empty())
}

/// The base64 credentials of HTTP Basic authentication, not yet decoded.
pub fn basic_credentials(headers: &HeaderMap) -> Option<&str> {
    authorization(headers, "basic")
}

/// The principal proven by the request's bearer token, in the request's pool.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let PoolCtx(pool) = PoolCtx::from_request_parts(parts, state).await?;
        let token = bearer_token(parts)
            .ok_or_else(|| ApiError::unauthenticated("a bearer token is required"))?
            .to_owned();
        let principal = state
            .gh
            .authenticate_bearer(&pool, &token)
            .await
            .map_err(ApiError::from)?;
        Ok(Authenticated(principal))
    }
}

/// The principal of the request's bearer token when it carries one (a bad token is still
/// refused); `None` without an `Authorization` header.
#[derive(Debug, Clone)]
pub struct MaybeAuthenticated(pub Option<Principal>);

impl FromRequestParts<AppState> for MaybeAuthenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if !parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            return Ok(MaybeAuthenticated(None));
        }
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        Ok(MaybeAuthenticated(Some(principal)))
    }
}

/// A JSON body (`application/json`, `application/vnd.api+json` or any `+json` type) whose
/// rejections use the API's error shape.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

fn is_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a request body, which is a JSON object in every operation (serde alone would also
/// read an array as a struct, field by field). No field of the API's documents is nullable, so
/// a `null` member is refused by name rather than read as an absent field: what the client
/// meant by it is unknown.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(ApiError::bad_request("the body is not valid UTF-8"));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    if let Some(field) = null_member(&value) {
        return Err(ApiError::bad_request(format!(
            "{field}: must not be null (leave the field out instead)"
        )));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("the body does not match the schema: {e}")))
}

/// Top-level members that carry a document of another specification, whose own members may
/// be `null` (WebAuthn's `RegistrationResponseJSON` and `AuthenticationResponseJSON`, which
/// browsers' `toJSON()` fill with nulls): the null rule does not reach inside them.
const FOREIGN_DOCUMENTS: [&str; 1] = ["credential"];

/// The dotted path of the first `null` member of a request body, at any depth (outside the
/// [`FOREIGN_DOCUMENTS`]).
fn null_member(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Object(members) => members.iter().find_map(|(name, v)| {
            if v.is_null() {
                Some(name.clone())
            } else if FOREIGN_DOCUMENTS.contains(&name.as_str()) {
                None
            } else {
                nested_null_member(v).map(|inner| format!("{name}.{inner}"))
            }
        }),
        other => nested_null_member(other),
    }
}

/// The dotted path of the first `null` member of a value, at any depth.
fn nested_null_member(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Object(members) => members.iter().find_map(|(name, v)| {
            if v.is_null() {
                Some(name.clone())
            } else {
                nested_null_member(v).map(|inner| format!("{name}.{inner}"))
            }
        }),
        serde_json::Value::Array(items) => items.iter().find_map(nested_null_member),
        _ => None,
    }
}

async fn body_bytes(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        let status = e.status();
        if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "payload_too_large",
                "the body is larger than this endpoint accepts (64 KiB; a theme, 80 KiB)",
            )
        } else {
            ApiError::bad_request("the body could not be read")
        }
    })
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if !is_json(ct.as_deref()) {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = body_bytes(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// An optional JSON body: an empty body gives `T::default()`.
#[derive(Debug, Clone)]
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !is_json(ct.as_deref()) {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// Paging parameters shared by list endpoints: `cursor` and `limit` (1 to 1000, default 60).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct PageQuery {
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

impl PageQuery {
    pub const DEFAULT_LIMIT: u32 = 60;
    pub const MAX_LIMIT: u32 = 1000;

    pub fn limit(&self) -> Result<u32, ApiError> {
        match &self.limit {
            None => Ok(Self::DEFAULT_LIMIT),
            Some(s) => match s.parse::<u32>() {
                Ok(n) if (1..=Self::MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_request(
                    "limit: must be an integer from 1 to 1000",
                )),
            },
        }
    }
}
