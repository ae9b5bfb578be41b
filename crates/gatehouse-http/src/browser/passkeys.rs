//! The hosted pages' passkeys: the second-factor page (`WEB_AUTHN`), the choice between a
//! software token and a passkey (`SELECT_MFA_TYPE`), "Sign in with a passkey" on the sign-in
//! page, and `{base}/oauth2/passkeys`, where a signed-in browser adds a passkey.
//!
//! WebAuthn needs JavaScript; the pages run exactly one script, `passkeys.js`, served here
//! from the binary, and allow it by a nonce drawn for each page (`script-src 'nonce-…'`;
//! nothing inline, no `unsafe-inline`); `connect-src 'self'` lets it fetch its options.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_crypto::secret::random_token;
use gatehouse_domain::pool::Pool;
use gatehouse_service::ServiceError;
use minijinja::context;
use serde::Deserialize;

use gatehouse_domain::passkey::CEREMONY_TTL_SECS;

use super::{
    cookie, csrf_ok, csrf_token, error_page, failure_page, form_page, is_https, set_cookie,
    sso_cookie_name,
};
use crate::AppState;
use crate::extract::{Meta, PoolCtx};

const SCRIPT: &str = include_str!("../../static/passkeys.js");

/// The cookie that keeps a passwordless sign-in's sealed ceremony, in the browser that
/// started it.
pub(crate) fn ceremony_cookie_name(pool: &Pool) -> String {
    format!("gatehouse_passkey_{}", pool.slug)
}

/// A fresh nonce for a page's one script.
pub(crate) fn nonce() -> String {
    random_token().expose().to_owned()
}

/// The page's policy, with its script allowed by `nonce` and its options fetched from us.
pub(crate) fn allow_script(res: &mut Response, pool: &Pool, nonce: &str) {
    let img = if pool.settings.theme.logo.is_some() {
        " img-src data:;"
    } else {
        ""
    };
    let policy = format!(
        "default-src 'none'; style-src 'unsafe-inline';{img} script-src 'nonce-{nonce}'; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&policy) {
        res.headers_mut().insert("content-security-policy", v);
    }
}

