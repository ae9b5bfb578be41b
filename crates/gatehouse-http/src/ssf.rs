//! The SSF 1.0 transmitter's HTTP surface, per pool:
//!
//! - `GET /.well-known/ssf-configuration/pools/{pool}` (the SSF rule for an issuer with a
//!   path: the well-known string goes between host and path) and, at a host-bound pool's
//!   root, `GET /.well-known/ssf-configuration`: the transmitter metadata.
//! - `{issuer}/api/ssf/streams` (POST create, GET read or list, PATCH update, PUT replace, DELETE),
//!   `{issuer}/api/ssf/status` (GET, POST), `{issuer}/api/ssf/subjects/add`,
//!   `{issuer}/api/ssf/subjects/remove`, `{issuer}/api/ssf/verify` and the poll endpoint
//!   `{issuer}/api/ssf/poll/{stream_id}` (RFC 8936).
//!
//! Receivers authenticate with a bearer token in the `Authorization` header (never in the
//! query string); errors carry RFC 6750 `WWW-Authenticate` challenges. Every answer is
//! `Cache-Control: no-store`. Bodies are JSON objects, checked strictly: unknown members,
//! wrong types and transmitter-set members that differ from the stream's are 400.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_domain::pool::Pool;
use gatehouse_domain::ssf::{DELIVERY_POLL, DELIVERY_PUSH, SsfStream, StreamStatus};
use gatehouse_service::ssf::delivery::{PollAnswer, PollRequest};
use gatehouse_service::ssf::{
    DeliveryRequest, MIN_VERIFICATION_INTERVAL_SECS, Receiver, SsfAccess, SsfAuthError,
    StreamRequest, SubjectRef, UpdateKind, events_delivered, events_supported,
};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::{ApiError, no_store};
use crate::extract::{PoolCtx, parse_json};

/// An SSF endpoint's error: the API's error body, `no-store`, and for authentication
/// failures the RFC 6750 challenge.
pub struct SsfError {
    api: ApiError,
    challenge: Option<String>,
}

impl From<ApiError> for SsfError {
    fn from(api: ApiError) -> Self {
        Self {
            api,
            challenge: None,
        }
    }
}

impl From<gatehouse_service::ServiceError> for SsfError {
    fn from(e: gatehouse_service::ServiceError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for SsfError {
    fn into_response(self) -> Response {
        let mut res = self.api.into_response();
        if let Some(c) = self.challenge
            && let Ok(v) = HeaderValue::from_str(&c)
        {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        no_store(&mut res);
        res
    }
}

fn bad(detail: impl Into<String>) -> SsfError {
    ApiError::bad_request(detail).into()
}

/// A quoted RFC 6750 parameter value (no quotes or backslashes inside).
fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '"' && *c != '\\' && (' '..='~').contains(c))
        .collect()
}

fn auth_error(e: SsfAuthError) -> SsfError {
    match e {
        SsfAuthError::Missing => SsfError {
            api: ApiError::unauthenticated("a bearer token is required"),
            challenge: Some("Bearer".into()),
        },
        SsfAuthError::InvalidToken(m) => SsfError {
            challenge: Some(format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                quoted(&m)
            )),
            api: ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", m),
        },
        SsfAuthError::InsufficientScope(access) => SsfError {
            challenge: Some(format!(
                "Bearer error=\"insufficient_scope\", scope=\"{}\"",
                access.scope()
            )),
            api: ApiError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("this call needs the scope {}", access.scope()),
            ),
        },
    }
}

/// The query string's parameters, strictly: each named at most once, only those allowed.
fn query_params(req: &Parts, allowed: &[&str]) -> Result<Map<String, Value>, SsfError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.uri.query().unwrap_or_default())
            .map_err(|e| bad(format!("the query string is invalid: {e}")))?;
    let mut out = Map::new();
    for (k, v) in pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(bad(format!("unknown query parameter '{k}'")));
        }
        if out.insert(k.clone(), Value::String(v)).is_some() {
            return Err(bad(format!("the query parameter '{k}' is given twice")));
        }
    }
    Ok(out)
}

