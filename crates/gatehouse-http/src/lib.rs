//! Gatehouse's HTTP layer: the axum router, wire types, extractors, and the one error mapping.
//! Handlers are thin: extract the principal, call one service function, convert the result.

pub mod admin;
pub mod auth;
pub mod browser;
pub mod cognito;
pub mod discovery;
pub mod error;
pub mod extract;
pub mod federation;
pub mod host;
pub mod impersonation;
pub mod limits;
pub mod oauth;
pub mod openapi;
pub mod ops;
pub mod passkeys;
pub mod pools;
pub mod revocation_stream;
pub mod revocations;
pub mod ssf;
pub mod staff_sign_in;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::routing::{get, post};
use gatehouse_service::Gatehouse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use ops::{Metrics, Readiness};

/// Largest request body accepted (SPEC §5).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub gh: Arc<Gatehouse>,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<dyn Readiness>,
    pub limits: Arc<limits::FailureLimits>,
    /// The fleet feed's open streams.
    pub streams: Arc<revocation_stream::Streams>,
}

/// Every route a pool serves, relative to its base URL.
fn pool_routes(state: &AppState) -> Router<AppState> {
    // The endpoints that check a secret or a code, behind the failure limits.
    let guarded = Router::new()
        .route("/oauth2/token", post(oauth::token))
        .route("/api/auth/oauth2/token", post(oauth::token))
        .route("/oauth2/introspect", post(oauth::introspect))
        .route("/oauth2/revoke", post(oauth::revoke))
        .route("/api/auth/initiate", post(auth::initiate))
        .route("/api/auth/respond", post(auth::respond))
        .route("/api/auth/mfa/totp/associate", post(auth::totp_associate))
        .route("/api/auth/mfa/totp/verify", post(auth::totp_verify))
        .route("/api/auth/mfa/email", post(auth::email_otp_enable))
        // Passkeys (`passkeys.rs`): registration checks an attestation.
        .route(
            "/api/auth/mfa/webauthn/register/start",
            post(passkeys::register_start),
        )
        .route(
            "/api/auth/mfa/webauthn/register/finish",
            post(passkeys::register_finish),
        )
        // Cognito's user-pool API (`cognito.rs`).
        .route("/cognito", post(cognito::cognito))
        .route(
            "/api/auth/confirm-password-reset",
            post(auth::confirm_password_reset),
        )
        // The sign-in page's password and new-password steps.
        .route("/oauth2/authorize", post(browser::authorize_step))
        // The staff pool's sign-in for a client pool, and its answer there.
        .route(
            "/oauth2/staff",
            get(staff_sign_in::staff_authorize).post(browser::authorize_step),
        )
        .route("/oauth2/staff/response", get(staff_sign_in::staff_response))
        // Upstream providers' answers (`federation.rs`).
        .route("/oauth2/idpresponse", get(federation::oauth_response))
        .route("/oauth2/idplogout", get(federation::oauth_logout))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::guard,
        ));
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::authorization_server_metadata),
        )
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route("/oauth2/authorize", get(browser::authorize))
        .route("/oauth2/logout", get(browser::logout).post(browser::logout))
        .route(
            "/oauth2/userinfo",
            get(oauth::userinfo).post(oauth::userinfo),
        )
        .merge(guarded)
        .route("/api/auth/mfa/webauthn/credentials", get(passkeys::list))
        .route(
            "/api/auth/mfa/webauthn/credentials/{id}",
            axum::routing::delete(passkeys::delete),
        )
        // The hosted pages' passkeys (`browser/passkeys.rs`); their answers are steps of
        // `/oauth2/authorize`, behind the failure limits.
        .route("/oauth2/passkeys.js", get(browser::passkeys::script))
        .route(
            "/oauth2/passkey/options",
            post(browser::passkeys::passwordless_options),
        )
        .route(
            "/oauth2/passkeys",
            get(browser::passkeys::manage).post(browser::passkeys::add),
        )
        .route(
            "/oauth2/passkeys/options",
            post(browser::passkeys::registration_options),
        )
        .route("/api/auth/revocations", get(revocations::feed))
        .route("/api/auth/revocations/snapshot", get(revocations::snapshot))
        .route(
            "/api/auth/revocations/stream",
            get(revocation_stream::stream),
        )
        // The SSF transmitter (`ssf.rs`).
        .route(
            "/.well-known/ssf-configuration",
            get(ssf::ssf_configuration),
        )
        .route(
            "/api/ssf/streams",
            get(ssf::streams)
                .post(ssf::streams)
                .patch(ssf::streams)
                .put(ssf::streams)
                .delete(ssf::streams),
        )
        .route("/api/ssf/status", get(ssf::status).post(ssf::status))
        .route("/api/ssf/subjects/add", post(ssf::add_subject))
        .route("/api/ssf/subjects/remove", post(ssf::remove_subject))
        .route("/api/ssf/verify", post(ssf::verify))
        .route("/api/ssf/poll/{stream_id}", post(ssf::poll))
        .route(
            "/api/auth/impersonate",
            post(impersonation::impersonate_by_body),
        )
        .route(
            "/api/user-management/users/{username}/impersonate",
            post(impersonation::impersonate_user),
        )
        .route(
            "/api/user-management/impersonations",
            get(impersonation::list),
        )
        .route(
            "/api/user-management/impersonations/{id}",
            axum::routing::delete(impersonation::end),
        )
        .merge(admin::routes(state))
        .merge(saml_routes())
}

/// The pool's SAML service provider, when the build has it.
fn saml_routes() -> Router<AppState> {
    let routes = Router::new();
    #[cfg(feature = "saml")]
    let routes = routes
        .route("/saml2/metadata", get(federation::saml_metadata))
        .route("/saml2/idpresponse", post(federation::saml_response))
        .route("/saml2/logout", get(federation::saml_logout));
    routes
}

/// The whole application: operational endpoints, pool management, every pool under
/// `/pools/{pool}`, and host-bound pools at their host's root.
pub fn app(state: AppState) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    let routes = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/api/openapi.json", get(discovery::openapi))
        .route("/api/pools", get(pools::list).post(pools::create))
        .route(
            "/api/pools/{pool}/hosts",
            axum::routing::put(pools::set_hosts),
        )
        // SSF metadata of an issuer with a path: the well-known string between host and path.
        .route(
            "/.well-known/ssf-configuration/pools/{pool}",
            get(ssf::ssf_configuration),
        )
        .nest("/pools/{pool}", pool_routes(&state))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .with_state(state.clone());
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn(ops::run_to_completion))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            host::route_by_host,
        ))
        .layer(axum::middleware::from_fn_with_state(state, ops::count))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)))
        .layer(CatchPanicLayer::custom(ops::panic_response))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
}
