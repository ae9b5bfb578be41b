//! The hosted sign-in: `/oauth2/authorize`, the authorization code flow's front channel, and
//! its pages. Pages are rendered on the server from `templates/` (HTML-escaped), work
//! without JavaScript, and every form carries a CSRF token that must equal the
//! `gatehouse_csrf` cookie: a double submit, which a cross-site form cannot make because
//! `SameSite=Lax` keeps the cookie off its post. Cookies are `HttpOnly`, `SameSite=Lax`, and
//! `Secure` whenever the pool's issuer is https.
//!
//! The single sign-on cookie is named per pool (`gatehouse_sso_{pool}`); its session is
//! looked up in the pool the request is for alone, so a cookie of another pool names nothing.

use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use gatehouse_crypto::secret::{Secret, constant_time_eq, random_token};
use gatehouse_domain::ids::ClientId;
use gatehouse_domain::pool::Pool;
use gatehouse_service::RequestMeta;
use gatehouse_service::ServiceError;
use gatehouse_service::browser::{
    BROWSER_SESSION_TTL_SECS, BrowserReset, BrowserSession, BrowserSignIn,
};
use gatehouse_service::grants::authorization_code::{
    AuthorizationRequest, AuthorizeParams, AuthorizeRefusal, CodeIssue, ConsentAnswer,
    ConsentPrompt, Decision, RedirectError,
};
use gatehouse_service::staff_sign_in::StaffRefusal;
use minijinja::{Environment, context};
use serde::Deserialize;

use crate::AppState;
use crate::extract::{Meta, PoolCtx};
use crate::staff_sign_in::{handoff_to, start_staff_sign_in};

mod consent;
mod logout;
pub mod passkeys;
mod reset;

use consent::{consent_page, consent_step};
pub use logout::{LogoutForm, logout};
use reset::{ResetStep, reset_step};

const CSRF_COOKIE: &str = "gatehouse_csrf";

fn pages() -> &'static Environment<'static> {
    static PAGES: OnceLock<Environment<'static>> = OnceLock::new();
    PAGES.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            ("layout.html", include_str!("../templates/layout.html")),
            ("sign_in.html", include_str!("../templates/sign_in.html")),
            (
                "new_password.html",
                include_str!("../templates/new_password.html"),
            ),
            ("error.html", include_str!("../templates/error.html")),
            ("mfa_code.html", include_str!("../templates/mfa_code.html")),
            (
                "mfa_setup.html",
                include_str!("../templates/mfa_setup.html"),
            ),
            (
                "recovery_codes.html",
                include_str!("../templates/recovery_codes.html"),
            ),
            ("sign_out.html", include_str!("../templates/sign_out.html")),
            (
                "signed_out.html",
                include_str!("../templates/signed_out.html"),
            ),
            (
                "forgot_password.html",
                include_str!("../templates/forgot_password.html"),
            ),
            (
                "reset_password.html",
                include_str!("../templates/reset_password.html"),
            ),
            ("consent.html", include_str!("../templates/consent.html")),
            ("passkey.html", include_str!("../templates/passkey.html")),
            (
                "select_mfa.html",
                include_str!("../templates/select_mfa.html"),
            ),
            ("passkeys.html", include_str!("../templates/passkeys.html")),
        ] {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "a page template does not parse");
            }
        }
        env
    })
}

/// A rendered page, never cached, never framed.
pub(crate) fn page(name: &str, ctx: minijinja::Value, status: StatusCode) -> Response {
    let html = pages().get_template(name).and_then(|t| t.render(ctx));
    let (status, html) = match html {
        Ok(html) => (status, html),
        Err(e) => {
            tracing::error!(template = name, error = %e, "a page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><html lang=\"en\"><title>Error</title><main><h1>Something went wrong</h1></main></html>"
                    .to_owned(),
            )
        }
    };
    let mut res = (status, html).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    res
}

/// The pool's theme for its pages: the name to show for the pool, and the colours and logo
/// the layout applies. Every value was checked when the theme was set (and again when read).
fn theme_context(pool: &Pool) -> minijinja::Value {
    let theme = &pool.settings.theme;
    let name = theme
        .display_name
        .as_ref()
        .map_or(pool.slug.as_str(), |n| n.as_str());
    context! {
        pool_name => name,
        theme => context! {
            display_name => theme.display_name.as_ref().map(|n| n.as_str()),
            accent => theme.accent_color.map(|c| c.to_string()),
            background => theme.background_color.map(|c| c.to_string()),
            logo => theme.logo.as_ref().map(|l| l.as_str()),
        },
    }
}

