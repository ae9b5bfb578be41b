//! The consent step of the sign-in pages: what a third-party client asks for, in plain words,
//! and the user's **Allow** or **Deny**.

use super::*;

/// One line of the consent page: what a scope lets the application do, in plain words; a
/// scope without a description is shown by its name.
#[derive(Debug, serde::Serialize, PartialEq, Eq)]
struct ScopeLine {
    text: &'static str,
    name: Option<String>,
}

fn scope_lines(scopes: &[String]) -> Vec<ScopeLine> {
    let plain = |text| ScopeLine { text, name: None };
    let mut lines = Vec::new();
    // Every token names its user: the first line holds even when `openid` is not asked.
    lines.push(plain("Know who you are (your username)"));
    for s in scopes {
        match s.as_str() {
            "openid" => {}
            "profile" => lines.push(plain("See your name and profile details")),
            "email" => lines.push(plain("See your email address")),
            "phone" => lines.push(plain("See your phone number")),
            "address" => lines.push(plain("See your postal address")),
            "offline_access" => lines.push(plain("Keep access while you are away")),
            other => lines.push(ScopeLine {
                text: "Use the permission",
                name: Some(other.to_owned()),
            }),
        }
    }
    lines
}

/// The consent step: the application, the account, what it asks for, **Allow** and **Deny**.
pub(super) async fn consent_page(
    state: &AppState,
    pool: &Pool,
    headers: &HeaderMap,
    req: &AuthorizationRequest,
    session: &BrowserSession,
    prompt: &ConsentPrompt,
) -> Response {
    let sealed = match state.gh.seal_authorization_request(pool, req).await {
        Ok(s) => s,
        Err(e) => return failure_page(pool, &e),
    };
    let csrf = csrf_token(headers);
    form_page(
        state,
        pool,
        "consent.html",
        csrf.clone(),
        context! {
            action => "authorize",
            request => sealed,
            csrf => csrf.0,
            session => session.session.id.to_string(),
            client_name => prompt.client_name.as_str(),
            username => session.user.username.as_str(),
            scopes => scope_lines(&prompt.scopes),
        },
        StatusCode::OK,
    )
}

/// The consent form's answer. **Deny** sends the browser back with `access_denied`;
/// **Allow** records the consent and issues the code, for the account the page was shown to
/// only (the form names its session).
pub(super) async fn consent_step(
    state: &AppState,
    pool: &Pool,
    headers: &HeaderMap,
    meta: &RequestMeta,
    req: &AuthorizationRequest,
    form: &StepForm,
) -> Response {
    match form.decision.as_deref() {
        Some("deny") => redirect_error(
            state,
            pool,
            &RedirectError {
                redirect_uri: req.redirect_uri.clone(),
                error: "access_denied",
                description: "the user denied the request".to_owned(),
                state: req.state.clone(),
            },
        ),
        Some("allow") => {
            let session = match current_session(state, pool, headers).await {
                Ok(s) => s,
                Err(res) => return res,
            };
            let Some(session) = session else {
                return sign_in_page(
                    state,
                    pool,
                    headers,
                    req,
                    None,
                    &Finish::Code,
                    None,
                    Message::Error("Your sign-in ended. Sign in again to continue."),
                    StatusCode::UNAUTHORIZED,
                )
                .await;
            };
            if form.session.as_deref() != Some(session.session.id.to_string().as_str()) {
                return error_page(
                    pool,
                    "Another account signed in in this browser meanwhile. Go back to the application and start again.",
                    StatusCode::BAD_REQUEST,
                );
            }
            issue(
                state,
                pool,
                headers,
                meta,
                req,
                &session,
                ConsentAnswer::Allowed,
            )
            .await
        }
        _ => error_page(pool, "The form could not be read.", StatusCode::BAD_REQUEST),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(scopes: &[&str]) -> Vec<String> {
        scopes.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn scopes_are_said_in_plain_words_and_others_by_name() {
        let lines = scope_lines(&owned(&[
            "openid",
            "profile",
            "email",
            "phone",
            "user:GetUser",
        ]));
        let texts: Vec<&str> = lines.iter().map(|l| l.text).collect();
        assert_eq!(
            texts,
            [
                "Know who you are (your username)",
                "See your name and profile details",
                "See your email address",
                "See your phone number",
                "Use the permission",
            ]
        );
        assert_eq!(lines[4].name.as_deref(), Some("user:GetUser"));
        // Without openid the token still names the user, so the page says so.
        assert_eq!(scope_lines(&[])[0].text, "Know who you are (your username)");
    }
}