/// Authenticates the receiver: a token in the query string is refused, whatever the header.
async fn receiver(
    state: &AppState,
    pool: &std::sync::Arc<Pool>,
    req: &Parts,
    access: SsfAccess,
) -> Result<Receiver, SsfError> {
    let in_query =
        serde_urlencoded::from_str::<Vec<(String, String)>>(req.uri.query().unwrap_or_default())
            .map(|pairs| pairs.iter().any(|(k, _)| k == "access_token"))
            .unwrap_or(false);
    if in_query {
        return Err(SsfError {
            api: ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request",
                "access tokens are accepted in the Authorization header only",
            ),
            challenge: Some(
                "Bearer error=\"invalid_request\", error_description=\"access tokens are accepted in the Authorization header only\"".into(),
            ),
        });
    }
    let token = req
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty());
    state
        .gh
        .ssf_receiver(pool, token, access)
        .await?
        .map_err(auth_error)
}

/// The request's JSON object body (an empty body is `{}` when `empty_ok`).
async fn body(parts: &Parts, body: Body, empty_ok: bool) -> Result<Map<String, Value>, SsfError> {
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(body, crate::MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            SsfError::from(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the body could not be read, or is larger than this endpoint accepts (64 KiB)",
            ))
        })?;
    if empty_ok && bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let essence = ct
        .as_deref()
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    if essence.as_deref() != Some("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON (Content-Type: application/json)",
        )
        .into());
    }
    match parse_json::<Value>(&bytes)? {
        Value::Object(m) => Ok(m),
        _ => Err(bad("the body must be a JSON object")),
    }
}

fn string(m: &Map<String, Value>, name: &str) -> Result<Option<String>, SsfError> {
    match m.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!("{name}: must be a string"))),
    }
}

fn required_string(m: &Map<String, Value>, name: &str) -> Result<String, SsfError> {
    string(m, name)?.ok_or_else(|| bad(format!("{name}: is required")))
}

fn ok_json(status: StatusCode, value: Value) -> Response {
    let mut res = (status, Json(value)).into_response();
    no_store(&mut res);
    res
}

fn empty(status: StatusCode) -> Response {
    let mut res = status.into_response();
    no_store(&mut res);
    res
}

/// The transmitter metadata (SSF §7.1).
fn configuration(state: &AppState, pool: &Pool) -> Response {
    let issuer = state.gh.issuer(pool);
    ok_json(
        StatusCode::OK,
        json!({
            "spec_version": "1_0",
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "delivery_methods_supported": [DELIVERY_PUSH, DELIVERY_POLL],
            "configuration_endpoint": format!("{issuer}/api/ssf/streams"),
            "status_endpoint": format!("{issuer}/api/ssf/status"),
            "add_subject_endpoint": format!("{issuer}/api/ssf/subjects/add"),
            "remove_subject_endpoint": format!("{issuer}/api/ssf/subjects/remove"),
            "verification_endpoint": format!("{issuer}/api/ssf/verify"),
            "critical_subject_members": ["user", "tenant"],
            "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
            "default_subjects": "ALL",
        }),
    )
}

/// `GET /.well-known/ssf-configuration/pools/{pool}` and, for a host-bound pool,
/// `GET /.well-known/ssf-configuration` at its host's root.
pub async fn ssf_configuration(State(state): State<AppState>, PoolCtx(pool): PoolCtx) -> Response {
    configuration(&state, &pool)
}