/// A page of a pool, in its theme; its policy lets images load from `data:` only when the
/// theme has a logo.
pub(crate) fn pool_page(
    pool: &Pool,
    name: &str,
    ctx: minijinja::Value,
    status: StatusCode,
) -> Response {
    let mut res = page(
        name,
        minijinja::value::merge_maps([ctx, theme_context(pool)]),
        status,
    );
    if pool.settings.theme.logo.is_some() {
        res.headers_mut().insert(
            "content-security-policy",
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
    }
    res
}

pub(crate) fn error_page(pool: &Pool, message: &str, status: StatusCode) -> Response {
    pool_page(
        pool,
        "error.html",
        context! { pool_name => pool.slug.as_str(), message },
        status,
    )
}

/// The sign-in form refused by the failure limits (too many failures from this address).
pub(crate) fn throttled_page(retry_after_secs: u32) -> Response {
    let mut res = page(
        "error.html",
        context! {
            pool_name => "Sign in",
            message => "Too many failed sign-ins from this network. Wait a while and try again.",
        },
        StatusCode::TOO_MANY_REQUESTS,
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// A service failure on a page: a refusal the user can act on, or "something went wrong".
pub(crate) fn failure_page(pool: &Pool, e: &ServiceError) -> Response {
    match e {
        ServiceError::Busy { .. } => {
            let mut res = error_page(
                pool,
                "The service is busy. Wait a moment and try again.",
                StatusCode::SERVICE_UNAVAILABLE,
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            res
        }
        e => {
            tracing::error!(error = ?e, "a sign-in page failed");
            error_page(
                pool,
                "Something went wrong on our side. Try again in a moment.",
                StatusCode::INTERNAL_SERVER_ERROR,
            )
        }
    }
}

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Where the sign-in pages lead once the user is signed in.
#[derive(Debug, Clone)]
pub(crate) enum Finish {
    /// Issue the code to the client: the pool's own sign-in.
    Code,
    /// Back to a client pool with a staff assertion: the staff pool signing its staff
    /// member in for `target`, from the browser bound by `binding`.
    Staff { target: Arc<Pool>, binding: String },
}

impl Finish {
    /// The pool whose authorization request the pages carry.
    fn request_pool<'a>(&'a self, pool: &'a Pool) -> &'a Pool {
        match self {
            Finish::Code => pool,
            Finish::Staff { target, .. } => target,
        }
    }

    /// What the forms post to, relative to `/oauth2/authorize`.
    fn action(&self) -> &'static str {
        match self {
            Finish::Code => "authorize",
            Finish::Staff { .. } => "staff",
        }
    }

    fn for_pool(&self) -> Option<&str> {
        match self {
            Finish::Code => None,
            Finish::Staff { target, .. } => Some(target.slug.as_str()),
        }
    }

    fn binding(&self) -> Option<&str> {
        match self {
            Finish::Code => None,
            Finish::Staff { binding, .. } => Some(binding),
        }
    }
}

pub(crate) fn sso_cookie_name(pool: &Pool) -> String {
    format!("gatehouse_sso_{}", pool.slug)
}

pub(crate) fn is_https(state: &AppState, pool: &Pool) -> bool {
    state.gh.issuer(pool).starts_with("https://")
}

/// Adds a `Set-Cookie`: `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` on https; `max_age`
/// 0 deletes it.
pub(crate) fn set_cookie(res: &mut Response, name: &str, value: &str, max_age: i64, secure: bool) {
    let cookie = format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The CSRF token of this browser: its cookie, or a new one (to be set on the answer).
pub(crate) fn csrf_token(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, CSRF_COOKIE).filter(|v| v.len() >= 32) {
        Some(v) => (v.to_owned(), false),
        None => (random_token().expose().to_owned(), true),
    }
}

/// Whether a form's CSRF token is this browser's.
pub(crate) fn csrf_ok(headers: &HeaderMap, sent: Option<&str>) -> bool {
    match (cookie(headers, CSRF_COOKIE), sent) {
        (Some(c), Some(s)) if c.len() >= 32 => constant_time_eq(c.as_bytes(), s.as_bytes()),
        _ => false,
    }
}

/// A page with a form: sets the CSRF cookie when the browser has none yet.
pub(crate) fn form_page(
    state: &AppState,
    pool: &Pool,
    name: &str,
    csrf: (String, bool),
    ctx: minijinja::Value,
    status: StatusCode,
) -> Response {
    let mut res = pool_page(pool, name, ctx, status);
    if csrf.1 {
        set_cookie(
            &mut res,
            CSRF_COOKIE,
            &csrf.0,
            86_400,
            is_https(state, pool),
        );
    }
    res
}

pub(crate) fn see_other(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `redirect_uri` with these parameters added to its query (RFC 6749 §4.1.2), and `iss`
/// (RFC 9207) so the client can tell which server answered.
pub(crate) fn redirect_to(redirect_uri: &str, params: &[(&str, Option<&str>)]) -> Option<String> {
    let mut url = url::Url::parse(redirect_uri).ok()?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
    }
    Some(url.into())
}

pub(crate) fn redirect_error(state: &AppState, pool: &Pool, e: &RedirectError) -> Response {
    let issuer = state.gh.issuer(pool);
    match redirect_to(
        &e.redirect_uri,
        &[
            ("error", Some(e.error)),
            ("error_description", Some(&e.description)),
            ("state", e.state.as_deref()),
            ("iss", Some(&issuer)),
        ],
    ) {
        Some(location) => see_other(&location),
        None => error_page(pool, &e.description, StatusCode::BAD_REQUEST),
    }
}

/// `prompt=none` and the user must sign in: said to the client (OIDC Core §3.1.2.6).
pub(crate) fn login_required(
    state: &AppState,
    pool: &Pool,
    req: &AuthorizationRequest,
) -> Response {
    redirect_error(
        state,
        pool,
        &RedirectError {
            redirect_uri: req.redirect_uri.clone(),
            error: "login_required",
            description: "the user must sign in".to_owned(),
            state: req.state.clone(),
        },
    )
}

/// The request's parameters; a repeated one is refused (RFC 6749 §3.1).
fn authorize_params(query: Option<&str>) -> Result<AuthorizeParams, String> {
    let mut p = AuthorizeParams::default();
    let mut seen = std::collections::HashSet::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let slot = match k.as_ref() {
            "response_type" => &mut p.response_type,
            "client_id" => &mut p.client_id,
            "redirect_uri" => &mut p.redirect_uri,
            "scope" => &mut p.scope,
            "state" => &mut p.state,
            "nonce" => &mut p.nonce,
            "code_challenge" => &mut p.code_challenge,
            "code_challenge_method" => &mut p.code_challenge_method,
            "prompt" => &mut p.prompt,
            "max_age" => &mut p.max_age,
            "login_hint" => &mut p.login_hint,
            "response_mode" => &mut p.response_mode,
            "request" => &mut p.request,
            "request_uri" => &mut p.request_uri,
            _ => continue,
        };
        if !seen.insert(k.clone()) {
            return Err(format!("The parameter {k} is repeated."));
        }
        *slot = Some(v.into_owned());
    }
    Ok(p)
}

pub(crate) async fn current_session(
    state: &AppState,
    pool: &Pool,
    headers: &HeaderMap,
) -> Result<Option<BrowserSession>, Response> {
    match cookie(headers, &sso_cookie_name(pool)) {
        Some(c) => state
            .gh
            .browser_session(pool, c)
            .await
            .map_err(|e| failure_page(pool, &e)),
        None => Ok(None),
    }
}

/// Issues the code and sends the browser back to the client with it, or asks the user's
/// consent first when the client is a third party not yet allowed this request's scopes
/// (with `prompt=none`, answers `consent_required` instead of asking).
pub(crate) async fn issue(
    state: &AppState,
    pool: &Pool,
    headers: &HeaderMap,
    meta: &RequestMeta,
    req: &AuthorizationRequest,
    session: &BrowserSession,
    answer: ConsentAnswer,
) -> Response {
    let code = match state.gh.issue_code(pool, req, session, answer, meta).await {
        Ok(CodeIssue::Code(code)) => code,
        Ok(CodeIssue::ConsentRequired(_)) if req.prompts("none") => {
            return redirect_error(
                state,
                pool,
                &RedirectError {
                    redirect_uri: req.redirect_uri.clone(),
                    error: "consent_required",
                    description: "the user must allow this application first".to_owned(),
                    state: req.state.clone(),
                },
            );
        }
        Ok(CodeIssue::ConsentRequired(prompt)) => {
            return consent_page(state, pool, headers, req, session, &prompt).await;
        }
        Err(ServiceError::NotFound(_)) => {
            return error_page(
                pool,
                "The application that sent you here no longer accepts this sign-in.",
                StatusCode::BAD_REQUEST,
            );
        }
        Err(e) => return failure_page(pool, &e),
    };
    let issuer = state.gh.issuer(pool);
    match redirect_to(
        &req.redirect_uri,
        &[
            ("code", Some(code.expose())),
            ("state", req.state.as_deref()),
            ("iss", Some(&issuer)),
        ],
    ) {
        Some(location) => see_other(&location),
        None => error_page(
            pool,
            "The redirect_uri is malformed.",
            StatusCode::BAD_REQUEST,
        ),
    }
}

async fn client_name(state: &AppState, pool: &Pool, client_id: &str) -> Option<String> {
    let id = ClientId::parse(client_id).ok()?;
    state
        .gh
        .client(pool.id, &id)
        .await
        .ok()
        .flatten()
        .map(|c| c.name.clone())
}

/// What the sign-in page says above its form.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Message<'a> {
    None,
    Error(&'a str),
    Notice(&'a str),
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn sign_in_page(
    state: &AppState,
    pool: &Pool,
    headers: &HeaderMap,
    req: &AuthorizationRequest,
    sealed: Option<String>,
    finish: &Finish,
    username: Option<&str>,
    message: Message<'_>,
    status: StatusCode,
) -> Response {
    let (error, notice) = match message {
        Message::None => (None, None),
        Message::Error(e) => (Some(e), None),
        Message::Notice(n) => (None, Some(n)),
    };
    let request_pool = finish.request_pool(pool);
    let sealed = match sealed {
        Some(s) => s,
        None => match state.gh.seal_authorization_request(request_pool, req).await {
            Ok(s) => s,
            Err(e) => return failure_page(pool, &e),
        },
    };
    let client_name = match finish {
        Finish::Code => client_name(state, pool, &req.client_id)
            .await
            .unwrap_or_else(|| "the application".to_owned()),
        Finish::Staff { target, .. } => target.slug.to_string(),
    };
    // The pool's providers are offered on its own sign-in, not on the staff pool's for
    // another pool.
    let providers: Vec<String> = match finish {
        Finish::Code => match state.gh.sign_in_providers(pool).await {
            Ok(names) => names.iter().map(ToString::to_string).collect(),
            Err(e) => return failure_page(pool, &e),
        },
        Finish::Staff { .. } => Vec::new(),
    };
    let csrf = csrf_token(headers);
    let nonce = passkeys::nonce();
    let mut res = form_page(
        state,
        pool,
        "sign_in.html",
        csrf.clone(),
        context! {
            pool_name => pool.slug.as_str(),
            client_name,
            action => finish.action(),
            for_pool => finish.for_pool(),
            binding => finish.binding(),
            staff_sign_in => matches!(finish, Finish::Code) && state.gh.offers_staff_sign_in(pool),
            providers,
            request => sealed,
            csrf => csrf.0,
            username => username.or(req.login_hint.as_deref()).unwrap_or_default(),
            error,
            notice,
            nonce => nonce.clone(),
        },
        status,
    );
    passkeys::allow_script(&mut res, pool, &nonce);
    res
}

/// `GET /oauth2/authorize`: check the request; answer with a code when the browser is signed
/// in (and recently enough), else show the sign-in page.
pub async fn authorize(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Meta(meta): Meta,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let params = match authorize_params(uri.query()) {
        Ok(p) => p,
        Err(m) => return error_page(&pool, &m, StatusCode::BAD_REQUEST),
    };
    let identity_provider = form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "identity_provider")
        .map(|(_, v)| v.into_owned());
    let req = match state.gh.check_authorization_request(&pool, &params).await {
        Ok((req, _)) => req,
        Err(AuthorizeRefusal::Page(m)) => return error_page(&pool, &m, StatusCode::BAD_REQUEST),
        Err(AuthorizeRefusal::Redirect(e)) => return redirect_error(&state, &pool, &e),
    };
    let session = match current_session(&state, &pool, &headers).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    match (state.gh.decide(&req, session.as_ref()), &session) {
        (Decision::Issue, Some(session)) => {
            issue(
                &state,
                &pool,
                &headers,
                &meta,
                &req,
                session,
                ConsentAnswer::NotAsked,
            )
            .await
        }
        (Decision::LoginRequired, _) => login_required(&state, &pool, &req),
        // `identity_provider=NAME` goes straight to that provider, as Cognito's does.
        _ if identity_provider.is_some() => {
            let sealed = match state.gh.seal_authorization_request(&pool, &req).await {
                Ok(s) => s,
                Err(e) => return failure_page(&pool, &e),
            };
            let name = identity_provider.unwrap_or_default();
            crate::federation::start(&state, &pool, &meta, &name, &sealed).await
        }
        _ => {
            sign_in_page(
                &state,
                &pool,
                &headers,
                &req,
                None,
                &Finish::Code,
                None,
                Message::None,
                StatusCode::OK,
            )
            .await
        }
    }
}

/// Where a signed-in browser goes: back to the client with a code, or (the staff pool
/// signing in for a client pool) back to that pool with a staff assertion.
#[allow(clippy::too_many_arguments)]
async fn finish_sign_in(
    state: &AppState,
    pool: &Pool,
    headers: &HeaderMap,
    meta: &RequestMeta,
    req: &AuthorizationRequest,
    sealed: &str,
    finish: &Finish,
    session: &BrowserSession,
) -> Response {
    match finish {
        Finish::Code => {
            issue(
                state,
                pool,
                headers,
                meta,
                req,
                session,
                ConsentAnswer::NotAsked,
            )
            .await
        }
        Finish::Staff { target, binding } => {
            handoff_to(state, pool, target, sealed, binding, session).await
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct StepForm {
    step: Option<String>,
    request: Option<String>,
    csrf: Option<String>,
    username: Option<String>,
    password: Option<String>,
    challenge: Option<String>,
    new_password: Option<String>,
    code: Option<String>,
    /// The staff pool's sign-in for a client pool: that pool, and the browser's binding.
    for_pool: Option<String>,
    binding: Option<String>,
    /// "Sign in with NAME": the identity provider's name.
    provider: Option<String>,
    /// The consent step: `allow` or `deny`, and the browser session the page was shown for.
    decision: Option<String>,
    session: Option<String>,
    /// The passkey steps: the browser's WebAuthn answer (JSON).
    credential: Option<String>,
    /// The choice of a second factor: `WEB_AUTHN`, `SOFTWARE_TOKEN_MFA` or `EMAIL_OTP`.
    answer: Option<String>,
    /// The enrollment page's software token, carried to show the page again after a wrong
    /// code (never read otherwise: the token is the one stored for the user).
    secret: Option<String>,
    uri: Option<String>,
    /// The e-mail code page's masked address, carried to show the page again after a
    /// wrong code.
    destination: Option<String>,
}

/// `POST /oauth2/authorize`: a step of the sign-in pages.
pub async fn authorize_step(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Meta(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<StepForm>(&body) else {
        return error_page(
            &pool,
            "The form could not be read.",
            StatusCode::BAD_REQUEST,
        );
    };
    if !csrf_ok(&headers, form.csrf.as_deref()) {
        return error_page(
            &pool,
            "This form expired or was sent from another site. Go back to the application and start again.",
            StatusCode::FORBIDDEN,
        );
    }
    let finish = match (&form.for_pool, &form.binding) {
        (None, None) => Finish::Code,
        (Some(slug), Some(binding)) if pool.slug.is_staff() => {
            match state.gh.staff_sign_in_target(slug).await {
                Ok(Some(target)) => Finish::Staff {
                    target,
                    binding: binding.clone(),
                },
                Ok(None) => {
                    return error_page(
                        &pool,
                        StaffRefusal::NotOffered.message(),
                        StatusCode::BAD_REQUEST,
                    );
                }
                Err(e) => return failure_page(&pool, &e),
            }
        }
        _ => {
            return error_page(
                &pool,
                "The form could not be read.",
                StatusCode::BAD_REQUEST,
            );
        }
    };
    let sealed = form.request.clone().unwrap_or_default();
    let req = match state
        .gh
        .open_authorization_request(finish.request_pool(&pool), &sealed)
        .await
    {
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
    if let Some(step) = form.step.as_deref().and_then(ResetStep::parse) {
        return reset_step(
            &state, &pool, &meta, &headers, &req, &sealed, &finish, step, &form,
        )
        .await;
    }
    let outcome = match form.step.as_deref() {
        Some("staff") if matches!(finish, Finish::Code) => {
            return start_staff_sign_in(&state, &pool, &sealed).await;
        }
        Some("idp") if matches!(finish, Finish::Code) => {
            let provider = form.provider.clone().unwrap_or_default();
            return crate::federation::start(&state, &pool, &meta, &provider, &sealed).await;
        }
        Some("password") => {
            let username = form.username.clone().unwrap_or_default();
            let password = Secret::new(form.password.clone().unwrap_or_default());
            state
                .gh
                .sign_in_browser(&pool, &username, &password, &meta)
                .await
        }
        Some("new_password") => {
            let challenge = form.challenge.clone().unwrap_or_default();
            let new_password = Secret::new(form.new_password.clone().unwrap_or_default());
            state
                .gh
                .browser_new_password(&pool, &challenge, &new_password, &meta)
                .await
        }
        Some("mfa_code") => {
            let challenge = form.challenge.clone().unwrap_or_default();
            let code = Secret::new(form.code.clone().unwrap_or_default());
            state
                .gh
                .browser_software_token(&pool, &challenge, &code, &meta)
                .await
        }
        Some("email_code") => {
            let challenge = form.challenge.clone().unwrap_or_default();
            let code = Secret::new(form.code.clone().unwrap_or_default());
            state
                .gh
                .browser_email_otp(&pool, &challenge, &code, &meta)
                .await
        }
        Some("passkey") => {
            let challenge = form.challenge.clone().unwrap_or_default();
            let credential = match passkeys::credential_of(&pool, form.credential.as_deref()) {
                Ok(c) => c,
                Err(page) => return *page,
            };
            state
                .gh
                .browser_web_authn(&pool, &challenge, &credential, &meta)
                .await
        }
        Some("passkey_signin") => {
            let credential = match passkeys::credential_of(&pool, form.credential.as_deref()) {
                Ok(c) => c,
                Err(page) => return *page,
            };
            let sealed =
                cookie(&headers, &passkeys::ceremony_cookie_name(&pool)).unwrap_or_default();
            state
                .gh
                .browser_passwordless(&pool, &credential, sealed, &meta)
                .await
        }
        Some("select_mfa") => {
            let challenge = form.challenge.clone().unwrap_or_default();
            let answer = form.answer.clone().unwrap_or_default();
            state
                .gh
                .browser_select_mfa_type(&pool, &challenge, &answer)
                .await
        }
        Some("mfa_setup") => {
            let challenge = form.challenge.clone().unwrap_or_default();
            let code = form.code.clone().unwrap_or_default();
            state
                .gh
                .browser_mfa_setup(&pool, &challenge, &code, &meta)
                .await
        }
        // After the recovery codes: the browser signed in when it enrolled, and goes on.
        Some("continue") => {
            let cookie_value = cookie(&headers, &sso_cookie_name(&pool)).unwrap_or_default();
            return match state.gh.browser_session(&pool, cookie_value).await {
                Ok(Some(session)) => {
                    finish_sign_in(
                        &state, &pool, &headers, &meta, &req, &sealed, &finish, &session,
                    )
                    .await
                }
                Ok(None) => error_page(
                    &pool,
                    "This step expired. Go back to the application and sign in again.",
                    StatusCode::BAD_REQUEST,
                ),
                Err(e) => failure_page(&pool, &e),
            };
        }
        Some("mfa_recovery") => Ok(BrowserSignIn::SoftwareTokenMfa {
            challenge: Secret::new(form.challenge.clone().unwrap_or_default()),
        }),
        Some("consent") => {
            return consent_step(&state, &pool, &headers, &meta, &req, &form).await;
        }
        _ => return error_page(&pool, "Unknown sign-in step.", StatusCode::BAD_REQUEST),
    };
    let new_password_page = |challenge: &str, error: Option<String>, status| {
        let csrf = csrf_token(&headers);
        form_page(
            &state,
            &pool,
            "new_password.html",
            csrf.clone(),
            context! {
                pool_name => pool.slug.as_str(),
                action => finish.action(),
                for_pool => finish.for_pool(),
                binding => finish.binding(),
                request => sealed.clone(),
                challenge,
                csrf => csrf.0,
                // For password managers, which file the new password under this name; shown
                // back to the browser that sent it, never read by the step.
                username => form.username.as_deref().unwrap_or_default(),
                policy => pool.settings.password_policy.describe(),
                error,
            },
            status,
        )
    };
    // The code page: a software token's (or a recovery code's), or with `destination` (the
    // masked address) an e-mailed code's.
    let code_form = |challenge: &str, destination: Option<&str>, error: Option<&str>, status| {
        let csrf = csrf_token(&headers);
        form_page(
            &state,
            &pool,
            "mfa_code.html",
            csrf.clone(),
            context! {
                pool_name => pool.slug.as_str(),
                action => finish.action(),
                for_pool => finish.for_pool(),
                binding => finish.binding(),
                request => sealed.clone(),
                challenge,
                csrf => csrf.0,
                recovery => destination.is_none()
                    && (form.step.as_deref() == Some("mfa_recovery")
                        || (form.step.as_deref() == Some("mfa_code")
                            && form.code.as_deref().is_some_and(|c| c.trim().len() > 6))),
                email => destination.is_some(),
                // Masked when it was made, and only shown back: never read by the step.
                destination => destination.unwrap_or_default(),
                error,
            },
            status,
        )
    };
    let code_page =
        |challenge: &str, error: Option<&str>, status| code_form(challenge, None, error, status);
    let email_code_page = |challenge: &str, destination: &str, error: Option<&str>, status| {
        code_form(challenge, Some(destination), error, status)
    };
    let setup_page = |challenge: &str, secret: &str, uri: &str, error: Option<&str>, status| {
        let csrf = csrf_token(&headers);
        // The key in groups of four, as authenticator apps show what they are given.
        let key = secret
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        form_page(
            &state,
            &pool,
            "mfa_setup.html",
            csrf.clone(),
            context! {
                pool_name => pool.slug.as_str(),
                action => finish.action(),
                for_pool => finish.for_pool(),
                binding => finish.binding(),
                request => sealed.clone(),
                challenge,
                secret,
                key,
                uri => if uri.starts_with("otpauth://") { uri } else { "" },
                csrf => csrf.0,
                error,
            },
            status,
        )
    };
    let step_base = || {
        context! {
            pool_name => pool.slug.as_str(),
            action => finish.action(),
            for_pool => finish.for_pool(),
            binding => finish.binding(),
            request => sealed.clone(),
        }
    };
    match outcome {
        Ok(BrowserSignIn::SoftwareTokenMfa { challenge }) => {
            code_page(challenge.expose(), None, StatusCode::OK)
        }
        Ok(BrowserSignIn::MfaSetup {
            challenge,
            secret,
            uri,
        }) => setup_page(
            challenge.expose(),
            secret.expose(),
            uri.expose(),
            None,
            StatusCode::OK,
        ),
        Err(ServiceError::Unauthenticated(m))
            if form.step.as_deref() == Some("mfa_setup") && m == "invalid code" =>
        {
            setup_page(
                form.challenge.as_deref().unwrap_or_default(),
                form.secret.as_deref().unwrap_or_default(),
                form.uri.as_deref().unwrap_or_default(),
                Some("That code is not valid. Try again."),
                StatusCode::UNAUTHORIZED,
            )
        }
        Ok(BrowserSignIn::SignedInWithRecoveryCodes {
            session: _,
            cookie,
            codes,
        }) => {
            let csrf = csrf_token(&headers);
            let codes: Vec<&str> = codes.0.iter().map(|c| c.expose()).collect();
            let mut res = form_page(
                &state,
                &pool,
                "recovery_codes.html",
                csrf.clone(),
                context! {
                    pool_name => pool.slug.as_str(),
                    action => finish.action(),
                    for_pool => finish.for_pool(),
                    binding => finish.binding(),
                    request => sealed.clone(),
                    codes,
                    csrf => csrf.0,
                },
                StatusCode::OK,
            );
            set_cookie(
                &mut res,
                &sso_cookie_name(&pool),
                cookie.expose(),
                BROWSER_SESSION_TTL_SECS,
                is_https(&state, &pool),
            );
            res
        }
        Ok(BrowserSignIn::WebAuthnMfa { challenge, options }) => passkeys::passkey_page(
            &state,
            &pool,
            &headers,
            step_base(),
            challenge.expose(),
            &options,
            None,
            StatusCode::OK,
        ),
        Ok(BrowserSignIn::SelectMfaType { challenge, choices }) => passkeys::select_page(
            &state,
            &pool,
            &headers,
            step_base(),
            challenge.expose(),
            &choices,
        ),
        Ok(BrowserSignIn::EmailOtpMfa {
            challenge,
            destination,
        }) => email_code_page(challenge.expose(), &destination, None, StatusCode::OK),
        Err(ServiceError::Unauthenticated(m))
            if form.step.as_deref() == Some("email_code") && m == "invalid code" =>
        {
            email_code_page(
                form.challenge.as_deref().unwrap_or_default(),
                form.destination.as_deref().unwrap_or_default(),
                Some("That code is not valid. Try again."),
                StatusCode::UNAUTHORIZED,
            )
        }
        Err(ServiceError::Unauthenticated(m))
            if form.step.as_deref() == Some("passkey_signin") && m.contains("passkey") =>
        {
            sign_in_page(
                &state,
                &pool,
                &headers,
                &req,
                Some(sealed.clone()),
                &finish,
                None,
                Message::Error("That passkey was not accepted."),
                StatusCode::UNAUTHORIZED,
            )
            .await
        }
        Err(ServiceError::Unauthenticated(m))
            if form.step.as_deref() == Some("passkey") && m.contains("passkey") =>
        {
            error_page(
                &pool,
                "That passkey was not accepted. Go back to the application and sign in again.",
                StatusCode::UNAUTHORIZED,
            )
        }
        Err(ServiceError::Invalid(_)) if form.step.as_deref() == Some("select_mfa") => {
            error_page(&pool, "Unknown choice.", StatusCode::BAD_REQUEST)
        }
        Err(ServiceError::Unauthenticated(m))
            if form.step.as_deref() == Some("mfa_code") && m == "invalid code" =>
        {
            code_page(
                form.challenge.as_deref().unwrap_or_default(),
                Some("That code is not valid. Try again."),
                StatusCode::UNAUTHORIZED,
            )
        }
        Ok(BrowserSignIn::SignedIn { session, cookie }) => {
            let mut res = finish_sign_in(
                &state, &pool, &headers, &meta, &req, &sealed, &finish, &session,
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
        Ok(BrowserSignIn::NewPasswordRequired { challenge }) => {
            new_password_page(challenge.expose(), None, StatusCode::OK)
        }
        Err(ServiceError::Invalid(e)) if form.step.as_deref() == Some("new_password") => {
            new_password_page(
                form.challenge.as_deref().unwrap_or_default(),
                Some(e.to_string()),
                StatusCode::BAD_REQUEST,
            )
        }
        Err(ServiceError::Unauthenticated(_)) if form.step.as_deref() == Some("password") => {
            sign_in_page(
                &state,
                &pool,
                &headers,
                &req,
                Some(sealed.clone()),
                &finish,
                form.username.as_deref(),
                Message::Error("Incorrect username or password."),
                StatusCode::UNAUTHORIZED,
            )
            .await
        }
        Err(ServiceError::Throttled {
            retry_after_secs, ..
        }) => {
            let mut res = sign_in_page(
                &state,
                &pool,
                &headers,
                &req,
                Some(sealed.clone()),
                &finish,
                form.username.as_deref(),
                Message::Error("Too many failed sign-ins for this username. Try again later."),
                StatusCode::TOO_MANY_REQUESTS,
            )
            .await;
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            res
        }
        Err(ServiceError::Unauthenticated(_)) => error_page(
            &pool,
            "This step expired. Go back to the application and sign in again.",
            StatusCode::BAD_REQUEST,
        ),
        Err(e) => failure_page(&pool, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_renders_with_and_without_a_theme() {
        let theme = context! {
            pool_name => "Acme",
            theme => context! { display_name => "Acme", accent => "#0b6e4f", background => "#eeeeee", logo => "data:image/png;base64,AAAA" },
        };
        for name in [
            "sign_in.html",
            "new_password.html",
            "mfa_code.html",
            "error.html",
            "sign_out.html",
            "signed_out.html",
            "consent.html",
            "passkey.html",
            "select_mfa.html",
            "passkeys.html",
        ] {
            let plain = page(name, context! { pool_name => "acme" }, StatusCode::OK);
            assert_eq!(plain.status(), StatusCode::OK, "{name}");
            let themed = page(
                name,
                minijinja::value::merge_maps([context! { pool_name => "acme" }, theme.clone()]),
                StatusCode::OK,
            );
            assert_eq!(themed.status(), StatusCode::OK, "{name}");
        }
    }
}
