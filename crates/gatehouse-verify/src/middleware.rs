//! The tower [`VerifyLayer`] and the axum extractor [`VerifiedToken`]: a request without a
//! valid, unrevoked bearer token is answered `401` with `WWW-Authenticate: Bearer
//! error="invalid_token"` (RFC 6750 §3.1), or `503` while the verifier cannot tell.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::claims::Claims;
use crate::error::VerifyError;
use crate::verifier::Verifier;

/// The claims of the request's verified access token. Put there by [`VerifyLayer`]; without
/// the layer, the extractor verifies the token itself with a [`Verifier`] found in the
/// request's extensions (`axum::Extension(verifier)`).
#[derive(Debug, Clone)]
pub struct VerifiedToken(pub Claims);

/// A refused request.
#[derive(Debug, Clone)]
pub struct Refusal(pub RefusalKind);

/// Why a request was refused.
#[derive(Debug, Clone)]
pub enum RefusalKind {
    /// No bearer token in `Authorization`.
    NoToken,
    /// The token was refused.
    Token(VerifyError),
    /// Neither the layer nor a verifier in the extensions is there (a wiring mistake).
    NotConfigured,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, challenge, message) = match &self.0 {
            RefusalKind::NoToken => (
                StatusCode::UNAUTHORIZED,
                Some(r#"Bearer"#),
                "a bearer token is required".to_owned(),
            ),
            RefusalKind::Token(e) if e.is_unavailable() => {
                (StatusCode::SERVICE_UNAVAILABLE, None, e.to_string())
            }
            RefusalKind::Token(e) => (
                StatusCode::UNAUTHORIZED,
                Some(r#"Bearer error="invalid_token""#),
                e.to_string(),
            ),
            RefusalKind::NotConfigured => (
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "token verification is not configured".to_owned(),
            ),
        };
        let body = serde_json::json!({ "error": status.canonical_reason(), "message": message });
        let mut res = (status, axum::Json(body)).into_response();
        if let Some(c) = challenge {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }
}

/// The bearer token of `Authorization`, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

async fn verify_headers(verifier: &Verifier, headers: &HeaderMap) -> Result<Claims, Refusal> {
    let token = bearer(headers).ok_or(Refusal(RefusalKind::NoToken))?;
    verifier
        .verify(token)
        .await
        .map_err(|e| Refusal(RefusalKind::Token(e)))
}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedToken {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(verified) = parts.extensions.get::<VerifiedToken>() {
            return Ok(verified.clone());
        }
        let verifier = parts
            .extensions
            .get::<Verifier>()
            .cloned()
            .ok_or(Refusal(RefusalKind::NotConfigured))?;
        verify_headers(&verifier, &parts.headers)
            .await
            .map(VerifiedToken)
    }
}

/// A tower layer that lets through only requests with a valid, unrevoked bearer token, and
/// hands their claims on as a [`VerifiedToken`] extension.
#[derive(Debug, Clone)]
pub struct VerifyLayer {
    verifier: Verifier,
}

impl VerifyLayer {
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }
}

impl<S> tower::Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyService {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// The service of [`VerifyLayer`].
#[derive(Debug, Clone)]
pub struct VerifyService<S> {
    inner: S,
    verifier: Verifier,
}

impl<S, B> tower::Service<Request<B>> for VerifyService<S>
where
    S: tower::Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The clone that was driven ready serves this request; the fresh one waits its turn.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        Box::pin(async move {
            match verify_headers(&verifier, req.headers()).await {
                Ok(claims) => {
                    req.extensions_mut().insert(VerifiedToken(claims));
                    inner.call(req).await
                }
                Err(refusal) => Ok(refusal.into_response()),
            }
        })
    }
}