/// The stream as the receiver reads it. The push `authorization_header` is never returned.
fn stream_view(state: &AppState, pool: &Pool, s: &SsfStream) -> Value {
    let endpoint_url = match s.method {
        gatehouse_domain::ssf::DeliveryMethod::Push => s.endpoint_url.clone().unwrap_or_default(),
        gatehouse_domain::ssf::DeliveryMethod::Poll => state.gh.ssf_poll_url(pool, &s.id),
    };
    let mut v = json!({
        "stream_id": s.id,
        "iss": state.gh.issuer(pool),
        "aud": s.client.to_string(),
        "events_supported": events_supported(),
        "events_delivered": events_delivered(s),
        "delivery": {"method": s.method.urn(), "endpoint_url": endpoint_url},
        "min_verification_interval": MIN_VERIFICATION_INTERVAL_SECS,
    });
    if !s.events_requested.is_empty() {
        v["events_requested"] = json!(s.events_requested);
    }
    if let Some(d) = &s.description {
        v["description"] = json!(d);
    }
    v
}

const RECEIVER_FIELDS: &[&str] = &["delivery", "events_requested", "description"];
const TRANSMITTER_FIELDS: &[&str] = &[
    "stream_id",
    "iss",
    "aud",
    "events_supported",
    "events_delivered",
    "min_verification_interval",
    "inactivity_timeout",
];

/// Reads the receiver-set fields of a stream body. Transmitter-set members are refused on
/// create (`current` is `None`) and must equal the stream's values otherwise; anything else
/// is unknown.
fn stream_request(
    m: &Map<String, Value>,
    current: Option<&Value>,
) -> Result<StreamRequest, SsfError> {
    for (k, v) in m {
        if RECEIVER_FIELDS.contains(&k.as_str()) {
            continue;
        }
        if !TRANSMITTER_FIELDS.contains(&k.as_str()) {
            return Err(bad(format!("unknown member '{k}'")));
        }
        match current {
            None => {
                return Err(bad(format!(
                    "{k}: is set by the transmitter, not by the receiver"
                )));
            }
            Some(cur) if cur.get(k) != Some(v) => {
                return Err(bad(format!(
                    "{k}: is set by the transmitter and does not match the stream's"
                )));
            }
            Some(_) => {}
        }
    }
    let delivery = match m.get("delivery") {
        None => None,
        Some(Value::Object(d)) => {
            for k in d.keys() {
                if !["method", "endpoint_url", "authorization_header"].contains(&k.as_str()) {
                    return Err(bad(format!("delivery: unknown member '{k}'")));
                }
            }
            let method = required_string(d, "method")
                .map_err(|_| bad("delivery.method: is required, a string"))?;
            let endpoint_url = string(d, "endpoint_url")?;
            let authorization_header = string(d, "authorization_header")?;
            let endpoint_url = if method == DELIVERY_POLL {
                // The poll URL is the transmitter's: only the current one may be echoed.
                if let Some(url) = &endpoint_url {
                    let cur = current.and_then(|c| c["delivery"]["endpoint_url"].as_str());
                    let same_method = current.and_then(|c| c["delivery"]["method"].as_str())
                        == Some(DELIVERY_POLL);
                    if !(same_method && cur == Some(url.as_str())) {
                        return Err(bad(
                            "delivery.endpoint_url: the transmitter names the poll URL",
                        ));
                    }
                }
                None
            } else {
                endpoint_url
            };
            Some(DeliveryRequest {
                method,
                endpoint_url,
                authorization_header,
            })
        }
        Some(_) => return Err(bad("delivery: must be an object")),
    };
    let events_requested = match m.get("events_requested") {
        None => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| bad("events_requested: must be an array of strings"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(bad("events_requested: must be an array of strings")),
    };
    Ok(StreamRequest {
        delivery,
        events_requested,
        description: string(m, "description")?,
    })
}

/// `{issuer}/api/ssf/streams`: create, read/list, update, replace, delete (SSF §8.1.1).
pub async fn streams(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    req: Parts,
    raw: Body,
) -> Result<Response, SsfError> {
    let method = req.method.clone();
    let access = if method == axum::http::Method::GET {
        SsfAccess::Read
    } else {
        SsfAccess::Manage
    };
    let who = receiver(&state, &pool, &req, access).await?;
    match method {
        axum::http::Method::GET => {
            let q = query_params(&req, &["stream_id"])?;
            let id = string(&q, "stream_id")?;
            let found = state.gh.ssf_streams(&pool, &who, id.as_deref()).await?;
            let views: Vec<Value> = found
                .iter()
                .map(|s| stream_view(&state, &pool, s))
                .collect();
            match id {
                Some(_) => Ok(ok_json(
                    StatusCode::OK,
                    views.into_iter().next().unwrap_or(Value::Null),
                )),
                None => Ok(ok_json(StatusCode::OK, Value::Array(views))),
            }
        }
        axum::http::Method::POST => {
            query_params(&req, &[])?;
            let m = body(&req, raw, true).await?;
            let r = stream_request(&m, None)?;
            let s = state.gh.ssf_create_stream(&pool, &who, r).await?;
            Ok(ok_json(StatusCode::CREATED, stream_view(&state, &pool, &s)))
        }
        axum::http::Method::PATCH | axum::http::Method::PUT => {
            query_params(&req, &[])?;
            let kind = if method == axum::http::Method::PUT {
                UpdateKind::Replace
            } else {
                UpdateKind::Patch
            };
            let m = body(&req, raw, false).await?;
            let id = required_string(&m, "stream_id")?;
            let current = state.gh.ssf_streams(&pool, &who, Some(&id)).await?;
            let view = current.first().map(|s| stream_view(&state, &pool, s));
            let r = stream_request(&m, view.as_ref())?;
            let s = state
                .gh
                .ssf_update_stream(&pool, &who, &id, r, kind)
                .await?;
            Ok(ok_json(StatusCode::OK, stream_view(&state, &pool, &s)))
        }
        axum::http::Method::DELETE => {
            let q = query_params(&req, &["stream_id"])?;
            let id = string(&q, "stream_id")?.ok_or_else(|| bad("stream_id: is required"))?;
            state.gh.ssf_delete_stream(&pool, &who, &id).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint takes GET, POST, PATCH, PUT and DELETE",
        )
        .into()),
    }
}

