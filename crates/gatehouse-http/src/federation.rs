//! The front channel of federated sign-in (see `gatehouse_service::federation`):
//!
//! - `POST {base}/oauth2/authorize` with `step=idp` and `provider=NAME` (the sign-in page's
//!   "Sign in with NAME"), or `identity_provider=NAME` on `GET /oauth2/authorize`: send the
//!   browser to the provider, binding it with a cookie for OAuth providers;
//! - `GET {base}/oauth2/idpresponse`: an OpenID Connect or OAuth 2.0 provider's answer;
//! - `GET {base}/saml2/metadata`: the pool's SAML service-provider metadata;
//! - `POST {base}/saml2/idpresponse`: the SAML assertion consumer service (HTTP-POST), for
//!   SP- and IdP-initiated sign-in;
//! - `GET {base}/oauth2/idplogout`: an OpenID provider is done with the logout RP-initiated
//!   logout sent it to;
//! - `GET {base}/saml2/logout`: the SAML single logout service (HTTP-Redirect): the IdP's
//!   LogoutResponse to our request, or its own LogoutRequest.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use gatehouse_domain::pool::Pool;
use gatehouse_service::RequestMeta;
use gatehouse_service::browser::{BROWSER_SESSION_TTL_SECS, BrowserSignIn};
use gatehouse_service::federation::{FederationRefusal, PENDING_TTL_SECS};
use gatehouse_service::federation_logout::UpstreamLogoutEnd;
use gatehouse_service::grants::authorization_code::ConsentAnswer;

use crate::AppState;
use crate::browser::{
    cookie, error_page, failure_page, is_https, issue, see_other, set_cookie, sso_cookie_name,
};
use crate::extract::{Meta, PoolCtx};

/// The cookie holding the OAuth sign-in this browser started (sealed).
fn binding_cookie_name(pool: &Pool) -> String {
    format!("gatehouse_idp_{}", pool.slug)
}

fn refusal_page(pool: &Pool, refusal: &FederationRefusal) -> Response {
    let status = match refusal {
        FederationRefusal::Disabled | FederationRefusal::Denied(_) => StatusCode::FORBIDDEN,
        FederationRefusal::NotOffered => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    error_page(pool, refusal.message(), status)
}

/// Sends the browser to the provider `name`, to come back and continue `sealed`.
pub(crate) async fn start(
    state: &AppState,
    pool: &Pool,
    meta: &RequestMeta,
    name: &str,
    sealed: &str,
) -> Response {
    match state.gh.start_federation(pool, name, sealed, meta).await {
        Ok(Ok(start)) => {
            let mut res = see_other(&start.location);
            if let Some(cookie) = &start.cookie {
                set_cookie(
                    &mut res,
                    &binding_cookie_name(pool),
                    cookie.expose(),
                    PENDING_TTL_SECS,
                    is_https(state, pool),
                );
            }
            res
        }
        Ok(Err(refusal)) => refusal_page(pool, &refusal),
        Err(e) => failure_page(pool, &e),
    }
}

/// Continues the authorization request with the browser signed in, setting its single
/// sign-on cookie.
async fn signed_in(
    state: &AppState,
    pool: &Pool,
    headers: &HeaderMap,
    meta: &RequestMeta,
    sealed: Option<&str>,
    target: Option<&str>,
    sign_in: BrowserSignIn,
) -> Response {
    let BrowserSignIn::SignedIn { session, cookie } = sign_in else {
        return failure_page(
            pool,
            &gatehouse_service::ServiceError::internal("a federated sign-in asked for a password"),
        );
    };
    let mut res = match (sealed, target) {
        (Some(sealed), _) => match state.gh.open_authorization_request(pool, sealed).await {
            Ok(Some(req)) => {
                issue(
                    state,
                    pool,
                    headers,
                    meta,
                    &req,
                    &session,
                    ConsentAnswer::NotAsked,
                )
                .await
            }
            Ok(None) => error_page(
                pool,
                "This sign-in took too long. Go back to the application and start again.",
                StatusCode::BAD_REQUEST,
            ),
            Err(e) => failure_page(pool, &e),
        },
        (None, Some(target)) => see_other(target),
        (None, None) => error_page(
            pool,
            "You are signed in. Go back to the application to continue.",
            StatusCode::OK,
        ),
    };
    set_cookie(
        &mut res,
        &sso_cookie_name(pool),
        cookie.expose(),
        BROWSER_SESSION_TTL_SECS,
        is_https(state, pool),
    );
    res
}

/// `GET {base}/oauth2/idpresponse`: an upstream OAuth provider's answer.
pub async fn oauth_response(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Meta(meta): Meta,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let params: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let binding = binding_cookie_name(&pool);
    let outcome = state
        .gh
        .finish_oauth_federation(&pool, &params, cookie(&headers, &binding), &meta)
        .await;
    let mut res = match outcome {
        Ok(Ok((sealed, sign_in))) => {
            signed_in(&state, &pool, &headers, &meta, Some(&sealed), None, sign_in).await
        }
        Ok(Err(refusal)) => refusal_page(&pool, &refusal),
        Err(e) => failure_page(&pool, &e),
    };
    set_cookie(&mut res, &binding, "", 0, is_https(&state, &pool));
    res
}

/// Where a logout at a provider ends: on to the client's post-logout URI, or the signed-out
/// page, which says so when the provider's answer was not accepted or matched nothing.
fn upstream_logout_done(pool: &Pool, end: UpstreamLogoutEnd) -> Response {
    let signed_out = |notice: Option<&str>, continue_url: Option<String>, status| {
        crate::browser::pool_page(
            pool,
            "signed_out.html",
            minijinja::context! {
                pool_name => pool.slug.as_str(),
                notice => notice,
                continue_url => continue_url,
            },
            status,
        )
    };
    match end {
        UpstreamLogoutEnd::Confirmed { then: Some(then) } => see_other(&then),
        UpstreamLogoutEnd::Confirmed { then: None } => signed_out(None, None, StatusCode::OK),
        UpstreamLogoutEnd::Unconfirmed {
            then,
            provider,
            why,
        } => {
            tracing::warn!(%provider, %why, "the identity provider's logout answer was refused");
            signed_out(
                Some(
                    "The identity provider did not confirm that you are signed out there too. Close your browser to end that session.",
                ),
                then,
                StatusCode::OK,
            )
        }
        // Nothing says this browser signed out here: never claim it did.
        UpstreamLogoutEnd::Unknown => error_page(
            pool,
            "This sign-out had already finished or took too long. If you are still signed in, sign out again from the application.",
            StatusCode::BAD_REQUEST,
        ),
    }
}

/// `GET {base}/oauth2/idplogout`: back from an OpenID provider's end-session endpoint.
pub async fn oauth_logout(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    uri: Uri,
) -> Response {
    let handle = form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned());
    match state
        .gh
        .finish_oidc_upstream_logout(&pool, handle.as_deref())
        .await
    {
        Ok(end) => upstream_logout_done(&pool, end),
        Err(e) => failure_page(&pool, &e),
    }
}

