//! The one mapping from service errors to HTTP responses. Admin endpoints answer
//! `{"errors": [{"status", "code", "title", "detail"}]}`; OAuth endpoints answer RFC 6749 §5.2.
//! Internal errors are logged with the request id and never described to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_service::error::InternalError;
use gatehouse_service::{OAuthError, OAuthErrorCode, ServiceError};
use serde::Serialize;

/// The one place an internal failure's detail goes: the log, as its response is built. The
/// client is told only that the server failed.
fn log_internal(e: &InternalError) {
    tracing::error!(error = e.detail(), "internal error");
}

/// An error of the admin and auth APIs.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// Sent as `Retry-After` (seconds), with 503 and 429.
    pub retry_after_secs: Option<u32>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    errors: [ErrorObject<'a>; 1],
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    status: String,
    code: &'a str,
    title: &'a str,
    detail: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            retry_after_secs: None,
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(p) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_request", p.to_string())
            }
            ServiceError::NotFound(what) => Self::not_found(format!("{what} not found")),
            ServiceError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            ServiceError::Unauthenticated(m) => Self::unauthenticated(m),
            ServiceError::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, "forbidden", m),
            ServiceError::Gone(m) => Self::new(StatusCode::GONE, "gone", m),
            ServiceError::OAuth(o) => {
                Self::new(StatusCode::BAD_REQUEST, o.code.as_str(), o.description)
            }
            ServiceError::Busy {
                detail,
                retry_after_secs,
            } => Self {
                retry_after_secs: Some(retry_after_secs),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    detail,
                )
            },
            ServiceError::Throttled {
                detail,
                retry_after_secs,
            } => Self {
                retry_after_secs: Some(retry_after_secs),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", detail)
            },
            // The pool's own code refused to decide: the request is not served, and the
            // answer says which hook failed and how (Cognito answers its triggers' failures
            // with 400 too).
            ServiceError::HookFailed { trigger, reason } => Self::new(
                StatusCode::BAD_REQUEST,
                "hook_failed",
                format!("the pool's {trigger} hook failed: {reason}"),
            ),
            ServiceError::Internal(e) => {
                log_internal(&e);
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the server failed to handle the request",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = ErrorBody {
            errors: [ErrorObject {
                status: self.status.as_u16().to_string(),
                code: self.code,
                title,
                detail: &self.detail,
            }],
        };
        let mut res = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after_secs {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// An error of the OAuth endpoints (RFC 6749 §5.2), never cached.
#[derive(Debug)]
pub struct OAuthResponseError {
    pub error: OAuthError,
    /// Sent as `Retry-After` (seconds) with `temporarily_unavailable`.
    pub retry_after_secs: Option<u32>,
    /// Set when the client tried HTTP Basic authentication, to answer 401 with a challenge.
    pub basic_challenge: bool,
    pub internal: bool,
}

#[derive(Serialize)]
struct OAuthErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl OAuthResponseError {
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::from(OAuthError::new(OAuthErrorCode::InvalidRequest, d))
    }
}

impl From<OAuthError> for OAuthResponseError {
    fn from(error: OAuthError) -> Self {
        Self {
            error,
            retry_after_secs: None,
            basic_challenge: false,
            internal: false,
        }
    }
}

impl From<ServiceError> for OAuthResponseError {
    fn from(e: ServiceError) -> Self {
        let code = |c| OAuthError::new(c, "");
        let error = match e {
            ServiceError::OAuth(o) => o,
            ServiceError::Invalid(p) => {
                OAuthError::new(OAuthErrorCode::InvalidRequest, p.to_string())
            }
            ServiceError::NotFound(what) => {
                OAuthError::new(OAuthErrorCode::InvalidGrant, format!("{what} not found"))
            }
            ServiceError::Conflict(m) | ServiceError::Gone(m) => {
                OAuthError::new(OAuthErrorCode::InvalidRequest, m)
            }
            ServiceError::Unauthenticated(m) | ServiceError::Forbidden(m) => {
                OAuthError::new(OAuthErrorCode::InvalidGrant, m)
            }
            ServiceError::HookFailed { trigger, reason } => OAuthError::new(
                OAuthErrorCode::InvalidRequest,
                format!("the pool's {trigger} hook failed: {reason}"),
            ),
            // OAuth has no code for "too many attempts": both say try again later.
            ServiceError::Busy {
                detail,
                retry_after_secs,
            }
            | ServiceError::Throttled {
                detail,
                retry_after_secs,
            } => {
                return Self {
                    retry_after_secs: Some(retry_after_secs),
                    ..OAuthError::new(OAuthErrorCode::TemporarilyUnavailable, detail).into()
                };
            }
            ServiceError::Internal(e) => {
                log_internal(&e);
                return Self {
                    error: code(OAuthErrorCode::InvalidRequest),
                    retry_after_secs: None,
                    basic_challenge: false,
                    internal: true,
                };
            }
        };
        error.into()
    }
}

/// 429 from an OAuth endpoint (the failure limits in front of it): an RFC 6749 §5.2 body,
/// `temporarily_unavailable` (OAuth has no code of its own for "too many attempts"), never
/// cached, with `Retry-After`.
pub fn oauth_too_many_requests(retry_after_secs: u32) -> Response {
    let mut res = (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(OAuthErrorBody {
            error: OAuthErrorCode::TemporarilyUnavailable.as_str(),
            error_description: "too many failed attempts; try again later",
        }),
    )
        .into_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    no_store(&mut res);
    res
}

/// Headers every OAuth response carries (RFC 6749 §5.1).
pub fn no_store(res: &mut Response) {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for OAuthResponseError {
    fn into_response(self) -> Response {
        let mut res = if self.internal {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(OAuthErrorBody {
                    error: "server_error",
                    error_description: "the server failed to handle the request",
                }),
            )
                .into_response()
        } else {
            let status = match self.error.code {
                OAuthErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
                OAuthErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            let mut res = (
                status,
                axum::Json(OAuthErrorBody {
                    error: self.error.code.as_str(),
                    error_description: &self.error.description,
                }),
            )
                .into_response();
            if status == StatusCode::UNAUTHORIZED {
                let challenge = if self.basic_challenge {
                    "Basic realm=\"gatehouse\""
                } else {
                    "Basic realm=\"gatehouse\", error=\"invalid_client\""
                };
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            if let Some(secs) = self.retry_after_secs {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            res
        };
        no_store(&mut res);
        res
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    const DRIVER: &str =
        "error returned from database: pool timed out while waiting for an open connection";

    async fn answer(res: Response) -> (StatusCode, Option<String>, String) {
        let status = res.status();
        let cache = res
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, cache, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn an_oauth_endpoint_answers_an_internal_error_500_server_error_without_detail() {
        let res = OAuthResponseError::from(ServiceError::internal(DRIVER)).into_response();
        let (status, cache, body) = answer(res).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(cache.as_deref(), Some("no-store"));
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "server_error");
        assert!(!body.to_string().contains("database"), "{body}");
    }

    #[tokio::test]
    async fn the_admin_api_answers_an_internal_error_500_without_detail() {
        let res = ApiError::from(ServiceError::internal(DRIVER)).into_response();
        let (status, _, body) = answer(res).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["errors"][0]["code"], "internal_error");
        assert!(!body.to_string().contains("database"), "{body}");
    }
}
