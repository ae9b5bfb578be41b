//! "Sign in with staff account": the front channel between a client pool's sign-in and the
//! staff pool's (see `gatehouse_service::staff_sign_in` for the protocol).
//!
//! - `POST {client base}/oauth2/authorize` with `step=staff` binds this browser (a cookie
//!   `gatehouse_staff_{pool}` holding a secret) and sends it to the staff pool;
//! - `GET|POST {staff base}/oauth2/staff` is the staff pool's sign-in for that client pool:
//!   its single sign-on, or its sign-in form, then back with a staff assertion;
//! - `GET {client base}/oauth2/staff/response` checks the assertion, signs the staff member in
//!   to the client pool, and issues the code.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use gatehouse_domain::pool::Pool;
use gatehouse_service::browser::{BROWSER_SESSION_TTL_SECS, BrowserSession, BrowserSignIn};
use gatehouse_service::grants::authorization_code::{ConsentAnswer, Decision, RedirectError};
use gatehouse_service::staff_sign_in::StaffRefusal;
use serde::Deserialize;

use crate::AppState;
use crate::browser::{
    Finish, Message, cookie, current_session, error_page, failure_page, is_https, issue,
    login_required, redirect_error, redirect_to, see_other, set_cookie, sign_in_page,
    sso_cookie_name,
};
use crate::extract::{Meta, PoolCtx};

/// How long a browser may take at the staff pool.
const BINDING_TTL_SECS: i64 = 15 * 60;

fn binding_cookie_name(pool: &Pool) -> String {
    format!("gatehouse_staff_{}", pool.slug)
}