fn status_view(s: &SsfStream) -> Value {
    let mut v = json!({"stream_id": s.id, "status": s.status.as_str()});
    if let Some(r) = &s.status_reason {
        v["reason"] = json!(r);
    }
    v
}

/// `{issuer}/api/ssf/status`: read (GET) and update (POST) a stream's status (SSF §8.1.2).
pub async fn status(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    req: Parts,
    raw: Body,
) -> Result<Response, SsfError> {
    if req.method == axum::http::Method::GET {
        let who = receiver(&state, &pool, &req, SsfAccess::Read).await?;
        let q = query_params(&req, &["stream_id"])?;
        let id = string(&q, "stream_id")?.ok_or_else(|| bad("stream_id: is required"))?;
        let found = state.gh.ssf_streams(&pool, &who, Some(&id)).await?;
        let s = found.first().ok_or_else(|| bad("stream_id: is required"))?;
        return Ok(ok_json(StatusCode::OK, status_view(s)));
    }
    let who = receiver(&state, &pool, &req, SsfAccess::Manage).await?;
    query_params(&req, &[])?;
    let m = body(&req, raw, false).await?;
    for k in m.keys() {
        if !["stream_id", "status", "reason"].contains(&k.as_str()) {
            return Err(bad(format!("unknown member '{k}'")));
        }
    }
    let id = required_string(&m, "stream_id")?;
    let status = required_string(&m, "status")?;
    let status = StreamStatus::parse(&status)
        .ok_or_else(|| bad("status: must be enabled, paused or disabled"))?;
    let reason = string(&m, "reason")?;
    let s = state
        .gh
        .ssf_set_status(&pool, &who, &id, status, reason)
        .await?;
    Ok(ok_json(StatusCode::OK, status_view(&s)))
}

/// A member of a complex subject, with its format.
type Member<'a> = (&'a Map<String, Value>, String);