/// `GET {base}/oauth2/passkeys.js`.
pub async fn script() -> Response {
    let mut res = SCRIPT.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    res
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

fn options_answer(options: serde_json::Value) -> Response {
    let mut res = axum::Json(serde_json::json!({ "publicKey": options })).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn refused_json(status: StatusCode, message: &str) -> Response {
    let mut res = (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `POST {base}/oauth2/passkey/options`: request options for a passwordless sign-in (the
/// sign-in page's CSRF token required); the ceremony goes with them in a sealed cookie.
pub async fn passwordless_options(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = serde_urlencoded::from_bytes::<CsrfForm>(&body).ok();
    if !csrf_ok(&headers, form.and_then(|f| f.csrf).as_deref()) {
        return refused_json(StatusCode::FORBIDDEN, "the form expired; reload the page");
    }
    match state.gh.start_passwordless(&pool).await {
        Ok((options, sealed)) => {
            let mut res = options_answer(options);
            set_cookie(
                &mut res,
                &ceremony_cookie_name(&pool),
                sealed.expose(),
                CEREMONY_TTL_SECS,
                is_https(&state, &pool),
            );
            res
        }
        Err(e) => {
            tracing::error!(error = ?e, "passwordless options failed");
            refused_json(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// The second-factor page: the request options for the browser, the challenge to answer.
#[allow(clippy::too_many_arguments)]
pub(crate) fn passkey_page(
    state: &AppState,
    pool: &Pool,
    headers: &HeaderMap,
    base: minijinja::Value,
    challenge: &str,
    options: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let csrf = csrf_token(headers);
    let nonce = nonce();
    let mut res = form_page(
        state,
        pool,
        "passkey.html",
        csrf.clone(),
        minijinja::value::merge_maps([
            context! { challenge, options, csrf => csrf.0, nonce => nonce.clone(), error },
            base,
        ]),
        status,
    );
    allow_script(&mut res, pool, &nonce);
    res
}

/// The choice between the user's second factors, passkeys first.
pub(crate) fn select_page(
    state: &AppState,
    pool: &Pool,
    headers: &HeaderMap,
    base: minijinja::Value,
    challenge: &str,
    offered: &[String],
) -> Response {
    let csrf = csrf_token(headers);
    let choices: Vec<minijinja::Value> = [
        ("WEB_AUTHN", "Use a passkey"),
        ("SOFTWARE_TOKEN_MFA", "Use your authenticator app"),
        ("EMAIL_OTP", "E-mail me a code"),
    ]
    .into_iter()
    .filter(|(answer, _)| offered.iter().any(|o| o == answer))
    .map(|(answer, label)| context! { answer, label })
    .collect();
    form_page(
        state,
        pool,
        "select_mfa.html",
        csrf.clone(),
        minijinja::value::merge_maps([context! { challenge, choices, csrf => csrf.0 }, base]),
        StatusCode::OK,
    )
}

/// The browser's credential from a passkey form, or the page that says it is unreadable.
pub(crate) fn credential_of(
    pool: &Pool,
    field: Option<&str>,
) -> Result<serde_json::Value, Box<Response>> {
    serde_json::from_str::<serde_json::Value>(field.unwrap_or_default())
        .ok()
        .filter(serde_json::Value::is_object)
        .ok_or_else(|| {
            Box::new(error_page(
                pool,
                "The passkey's answer could not be read. Go back and try again.",
                StatusCode::BAD_REQUEST,
            ))
        })
}

fn manage_page(
    state: &AppState,
    pool: &Pool,
    headers: &HeaderMap,
    passkeys: Vec<gatehouse_service::passkeys::PasskeyInfo>,
    notice: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let csrf = csrf_token(headers);
    let nonce = nonce();
    let list: Vec<minijinja::Value> = passkeys
        .iter()
        .map(|p| context! { name => p.name.clone() })
        .collect();
    let mut res = form_page(
        state,
        pool,
        "passkeys.html",
        csrf.clone(),
        context! {
            pool_name => pool.slug.as_str(),
            passkeys => list,
            csrf => csrf.0,
            nonce => nonce.clone(),
            notice,
            error,
        },
        status,
    );
    allow_script(&mut res, pool, &nonce);
    res
}

fn signed_out_page(pool: &Pool) -> Response {
    error_page(
        pool,
        "Sign in first: passkeys are added from a signed-in browser.",
        StatusCode::UNAUTHORIZED,
    )
}

/// `GET {base}/oauth2/passkeys`: the signed-in browser's passkeys, and "Add a passkey".
pub async fn manage(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    headers: HeaderMap,
) -> Response {
    let sso = cookie(&headers, &sso_cookie_name(&pool)).unwrap_or_default();
    match state.gh.browser_passkeys(&pool, sso).await {
        Ok(list) => manage_page(&state, &pool, &headers, list, None, None, StatusCode::OK),
        Err(ServiceError::Unauthenticated(_)) => signed_out_page(&pool),
        Err(ServiceError::Forbidden(m)) => error_page(&pool, &m, StatusCode::FORBIDDEN),
        Err(e) => failure_page(&pool, &e),
    }
}

/// `POST {base}/oauth2/passkeys/options`: creation options for the signed-in browser.
pub async fn registration_options(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = serde_urlencoded::from_bytes::<CsrfForm>(&body).ok();
    if !csrf_ok(&headers, form.and_then(|f| f.csrf).as_deref()) {
        return refused_json(StatusCode::FORBIDDEN, "the form expired; reload the page");
    }
    let sso = cookie(&headers, &sso_cookie_name(&pool)).unwrap_or_default();
    match state
        .gh
        .browser_start_passkey_registration(&pool, sso)
        .await
    {
        Ok(options) => options_answer(options),
        Err(ServiceError::Unauthenticated(_)) => {
            refused_json(StatusCode::UNAUTHORIZED, "sign in first")
        }
        Err(ServiceError::Forbidden(m)) => refused_json(StatusCode::FORBIDDEN, &m),
        Err(e) => {
            tracing::error!(error = ?e, "passkey registration options failed");
            refused_json(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

#[derive(Deserialize)]
pub struct AddForm {
    csrf: Option<String>,
    credential: Option<String>,
    name: Option<String>,
}

/// `POST {base}/oauth2/passkeys`: the browser's registration response.
pub async fn add(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Meta(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<AddForm>(&body) else {
        return error_page(
            &pool,
            "The form could not be read.",
            StatusCode::BAD_REQUEST,
        );
    };
    if !csrf_ok(&headers, form.csrf.as_deref()) {
        return error_page(
            &pool,
            "This form expired or was sent from another site. Reload the page and try again.",
            StatusCode::FORBIDDEN,
        );
    }
    let credential = match credential_of(&pool, form.credential.as_deref()) {
        Ok(c) => c,
        Err(page) => return *page,
    };
    let sso = cookie(&headers, &sso_cookie_name(&pool)).unwrap_or_default();
    let added = state
        .gh
        .browser_finish_passkey_registration(&pool, sso, &credential, form.name.as_deref(), &meta)
        .await;
    let (notice, error, status) = match added {
        Ok(_) => (Some("Your passkey was added."), None, StatusCode::OK),
        Err(ServiceError::Invalid(_)) => (
            None,
            Some("Give the passkey a name of at most 64 characters."),
            StatusCode::BAD_REQUEST,
        ),
        Err(ServiceError::Conflict(_)) => (
            None,
            Some("This passkey is already registered."),
            StatusCode::CONFLICT,
        ),
        Err(ServiceError::Unauthenticated(m)) if m.contains("sign in first") => {
            return signed_out_page(&pool);
        }
        Err(ServiceError::Unauthenticated(_)) => (
            None,
            Some("The passkey was not accepted. Try again."),
            StatusCode::BAD_REQUEST,
        ),
        Err(ServiceError::Forbidden(m)) => return error_page(&pool, &m, StatusCode::FORBIDDEN),
        Err(e) => return failure_page(&pool, &e),
    };
    match state.gh.browser_passkeys(&pool, sso).await {
        Ok(list) => manage_page(&state, &pool, &headers, list, notice, error, status),
        Err(ServiceError::Unauthenticated(_)) => signed_out_page(&pool),
        Err(e) => failure_page(&pool, &e),
    }
}
