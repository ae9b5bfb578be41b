//! "Forgot your password?" on the sign-in pages: the username, then the code sent by message
//! with a new password, which signs the browser in.

use super::*;

const WRONG_CODE: &str =
    "The code is wrong or has expired. Check the message, or ask for a new code.";

/// The steps of a password reset on the sign-in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ResetStep {
    /// "Forgot your password?" on the sign-in page: ask for the username.
    Start,
    /// The username: send a code, ask for it and a new password.
    Forgot,
    /// The code and the new password: set it and sign in.
    Reset,
    /// Back to the sign-in page.
    SignIn,
}

impl ResetStep {
    pub(super) fn parse(step: &str) -> Option<Self> {
        Some(match step {
            "forgot_start" => Self::Start,
            "forgot" => Self::Forgot,
            "reset" => Self::Reset,
            "sign_in" => Self::SignIn,
            _ => return None,
        })
    }
}

/// A step of "Forgot your password?" (the form's CSRF token and sealed request already
/// checked). Asking for a code answers the same page for every username; a wrong code is
/// answered 401, so the failure limits count it like a wrong password.
#[allow(clippy::too_many_arguments)]
pub(super) async fn reset_step(
    state: &AppState,
    pool: &Pool,
    meta: &gatehouse_service::RequestMeta,
    headers: &HeaderMap,
    req: &AuthorizationRequest,
    sealed: &str,
    finish: &Finish,
    step: ResetStep,
    form: &StepForm,
) -> Response {
    let username = form.username.as_deref().unwrap_or_default().trim();
    let csrf = csrf_token(headers);
    let forgot_page = |error: Option<&str>, status| {
        form_page(
            state,
            pool,
            "forgot_password.html",
            csrf.clone(),
            context! {
                pool_name => pool.slug.as_str(),
                action => finish.action(),
                for_pool => finish.for_pool(),
                binding => finish.binding(),
                request => sealed,
                csrf => csrf.0.clone(),
                username,
                error,
            },
            status,
        )
    };
    let reset_page = |error: Option<String>, status| {
        form_page(
            state,
            pool,
            "reset_password.html",
            csrf.clone(),
            context! {
                pool_name => pool.slug.as_str(),
                action => finish.action(),
                for_pool => finish.for_pool(),
                binding => finish.binding(),
                request => sealed,
                csrf => csrf.0.clone(),
                username,
                policy => pool.settings.password_policy.describe(),
                error,
            },
            status,
        )
    };
    match step {
        ResetStep::Start => forgot_page(None, StatusCode::OK),
        ResetStep::SignIn => {
            sign_in_page(
                state,
                pool,
                headers,
                req,
                Some(sealed.to_owned()),
                finish,
                Some(username),
                Message::None,
                StatusCode::OK,
            )
            .await
        }
        ResetStep::Forgot if username.is_empty() => {
            forgot_page(Some("Enter your username."), StatusCode::BAD_REQUEST)
        }
        ResetStep::Forgot => match state.gh.browser_forgot_password(pool, username, meta).await {
            Ok(()) => reset_page(None, StatusCode::OK),
            Err(e) => failure_page(pool, &e),
        },
        ResetStep::Reset => {
            let code = Secret::new(form.code.clone().unwrap_or_default());
            let new_password = Secret::new(form.new_password.clone().unwrap_or_default());
            match state
                .gh
                .browser_reset_password(pool, username, &code, &new_password, meta)
                .await
            {
                Ok(BrowserReset::SignedIn { session, cookie }) => {
                    let mut res =
                        finish_sign_in(state, pool, headers, meta, req, sealed, finish, &session)
                            .await;
                    set_cookie(
                        &mut res,
                        &sso_cookie_name(pool),
                        cookie.expose(),
                        BROWSER_SESSION_TTL_SECS,
                        is_https(state, pool),
                    );
                    res
                }
                Ok(BrowserReset::PasswordChanged) => {
                    sign_in_page(
                        state,
                        pool,
                        headers,
                        req,
                        Some(sealed.to_owned()),
                        finish,
                        Some(username),
                        Message::Notice("Your password was changed. Sign in with it."),
                        StatusCode::OK,
                    )
                    .await
                }
                Err(ServiceError::Invalid(e)) if e.field == "code" => {
                    reset_page(Some(WRONG_CODE.to_owned()), StatusCode::UNAUTHORIZED)
                }
                Err(ServiceError::Invalid(e)) => {
                    reset_page(Some(e.to_string()), StatusCode::BAD_REQUEST)
                }
                Err(e) => failure_page(pool, &e),
            }
        }
    }
}