/// An RFC 9493 subject as add/remove subject take it.
fn subject(v: &Value) -> Result<SubjectRef, SsfError> {
    let Value::Object(m) = v else {
        return Err(bad("subject: must be an object"));
    };
    let format = required_string(m, "format").map_err(|_| bad("subject.format: is required"))?;
    let simple = |m: &Map<String, Value>, fmt: &str| -> Result<SubjectRef, SsfError> {
        match fmt {
            "iss_sub" => Ok(SubjectRef::User {
                iss: required_string(m, "iss")?,
                sub: required_string(m, "sub")?,
            }),
            "email" => {
                let email = required_string(m, "email")?;
                if !email.contains('@') {
                    return Err(bad("email: is not an e-mail address"));
                }
                Ok(SubjectRef::Unmatched)
            }
            "opaque" => {
                required_string(m, "id")?;
                Ok(SubjectRef::Unmatched)
            }
            "phone_number" | "account" | "did" | "uri" | "jwt_id" => Ok(SubjectRef::Unmatched),
            other => Err(bad(format!("subject format '{other}' is not supported"))),
        }
    };
    if format != "complex" {
        return simple(m, &format);
    }
    let member = |name: &str| -> Result<Option<Member<'_>>, SsfError> {
        match m.get(name) {
            None => Ok(None),
            Some(Value::Object(inner)) => {
                let f = required_string(inner, "format")
                    .map_err(|_| bad(format!("subject.{name}.format: is required")))?;
                Ok(Some((inner, f)))
            }
            Some(_) => Err(bad(format!("subject.{name}: must be an object"))),
        }
    };
    for k in m.keys() {
        if ![
            "format",
            "user",
            "session",
            "tenant",
            "device",
            "group",
            "application",
            "org_unit",
        ]
        .contains(&k.as_str())
        {
            return Err(bad(format!("subject: unknown member '{k}'")));
        }
    }
    let user = member("user")?;
    let session = member("session")?;
    let tenant = member("tenant")?;
    if let Some((s, f)) = session {
        if f != "opaque" {
            return Err(bad("subject.session: must be an opaque identifier"));
        }
        return Ok(SubjectRef::Session(required_string(s, "id")?));
    }
    if let Some((u, f)) = user {
        return simple(u, &f);
    }
    if let Some((t, f)) = tenant {
        if f != "opaque" {
            return Err(bad("subject.tenant: must be an opaque identifier"));
        }
        return Ok(SubjectRef::Tenant(required_string(t, "id")?));
    }
    Ok(SubjectRef::Unmatched)
}

async fn change_subject(
    state: AppState,
    pool: std::sync::Arc<Pool>,
    req: Parts,
    raw: Body,
    add: bool,
) -> Result<Response, SsfError> {
    let who = receiver(&state, &pool, &req, SsfAccess::Manage).await?;
    query_params(&req, &[])?;
    let m = body(&req, raw, false).await?;
    for k in m.keys() {
        if !["stream_id", "subject", "verified"].contains(&k.as_str()) {
            return Err(bad(format!("unknown member '{k}'")));
        }
    }
    let id = required_string(&m, "stream_id")?;
    let s = subject(
        m.get("subject")
            .ok_or_else(|| bad("subject: is required"))?,
    )?;
    if m.get("verified").is_some_and(|v| !v.is_boolean()) {
        return Err(bad("verified: must be a boolean"));
    }
    state
        .gh
        .ssf_change_subject(&pool, &who, &id, s, add)
        .await?;
    Ok(empty(if add {
        StatusCode::OK
    } else {
        StatusCode::NO_CONTENT
    }))
}

/// `POST {issuer}/api/ssf/subjects/add` (SSF §8.1.3.2): 200, empty.
pub async fn add_subject(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    req: Parts,
    raw: Body,
) -> Result<Response, SsfError> {
    change_subject(state, pool, req, raw, true).await
}

