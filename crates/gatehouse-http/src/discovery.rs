//! Discovery documents (OpenID Connect Discovery, RFC 8414) and the JWKS.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use gatehouse_domain::client::GrantType;
use gatehouse_domain::permission::{Permission, Scope};
use gatehouse_domain::pool::Pool;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::PoolCtx;

/// The pool's authorization-server metadata: exactly what the pool supports today, so a
/// client that believes it is never surprised (a test holds each field against the endpoints).
#[derive(Serialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    introspection_endpoint: String,
    revocation_endpoint: String,
    userinfo_endpoint: String,
    end_session_endpoint: String,
    /// Not a registered name: the fleet feed of signed security events (its `/stream` and
    /// `/snapshot` beside it), for services that verify the pool's tokens themselves.
    revocation_feed_endpoint: String,
    grant_types_supported: &'static [&'static str],
    token_endpoint_auth_methods_supported: &'static [&'static str],
    introspection_endpoint_auth_methods_supported: &'static [&'static str],
    revocation_endpoint_auth_methods_supported: &'static [&'static str],
    /// OIDC scopes, permissions, and the pool API's resource identifiers.
    scopes_supported: Vec<String>,
    subject_types_supported: &'static [&'static str],
    response_types_supported: &'static [&'static str],
    response_modes_supported: &'static [&'static str],
    code_challenge_methods_supported: &'static [&'static str],
    /// RFC 9207: the authorization response names the issuer.
    authorization_response_iss_parameter_supported: bool,
    prompt_values_supported: &'static [&'static str],
    /// The algorithm of the pool's ID-token keys (published in its JWKS).
    id_token_signing_alg_values_supported: [&'static str; 1],
    /// Not a registered name: the algorithm of the pool's access tokens (RFC 9068 JWTs).
    access_token_signing_alg_values_supported: [&'static str; 1],
    claims_supported: &'static [&'static str],
    /// OpenID Connect Back-Channel Logout: logout tokens to registered clients, with `sid`.
    backchannel_logout_supported: bool,
    backchannel_logout_session_supported: bool,
}

/// Grants the token endpoint serves; the others answer `unsupported_grant_type`.
const GRANT_TYPES: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    GrantType::TOKEN_EXCHANGE_URN,
];

/// Client authentication methods the introspection and revocation endpoints accept.
const CLIENT_AUTH_METHODS: &[&str] = &["client_secret_basic", "client_secret_post"];

/// The token endpoint also serves public clients (PKCE instead of a secret).
const TOKEN_AUTH_METHODS: &[&str] = &["client_secret_basic", "client_secret_post", "none"];

fn metadata(state: &AppState, pool: &Pool) -> Metadata {
    let issuer = state.gh.issuer(pool);
    let scopes_supported = Scope::OIDC
        .iter()
        .chain(Scope::SSF)
        .map(|s| (*s).to_owned())
        .chain(Permission::ALL.iter().map(|p| p.as_str().to_owned()))
        .chain(state.gh.api_resources(pool))
        .collect();
    Metadata {
        authorization_endpoint: format!("{issuer}/oauth2/authorize"),
        token_endpoint: format!("{issuer}/oauth2/token"),
        jwks_uri: format!("{issuer}/.well-known/jwks.json"),
        introspection_endpoint: format!("{issuer}/oauth2/introspect"),
        revocation_endpoint: format!("{issuer}/oauth2/revoke"),
        userinfo_endpoint: format!("{issuer}/oauth2/userinfo"),
        end_session_endpoint: format!("{issuer}/oauth2/logout"),
        revocation_feed_endpoint: state.gh.revocation_feed_endpoint(pool),
        issuer,
        grant_types_supported: GRANT_TYPES,
        token_endpoint_auth_methods_supported: TOKEN_AUTH_METHODS,
        introspection_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
        revocation_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
        scopes_supported,
        subject_types_supported: &["public"],
        response_types_supported: &["code"],
        response_modes_supported: &["query"],
        code_challenge_methods_supported: &["S256"],
        authorization_response_iss_parameter_supported: true,
        prompt_values_supported: &["none", "login", "consent"],
        id_token_signing_alg_values_supported: [state.gh.id_token_alg().as_str()],
        access_token_signing_alg_values_supported: [pool.settings.signing_alg.as_str()],
        backchannel_logout_supported: true,
        backchannel_logout_session_supported: true,
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
            "auth_time",
            "nonce",
            "at_hash",
            "azp",
            "amr",
            "preferred_username",
            "name",
            "given_name",
            "family_name",
            "middle_name",
            "nickname",
            "updated_at",
            "email",
            "email_verified",
            "phone_number",
            "phone_number_verified",
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

pub async fn openapi() -> Response {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(crate::openapi::document);
    cacheable(Json(doc).into_response())
}
