//! The BriteAuth admin API: users, groups, app clients, settings, and the extensions for
//! sessions, global sign-out and the audit log. Handlers are thin: they extract the pool, the
//! principal and the input, call one service operation (which checks the permission first) and
//! convert its result to the reference's shapes.

mod app_clients;
mod audit;
mod consents;
mod groups;
mod hooks;
mod identity_providers;
mod settings;
mod users;
pub mod wire;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{delete, get, post};
use gatehouse_domain::pool::Pool;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

pub fn routes(state: &AppState) -> Router<AppState> {
    const USERS: &str = "/api/user-management/users";
    const GROUPS: &str = "/api/user-management/groups";
    // Guessing a verification code is a failed attempt like a wrong password.
    let guarded = Router::new()
        .route(
            &format!("{USERS}/me/actions/verify-attribute"),
            post(users::verify_attribute),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::guard,
        ));
    Router::new()
        .merge(guarded)
        .route(USERS, get(users::list).post(users::create))
        // The static `me` routes win over `{username}`.
        .route(
            &format!("{USERS}/me"),
            get(users::get_me).put(users::update_me),
        )
        .route(
            &format!("{USERS}/{{username}}"),
            get(users::get).put(users::update).delete(users::delete),
        )
        .route(
            &format!("{USERS}/{{username}}/actions/enable"),
            post(users::enable),
        )
        .route(
            &format!("{USERS}/{{username}}/actions/disable"),
            post(users::disable),
        )
        .route(
            &format!("{USERS}/{{username}}/actions/reset-password"),
            post(users::reset_password),
        )
        .route(
            &format!("{USERS}/{{username}}/actions/disable-mfa"),
            post(users::disable_mfa),
        )
        .route(
            &format!("{USERS}/{{username}}/actions/link-to-provider"),
            post(users::link_to_provider),
        )
        .route(
            &format!("{USERS}/{{username}}/actions/sign-out"),
            post(users::sign_out),
        )
        .route(
            &format!("{USERS}/{{username}}/sessions"),
            get(users::sessions),
        )
        .route(
            &format!("{USERS}/{{username}}/consents"),
            get(consents::list),
        )
        .route(
            &format!("{USERS}/{{username}}/consents/{{id}}"),
            delete(consents::revoke),
        )
        .route(
            &format!("{USERS}/{{username}}/groups"),
            get(groups::of_user).put(groups::set_of_user),
        )
        .route(GROUPS, get(groups::list).post(groups::create))
        .route(
            &format!("{GROUPS}/{{group}}"),
            get(groups::get).put(groups::update).delete(groups::delete),
        )
        .route(&format!("{GROUPS}/{{group}}/users"), get(groups::members))
        .route(
            "/api/auth/settings/password-policy",
            get(settings::get_password_policy).put(settings::put_password_policy),
        )
        .route(
            "/api/auth/settings/invitation-messages",
            get(settings::get_invitation_messages).put(settings::put_invitation_messages),
        )
        .route(
            "/api/auth/settings/theme",
            get(settings::get_theme)
                .put(settings::put_theme)
                // A logo of 48 KiB is 64 KiB of base64.
                .layer(axum::extract::DefaultBodyLimit::max(80 * 1024)),
        )
        .route(
            "/api/auth/settings/mfa",
            get(settings::get_mfa).put(settings::put_mfa),
        )
        .route(
            "/api/auth/settings/staff-access",
            get(settings::get_staff_access).put(settings::put_staff_access),
        )
        .route("/api/audit/events", get(audit::events))
        .merge(app_clients::routes())
        .merge(identity_providers::routes())
        .merge(hooks::routes())
}

/// A query string deserialized into `T`, whose rejections use the API's error shape.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(ApiQuery)
            .map_err(|e| ApiError::bad_request(format!("the query string is invalid: {e}")))
    }
}

/// An absolute URL under the pool's base: `{public_url}/pools/{pool}/api/{segments…}?{query}`,
/// each segment percent-encoded.
pub(crate) fn pool_api_url(
    state: &AppState,
    pool: &Pool,
    segments: &[&str],
    query: &[(&str, &str)],
) -> Result<String, ApiError> {
    let base = format!("{}/pools/{}/api/", state.gh.public_url(), pool.slug);
    let mut url = url::Url::parse(&base).map_err(|e| {
        tracing::error!(error = %e, "the public URL does not make a valid base URL");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server failed to handle the request",
        )
    })?;
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    Ok(url.into())
}

/// The `next` link of a page: the same listing from `cursor`, or `""` on the last page.
pub(crate) fn next_link(
    state: &AppState,
    pool: &Pool,
    segments: &[&str],
    cursor: Option<&str>,
    limit: u32,
    filters: &[(&str, &str)],
) -> Result<String, ApiError> {
    let Some(cursor) = cursor else {
        return Ok(String::new());
    };
    let limit = limit.to_string();
    let mut query: Vec<(&str, &str)> = filters.to_vec();
    query.push(("cursor", cursor));
    query.push(("limit", &limit));
    pool_api_url(state, pool, segments, &query)
}