/// `POST {issuer}/api/ssf/subjects/remove` (SSF §8.1.3.3): 204.
pub async fn remove_subject(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    req: Parts,
    raw: Body,
) -> Result<Response, SsfError> {
    change_subject(state, pool, req, raw, false).await
}

/// `POST {issuer}/api/ssf/verify` (SSF §8.1.4.2): 204, then the verification SET on the stream.
pub async fn verify(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    req: Parts,
    raw: Body,
) -> Result<Response, SsfError> {
    let who = receiver(&state, &pool, &req, SsfAccess::Manage).await?;
    query_params(&req, &[])?;
    let m = body(&req, raw, false).await?;
    for k in m.keys() {
        if !["stream_id", "state"].contains(&k.as_str()) {
            return Err(bad(format!("unknown member '{k}'")));
        }
    }
    let id = required_string(&m, "stream_id")?;
    let st = string(&m, "state")?;
    state.gh.ssf_verify(&pool, &who, &id, st).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

fn poll_request(m: &Map<String, Value>) -> Result<PollRequest, SsfError> {
    for k in m.keys() {
        if !["maxEvents", "returnImmediately", "ack", "setErrs"].contains(&k.as_str()) {
            return Err(bad(format!("unknown member '{k}'")));
        }
    }
    let max_events = match m.get("maxEvents") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| bad("maxEvents: must be a whole number, 0 or more"))?,
        ),
    };
    let return_immediately = match m.get("returnImmediately") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("returnImmediately: must be a boolean")),
    };
    let ack = match m.get("ack") {
        None => Vec::new(),
        Some(Value::Array(items)) if items.len() <= 1000 => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad("ack: must be an array of jti strings"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad("ack: must be an array of at most 1000 jti strings")),
    };
    let set_errs = match m.get("setErrs") {
        None => Vec::new(),
        Some(Value::Object(errs)) if errs.len() <= 1000 => errs
            .iter()
            .map(|(jti, e)| {
                let Value::Object(e) = e else {
                    return Err(bad("setErrs: each value must be {err, description}"));
                };
                for k in e.keys() {
                    if !["err", "description"].contains(&k.as_str()) {
                        return Err(bad(format!("setErrs.{jti}: unknown member '{k}'")));
                    }
                }
                let err = required_string(e, "err")?;
                if err.is_empty() || err.len() > 256 {
                    return Err(bad("setErrs: err must be 1 to 256 characters"));
                }
                let description =
                    string(e, "description")?.map(|d| d.chars().take(1024).collect::<String>());
                Ok((jti.clone(), err, description))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad("setErrs: must be an object of at most 1000 members")),
    };
    Ok(PollRequest {
        max_events,
        return_immediately,
        ack,
        set_errs,
    })
}

/// `POST {issuer}/api/ssf/poll/{stream_id}` (RFC 8936).
pub async fn poll(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    axum::extract::Path(params): axum::extract::Path<Vec<(String, String)>>,
    req: Parts,
    raw: Body,
) -> Result<Response, SsfError> {
    let who = receiver(&state, &pool, &req, SsfAccess::Read).await?;
    let id = params
        .iter()
        .find(|(k, _)| k == "stream_id")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| SsfError::from(ApiError::not_found("no such stream")))?;
    // The conformance suite also names the stream in the query string: it must agree.
    let q = query_params(&req, &["stream_id"])?;
    if let Some(named) = string(&q, "stream_id")?
        && named != id
    {
        return Err(bad(
            "stream_id: the query names another stream than the path",
        ));
    }
    let m = body(&req, raw, true).await?;
    let r = poll_request(&m)?;
    let PollAnswer {
        sets,
        more_available,
    } = state.gh.ssf_poll(&pool, &who, &id, r).await?;
    let sets: Map<String, Value> = sets
        .into_iter()
        .map(|(jti, set)| (jti, Value::String(set)))
        .collect();
    Ok(ok_json(
        StatusCode::OK,
        json!({"sets": sets, "moreAvailable": more_available}),
    ))
}
