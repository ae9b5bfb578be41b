//! Discovery documents (OpenID Connect Discovery, RFC 8414) and the JWKS.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::PoolCtx;

#[derive(Serialize)]
struct Metadata {
    issuer: String,
    token_endpoint: String,
    jwks_uri: String,
    introspection_endpoint: String,
    revocation_endpoint: String,
    userinfo_endpoint: String,
    grant_types_supported: &'static [&'static str],
    token_endpoint_auth_methods_supported: &'static [&'static str],
    introspection_endpoint_auth_methods_supported: &'static [&'static str],
    revocation_endpoint_auth_methods_supported: &'static [&'static str],
    scopes_supported: Vec<&'static str>,
    subject_types_supported: &'static [&'static str],
    id_token_signing_alg_values_supported: &'static [&'static str],
    response_types_supported: &'static [&'static str],
    claims_supported: &'static [&'static str],
}

fn metadata(state: &AppState, pool: &gatehouse_domain::pool::Pool) -> Metadata {
    let issuer = state.gh.issuer(pool);
    let mut scopes: Vec<&'static str> = gatehouse_domain::permission::Scope::OIDC.to_vec();
    scopes.extend(
        gatehouse_domain::permission::Permission::ALL
            .iter()
            .map(|p| p.as_str()),
    );
    Metadata {
        token_endpoint: format!("{issuer}/oauth2/token"),
        jwks_uri: format!("{issuer}/.well-known/jwks.json"),
        introspection_endpoint: format!("{issuer}/oauth2/introspect"),
        revocation_endpoint: format!("{issuer}/oauth2/revoke"),
        userinfo_endpoint: format!("{issuer}/oauth2/userinfo"),
        issuer,
        grant_types_supported: &[
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ],
        token_endpoint_auth_methods_supported: &["client_secret_basic", "client_secret_post"],
        introspection_endpoint_auth_methods_supported: &[
            "client_secret_basic",
            "client_secret_post",
        ],
        revocation_endpoint_auth_methods_supported: &["client_secret_basic", "client_secret_post"],
        scopes_supported: scopes,
        subject_types_supported: &["public"],
        id_token_signing_alg_values_supported: &["RS256"],
        response_types_supported: &[],
        claims_supported: &[
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "jti",
            "client_id",
            "scope",
            "sid",
            "username",
            "groups",
            "roles",
            "token_use",
            "act",
            "email",
            "name",
        ],
    }
}

fn cacheable(mut res: Response) -> Response {
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("public, max-age=300"),
    );
    res
}

pub async fn openid_configuration(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
) -> Response {
    cacheable(Json(metadata(&state, &pool)).into_response())
}

pub async fn authorization_server_metadata(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
) -> Response {
    cacheable(Json(metadata(&state, &pool)).into_response())
}

#[derive(Serialize)]
struct Jwks {
    keys: Vec<gatehouse_crypto::keys::PublicJwk>,
}

pub async fn jwks(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
) -> Result<Response, ApiError> {
    let keys = state.gh.jwks(&pool).await?;
    Ok(cacheable(Json(Jwks { keys }).into_response()))
}

/// The OpenAPI document of the pool API: the reference document's paths, served as they
/// are, and Gatehouse's extensions.
pub fn openapi_document() -> serde_json::Value {
    let mut doc: serde_json::Value =
        serde_json::from_str(include_str!("../openapi/briteauth-openapi.json")).unwrap_or_default();
    let extensions: serde_json::Value =
        serde_json::from_str(include_str!("../openapi/gatehouse-extensions.json"))
            .unwrap_or_default();
    if let (Some(paths), Some(extra)) = (
        doc.get_mut("paths").and_then(|p| p.as_object_mut()),
        extensions.get("paths").and_then(|p| p.as_object()),
    ) {
        for (path, ops) in extra {
            let entry = paths
                .entry(path.clone())
                .or_insert_with(|| serde_json::json!({}));
            if let (Some(entry), Some(ops)) = (entry.as_object_mut(), ops.as_object()) {
                for (method, op) in ops {
                    entry.insert(method.clone(), op.clone());
                }
            }
        }
    }
    doc["info"] = serde_json::json!({
        "title": "Gatehouse pool API",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "Every path of the BriteAuth v0.1 document, plus Gatehouse's extensions. \
                        Paths are relative to a pool's API base."
    });
    doc["servers"] = serde_json::json!([{
        "url": "/pools/{pool}/api",
        "variables": {"pool": {"default": "staff"}}
    }]);
    doc
}

pub async fn openapi() -> Response {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(openapi_document);
    cacheable(Json(doc).into_response())
}
