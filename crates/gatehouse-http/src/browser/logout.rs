//! RP-initiated logout (OpenID RP-Initiated Logout 1.0) and its confirmation page.

use super::*;

#[derive(Debug, Default, Deserialize)]
pub struct LogoutForm {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    /// Present when the form is the confirmation page's own.
    csrf: Option<String>,
}

/// `GET|POST /oauth2/logout`: RP-initiated logout. Ends the browser's session in this pool
/// and every authorization started in it, then returns to the client's registered
/// post-logout URI (with `state`) or says so on a page. Without an `id_token_hint` of the
/// current session, the user confirms first with **Sign out**.
pub async fn logout(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Meta(meta): Meta,
    headers: HeaderMap,
    method: axum::http::Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let raw = if method == axum::http::Method::POST {
        body.to_vec()
    } else {
        uri.query().unwrap_or_default().as_bytes().to_vec()
    };
    let Ok(form) = serde_urlencoded::from_bytes::<LogoutForm>(&raw) else {
        return error_page(
            &pool,
            "The logout request could not be read.",
            StatusCode::BAD_REQUEST,
        );
    };
    let confirmed = form.csrf.is_some();
    if confirmed && !csrf_ok(&headers, form.csrf.as_deref()) {
        return error_page(
            &pool,
            "This form expired or was sent from another site. Sign out again from the application.",
            StatusCode::FORBIDDEN,
        );
    }
    let req = match state
        .gh
        .check_logout_request(
            &pool,
            form.id_token_hint.as_deref(),
            form.client_id.as_deref(),
            form.post_logout_redirect_uri.as_deref(),
            form.state.as_deref(),
        )
        .await
    {
        Ok(Ok(req)) => req,
        Ok(Err(m)) => return error_page(&pool, m, StatusCode::BAD_REQUEST),
        Err(e) => return failure_page(&pool, &e),
    };
    let session = match current_session(&state, &pool, &headers).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    let hinted = session
        .as_ref()
        .is_some_and(|s| req.hinted_sid.as_deref() == Some(s.session.id.to_string().as_str()));
    if let Some(s) = &session
        && !confirmed
        && !hinted
    {
        let csrf = csrf_token(&headers);
        return form_page(
            &state,
            &pool,
            "sign_out.html",
            csrf.clone(),
            context! {
                pool_name => pool.slug.as_str(),
                action => "logout",
                csrf => csrf.0,
                client_id => req.client_id,
                post_logout_redirect_uri => req.post_logout_redirect_uri,
                state => req.state,
                username => s.user.username.as_str(),
            },
            StatusCode::OK,
        );
    }
    if let Some(s) = &session
        && let Err(e) = state.gh.end_browser_session(&pool, s, &meta).await
    {
        return failure_page(&pool, &e);
    }
    let then = req
        .post_logout_redirect_uri
        .as_deref()
        .and_then(|uri| redirect_to(uri, &[("state", req.state.as_deref())]));
    // The session here has ended; one a provider's sign-in started ends there too, the
    // browser coming back to go on to `then` (`federation::upstream_logout_done`).
    let upstream = match &session {
        Some(s) => match state
            .gh
            .start_upstream_logout(&pool, s, then.as_deref())
            .await
        {
            Ok(upstream) => upstream,
            Err(e) => {
                tracing::warn!(error = %e, "no logout at the identity provider");
                None
            }
        },
        None => None,
    };
    let mut res = match upstream.or(then) {
        Some(location) => see_other(&location),
        None => pool_page(
            &pool,
            "signed_out.html",
            context! { pool_name => pool.slug.as_str() },
            StatusCode::OK,
        ),
    };
    set_cookie(
        &mut res,
        &sso_cookie_name(&pool),
        "",
        0,
        is_https(&state, &pool),
    );
    res
}