#[cfg(feature = "saml")]
pub use saml_sp::{saml_logout, saml_metadata, saml_response};

/// The SAML service provider's routes (feature `saml`).
#[cfg(feature = "saml")]
mod saml_sp {
    use axum::extract::State;
    use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use bytes::Bytes;

    use gatehouse_service::federation_logout::IdpLogoutAnswer;

    use super::{refusal_page, signed_in};
    use crate::AppState;
    use crate::browser::{error_page, failure_page};
    use crate::extract::{Meta, PoolCtx};

    /// `GET {base}/saml2/metadata`: the pool's SAML service provider.
    pub async fn saml_metadata(State(state): State<AppState>, PoolCtx(pool): PoolCtx) -> Response {
        match state.gh.saml_sp_metadata(&pool).await {
            Ok(xml) => {
                let mut res = (StatusCode::OK, xml).into_response();
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/samlmetadata+xml"),
                );
                res
            }
            Err(e) => failure_page(&pool, &e),
        }
    }

    #[derive(Debug, Default, serde::Deserialize)]
    pub struct AcsForm {
        #[serde(rename = "SAMLResponse")]
        saml_response: Option<String>,
        #[serde(rename = "RelayState")]
        relay_state: Option<String>,
    }

    /// `GET {base}/saml2/logout`: the single logout service (HTTP-Redirect binding). A
    /// `SAMLResponse` answers the logout RP-initiated logout sent; a `SAMLRequest` is the
    /// IdP's own logout, answered with a signed LogoutResponse by redirect.
    pub async fn saml_logout(
        State(state): State<AppState>,
        PoolCtx(pool): PoolCtx,
        Meta(meta): Meta,
        uri: axum::http::Uri,
    ) -> Response {
        let raw = uri.query().unwrap_or_default();
        let has = |name: &str| {
            form_urlencoded::parse(raw.as_bytes()).any(|(k, v)| k == name && !v.is_empty())
        };
        if has("SAMLResponse") {
            return match state.gh.finish_saml_upstream_logout(&pool, raw).await {
                Ok(end) => super::upstream_logout_done(&pool, end),
                Err(e) => failure_page(&pool, &e),
            };
        }
        if !has("SAMLRequest") {
            return error_page(
                &pool,
                "This sign-out carries no SAML message.",
                StatusCode::BAD_REQUEST,
            );
        }
        match state.gh.saml_idp_logout(&pool, raw, &meta).await {
            Ok(IdpLogoutAnswer::Respond { location, .. }) => crate::browser::see_other(&location),
            Ok(IdpLogoutAnswer::Refused(why)) => {
                tracing::info!(%why, "an identity provider's logout request was refused");
                error_page(
                    &pool,
                    "The identity provider's sign-out request could not be accepted.",
                    StatusCode::BAD_REQUEST,
                )
            }
            Err(e) => failure_page(&pool, &e),
        }
    }

    /// `POST {base}/saml2/idpresponse`: the assertion consumer service (HTTP-POST binding).
    pub async fn saml_response(
        State(state): State<AppState>,
        PoolCtx(pool): PoolCtx,
        Meta(meta): Meta,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let Ok(form) = serde_urlencoded::from_bytes::<AcsForm>(&body) else {
            return error_page(
                &pool,
                "The identity provider's answer could not be read.",
                StatusCode::BAD_REQUEST,
            );
        };
        let Some(response) = form.saml_response.filter(|r| !r.is_empty()) else {
            return error_page(
                &pool,
                "The identity provider's answer carries no SAMLResponse.",
                StatusCode::BAD_REQUEST,
            );
        };
        match state
            .gh
            .finish_saml(&pool, &response, form.relay_state.as_deref(), &meta)
            .await
        {
            Ok(Ok(done)) => {
                signed_in(
                    &state,
                    &pool,
                    &headers,
                    &meta,
                    done.request.as_deref(),
                    done.target.as_deref(),
                    done.sign_in,
                )
                .await
            }
            Ok(Err(refusal)) => refusal_page(&pool, &refusal),
            Err(e) => failure_page(&pool, &e),
        }
    }
}