/// A binding as the staff pool receives it: BASE64URL(SHA-256), 43 characters.
fn is_binding(v: &str) -> bool {
    v.len() == 43
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `step=staff` on a client pool's sign-in page: bind this browser and go to the staff pool.
pub(crate) async fn start_staff_sign_in(state: &AppState, pool: &Pool, sealed: &str) -> Response {
    if !state.gh.offers_staff_sign_in(pool) {
        return error_page(
            pool,
            StaffRefusal::NotOffered.message(),
            StatusCode::BAD_REQUEST,
        );
    }
    let handoff = state.gh.start_staff_sign_in();
    let staff_base = match state
        .gh
        .pool(&gatehouse_domain::ids::PoolSlug::staff())
        .await
    {
        Ok(staff) => state.gh.issuer(&staff),
        Err(e) => return failure_page(pool, &e),
    };
    let Some(location) = redirect_to(
        &format!("{staff_base}/oauth2/staff"),
        &[
            ("pool", Some(pool.slug.as_str())),
            ("request", Some(sealed)),
            ("binding", Some(&handoff.binding)),
        ],
    ) else {
        return error_page(
            pool,
            "The staff sign-in is not available.",
            StatusCode::SERVICE_UNAVAILABLE,
        );
    };
    let mut res = see_other(&location);
    set_cookie(
        &mut res,
        &binding_cookie_name(pool),
        handoff.secret.expose(),
        BINDING_TTL_SECS,
        is_https(state, pool),
    );
    res
}

/// The staff pool, signed in as `session`, answers `target` with a staff assertion.
pub(crate) async fn handoff_to(
    state: &AppState,
    staff_pool: &Pool,
    target: &Pool,
    sealed: &str,
    binding: &str,
    session: &BrowserSession,
) -> Response {
    let assertion = match state
        .gh
        .staff_assertion(staff_pool, target, session, sealed, binding)
        .await
    {
        Ok(a) => a,
        Err(e) => return failure_page(staff_pool, &e),
    };
    let response = format!("{}/oauth2/staff/response", state.gh.issuer(target));
    match redirect_to(
        &response,
        &[("assertion", Some(&assertion)), ("request", Some(sealed))],
    ) {
        Some(location) => see_other(&location),
        None => failure_page(
            staff_pool,
            &gatehouse_service::ServiceError::internal("a pool's issuer is not a URL"),
        ),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct StaffParams {
    pool: Option<String>,
    request: Option<String>,
    binding: Option<String>,
}

/// `GET {staff base}/oauth2/staff`: the staff pool's sign-in for a client pool.
pub async fn staff_authorize(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if !pool.slug.is_staff() {
        return error_page(
            &pool,
            "Staff accounts sign in at the staff pool.",
            StatusCode::NOT_FOUND,
        );
    }
    let Ok(p) = serde_urlencoded::from_str::<StaffParams>(uri.query().unwrap_or_default()) else {
        return error_page(
            &pool,
            "The request could not be read.",
            StatusCode::BAD_REQUEST,
        );
    };
    let (Some(slug), Some(sealed), Some(binding)) = (p.pool, p.request, p.binding) else {
        return error_page(
            &pool,
            "The request is incomplete. Go back to the application and start again.",
            StatusCode::BAD_REQUEST,
        );
    };
    if !is_binding(&binding) {
        return error_page(&pool, "The request is malformed.", StatusCode::BAD_REQUEST);
    }
    let target = match state.gh.staff_sign_in_target(&slug).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return error_page(
                &pool,
                StaffRefusal::NotOffered.message(),
                StatusCode::BAD_REQUEST,
            );
        }
        Err(e) => return failure_page(&pool, &e),
    };
    let req = match state.gh.open_authorization_request(&target, &sealed).await {
        Ok(Some(req)) => req,
        Ok(None) => {
            return error_page(
                &pool,
                "This sign-in took too long or was altered. Go back to the application and start again.",
                StatusCode::BAD_REQUEST,
            );
        }
        Err(e) => return failure_page(&pool, &e),
    };
    let session = match current_session(&state, &pool, &headers).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    match (state.gh.decide(&req, session.as_ref()), &session) {
        (Decision::Issue, Some(session)) => {
            handoff_to(&state, &pool, &target, &sealed, &binding, session).await
        }
        (Decision::LoginRequired, _) => login_required(&state, &target, &req),
        _ => {
            sign_in_page(
                &state,
                &pool,
                &headers,
                &req,
                Some(sealed),
                &Finish::Staff { target, binding },
                None,
                Message::None,
                StatusCode::OK,
            )
            .await
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ResponseParams {
    assertion: Option<String>,
    request: Option<String>,
}

/// `GET {client base}/oauth2/staff/response`: the staff pool's answer.
pub async fn staff_response(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Meta(meta): Meta,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Ok(p) = serde_urlencoded::from_str::<ResponseParams>(uri.query().unwrap_or_default())
    else {
        return error_page(
            &pool,
            "The response could not be read.",
            StatusCode::BAD_REQUEST,
        );
    };
    let (Some(assertion), Some(sealed)) = (p.assertion, p.request) else {
        return error_page(
            &pool,
            StaffRefusal::Invalid.message(),
            StatusCode::BAD_REQUEST,
        );
    };
    let req = match state.gh.open_authorization_request(&pool, &sealed).await {
        Ok(Some(req)) => req,
        Ok(None) => {
            return error_page(
                &pool,
                "This sign-in took too long or was altered. Go back to the application and start again.",
                StatusCode::BAD_REQUEST,
            );
        }
        Err(e) => return failure_page(&pool, &e),
    };
    let binding = binding_cookie_name(&pool);
    let outcome = state
        .gh
        .sign_in_with_staff(
            &pool,
            &assertion,
            &sealed,
            cookie(&headers, &binding),
            &meta,
        )
        .await;
    // The binding is spent once the pool has decided; a forged or stale answer leaves it,
    // so that a link planted by someone else cannot break this browser's sign-in.
    let spent = !matches!(outcome, Ok(Err(StaffRefusal::Invalid)));
    let mut res = match outcome {
        Ok(Ok(BrowserSignIn::SignedIn { session, cookie })) => {
            let mut res = issue(
                &state,
                &pool,
                &headers,
                &meta,
                &req,
                &session,
                ConsentAnswer::NotAsked,
            )
            .await;
            set_cookie(
                &mut res,
                &sso_cookie_name(&pool),
                cookie.expose(),
                BROWSER_SESSION_TTL_SECS,
                is_https(&state, &pool),
            );
            res
        }
        Ok(Ok(
            BrowserSignIn::NewPasswordRequired { .. }
            | BrowserSignIn::SoftwareTokenMfa { .. }
            | BrowserSignIn::WebAuthnMfa { .. }
            | BrowserSignIn::SelectMfaType { .. }
            | BrowserSignIn::EmailOtpMfa { .. }
            | BrowserSignIn::MfaSetup { .. }
            | BrowserSignIn::SignedInWithRecoveryCodes { .. },
        )) => failure_page(
            &pool,
            &gatehouse_service::ServiceError::internal("a staff sign-in asked for a password"),
        ),
        // Not this browser's, expired, or replayed: said here, never sent to the client.
        Ok(Err(StaffRefusal::Invalid)) => error_page(
            &pool,
            StaffRefusal::Invalid.message(),
            StatusCode::BAD_REQUEST,
        ),
        // The pool refuses this staff member: the client hears it (OIDC Core §3.1.2.6).
        Ok(Err(refusal)) => redirect_error(
            &state,
            &pool,
            &RedirectError {
                redirect_uri: req.redirect_uri.clone(),
                error: "access_denied",
                description: refusal.message().to_owned(),
                state: req.state.clone(),
            },
        ),
        Err(e) => failure_page(&pool, &e),
    };
    if spent {
        set_cookie(&mut res, &binding, "", 0, is_https(&state, &pool));
    }
    res
}
